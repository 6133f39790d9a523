"""``clipmat video CLIP.mp4 "the dog" -o OUT.webm``: a phrase through a video.

OUT is a transparent WebM (VP9 with alpha: the frame's colours, the matte as alpha) or, with
``--edit``, the edited clip as an MP4 (H.264); ``--mattes DIR`` writes every frame's matte as
a numbered 8-bit PNG (DIR/000000.png, ...) at the clip's size. The frame rate and the audio are
kept. The phrase, and ``--box`` or ``--points`` on the first frame, pick the object once; it is
followed through the clip (:func:`clipmat.video.predict_video`). Prompts, predictor and edit
options are those of ``clipmat matte`` (:mod:`clipmat.matte_cli`, whose helpers this reuses).

Frames are streamed (memory holds a few of them) with a progress bar on stderr. Ctrl-C stops
the run with what was written usable: the PNGs up to the last frame, the video file closed
(exit status 130). A command line that cannot run gives one ``clipmat video: error: ...`` line
and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipmat import matte_cli
from clipmat.imageio import load_image
from clipmat.matte_cli import EDITS, MAX_PHRASE_CHARS, USAGE_ERROR, MatteError, one_line
from clipmat.video.codec import PngSequence, VideoError, VideoReader, VideoWriter
from clipmat.video.steady import STEADY
from clipmat.video.stream import LatestFrame, predict_video

PROG = "clipmat video"
INTERRUPTED = 130  # the exit status of a run stopped by Ctrl-C (128 + SIGINT)

EXAMPLES = """\
prompts (on the first frame, in its pixels, as for clipmat matte):
  --box X0,Y0,X1,Y1        the object lies inside this box
  --points "X,Y;X,Y,-"     clicks: '+' (default) on the object, '-' on what is not

examples:
  clipmat video clip.mp4 "the dog on the left" -o dog.webm
  clipmat video clip.mp4 "the dog" -o dog.webm --mattes mattes/ --box 40,30,200,180
  clipmat video clip.mp4 "the dog" -o out.mp4 --edit background --background beach.jpg
  clipmat video clip.mp4 "the dog" --mattes mattes/        # the PNG sequence alone
"""


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The verb's command line (see the module's docstring and ``--help``)."""
    parser = matte_cli.Parser(
        prog=prog,
        description="Matte the object a phrase names through a video, followed frame after\n"
        "frame: a transparent WebM, an edited MP4 and/or a PNG sequence of the mattes.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("video", help="the clip (MP4, WebM, MOV, ...: what FFmpeg reads)")
    parser.add_argument("phrase", help="what to matte, e.g. 'the dog on the left'")
    out = "OUT.webm|OUT.mp4"
    parser.add_argument(
        "-o", "--out", metavar=out, help="a transparent WebM, or with --edit an MP4"
    )
    parser.add_argument(
        "--mattes", metavar="DIR", help="also write each frame's matte as DIR/NNNNNN.png"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--no-audio", action="store_true", help="leave the audio out")
    matte_cli.add_predictor_options(parser, "predictor (as clipmat matte)")
    matte_cli.add_prompt_options(parser, "prompts on the first frame (see below)")
    video = parser.add_argument_group("following")
    video.add_argument("--no-follow", action="store_true", help="each frame the phrase's own pick")
    weight = f"the previous matte's weight where frames agree, 0 to 1 (default {STEADY}; 0: off)"
    video.add_argument("--steady", type=float, default=STEADY, metavar="W", help=weight)
    edits = parser.add_argument_group("output: the edited clip instead of the transparent one")
    edits.add_argument(
        "--edit", choices=EDITS, help="write the edited clip (RGB, H.264) to OUT.mp4"
    )
    matte_cli.add_edit_settings(parser)
    parser.set_defaults(cutout=False, depth=8)
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Everything that can be checked before the video is opened and the predictor loaded.

    Raises:
        MatteError: saying what is wrong.
    """
    args.phrase = args.phrase.strip()
    if not args.phrase:
        raise MatteError(
            "give a phrase: the video follows what it names (a --box or --points "
            "on the first frame may say which of its objects)"
        )
    if len(args.phrase) > MAX_PHRASE_CHARS:
        raise MatteError(
            f"the phrase is too long ({len(args.phrase)} characters; at most "
            f"{MAX_PHRASE_CHARS}): name the object in a few words"
        )
    if not args.out and not args.mattes:
        raise MatteError("give -o OUT.webm (or OUT.mp4 with --edit), --mattes DIR, or both")
    want = ".mp4" if args.edit else ".webm"
    if args.out and (Path(args.out).suffix.lower() != want or Path(args.out).is_dir()):
        kind = f"the --edit {args.edit} clip is an MP4" if args.edit else "the clip is a WebM"
        raise MatteError(f"{kind}: name it *{want}, got {args.out!r}")
    if args.mattes and Path(args.mattes).is_file():
        raise MatteError(f"--mattes is a folder, got the file {args.mattes!r}")
    if not 0.0 <= args.steady < 1.0:
        raise MatteError(f"--steady is a weight in [0, 1), got {args.steady:g}")
    if not Path(args.video).is_file():
        raise MatteError(f"no such video: {args.video}")
    matte_cli.check_edit_options(args)
    background = args.background
    if args.edit == "background" and background and Path(background).is_file():
        try:  # read once for the whole clip
            args.background = load_image(background)
        except (OSError, ValueError) as err:
            raise MatteError(f"cannot read --background {background}: {one_line(err)}") from None


class Outputs:
    """The run's outputs, written frame by frame: the video file and the PNG sequence.

    Args:
        args: the checked command line.
        reader: the open source (its size, frame rate and audio).
    """

    def __init__(self, args: argparse.Namespace, reader: VideoReader) -> None:
        self.args, self.reader = args, reader
        self.mattes = PngSequence(args.mattes) if args.mattes else None
        self.video = None
        if args.out:
            info = reader.info
            audio = None if args.no_audio else reader.audio_stream
            self.video = VideoWriter(
                args.out, (info.height, info.width), info.fps, alpha=not args.edit, audio=audio
            )

    def write(self, rgb: np.ndarray, alpha: np.ndarray) -> None:
        """Write one frame: (H, W, 3) uint8 and its (H, W) float32 matte."""
        matte = np.rint(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8)
        if self.mattes is not None:
            self.mattes.write(matte)
        if self.video is not None:
            image = matte_cli.render(rgb, alpha, self.args) if self.args.edit else None
            self.video.write(np.dstack([rgb, matte]) if image is None else image)
            self.video.write_audio(self.reader.take_audio())

    def close(self, *, finished: bool) -> None:
        """Close the video file (its audio to the end when the clip was finished)."""
        if self.video is not None:
            if finished:
                self.video.write_audio(self.reader.take_audio())
            self.video.close()

    @property
    def count(self) -> int:
        """Frames written."""
        return self.video.count if self.video is not None else self.mattes.count


def _progress(results: Iterator[Any], total: int | None, quiet: bool) -> Iterator[Any]:
    """``results`` with a tqdm progress bar on stderr (frames and frames per second)."""
    from tqdm import tqdm

    return tqdm(
        results,
        total=total,
        unit="frame",
        desc=PROG,
        disable=quiet,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
    )


def _matte_clip(
    args: argparse.Namespace,
    predictor: Any,
    reader: VideoReader,
    outputs: Outputs,
    statuses: Counter,
) -> None:
    """Predict and write every frame, counting each frame's status in ``statuses``."""
    source = LatestFrame(reader.frames())
    results = predict_video(
        predictor,
        source,
        args.phrase,
        setting=args.setting,
        refine=True if args.refine else None,
        box=args.box,
        points=args.points,
        follow=not args.no_follow,
        steady=args.steady,
    )
    try:
        for result in _progress(results, reader.info.frames, args.quiet):
            outputs.write(source.frame, result.alpha)
            statuses[result.status] += 1
    except VideoError as err:
        raise MatteError(f"cannot read the video {args.video}: {one_line(err)}") from None
    except ValueError as err:
        raise MatteError(one_line(err)) from None


def _open(args: argparse.Namespace) -> VideoReader:
    """The source, opened; its first frame's size checked against the prompts.

    Raises:
        MatteError: for a file that is not a video, or prompts outside its frames.
    """
    try:
        reader = VideoReader(args.video, audio=bool(args.out) and not args.no_audio)
    except VideoError as err:
        raise MatteError(f"cannot read the video {args.video}: {one_line(err)}") from None
    size = (reader.info.height, reader.info.width)
    try:
        matte_cli.check_prompts(size, args.box, args.points, "the first frame")
    except MatteError:
        reader.close()
        raise
    return reader


def run(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """Matte the clip and write the outputs as ``args`` say; returns the report and the exit
    status (0, or ``INTERRUPTED`` after Ctrl-C, the outputs closed and usable).

    Raises:
        MatteError: for anything the user can fix (see :func:`check_args`).
    """
    check_args(args)
    with _open(args) as reader:
        start = time.perf_counter()
        predictor = matte_cli.load(args.predictor, args.device, args.precision)
        loaded = time.perf_counter() - start
        try:
            outputs = Outputs(args, reader)
        except VideoError as err:
            raise MatteError(one_line(err)) from None
        statuses: Counter = Counter()
        finished = False
        try:
            _matte_clip(args, predictor, reader, outputs, statuses)
            finished = True
        except KeyboardInterrupt:
            pass
        finally:
            outputs.close(finished=finished)
        seconds = time.perf_counter() - start - loaded
    info = reader.info
    written = [w for w in (args.out, args.mattes and f"{args.mattes}/") if w]
    report = {
        "video": str(args.video),
        "phrase": args.phrase,
        "predictor": predictor.name,
        "frames": outputs.count,
        "width": info.width,
        "height": info.height,
        "fps": round(float(info.fps), 3),
        "seconds": round(seconds, 3),
        "frames_per_second": round(outputs.count / seconds, 3) if seconds > 0 else 0.0,
        "load_seconds": round(loaded, 3),
        "statuses": dict(statuses),
        "written": written,
        "audio": bool(info.audio and args.out and not args.no_audio),
        "interrupted": not finished,
    }
    return report, 0 if finished else INTERRUPTED


def summary_line(info: dict[str, Any]) -> str:
    """The one stderr line of a run."""
    statuses = ", ".join(f"{k} {v}" for k, v in info["statuses"].items())
    stopped = " (interrupted: the outputs hold the frames written so far)"
    return (
        f"{info['predictor']}: {info['frames']} frames ({info['width']}x{info['height']}) in "
        f"{info['seconds']:.1f} s ({info['frames_per_second']:.2f} frames/s; {statuses}), "
        f"wrote {' and '.join(info['written'])}{stopped if info['interrupted'] else ''}"
    )


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """``clipmat video``: returns the exit status (0; 2 with one error line on stderr; 130
    after Ctrl-C)."""
    args = build_parser(prog).parse_args(argv)
    try:
        info, status = run(args)
    except MatteError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"{prog}: {summary_line(info)}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Text-driven video matting on mini-world clips: the video path against per-frame predicts.

    python bench/video.py                    # the table: 512 px, 3 kinds x 3 seeds x 32 frames
    python bench/video.py --choices          # the steadiness alternatives (predictions cached)
    python bench/video.py --codecs           # PyAV against imageio-ffmpeg (VP9 + alpha, H.264)
    python bench/video.py --size 128 --seeds 1 --length 12    # a quick look

Clips come from :func:`clipmat.data.clips.make_clip` (entities that move, pass a look-alike of
the same category and colour, leave and come back; or a still scene where only sensor noise
changes), each with the referred entity's alpha in every frame. Both paths run the bundled
mini-world predictor on the CPU at the precision ``--precision`` gives (auto: what ``clipmat
matte --precision auto`` chooses on this CPU) with torch's threads as they are: "per frame"
calls ``predictor.predict(frame, phrase)`` on each frame; "video" is ``predict_video`` (the
object followed, its matte steady). Per kind and overall: grounding
(share of frames with IoU > 0.5), MAD x 1e3, dtSSD (Robust Video Matting's, mean over frames,
:mod:`clipmat.video.metrics`), identity switches and frames showing another entity (summed over
clips), and the wall time per frame: both paths run side by side, frame by frame (each frame
through one, then the other, the order alternating; the predictor's photo cache emptied before
each), so a busy moment of a shared machine slows both alike; the process's CPU time beside it.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipmat.data.clips import KINDS, Clip, make_clip  # noqa: E402
from clipmat.runtime import fingerprint  # noqa: E402
from clipmat.video import predict_video, steady, stream  # noqa: E402
from clipmat.video.metrics import ClipScore  # noqa: E402

MEASURES = ("grounding", "mad", "dtssd", "switches", "wrong")


def score(clip: Clip, frames: list, alphas: list[np.ndarray]) -> dict[str, float]:
    """The measures of one path's mattes (a list of (H, W) arrays) on ``clip``."""
    sc = ClipScore(clip.target)
    for alpha, frame in zip(alphas, frames, strict=True):
        sc.add(alpha, frame.alphas)
    return sc.summary()


def per_frame(predictor: Any, clip: Clip, images: list[np.ndarray]) -> list[np.ndarray]:
    """Independent predicts, one per frame."""
    return [predictor.predict(image, clip.phrase).alpha for image in images]


def video(predictor: Any, clip: Clip, images: list[np.ndarray], **options: Any) -> list:
    """The video path's mattes."""
    return [r.alpha for r in predict_video(predictor, iter(images), clip.phrase, **options)]


def _row(name: str, rows: list[dict[str, float]], seconds: float, frames: int) -> str:
    """One table row: means of grounding, MAD and dtSSD, sums of switches and wrong frames."""
    mean = {m: statistics.fmean(r[m] for r in rows) for m in ("grounding", "mad", "dtssd")}
    total = {m: sum(int(r[m]) for r in rows) for m in ("switches", "wrong")}
    ms = 1000 * seconds / frames
    return (
        f"| {name} | {mean['grounding']:.3f} | {mean['mad']:.1f} | {mean['dtssd']:.2f} | "
        f"{total['switches']} | {total['wrong']} | {ms:.0f} | {1000 / ms:.1f} |"
    )


HEADER = (
    "| clips, path | grounding | MAD | dtSSD | switches | wrong frames | ms/frame | frames/s |\n"
    "|---|---|---|---|---|---|---|---|"
)


def _timed(step: Callable[[], Any], predictor: Any) -> tuple[Any, float, float]:
    """(what ``step`` returns, its wall seconds, its CPU seconds), every photo encoded anew."""
    predictor.clear_cache()
    start, cpu = time.perf_counter(), time.process_time()
    out = step()
    return out, time.perf_counter() - start, time.process_time() - cpu


def run_clip(predictor: Any, clip: Clip, images: list[np.ndarray]) -> dict[str, list]:
    """Both paths on one clip, frame by frame side by side (so a busy moment of the machine
    slows both alike): {"per frame"|"video": [(alpha, wall s, CPU s), ...]}."""
    results = predict_video(predictor, iter(images), clip.phrase)
    out: dict[str, list] = {"per frame": [], "video": []}
    for t, image in enumerate(images):
        steps = [
            ("per frame", lambda image=image: predictor.predict(image, clip.phrase).alpha),
            ("video", lambda: next(results).alpha),
        ]
        for name, step in steps if t % 2 == 0 else steps[::-1]:
            out[name].append(_timed(step, predictor))
    return out


def main_table(predictor: Any, clips: list[Clip]) -> None:
    """Print the per-kind and overall table of both paths."""
    results: dict[tuple[str, str], list] = {}
    seconds: dict[tuple[str, str], float] = {}
    cpu_seconds: dict[tuple[str, str], float] = {}
    counts: dict[str, int] = {}
    predictor.predict(clips[0].frame(0).image, clips[0].phrase)  # warm up
    for n, clip in enumerate(clips):
        frames = list(clip)
        for name, rows in run_clip(predictor, clip, [f.image for f in frames]).items():
            for key in ((clip.kind, name), ("all", name)):
                results.setdefault(key, []).append(score(clip, frames, [r[0] for r in rows]))
                seconds[key] = seconds.get(key, 0.0) + sum(r[1] for r in rows)
                cpu_seconds[key] = cpu_seconds.get(key, 0.0) + sum(r[2] for r in rows)
        counts[clip.kind] = counts.get(clip.kind, 0) + len(frames)
        counts["all"] = counts.get("all", 0) + len(frames)
        print(f"  clip {n + 1}/{len(clips)} ({clip.kind}, seed {clip.seed}) done", file=sys.stderr)
    print(HEADER)
    for kind in [*dict.fromkeys(c.kind for c in clips), "all"]:
        for name in ("per frame", "video"):
            key = (kind, name)
            print(_row(f"{kind}, {name}", results[key], seconds[key], counts[kind]))
    wall, cpu = ({p: d[("all", p)] for p in ("video", "per frame")} for d in (seconds, cpu_seconds))
    dt = [statistics.fmean(r["dtssd"] for r in results[("all", p)]) for p in ("video", "per frame")]
    per = {p: 1000 * cpu[p] / counts["all"] for p in cpu}
    print(
        f"\nCPU time (all threads) per frame: per frame {per['per frame']:.0f} ms, "
        f"video {per['video']:.0f} ms"
    )
    print(
        f"video / per frame: wall time {wall['video'] / wall['per frame']:.2f}x, CPU time "
        f"{cpu['video'] / cpu['per frame']:.2f}x, dtSSD {dt[0] / dt[1]:.2f}x"
    )


class CachedPredictor:
    """A predictor's results memoised by frame, phrase and options (copies handed out), so
    that the video path's alternatives run on the same predictions at little cost."""

    def __init__(self, predictor: Any) -> None:
        self.predictor, self.name, self._memo = predictor, predictor.name, {}

    def predict(self, image: np.ndarray, phrase: str, **options: Any) -> Any:
        key = (fingerprint(image), phrase, repr(sorted(options.items())))
        if key not in self._memo:
            self._memo[key] = self.predictor.predict(image, phrase, **options)
        return copy.deepcopy(self._memo[key])


class _StillBlend(steady.FlowEstimator):
    """The blend without motion: the previous matte is not warped (the follower keeps the
    flow)."""

    def __call__(self, rgb: np.ndarray) -> Any:
        field = super().__call__(rgb)
        if field is not None:
            field.still_flow = np.zeros_like(field.flow)
        return field


class _RawFlowBlend(steady.FlowEstimator):
    """The blend along the raw flow (sensor noise moves the matte too)."""

    def __call__(self, rgb: np.ndarray) -> Any:
        field = super().__call__(rgb)
        if field is not None:
            field.still_flow = field.flow
        return field


class _FullFlow(steady.FlowEstimator):
    """DIS on the frames at their own size (no shrinking to 256 px)."""

    def __init__(self) -> None:
        super().__init__(side=1 << 16)


class _MediumFlow(steady.FlowEstimator):
    """DIS's medium preset instead of ultrafast."""

    def __init__(self) -> None:
        super().__init__()
        import cv2

        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


CHOICES: list[tuple[str, dict[str, Any], dict[str, float], type | None]] = [
    ("per frame (no follow, no blend)", {"follow": False, "steady": 0.0}, {}, None),
    ("follow, no blend", {"steady": 0.0}, {}, None),
    ("follow + blend, weight 0.4", {"steady": 0.4}, {}, None),
    ("follow + blend, weight 0.6 (default)", {}, {}, None),
    ("follow + blend, weight 0.8", {"steady": 0.8}, {}, None),
    ("weight 0.6, alpha gate 0.35", {}, {"GATE": 0.35}, None),
    ("weight 0.6, no warp (blend in place)", {}, {}, _StillBlend),
    ("weight 0.6, raw flow (noise not held)", {}, {}, _RawFlowBlend),
    ("weight 0.6, DIS at full size", {}, {}, _FullFlow),
    ("weight 0.6, DIS medium preset", {}, {}, _MediumFlow),
]


def choices_table(predictor: Any, clips: list[Clip]) -> None:
    """Print the alternatives of the video path on the same (cached) predictions."""
    cached = CachedPredictor(predictor)
    data = [(clip, list(clip)) for clip in clips]
    for clip, frames in data:  # fill the cache: every later row costs only the video path
        video(cached, clip, [f.image for f in frames], follow=False, steady=0.0)
    kinds = list(dict.fromkeys(c.kind for c in clips))
    print(
        "| variant | "
        + " | ".join(f"{k}: grounding, MAD, dtSSD, switches" for k in kinds)
        + " | extra ms/frame |"
    )
    print("|---" * (len(kinds) + 2) + "|")
    for name, options, constants, estimator in CHOICES:
        saved = {k: getattr(steady, k) for k in constants}
        for k, v in constants.items():
            setattr(steady, k, v)
        stream.FlowEstimator = estimator or steady.FlowEstimator
        rows: dict[str, list] = {}
        start, count = time.perf_counter(), 0
        for clip, frames in data:
            alphas = video(cached, clip, [f.image for f in frames], **options)
            rows.setdefault(clip.kind, []).append(score(clip, frames, alphas))
            count += len(frames)
        extra = 1000 * (time.perf_counter() - start) / count
        stream.FlowEstimator = steady.FlowEstimator
        for k, v in saved.items():
            setattr(steady, k, v)
        cells = [
            f"{statistics.fmean(r['grounding'] for r in rows[k]):.3f}, "
            f"{statistics.fmean(r['mad'] for r in rows[k]):.1f}, "
            f"{statistics.fmean(r['dtssd'] for r in rows[k]):.2f}, "
            f"{sum(int(r['switches']) for r in rows[k])}"
            for k in kinds
        ]
        print(f"| {name} | " + " | ".join(cells) + f" | {extra:.1f} |")
    print("\nextra ms/frame: the video path on cached predictions (flow, follower, blend and the")
    print("copy of each cached result), beside the predictor's own time.")


def _imageio_write(path: Path, frames: list[np.ndarray], fps: float, alpha: bool) -> None:
    """Encode through imageio-ffmpeg (its own ffmpeg binary, fed through a pipe)."""
    import imageio_ffmpeg

    height, width = frames[0].shape[:2]
    options = _ffmpeg_options(alpha)
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec="libvpx-vp9" if alpha else "libx264",
        pix_fmt_in="rgba" if alpha else "rgb24",
        pix_fmt_out="yuva420p" if alpha else "yuv420p",
        output_params=options,
        macro_block_size=1,
    )
    writer.send(None)
    for frame in frames:
        writer.send(frame)
    writer.close()


def _ffmpeg_options(alpha: bool) -> list[str]:
    """The encoder settings of :mod:`clipmat.video.codec` as ffmpeg arguments."""
    from clipmat.video.codec import MP4_OPTIONS, WEBM_OPTIONS

    options = WEBM_OPTIONS if alpha else MP4_OPTIONS
    names = {"b": "b:v"}  # ffmpeg's command line wants the stream of the bit rate
    return [item for k, v in options.items() for item in (f"-{names.get(k, k)}", v)]


def _imageio_read(path: Path, alpha: bool) -> int:
    """Decode through imageio-ffmpeg (VP9 through libvpx for its alpha); returns the frames."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(
        str(path),
        pix_fmt="rgba" if alpha else "rgb24",
        bpp=4 if alpha else 3,
        input_params=["-c:v", "libvpx-vp9"] if alpha else None,
    )
    next(reader)
    return sum(1 for _ in reader)


def _pyav_write(path: Path, frames: list[np.ndarray], fps: float, alpha: bool) -> None:
    from clipmat.video.codec import VideoWriter

    with VideoWriter(path, frames[0].shape[:2], fps, alpha=alpha) as writer:
        for frame in frames:
            writer.write(frame)


def _pyav_read(path: Path, alpha: bool) -> int:
    from clipmat.video.codec import read_video

    return sum(1 for _ in read_video(path, alpha=alpha))


def codecs_table(size: int, count: int, repeats: int, folder: Path) -> None:
    """Print encode and decode times of both libraries for both outputs (median of repeats)."""
    clip = make_clip("pass", 0, size=size, length=count)
    rgb = [f.image for f in clip]
    rgba = [np.dstack([f.image, np.rint(f.target * 255).astype(np.uint8)]) for f in clip]
    print(f"{count} frames of {size}x{size}; median of {repeats} runs\n")
    print("| library | output | encode ms/frame | decode ms/frame | bytes | frames back |")
    print("|---|---|---|---|---|---|")
    for library, write, read in (
        ("PyAV", _pyav_write, _pyav_read),
        ("imageio-ffmpeg", _imageio_write, _imageio_read),
    ):
        for alpha, frames, name in ((True, rgba, "WebM VP9 yuva420p"), (False, rgb, "MP4 H.264")):
            path = folder / f"{library}_{'a' if alpha else 'b'}.{'webm' if alpha else 'mp4'}"
            enc, dec = [], []
            for _ in range(repeats):
                start = time.perf_counter()
                write(path, frames, clip.fps, alpha)
                enc.append(time.perf_counter() - start)
                start = time.perf_counter()
                back = read(path, alpha)
                dec.append(time.perf_counter() - start)
            print(
                f"| {library} | {name} | {1000 * statistics.median(enc) / count:.1f} | "
                f"{1000 * statistics.median(dec) / count:.1f} | {path.stat().st_size} | "
                f"{back} |"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="frame side in pixels")
    parser.add_argument("--length", type=int, default=32, help="frames per clip")
    parser.add_argument("--seeds", type=int, default=3, help="clips per kind")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated clip kinds")
    parser.add_argument(
        "--precision", default="auto", help="the predictor's precision (auto: as clipmat matte)"
    )
    parser.add_argument("--choices", action="store_true", help="the alternatives' table instead")
    parser.add_argument("--codecs", action="store_true", help="the codec libraries' table instead")
    parser.add_argument("--repeats", type=int, default=3, help="--codecs: runs per measure")
    args = parser.parse_args(argv)
    if args.codecs:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            codecs_table(args.size, args.length, args.repeats, Path(folder))
        return 0
    import torch

    from clipmat.matte_cli import load

    predictor = load("mini-world", "cpu", args.precision)
    kinds = args.kinds.split(",")
    clips = [
        make_clip(k, s, size=args.size, length=args.length)
        for k in kinds
        for s in range(args.seeds)
    ]
    print(
        f"{len(clips)} clips of {args.length} frames at {args.size}x{args.size}, mini-world "
        f"predictor ({predictor.precision}, CPU, {torch.get_num_threads()} threads)\n"
    )
    (choices_table if args.choices else main_table)(predictor, clips)
    return 0


if __name__ == "__main__":
    sys.exit(main())

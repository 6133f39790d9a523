"""``clipmat matte PHOTO "the cat" -o OUT.png``: one photo's matte, cutout or edit as a PNG.

The photo is read with :func:`clipmat.imageio.load_image` (EXIF orientation applied); every
output has its upright size and is written atomically (:func:`editing.export.save_png`), its
folder created when missing. One line on stderr reports the run (``--json``: JSON on stdout).
A command line that cannot run gives one ``clipmat matte: error: ...`` line and exit status 2.
:mod:`editing` (the output's encoding, cutouts and edits) is imported only when a verb runs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from clipmat.imageio import load_image
from clipmat.precision import CPU_PRECISIONS, PRECISIONS, auto_precision, check_device
from clipmat.predictors.base import SETTINGS, Predictor
from clipmat.predictors.loading import load_predictor
from clipmat.predictors.results import MattingResult

PROG = "clipmat matte"
USAGE_ERROR = 2
MAX_PHRASE_CHARS = 300  # CLIP reads at most 77 tokens: a longer phrase is refused, not cut
# What --precision auto means on the CPU, for CLIPMat and zero-shot predictors alike: the first
# of these this CPU runs (as the web app chooses, from bench/cpu_paths.py); fp32 on a GPU.
EDITS = ("highlight", "background", "color")
HIGHLIGHT_OPTIONS = ("effect", "strength", "outline", "glow")
_PACKAGE = Path(__file__).resolve().parent  # warnings from here on are the result's notes
_NUMBER = r"\s*([-+]?(?:\d+\.?\d*|\.\d+))\s*"
_POINT = re.compile(rf"^{_NUMBER},{_NUMBER}(?:,\s*([+-])\s*)?$")

EXAMPLES = """\
prompts (coordinates in photo pixels, origin at the top left, as the photo is shown upright):
  --box X0,Y0,X1,Y1        the object lies inside this box, e.g. --box 40,30,200,180
  --points "X,Y;X,Y,-"     clicks separated by ';', each X,Y with an optional sign: '+'
                           (the default) on the object, '-' on what is not, e.g.
                           --points "120,80;60,200,-"
  an empty phrase ("") with a box or clicks mattes what they show, with no model

examples:
  clipmat matte photo.jpg "the cat" -o cat.png
  clipmat matte photo.jpg "the cat" -o cat.png --depth 16 --json
  clipmat matte photo.jpg "the cat" -o cutout.png --cutout
  clipmat matte photo.jpg "the cat" -o out.png --edit highlight --effect dim+blur --glow gold
  clipmat matte photo.jpg "the cat" -o out.png --edit background --background beach.jpg
  clipmat matte photo.jpg "" -o out.png --box 40,30,200,180 --points "120,80"
"""


class MatteError(Exception):
    """A command line that cannot run; its message is the error line (exit status 2)."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (the usage is under ``--help``)."""

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: MESSAGE`` and exit with status 2."""
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"X0,Y0,X1,Y1"`` -> four floats with x0 < x1 and y0 < y1 (argparse ``type``)."""
    parts = text.split(",")
    try:
        x0, y0, x1, y1 = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected X0,Y0,X1,Y1 (four numbers in photo pixels), got {text!r}"
        ) from None
    if not np.isfinite([x0, y0, x1, y1]).all() or x1 <= x0 or y1 <= y0:
        raise argparse.ArgumentTypeError(f"expected finite X0 < X1 and Y0 < Y1, got {text!r}")
    return x0, y0, x1, y1


def parse_points(text: str) -> list[tuple[float, float, bool]]:
    """``"X,Y;X,Y,-"`` -> [(x, y, positive), ...]; a point is positive unless it ends in ``-``
    (argparse ``type``)."""
    points = []
    for item in text.split(";"):
        match = _POINT.match(item)
        if match is None:
            raise argparse.ArgumentTypeError(
                f'expected clicks like "120,80;60,200,-" (X,Y with an optional + or -, '
                f"separated by ';'), got {item.strip()!r}"
            )
        x, y, sign = match.groups()
        points.append((float(x), float(y), sign != "-"))
    return points


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The verb's command line (see the module's docstring and ``--help``)."""
    parser = Parser(
        prog=prog,
        description="Matte one photo: the object a phrase names (or a box or clicks show),\n"
        "written as an 8-bit grey PNG at the photo's size, or as a cutout or an edit.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("photo", help="the photo (JPEG, PNG, WebP, ...; EXIF orientation applied)")
    parser.add_argument("phrase", nargs="?", default="", help="what to matte, e.g. 'the cat'")
    parser.add_argument("-o", "--out", required=True, metavar="OUT.png", help="the PNG to write")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    add_predictor_options(parser, "predictor")
    add_prompt_options(parser, "prompts (see below)")
    _add_output_options(parser)
    return parser


def add_predictor_options(parser: argparse.ArgumentParser, title: str) -> None:
    """--predictor, --precision, --device, --setting and --refine (shared with ``clipmat
    video``), in a group called ``title``."""
    model = parser.add_argument_group(title)
    names = "a name, 'auto' (default), 'hf-hub:owner/repo' or a checkpoint file"
    model.add_argument("--predictor", default="auto", metavar="NAME", help=names)
    auto = f"auto (default): on a CPU the first of {'/'.join(CPU_PRECISIONS)} it runs, else fp32"
    model.add_argument("--precision", choices=("auto", *PRECISIONS), default="auto", help=auto)
    model.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    model.add_argument("--setting", choices=SETTINGS, default="auto", help="how the phrase is read")
    model.add_argument("--refine", action="store_true", help="re-matte the edges in closed form")


def add_prompt_options(parser: argparse.ArgumentParser, title: str) -> None:
    """--box and --points (shared with ``clipmat video``), in a group called ``title``."""
    prompts = parser.add_argument_group(title)
    prompts.add_argument("--box", type=parse_box, metavar="X0,Y0,X1,Y1", help="a box around it")
    prompts.add_argument("--points", type=parse_points, metavar='"X,Y[,+|-];..."', help="clicks")


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    """--depth, --cutout, --edit and the edits' settings."""
    out = parser.add_argument_group("output (default: the matte, 8-bit grey)")
    out.add_argument("--depth", type=int, choices=(8, 16), default=8, help="bits of the matte")
    kind = out.add_mutually_exclusive_group()
    kind.add_argument("--cutout", action="store_true", help="an RGBA cutout instead of the matte")
    kind.add_argument("--edit", choices=EDITS, help="the edited photo (RGB) instead of the matte")
    add_edit_settings(parser)


def add_edit_settings(parser: argparse.ArgumentParser) -> None:
    """The edits' settings (--background, --color, --effect, --strength, --outline, --glow),
    shared with ``clipmat video``; --edit itself is the caller's."""
    edit = parser.add_argument_group("edits: --edit background needs --background, color --color")
    edit.add_argument("--background", metavar="FILE|COLOR|blur", help="a photo, a colour or 'blur'")
    edit.add_argument("--color", metavar="NAME|#hex", help="color: the colour; highlight: the tint")
    effects = "highlight: dim, desaturate, blur or tint, or several: dim+blur (default dim)"
    edit.add_argument("--effect", metavar="EFFECT[+EFFECT]", help=effects)
    edit.add_argument("--strength", type=float, metavar="0..1", help="highlight: how strong (0.6)")
    edit.add_argument("--outline", metavar="COLOR", help="highlight: a ring of this colour")
    edit.add_argument("--glow", metavar="COLOR", help="highlight: a halo of this colour")


def check_args(args: argparse.Namespace) -> None:
    """Everything that can be checked before the photo is read and the predictor loaded.

    Raises:
        MatteError: saying what is wrong.
    """
    args.phrase = args.phrase.strip()
    if not args.phrase and args.box is None and not args.points:
        raise MatteError("give a phrase, or a --box or --points to matte without one")
    if len(args.phrase) > MAX_PHRASE_CHARS:
        raise MatteError(
            f"the phrase is too long ({len(args.phrase)} characters; at most "
            f"{MAX_PHRASE_CHARS}): name the object in a few words"
        )
    if Path(args.out).suffix.lower() != ".png" or Path(args.out).is_dir():
        raise MatteError(f"the output is a PNG file: name it *.png, got {args.out!r}")
    if not Path(args.photo).is_file():
        raise MatteError(f"no such photo: {args.photo}")
    if args.depth != 8 and (args.cutout or args.edit):
        raise MatteError("--depth applies to the matte; cutouts and edits are 8-bit")
    check_edit_options(args)


def check_edit_options(args: argparse.Namespace) -> None:
    """Each edit's settings go with that edit; colours and effects are read now.

    Raises:
        MatteError: saying which setting is wrong.
    """
    names = ("background", "color", *HIGHLIGHT_OPTIONS)
    given = {name for name in names if getattr(args, name) is not None}
    allowed = {"background": {"background"}, "color": {"color"}}
    allowed["highlight"] = {"color", *HIGHLIGHT_OPTIONS}
    stray = sorted(given - allowed.get(args.edit, set()))
    if stray:
        where = f"with --edit {args.edit}" if args.edit else "without --edit"
        raise MatteError(f"--{stray[0]} does not apply {where} (see --help)")
    if args.strength is not None and not 0.0 <= args.strength <= 1.0:
        raise MatteError(f"--strength is a number in [0, 1], got {args.strength:g}")
    if args.edit in ("background", "color") and not getattr(args, args.edit):
        raise MatteError(f"--edit {args.edit} needs --{args.edit}")
    if not args.edit:
        return
    from editing import parse_color
    from editing.operations import parse_effects

    background = args.background
    if background and not Path(background).is_file() and background.strip().lower() != "blur":
        try:
            parse_color(background)
        except ValueError:
            raise MatteError(
                f"--background {background!r} is neither a file, a colour nor 'blur'"
            ) from None
    try:
        for colour in (args.color, args.outline, args.glow):
            if colour is not None:
                parse_color(colour)
        if args.effect is not None:
            parse_effects(args.effect)
    except ValueError as err:
        raise MatteError(one_line(err)) from None


def check_prompts(size: tuple[int, int], box: Any, points: Any, where: str = "the photo") -> None:
    """The box and clicks lie inside a photo of ``size`` = (H, W) (``where`` names it in the
    message: "the photo", "the first frame").

    Raises:
        MatteError: for a box or a click outside the photo.
    """
    height, width = size
    inside = f"inside {where} ({width}x{height} pixels)"
    if box is not None and (min(box[:2]) < 0 or box[2] > width or box[3] > height):
        raise MatteError(f"the box {','.join(f'{v:g}' for v in box)} is not {inside}")
    for x, y, _ in points or ():
        if not (0 <= x < width and 0 <= y < height):
            raise MatteError(f"the click {x:g},{y:g} is not {inside}")


def resolve_precision(precision: str, predictor: Predictor) -> str:
    """What ``--precision`` means for ``predictor``: 'auto' is the first of CPU_PRECISIONS this
    CPU runs for a predictor whose towers convert (CLIPMat, zero-shot) on the CPU, else fp32
    (a GPU, a predictor without ``set_precision``)."""
    if precision != "auto":
        return precision
    if not hasattr(predictor, "set_precision"):
        return "fp32"
    return auto_precision(predictor.device.type)


def load(name: str, device: str, precision: str) -> Predictor:
    """The predictor ``name`` on ``device``, its CLIP towers at ``precision``.

    Raises:
        MatteError: for an unknown predictor, missing weights or a precision that cannot run.
    """
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MatteError(f"--device {device}: no CUDA device here (use --device cpu)")
    if precision not in ("auto", "fp32"):
        device = "cpu" if device == "auto" else device  # the CPU paths run on the CPU only
    try:
        if precision not in ("auto", "fp32"):
            check_device(precision, device)
        predictor = load_predictor(name, device=device)
        chosen = resolve_precision(precision, predictor)
        if chosen != "fp32":
            if not hasattr(predictor, "set_precision"):
                raise ValueError(f"--precision does not apply to {predictor.name}")
            predictor.set_precision(chosen)
    except (FileNotFoundError, ValueError, ImportError) as err:
        raise MatteError(f"cannot load predictor {name!r}: {one_line(err)}") from None
    return predictor


def render(rgb: np.ndarray, alpha: np.ndarray, args: argparse.Namespace) -> np.ndarray:
    """The image to write: the matte (uint8 or uint16), the RGBA cutout or the RGB edit."""
    if not args.cutout and not args.edit:
        from editing import matte_to_bits

        return matte_to_bits(alpha, args.depth)
    import editing

    if args.cutout:
        return editing.cutout(rgb, alpha)
    if args.edit == "color":
        return editing.fill_color(rgb, alpha, args.color)
    if args.edit == "background":
        background: Any = args.background  # a file, a colour, "blur" or an image read already
        if isinstance(background, str) and Path(background).is_file():
            background = load_image(background)
        elif isinstance(background, str) and background.strip().lower() == "blur":
            background = "blur"
        return editing.replace_background(rgb, alpha, background)
    settings = {name: getattr(args, name) for name in HIGHLIGHT_OPTIONS}
    settings["tint_color"] = args.color
    return editing.highlight(rgb, alpha, **{k: v for k, v in settings.items() if v is not None})


def write(image: np.ndarray, out: Path) -> None:
    """Write ``image`` as PNG at ``out`` atomically, creating its folder.

    Raises:
        MatteError: when the folder or the file cannot be written.
    """
    from editing.export import save_png

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        save_png(image, out)
    except OSError as err:
        raise MatteError(f"cannot write {out}: {one_line(err)}") from None


def report(result: MattingResult, args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """What the run did, as printed on stderr or (``--json``) stdout."""
    return {
        "photo": str(args.photo),
        "output": str(args.out),
        "phrase": result.text,
        "predictor": result.predictor,
        "setting": result.setting,
        "confidence": round(float(result.confidence), 4),
        "unsure": bool(result.unsure),
        "notes": list(dict.fromkeys(one_line(n) for n in result.notes)),
        "seconds": round(float(result.seconds), 3),
        **extra,
    }


def summary_line(info: dict[str, Any]) -> str:
    """The one stderr line of a run."""
    sure = "unsure" if info["unsure"] else "sure"
    notes = "; notes: " + "; ".join(info["notes"]) if info["notes"] else ""
    return (
        f"{info['predictor']}: confidence {info['confidence']:.2f} ({sure}), "
        f"matted in {info['seconds']:.2f} s (predictor loaded in {info['load_seconds']:.2f} s), "
        f"wrote {info['output']} ({info['written']}){notes}"
    )


def _ours(caught: warnings.WarningMessage) -> bool:
    """Whether a warning is clipmat's own advice (a user warning raised from this package)."""
    in_package = Path(caught.filename).resolve().is_relative_to(_PACKAGE)
    return in_package and issubclass(caught.category, UserWarning)


def one_line(message: Any) -> str:
    """A message on one line (an error's lines joined)."""
    return " ".join(str(message).split())


def matte(
    args: argparse.Namespace, rgb: np.ndarray
) -> tuple[MattingResult, np.ndarray, Predictor, float]:
    """Load the predictor, matte ``rgb`` and render the output; returns the result (clipmat's
    own warnings first among its notes), the image, the predictor and its loading seconds."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        predictor = load(args.predictor, args.device, args.precision)
        loaded = time.perf_counter() - start
        try:
            result = predictor.predict(
                rgb,
                args.phrase,
                setting=args.setting,
                refine=True if args.refine else None,
                box=args.box,
                points=args.points,
            )
            image = render(rgb, result.alpha, args)
        except ValueError as err:
            raise MatteError(one_line(err)) from None
    ours = [w for w in caught if _ours(w)]
    for w in caught:
        if w not in ours:  # another library's warning: shown as usual
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    result.notes = [str(w.message) for w in ours] + result.notes
    return result, image, predictor, loaded


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Matte, render and write as ``args`` say; returns the report.

    Raises:
        MatteError: for anything the user can fix (see :func:`check_args`).
    """
    check_args(args)
    try:
        rgb = load_image(args.photo)
    except (OSError, ValueError) as err:
        raise MatteError(f"cannot read the photo {args.photo}: {one_line(err)}") from None
    check_prompts(rgb.shape[:2], args.box, args.points)
    result, image, predictor, loaded = matte(args, rgb)
    write(image, Path(args.out))
    height, width = rgb.shape[:2]
    kind = f"{args.edit} edit" if args.edit else "RGBA cutout" if args.cutout else "matte"
    depth = f", {args.depth}-bit" if kind == "matte" else ""
    return report(
        result,
        args,
        width=width,
        height=height,
        load_seconds=round(loaded, 3),
        precision=getattr(predictor, "precision", "fp32"),
        device=str(predictor.device),
        written=f"{kind}, {width}x{height}{depth}",
    )


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """``clipmat matte``: returns the exit status (0, or 2 with one error line on stderr)."""
    args = build_parser(prog).parse_args(argv)
    try:
        info = run(args)
    except MatteError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"{prog}: {summary_line(info)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Box-only mattes on real photos (no model), per photo and on average, against plain GrabCut.

    python bench/real_photos.py [--real ../shared/realdev] [--side 800] [--only NAME ...]
        [--methods grabcut cut box box_0.06 box_0.03 box_0.012] [--json out.json]
    python bench/real_photos.py --large --only bayes_woman --methods box box_0.06
        # seconds per matte of the named photo upscaled to 4000 x 3000 (12 MP) and to
        # 1200 x 798, the methods alternated, best of --repeat runs

Methods (the box as :func:`clipmat.evaluation.real.object_box`: the true alpha > 0.5 bounding
box widened by 5% of its size on each side; photos brought to a long side of ``--side``):

- ``grabcut``: plain ``cv2.grabCut`` from the box, 5 iterations, its hard mask;
- ``cut``: our graph cut alone (:func:`clipmat.interactive.graph_cut`), its working-resolution
  region upsampled (nearest) to the photo;
- ``box``: our box-only matte as the app makes it (:func:`clipmat.interactive.prompt_matte`);
- ``box_B``: our graph cut matted with a fixed unknown band of half width B
  (:func:`clipmat.interactive.correct_matte` with ``band=B``), the matte before issue #24.

Prints MAD x1000 per photo and method, the mean, the mean ratio to GrabCut, the worst
difference to GrabCut on one photo, and the seconds per photo of each method.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipmat import interactive, metrics  # noqa: E402
from clipmat.evaluation import real  # noqa: E402

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "realdev"
BoxFn = Callable[[np.ndarray, real.Box], np.ndarray]


def _cut(image: np.ndarray, box: real.Box) -> np.ndarray:
    region = interactive.graph_cut(image, box=box).astype(np.uint8)
    height, width = image.shape[:2]
    return cv2.resize(region, (width, height), interpolation=cv2.INTER_NEAREST).astype(np.float32)


def _band(band: float) -> BoxFn:
    def matte(image: np.ndarray, box: real.Box) -> np.ndarray:
        return interactive.correct_matte(image, None, box=box, band=band)[0]

    return matte


def methods(names: list[str]) -> dict[str, BoxFn]:
    """The named methods (see the module's docstring)."""
    table: dict[str, BoxFn] = {
        "grabcut": real.plain_grabcut,
        "cut": _cut,
        "box": real.default_box_matte,
    }
    for name in names:
        if name.startswith("box_"):
            table[name] = _band(float(name[4:]))
    unknown = [name for name in names if name not in table]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; choose from {sorted(table)} or box_BAND")
    return {name: table[name] for name in names}


def run(items: list[real.RealItem], fns: dict[str, BoxFn]) -> dict:
    """{"mad": {method: [per photo]}, "seconds": {method: [per photo]}}."""
    mads: dict[str, list[float]] = {name: [] for name in fns}
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for item in items:
        box = real.object_box(item.alpha)
        for name, fn in fns.items():
            start = time.perf_counter()
            alpha = fn(item.image, box)
            seconds[name].append(time.perf_counter() - start)
            mads[name].append(metrics.mad(np.clip(alpha, 0, 1), item.alpha))
        cells = " ".join(f"{1000 * mads[n][-1]:>9.1f}" for n in fns)
        print(f"{item.name:<28} {item.category:<26} {cells}", flush=True)
    return {"mad": mads, "seconds": seconds}


def report(items: list[real.RealItem], result: dict) -> None:
    """The summary lines under the per-photo rows."""
    mads, seconds = result["mad"], result["seconds"]
    names = list(mads)
    base = np.array(mads.get("grabcut", mads[names[0]]))

    def line(label: str, values: list[str]) -> None:
        print(f"{label:<55} " + " ".join(f"{v:>9}" for v in values))

    line("mean MAD x1000", [f"{1000 * np.mean(mads[n]):.1f}" for n in names])
    line("mean MAD / grabcut's", [f"{np.mean(mads[n]) / base.mean():.3f}" for n in names])
    line(
        "worst photo: MAD - grabcut's (x1000)",
        [f"{1000 * np.max(mads[n] - base):+.1f}" for n in names],
    )
    line(
        "photos worse than grabcut by > 0.03",
        [str(int((mads[n] - base > 0.03).sum())) for n in names],
    )
    line("seconds per photo (mean)", [f"{np.mean(seconds[n]):.2f}" for n in names])
    categories = sorted({item.category for item in items})
    for category in categories:
        keep = [i for i, item in enumerate(items) if item.category == category]
        line(
            f"  {category} ({len(keep)}) mean MAD x1000",
            [f"{1000 * np.mean(np.array(mads[n])[keep]):.1f}" for n in names],
        )


def time_large(item: real.RealItem, fns: dict[str, BoxFn], repeat: int) -> None:
    """Print the best of ``repeat`` seconds per matte of ``item`` upscaled (bicubic, in memory)
    to 1200 x 798 and 4000 x 3000, the methods alternated so that load falls on all alike."""
    for width, height in ((1200, 798), (4000, 3000)):
        image = cv2.resize(item.image, (width, height), interpolation=cv2.INTER_CUBIC)
        alpha = cv2.resize(item.alpha, (width, height), interpolation=cv2.INTER_LINEAR)
        box = real.object_box(alpha)
        best = {name: float("inf") for name in fns}
        for _ in range(repeat):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn(image, box)
                best[name] = min(best[name], time.perf_counter() - start)
        cells = " ".join(f"{name} {seconds:.2f} s" for name, seconds in best.items())
        print(f"{item.name} at {width} x {height}: {cells}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", default=str(DEFAULT_DIR), help="photo + alpha folder")
    parser.add_argument("--side", type=int, default=real.SIDE)
    parser.add_argument("--only", nargs="*", default=())
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["grabcut", "cut", "box", "box_0.06", "box_0.03", "box_0.012"],
    )
    parser.add_argument("--json", help="write per-photo MAD and seconds here")
    parser.add_argument("--large", action="store_true", help="time the first photo at 12 MP")
    parser.add_argument("--repeat", type=int, default=3, help="--large: runs per method")
    args = parser.parse_args(argv)
    fns = methods(args.methods)
    items = real.load_items(args.real, 0 if args.large else args.side, args.only)
    if args.large:
        time_large(items[0], fns, args.repeat)
        return 0
    print(f"{len(items)} photos from {args.real}, long side {args.side}; MAD x1000")
    print(f"{'photo':<28} {'category':<26} " + " ".join(f"{n:>9}" for n in fns))
    result = run(items, fns)
    report(items, result)
    if args.json:
        names = [item.name for item in items]
        Path(args.json).write_text(json.dumps({"photos": names, **result}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

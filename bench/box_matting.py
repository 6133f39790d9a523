"""A box alone, no model: the matte against known alpha, beside the plain graph-cut mask.

    python bench/box_matting.py [--scenes 12] [--size 384]

Test images are built honestly from known parts: scikit-image's real photos as backgrounds,
with (a) the editing layer's synthetic hair-and-fur mattes over another real photo as the
foreground colour, and (b) the mini world's soft entities (fur balls, dandelions, smoke, bags,
nets) rendered large. The box is the true alpha's bounding box (alpha > 0.02) widened by 4% of
the photo's long side. For each image both mattes are measured against the truth: the graph cut
alone (GrabCut's hard mask, as interactive tools that stop there return) and the whole
pipeline (graph cut, trimap around the cut, closed-form matting). Prints MAD and SAD
(thousands, as the paper) per kind and their ratio, and the seconds per image.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipmat import interactive, metrics  # noqa: E402
from clipmat.data.shapes import render_entity  # noqa: E402
from tests.synthetic import make_scene  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
SOFT = ("furball", "dandelion", "smoke", "bag", "net", "cloud")


def _photo(name: str, size: int) -> np.ndarray:
    import skimage.data

    return cv2.resize(getattr(skimage.data, name)(), (size, size), interpolation=cv2.INTER_AREA)


def hair_scene(i: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A real photo behind a hair-and-fur matte whose colours come from another real photo."""
    rng = np.random.default_rng(i)
    back = _photo(PHOTOS[i % len(PHOTOS)], size).astype(np.float32) / 255
    front = _photo(PHOTOS[(i + 2) % len(PHOTOS)], size).astype(np.float32) / 255
    image, alpha = make_scene(size, size, rng, front, back)
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8), alpha


def entity_scene(i: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A mini-world soft entity, drawn at 60% of the side, over a real photo."""
    rng = np.random.default_rng(1000 + i)
    side = int(0.6 * size)
    colour = rng.integers(40, 230, 3).astype(np.float32)
    rgb, a = render_entity(SOFT[i % len(SOFT)], side, colour, "flat", rng)
    alpha = np.zeros((size, size), np.float32)
    fg = np.zeros((size, size, 3), np.float32)
    y, x = rng.integers(0, size - side, 2)
    alpha[y : y + side, x : x + side] = a
    fg[y : y + side, x : x + side] = rgb
    back = _photo(PHOTOS[(i + 1) % len(PHOTOS)], size).astype(np.float32)
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * back
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), alpha


def true_box(alpha: np.ndarray, pad: float = 0.04) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(alpha > 0.02)
    margin = pad * max(alpha.shape)
    height, width = alpha.shape
    return (
        max(0.0, xs.min() - margin),
        max(0.0, ys.min() - margin),
        min(float(width), xs.max() + 1 + margin),
        min(float(height), ys.max() + 1 + margin),
    )


def measure(image: np.ndarray, alpha: np.ndarray) -> dict[str, float]:
    box = true_box(alpha)
    height, width = alpha.shape
    start = time.perf_counter()
    matte, _ = interactive.prompt_matte(image, box=box)
    seconds = time.perf_counter() - start
    cut = interactive.graph_cut(image, box=box).astype(np.float32)
    cut = cv2.resize(cut, (width, height), interpolation=cv2.INTER_NEAREST)
    return {
        "mad matte": metrics.mad(matte, alpha),
        "mad cut": metrics.mad(cut, alpha),
        "sad matte": metrics.sad(matte, alpha),
        "sad cut": metrics.sad(cut, alpha),
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=12, help="images of each kind")
    parser.add_argument("--size", type=int, default=384, help="side of the square images")
    args = parser.parse_args(argv)
    print("| kind | n | MAD cut | MAD matte | ratio | SAD cut | SAD matte | s / image |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, make in (("hair and fur", hair_scene), ("mini-world soft entities", entity_scene)):
        rows = [measure(*make(i, args.size)) for i in range(args.scenes)]
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        print(
            f"| {kind} | {len(rows)} | {mean['mad cut']:.4f} | {mean['mad matte']:.4f} | "
            f"{mean['mad matte'] / mean['mad cut']:.2f} | {mean['sad cut']:.2f} | "
            f"{mean['sad matte']:.2f} | {mean['seconds']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

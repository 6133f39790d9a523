"""One click to fix a miss: the share of a predictor's misses on held-out mini-world scenes that
become hits after one simulated click.

    python bench/corrections.py [--predictor mini-world] [--images 200]

For every sample whose matte misses (IoU <= 0.5 with the truth, the grounding test):
- positive: one positive click at the referred entity's most interior pixel (the maximum of the
  distance transform of its alpha > 0.5);
- negative: when the matte overlaps another entity more than the referred one (a wrong pick),
  one negative click at that entity's most interior pixel.
Prints, per setting, the misses, and how many of each kind of click turned into hits, with the
seconds a corrected predict took (the photo's features cached).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipmat import metrics  # noqa: E402
from clipmat.data.miniworld import MiniWorld  # noqa: E402
from clipmat.data.samples import unique_keyword_flags  # noqa: E402
from clipmat.predictors.loading import load_predictor  # noqa: E402


def interior(alpha: np.ndarray) -> tuple[int, int]:
    """(x, y) of the pixel deepest inside ``alpha > 0.5``."""
    inside = (alpha > 0.5).astype(np.uint8)
    depth = cv2.distanceTransform(np.pad(inside, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(x), int(y)


def wrong_pick(pred: np.ndarray, target: np.ndarray, others: list[np.ndarray]) -> int | None:
    """Index of the other entity the matte overlaps more than the target, if any."""

    def overlap(g: np.ndarray) -> float:
        union = np.maximum(pred, g).sum()
        return float(np.minimum(pred, g).sum() / union) if union > 0 else 0.0

    scores = [overlap(g) for g in others]
    if not scores or max(scores) <= overlap(target):
        return None
    return int(np.argmax(scores))


def samples(setting: str, images: int):
    """(image, text, target alpha, other entities' alphas) of held-out scenes: every entity's
    keyword when no other entity of the scene shares it, or its first expression."""
    world = MiniWorld("test", 96, 0)
    for i in range(images):
        scene = world.scene(i)
        unique = unique_keyword_flags([e.keyword for e in scene.entities])
        for e, alone in zip(scene.entities, unique, strict=True):
            if setting == "keyword" and not alone:
                continue  # as the evaluation: a keyword two entities share names neither
            others = [o.alpha for o in scene.entities if o is not e]
            texts = [e.keyword] if setting == "keyword" else e.expressions[:1]
            for text in texts:
                yield scene.image, text, e.alpha, others


def run(predictor, setting: str, images: int) -> dict[str, float]:
    counts = {"samples": 0, "misses": 0, "positive fixed": 0, "wrong picks": 0, "negative fixed": 0}
    seconds = []
    for image, text, target, others in tqdm(list(samples(setting, images)), desc=setting):
        counts["samples"] += 1
        r = predictor.predict(image, text, setting=setting)
        if metrics.grounding_hit(r.alpha, target):
            continue
        counts["misses"] += 1
        start = time.perf_counter()
        fixed = predictor.predict(image, text, setting=setting, points=[(*interior(target), True)])
        seconds.append(time.perf_counter() - start)
        counts["positive fixed"] += metrics.grounding_hit(fixed.alpha, target)
        wrong = wrong_pick(r.alpha, target, others)
        if wrong is not None:
            counts["wrong picks"] += 1
            click = (*interior(others[wrong]), False)
            fixed = predictor.predict(image, text, setting=setting, points=[click])
            counts["negative fixed"] += metrics.grounding_hit(fixed.alpha, target)
    counts["seconds per corrected predict"] = float(np.median(seconds)) if seconds else 0.0
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictor", default="mini-world")
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args(argv)
    predictor = load_predictor(args.predictor, device="cpu")
    print(
        "| setting | samples | misses | fixed by a positive click | wrong picks | fixed by a "
        "negative click | s per corrected predict |"
    )
    print("|---|---|---|---|---|---|---|")
    for setting in ("keyword", "expression"):
        c = run(predictor, setting, args.images)
        pos = c["positive fixed"] / max(1, c["misses"])
        neg = c["negative fixed"] / max(1, c["wrong picks"])
        print(
            f"| {setting} | {c['samples']} | {c['misses']} | {c['positive fixed']} ({pos:.2f}) "
            f"| {c['wrong picks']} | {c['negative fixed']} ({neg:.2f}) | "
            f"{c['seconds per corrected predict']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

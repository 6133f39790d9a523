"""Fit and measure how far a CLIPMat's results can be trusted, on held-out mini-world scenes.

    python -m clipmat.evaluation.calibrate --predictor mini-world --out weights/miniworld.trust.safetensors

Three disjoint sets of scenes: the domain check's positives come from the train split; the
confidence model and both thresholds are fitted on a validation set (the test split drawn with
another seed); every number reported is measured on the test scenes that ``clipmat.evaluation.evaluate``
uses (test split, seed 0), none of which was seen while fitting.

- Confidence: a logistic model of "the matte is right" (IoU > 0.5) on
  :func:`clipmat.predictors.trust.confidence_features`, both settings pooled; the unsure threshold
  maximises Youden's J (hits kept sure minus misses let through) on the validation set.
- Domain: a logistic model telling mini-world scenes from pictures with no mini-world entity
  (the world's own backgrounds, and crops of the photos its train split takes backgrounds
  from), on :func:`clipmat.predictors.trust.image_features`; the threshold lets ``--domain-miss`` of the
  validation scenes be flagged. Measured on test scenes, test-split backgrounds and real photos
  the fit never saw (scikit-image's and Gradio's bundled pictures).
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from clipmat import metrics
from clipmat.data.backgrounds import load_photo
from clipmat.data.miniworld import MiniWorld
from clipmat.evaluation.evaluate import miniworld_items
from clipmat.imageio import load_image
from clipmat.predictors.clipmat import CLIPMatPredictor
from clipmat.predictors.loading import load_predictor
from clipmat.predictors.trust import Logistic, Trust, image_features
from clipmat.transforms import model_input_size, to_model_input

VALIDATION_SEED = 1  # the test split drawn with this seed: validation scenes
TRAIN_OFFSET = 100_000  # train-split scene indices from here on feed the domain check
DOMAIN_NOTE = (
    "this photo looks unlike the synthetic scenes (procedural shapes on textures) the "
    "mini-world model was trained on, so its matte is not to be trusted; with network access "
    "use zeroshot-vitb16, or draw a box around the object (no model needed)"
)
# Pictures the fits never see: scikit-image's colour photos and Gradio's bundled images.
SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "retina",
    "hubble_deep_field",
    "cat",
    "colorwheel",
)


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (ties count one half)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def confidence_samples(
    predictor: CLIPMatPredictor, seed: int, images: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(evidence (N, F), the predictor's confidence (N,), hit (N,)) over both settings."""
    evidence, confidence, hits = [], [], []
    for setting in ("keyword", "expression"):
        items = list(miniworld_items(setting, images, seed=seed))
        for image, pairs in tqdm(items, desc=f"{setting} seed {seed}", leave=False):
            results = predictor.predict(image, [t for t, _ in pairs], setting=setting)
            for r, (_, gt) in zip(results, pairs, strict=True):
                evidence.append(r.evidence)
                confidence.append(r.confidence)
                hits.append(metrics.grounding_hit(r.alpha, gt))
    return np.array(evidence), np.array(confidence), np.array(hits)


def youden_threshold(scores: np.ndarray, hits: np.ndarray) -> float:
    """The threshold t maximising P(score >= t | hit) - P(score >= t | miss)."""
    best, chosen = -1.0, 0.5
    for t in np.unique(scores):
        j = (scores[hits] >= t).mean() - (scores[~hits] >= t).mean()
        if j > best:
            best, chosen = j, float(t)
    return chosen


def _features(predictor: CLIPMatPredictor, rgb: np.ndarray) -> np.ndarray:
    cfg = predictor.model.cfg
    size = model_input_size(*rgb.shape[:2], short_side=cfg.image_size, multiple=cfg.patch_size)
    x = predictor.model.backbone.normalize(to_model_input(rgb, size))
    return image_features(predictor.model.backbone, x)


def domain_sets(predictor: CLIPMatPredictor, count: int) -> dict[str, np.ndarray]:
    """Image features of every set the domain check is fitted or measured on."""
    train, val = MiniWorld("train", 96, 0), MiniWorld("test", 96, VALIDATION_SEED)
    test = MiniWorld("test", 96, 0)
    rng = np.random.default_rng(0)
    crops = []
    for name in train.config["photo_backgrounds"]["train"]:
        photo = load_photo(name)
        for _ in range(max(1, count // 50)):
            h, w = photo.shape[:2]
            s = rng.uniform(0.4, 1.0)
            y, x = rng.integers(0, h - int(h * s) + 1), rng.integers(0, w - int(w * s) + 1)
            crops.append(photo[y : y + int(h * s), x : x + int(w * s)])
    gradio = sorted(glob.glob(str(_gradio_images() / "*.[jp][pn]*g")))
    sets = {
        "world": [train.scene(TRAIN_OFFSET + i).image for i in range(count)],
        "unworld": [train.background(np.random.default_rng(10_000 + i))[0] for i in range(count)]
        + crops,
        "validation": [val.scene(i).image for i in range(count // 2)],
        "test": [test.scene(i).image for i in range(count // 2)],
        "test backgrounds": [
            test.background(np.random.default_rng(20_000 + i))[0] for i in range(count // 4)
        ],
        "real photos": [_skimage(n) for n in SKIMAGE_PHOTOS] + [load_image(f) for f in gradio],
    }
    return {
        k: np.array([_features(predictor, im) for im in tqdm(v, desc=k, leave=False)])
        for k, v in sets.items()
    }


def _skimage(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()


def _gradio_images() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gradio")
    if spec is None or spec.origin is None:
        return Path("/nonexistent")
    return Path(spec.origin).parent / "media_assets" / "images"


def calibrate(predictor: CLIPMatPredictor, *, images: int, domain_count: int, miss: float) -> Trust:
    """Fit the confidence and the domain check (see the module docstring) and measure them."""
    val_x, _, val_hit = confidence_samples(predictor, VALIDATION_SEED, images)
    test_x, raw, test_hit = confidence_samples(predictor, 0, images)
    confidence = Logistic.fit(val_x, val_hit)
    threshold = youden_threshold(confidence(val_x), val_hit)
    calibrated = confidence(test_x)
    report = {
        "confidence": {
            "validation samples": len(val_hit),
            "test samples": len(test_hit),
            "test hit rate": float(test_hit.mean()),
            "AUROC before (mean foreground probability)": auroc(raw, test_hit),
            "AUROC after": auroc(calibrated, test_hit),
            "threshold": threshold,
            "hits marked unsure": float((calibrated[test_hit] < threshold).mean()),
            "misses marked unsure": float((calibrated[~test_hit] < threshold).mean()),
            "hits marked unsure before (threshold 0.6)": float((raw[test_hit] < 0.6).mean()),
            "misses marked unsure before (threshold 0.6)": float((raw[~test_hit] < 0.6).mean()),
        }
    }
    sets = domain_sets(predictor, domain_count)
    x = np.concatenate([sets["world"], sets["unworld"]])
    y = np.r_[np.ones(len(sets["world"])), np.zeros(len(sets["unworld"]))]
    domain = Logistic.fit(x, y, l2=10.0)
    domain_threshold = float(np.quantile(domain(sets["validation"]), miss))
    report["domain"] = {
        "threshold": domain_threshold,
        **{
            f"{name} flagged": float((domain(sets[name]) < domain_threshold).mean())
            for name in ("validation", "test", "test backgrounds", "real photos")
        },
        "real photos": len(sets["real photos"]),
        "AUROC test scenes vs real photos": auroc(
            np.r_[domain(sets["test"]), domain(sets["real photos"])],
            np.r_[np.ones(len(sets["test"])), np.zeros(len(sets["real photos"]))],
        ),
    }
    return Trust(confidence, threshold, domain, domain_threshold, DOMAIN_NOTE, report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clipmat.evaluation.calibrate", description=__doc__
    )
    parser.add_argument("--predictor", default="mini-world", help="a CLIPMat predictor")
    parser.add_argument("--out", type=Path, required=True, help="the trust file to write")
    parser.add_argument("--images", type=int, default=200, help="scenes per set and setting")
    parser.add_argument("--domain-count", type=int, default=400, help="pictures per domain set")
    parser.add_argument(
        "--domain-miss", type=float, default=0.05, help="share of validation scenes flagged"
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    predictor = load_predictor(args.predictor, device=args.device)
    if not isinstance(predictor, CLIPMatPredictor):
        parser.error("calibration is for CLIPMat predictors")
    predictor.trust = None  # measure the uncalibrated confidence as the baseline
    trust = calibrate(
        predictor, images=args.images, domain_count=args.domain_count, miss=args.domain_miss
    )
    trust.save(args.out)
    print(json.dumps(trust.report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

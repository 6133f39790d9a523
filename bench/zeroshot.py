"""Timing of the zero-shot predictor (ViT-B/16 at 512 px) and of the refiner on a 12 MP photo.

    python bench/zeroshot.py [--repeats 3] [--threads 2]

Random ViT-B/16 weights (timing does not depend on them). Every line is a measured median of
``--repeats`` runs in this process; the bare image encoder (open_clip's own forward at the same
size) is timed in the same run for comparison.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import median_time  # noqa: E402

from clipmat import refine  # noqa: E402
from clipmat.factory import get_model_config  # noqa: E402
from clipmat.zeroshot import ZeroShotConfig, ZeroShotPredictor, create_backbone  # noqa: E402

SIDE = 512
PHOTO_12MP = (3000, 4000)


def _photo() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())  # (512, 512, 3) uint8


def _disk_trimap(size: int, band: int) -> np.ndarray:
    inside = np.zeros((size, size), np.float32)
    cv2.circle(inside, (size // 2, size // 2), size // 3, 1.0, -1)
    return refine.trimap_from_probability(inside, band=band)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/zeroshot.py", description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    refine.closed_form_alpha(  # first call compiles pymatting's kernels (not timed)
        rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), _disk_trimap(16, 2)
    )
    backbone = create_backbone(get_model_config("clipmat-vitb16").clip)
    config = ZeroShotConfig(image_size=SIDE, matting_side=SIDE)
    predictor = ZeroShotPredictor(backbone, config=config, device="cpu")
    photo = _photo()
    print(f"torch threads: {torch.get_num_threads()}; photo {photo.shape[1]}x{photo.shape[0]}")

    x = backbone.normalize(torch.rand(1, 3, SIDE, SIDE))
    with torch.inference_mode():
        backbone.clip.encode_image(x)  # warm-up
        bare = median_time(lambda: backbone.clip.encode_image(x), args.repeats)
        dense = median_time(lambda: backbone.encode_dense(x), args.repeats)
    print(f"bare image encoder (open_clip forward), ViT-B/16 at {SIDE}x{SIDE}: {bare:.3f} s")
    print(f"dense encoder (ClearCLIP last block), ViT-B/16 at {SIDE}x{SIDE}: {dense:.3f} s")

    def first_phrase() -> None:
        predictor.clear_cache()
        predictor.predict(photo, "the astronaut")

    first = median_time(first_phrase, args.repeats)
    r = predictor.predict(photo, "the astronaut")
    unknown = float((r.trimap == refine.TRIMAP_UNKNOWN).mean())
    print(
        f"zero-shot predict, new image and phrase: {first:.3f} s "
        f"(random weights; unknown area {unknown:.1%} of the image)"
    )
    phrases = iter(f"the flag number {i}" for i in range(10 * args.repeats))
    cached = median_time(lambda: predictor.predict(photo, next(phrases)), args.repeats)
    print(f"zero-shot predict, cached image, new phrase: {cached:.3f} s")

    for band in (8, 12):
        trimap = _disk_trimap(SIDE, band)
        share = float((trimap == refine.TRIMAP_UNKNOWN).mean())
        cf = median_time(lambda t=trimap: refine.closed_form_alpha(photo, t), args.repeats)
        print(
            f"closed-form matting at {SIDE}x{SIDE}, disk trimap band {band} px "
            f"(unknown {share:.1%}): {cf:.3f} s"
        )

    big = cv2.resize(photo, PHOTO_12MP[::-1], interpolation=cv2.INTER_CUBIC)
    coarse = np.zeros(PHOTO_12MP, np.float32)
    cv2.ellipse(coarse, (2000, 1500), (1100, 1300), 0, 0, 360, 1.0, -1)
    coarse = cv2.GaussianBlur(coarse, (0, 0), 12)
    refine.refine_alpha(big, coarse)  # warm-up
    seconds = median_time(lambda: refine.refine_alpha(big, coarse), args.repeats)
    _, trimap = refine.refine_alpha(big, coarse)
    share = float((trimap == refine.TRIMAP_UNKNOWN).mean())
    print(
        f"refiner on a {PHOTO_12MP[1]}x{PHOTO_12MP[0]} photo (12 MP; working long side 1024, "
        f"unknown {share:.1%}): {seconds:.3f} s"
    )
    low = cv2.resize(coarse, (1024, 768), interpolation=cv2.INTER_AREA)
    up = median_time(lambda: refine.guided_upsample(low, big), args.repeats)
    print(f"  of which guided upsampling 1024x768 -> 4000x3000: {up:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

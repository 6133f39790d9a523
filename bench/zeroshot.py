"""Timing of the zero-shot predictor: sliding windows against one global pass and the bare encoder.

    python bench/zeroshot.py [--repeats 3] [--threads 2] [--no-refiner]

OpenAI's ViT-B/16 towers (224 px) with random weights (timing does not depend on them), on a
512x512 and a 1024x768 photo. Per photo, in one run and interleaved repeat by repeat (so that
load on the machine falls on every row alike), median of ``--repeats``, wall and CPU seconds
(ratios on CPU time, which other work on the machine moves less):

- the bare image encoder: open_clip's own forward at the global pass's input size;
- the global pass: ``ZeroShotConfig(image_size=448, window=None)``, the predictor's previous
  default: the photo's encoding alone, a whole predict of a new photo, then of a new phrase on
  the cached photo (text tower, candidates' crops, matting);
- sliding windows: ClearCLIP's protocol, the default (short side 448, windows of 448 every
  224 pixels), the same three.

Both predictors use ClearCLIP's last block and logit scale 50, so that only the reading of the
photo differs. Then closed-form matting and the refiner on a 12 MP photo, as before.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import median_time  # noqa: E402

from clipmat import refine  # noqa: E402
from clipmat.config import CLIPTowersConfig  # noqa: E402
from clipmat.model.backbone import create_clip  # noqa: E402
from clipmat.transforms import model_input_size  # noqa: E402
from clipmat.zeroshot import ZeroShotConfig, ZeroShotPredictor, create_backbone, windows  # noqa: E402
from clipmat.zeroshot.loading import clip_towers  # noqa: E402

PHOTOS = ((512, 512), (768, 1024))  # (height, width)
MATTING_SIDE = 512
PHOTO_12MP = (3000, 4000)


def _photo(height: int, width: int) -> np.ndarray:
    from skimage import data

    return cv2.resize(np.ascontiguousarray(data.astronaut()), (width, height))


def _interleaved(
    fns: dict[str, Callable[[], object]], repeats: int
) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of each function, called in turn within every repeat. CPU
    time (this process, all threads) moves less than wall time when other work shares the
    machine, so the ratios are taken on it."""
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for k, v in times.items()
    }


def _bare_encoder(towers: CLIPTowersConfig, size: tuple[int, int]) -> Callable[[], object]:
    """open_clip's forward of the image tower built for ``size`` (same weights' shapes)."""
    vision = {**towers.vision, "image_size": list(size)}
    clip = create_clip(dataclasses.replace(towers, vision=vision)).eval()
    x = torch.rand(1, 3, *size)
    return lambda: clip.encode_image(x)


def time_photo(
    towers: CLIPTowersConfig,
    predictors: dict[str, ZeroShotPredictor],
    size: tuple[int, int],
    repeats: int,
) -> None:
    """Print the bare encoder, and per predictor a new photo and a new phrase, for one photo."""
    photo = _photo(*size)
    glob = model_input_size(*size, short_side=448, multiple=16)
    resized = windows.resized_size(*size, 448)
    boxes = windows.window_boxes(*resized, 448, 224)
    phrases = iter(f"the flag number {i}" for i in range(10**6))

    def encode(p: ZeroShotPredictor) -> Callable[[], object]:
        return lambda: (p.clear_cache(), p.set_image(photo))

    def new_photo(p: ZeroShotPredictor) -> Callable[[], object]:
        return lambda: (p.clear_cache(), p.predict(photo, "the astronaut"))

    def new_phrase(p: ZeroShotPredictor) -> Callable[[], object]:
        return lambda: p.predict(photo, next(phrases))

    fns = {"bare": _bare_encoder(towers, glob)}
    for name, p in predictors.items():
        fns[f"{name} encode"], fns[f"{name} photo"] = encode(p), new_photo(p)
        fns[f"{name} phrase"] = new_phrase(p)
    with torch.inference_mode():
        for fn in fns.values():
            fn()  # warm-up
        t = _interleaved(fns, repeats)
    print(
        f"\nphoto {size[1]}x{size[0]}: global pass at {glob[1]}x{glob[0]}; sliding: resized to "
        f"{resized[1]}x{resized[0]}, {len(boxes)} window(s) of 448 (seconds: wall / CPU)"
    )
    bare = t["bare"][1]
    print(f"  bare image encoder (open_clip forward at {glob[1]}x{glob[0]}): {_s(t['bare'])}")
    for name, p in predictors.items():
        r = p.predict(photo, "the astronaut")
        unknown = float((r.trimap == refine.TRIMAP_UNKNOWN).mean())
        enc, first, second = (t[f"{name} {k}"] for k in ("encode", "photo", "phrase"))
        print(
            f"  {name}: encode {_s(enc)} ({enc[1] / bare:.2f} x bare); predict, new photo "
            f"{_s(first)} ({first[1] / bare:.2f} x bare); new phrase {_s(second)} "
            f"({second[1] / first[1]:.2f} of the first; {len(r.candidates)} candidates, "
            f"unknown {unknown:.1%})"
        )
    for k in ("encode", "photo"):
        ratio = t[f"sliding {k}"][1] / t[f"global {k}"][1]
        print(f"  sliding / global, {k} (CPU): {ratio:.2f}")


def _s(t: tuple[float, float]) -> str:
    return f"{t[0]:.2f} / {t[1]:.2f} s"


def time_matting(repeats: int) -> None:
    """Closed-form matting at 512 px and the refiner on a 12 MP photo."""
    photo = _photo(512, 512)
    for band in (8, 12):
        trimap = _disk_trimap(512, band)
        share = float((trimap == refine.TRIMAP_UNKNOWN).mean())
        cf = median_time(lambda t=trimap: refine.closed_form_alpha(photo, t), repeats)
        print(
            f"closed-form matting at 512x512, disk trimap band {band} px (unknown {share:.1%}): "
            f"{cf:.3f} s"
        )
    big = cv2.resize(photo, PHOTO_12MP[::-1], interpolation=cv2.INTER_CUBIC)
    coarse = np.zeros(PHOTO_12MP, np.float32)
    cv2.ellipse(coarse, (2000, 1500), (1100, 1300), 0, 0, 360, 1.0, -1)
    coarse = cv2.GaussianBlur(coarse, (0, 0), 12)
    refine.refine_alpha(big, coarse)  # warm-up
    seconds = median_time(lambda: refine.refine_alpha(big, coarse), repeats)
    _, trimap = refine.refine_alpha(big, coarse)
    share = float((trimap == refine.TRIMAP_UNKNOWN).mean())
    print(
        f"refiner on a {PHOTO_12MP[1]}x{PHOTO_12MP[0]} photo (12 MP; working long side 1024, "
        f"unknown {share:.1%}): {seconds:.3f} s"
    )
    low = cv2.resize(coarse, (1024, 768), interpolation=cv2.INTER_AREA)
    up = median_time(lambda: refine.guided_upsample(low, big), repeats)
    print(f"  of which guided upsampling 1024x768 -> 4000x3000: {up:.3f} s")


def _disk_trimap(size: int, band: int) -> np.ndarray:
    inside = np.zeros((size, size), np.float32)
    cv2.circle(inside, (size // 2, size // 2), size // 3, 1.0, -1)
    return refine.trimap_from_probability(inside, band=band)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/zeroshot.py", description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-refiner", action="store_true", help="skip the matting rows")
    args = parser.parse_args(argv)
    repeats = max(1, args.repeats)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    refine.closed_form_alpha(  # first call compiles pymatting's kernels (not timed)
        rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), _disk_trimap(16, 2)
    )
    towers = clip_towers("ViT-B-16")
    backbone = create_backbone(towers)
    configs = {
        "global": ZeroShotConfig(image_size=448, window=None, matting_side=MATTING_SIDE),
        "sliding": ZeroShotConfig.from_protocol(windows.CLEARCLIP, matting_side=MATTING_SIDE),
    }
    predictors = {
        k: ZeroShotPredictor(backbone, config=c, device="cpu") for k, c in configs.items()
    }
    assert predictors["global"].logit_scale == predictors["sliding"].logit_scale == 50.0
    print(
        f"torch threads: {torch.get_num_threads()}; ViT-B/16 towers at 224 px, random weights; "
        f"matting long side {MATTING_SIDE}; median of {repeats}, rows interleaved"
    )
    for size in PHOTOS:
        time_photo(towers, predictors, size, repeats)
    if not args.no_refiner:
        print()
        time_matting(repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())

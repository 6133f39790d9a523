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
photo differs. Then, per ``--precisions`` (fp32 and int8 by default), where a second phrase's time
goes: the text tower, the candidates' crops scored whole, closed-form matting and the rest. Then
closed-form matting and the refiner on a 12 MP photo, as before.

``bench/cpu_paths.py`` imports :func:`zeroshot_rows` (the zero-shot rows of its one speed table,
beside CLIPMat's paths and CLIPSeg) and :func:`feature_parity` / :func:`miniworld_parity` (its
``--parity`` rows for the zero-shot predictor).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
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
from clipmat.model.backbone import DENSE_METHODS, create_clip  # noqa: E402
from clipmat.precision import apply_precision, native_bf16, paths  # noqa: E402
from clipmat.runtime import autocast  # noqa: E402
from clipmat.transforms import model_input_size  # noqa: E402
from clipmat.zeroshot import ZeroShotConfig, ZeroShotPredictor, create_backbone, windows  # noqa: E402
from clipmat.zeroshot import crops as zs_crops  # noqa: E402
from clipmat.zeroshot import matting as zs_matting  # noqa: E402
from clipmat.zeroshot.config import PRECISIONS  # noqa: E402
from clipmat.zeroshot.loading import clip_towers, registry_config  # noqa: E402

PHOTOS = ((512, 512), (768, 1024))  # (height, width)
MATTING_SIDE = 512
PHOTO_12MP = (3000, 4000)
FIRST_PHRASE = "the astronaut"  # what a second phrase follows on the same photo
PHRASES = (  # the phrases of the timed calls, one per round, in turn
    "the flag on the left",
    "the white helmet",
    "the rocket",
    "the man's face",
    "the badge on the suit",
    "the dark sky",
    "the gloves",
)
ROOT = Path(__file__).resolve().parents[1]
Row = tuple[Callable[[], object] | None, Callable[[], object]]  # (untimed set-up, timed call)


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


def zeroshot_rows(
    precisions: list[str], side: int = 512, towers: CLIPTowersConfig | None = None
) -> dict[str, Row]:
    """The zero-shot predictor's rows of ``bench/cpu_paths.py``: per precision (the predictor's:
    fp32, bf16, int8), a whole predict (set-up: the cache cleared, so the photo is read and the
    phrase embedded again; the competitors' prompts are the predictor's and stay) and a second
    phrase (set-up: the cache cleared and :data:`FIRST_PHRASE` predicted on the photo), each on
    a ``side`` px photo with ClearCLIP's windows (the registry's config), random ViT-B/16
    weights (``towers``, e.g. a tiny CLIP's for a smoke run: windows at its own size). Both
    rows take the round's phrase from :data:`PHRASES`, so they mat the same regions;
    :data:`ZS_CANDIDATES` counts their candidates. A third row, the photo's dense read alone
    (``set_image`` after the cache is cleared), is the floor under a whole predict."""
    torch.manual_seed(0)
    backbone = create_backbone(towers or clip_towers("ViT-B-16"))
    config = ZeroShotConfig() if towers else registry_config()
    photo = _photo(side, side)
    rows: dict[str, Row] = {}
    for p in (p for p in precisions if p in PRECISIONS):
        tower = apply_precision(backbone, p)  # fp32: the backbone itself
        whole, second = (ZeroShotPredictor(tower, config=config, device="cpu") for _ in range(2))
        rows[f"zero-shot whole predict {p}"] = (whole.clear_cache, _predicts(whole, photo, p))
        rows[f"zero-shot photo read {p}"] = (whole.clear_cache, lambda q=whole: q.set_image(photo))
        rows[f"zero-shot second phrase {p}"] = (
            lambda q=second: (q.clear_cache(), q.predict(photo, FIRST_PHRASE)),
            _predicts(second, photo, p),
        )
    return rows


ZS_CANDIDATES: dict[str, list[int]] = {}  # precision -> candidates of each timed predict


def _predicts(predictor: ZeroShotPredictor, photo: np.ndarray, key: str) -> Callable[[], object]:
    """A call that predicts the next of :data:`PHRASES` on ``photo`` and counts candidates."""
    phrases = itertools.cycle(PHRASES)

    def run() -> object:
        result = predictor.predict(photo, next(phrases))
        ZS_CANDIDATES.setdefault(key, []).append(len(result.candidates))
        return result

    return run


def profile_second_phrase(precision: str, repeats: int) -> dict[str, float]:
    """Where a second phrase's time goes (CPU seconds per call, medians of the phrases of
    :data:`PHRASES` after :data:`FIRST_PHRASE` on a cached 512 px photo): the text tower, the
    crops scored whole (new ones only; others come from the photo's cache), closed-form matting
    with its upsampling, the rest (dense map, regions, candidates)."""
    torch.manual_seed(0)
    tower = apply_precision(create_backbone(clip_towers("ViT-B-16")), precision)
    predictor = ZeroShotPredictor(tower, config=registry_config(), device="cpu")
    photo = _photo(512, 512)
    spent: dict[str, float] = {}
    originals: list[tuple[object, str, object]] = []

    def timed(owner: object, name: str, part: str) -> None:
        inner = getattr(owner, name)
        originals.append((owner, name, inner))

        def call(*args: object, **kwargs: object) -> object:
            start = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[part] = spent.get(part, 0.0) + time.process_time() - start

        setattr(owner, name, call)

    timed(predictor, "encode_text", "text tower")
    timed(zs_crops, "crop_embeddings", "crops scored whole")
    timed(zs_matting, "closed_form_by_group", "closed-form matting")
    timed(zs_matting.refine, "guided_upsample", "closed-form matting")
    rows: list[dict[str, float]] = []
    try:
        with torch.inference_mode():
            for phrase in PHRASES[: max(1, repeats)]:
                predictor.clear_cache()
                predictor.predict(photo, FIRST_PHRASE)
                spent.clear()
                start = time.process_time()
                predictor.predict(photo, phrase)
                total = time.process_time() - start
                rows.append({**spent, "rest": total - sum(spent.values()), "total": total})
    finally:
        for owner, name, inner in reversed(originals):
            setattr(owner, name, inner)
    keys = ("text tower", "crops scored whole", "closed-form matting", "rest", "total")
    return {k: statistics.median(r.get(k, 0.0) for r in rows) for k in keys}


def _convert(backbone: torch.nn.Module, precision: str) -> tuple[torch.nn.Module, bool]:
    """(the backbone's towers at ``precision``, whether bf16 is emulated): on a CPU without
    native bf16 the bf16 conversion is made anyway for parity (its numbers are bf16's, computed
    in software; the predictor refuses it there because it is slower than fp32)."""
    emulated = precision == "bf16" and not native_bf16()
    if not emulated:
        return apply_precision(backbone, precision), False
    native, paths.native_bf16 = paths.native_bf16, lambda: True
    try:
        return apply_precision(backbone, precision), True
    finally:
        paths.native_bf16 = native


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-patch cosine of (..., E) tensors, flattened."""
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1).flatten()


def feature_parity(precisions: list[str]) -> dict[str, dict[str, tuple[float, float]]]:
    """Per precision, the (min, mean) per-patch cosine to fp32 of the zero-shot predictor's
    patch embeddings for each dense method, read with ClearCLIP's windows (the registry's
    protocol) and with one global pass at 448 px, on the example photos (``photo_*.jpg``), random
    ViT-B/16 weights; and of the pooled embeddings (what crops are scored with) of the photos at
    224 px. Emulated bf16 reads the first photo only (software bf16 is slow)."""
    from PIL import Image

    torch.manual_seed(0)
    backbone = create_backbone(clip_towers("ViT-B-16")).eval()
    photos = [
        np.asarray(Image.open(f).convert("RGB")) for f in sorted(ROOT.glob("examples/photo_*.jpg"))
    ]
    configs = {
        f"{m} {mode}": ZeroShotConfig.from_protocol(windows.CLEARCLIP, method=m)
        if mode == "windows"
        else ZeroShotConfig(image_size=448, window=None, method=m)
        for m in DENSE_METHODS
        for mode in ("windows", "global")
    }
    refs: dict[str, list[torch.Tensor]] = {}
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for p in (p for p in precisions if p in PRECISIONS and p != "fp32"):
        tower, emulated = _convert(backbone, p)
        used = photos[:1] if emulated else photos
        row = {}
        for name, cfg in configs.items():
            ref = ZeroShotPredictor(backbone, config=cfg, device="cpu")
            got = ZeroShotPredictor(tower, config=cfg, device="cpu")
            want = refs.setdefault(name, [ref.set_image(x).features.patches for x in photos])
            cos = torch.cat(
                [_cosine(w, got.set_image(x).features.patches) for w, x in zip(want, used)]
            )
            row[name] = (float(cos.min()), float(cos.mean()))
        x = backbone.normalize(torch.cat([windows.resize_photo(x, (224, 224)) for x in used]))
        with torch.inference_mode():
            want = backbone.encode_pooled(x)
            with autocast(torch.device("cpu"), p):
                cos = _cosine(want, tower.encode_pooled(x))
        row["pooled (crops)"] = (float(cos.min()), float(cos.mean()))
        out[f"{p} (emulated)" if emulated else p] = row
    return out


MINIWORLD_ROWS = ("clearclip", "sclip", "maskclip")  # each at its reference logit scale


def miniworld_parity(precisions: list[str], images: int, clip: Path) -> dict[str, dict]:
    """The zero-shot mini-world rows of docs/zeroshot.md (``clipmat.evaluation.zeroshot``:
    ClearCLIP, SCLIP and MaskCLIP as published, windows, each at its reference scale; phrases,
    no shuffled control) per precision, on the tiny CLIP in ``clip``, ``images`` held-out scenes
    per setting: {precision: {method: {setting: metrics}}}."""
    from clipmat.evaluation.zeroshot import SETTINGS, build_predictor, evaluate_miniworld

    out: dict[str, dict] = {}
    for p in (p for p in precisions if p in PRECISIONS):
        for method in MINIWORLD_ROWS:
            predictor = build_predictor(str(clip), method=method)
            tower, emulated = _convert(predictor.backbone, p)
            predictor = ZeroShotPredictor(tower, config=predictor.config, device="cpu")
            label = f"{p} (emulated)" if emulated else p
            for setting in SETTINGS:
                r = evaluate_miniworld(predictor, setting=setting, images=images, control=False)
                keep = ("n", "grounding_accuracy", "mad", "sad")
                out.setdefault(label, {}).setdefault(method, {})[setting] = {
                    k: r["phrases"][k] for k in keep
                }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/zeroshot.py", description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-refiner", action="store_true", help="skip the matting rows")
    parser.add_argument("--precisions", default="fp32,int8", help="second phrases' profiles")
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
    for p in args.precisions.split(","):
        spent = profile_second_phrase(p, max(repeats, 5))
        parts = [
            f"{k} {v:.2f} ({v / spent['total']:.0%})" for k, v in spent.items() if k != "total"
        ]
        print(f"\nsecond phrase, {p}, CPU s: {spent['total']:.2f} = " + "; ".join(parts))
    if not args.no_refiner:
        print()
        time_matting(repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())

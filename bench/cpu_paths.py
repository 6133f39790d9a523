"""The CPU paths (``clipmat.precision``): a whole predict per precision beside the bare encoder.

    python bench/cpu_paths.py [--repeats 5] [--threads N] [--json OUT]   # speed
    python bench/cpu_paths.py --parity [--images 200] [--json OUT]       # parity with fp32
    python bench/cpu_paths.py --smoke                                     # every row, tiny

Speed (random weights: timing does not depend on them), interleaved: every round times one
call of each row in turn, and each row's median over the rounds is reported, so load from
other work on the machine falls on every row alike. The rows:

- bare fp32 encoder at 512 px: open_clip's ViT-B/16 image tower (``clip.visual``: every block,
  pooling, projection) on a 512x512 input, the reference of ``bench/predict_latency.py``;
- bare fp32 encoder at 352 px: the same architecture built for 352 px, CLIPSeg's input and
  encoder, as CLIPSeg's proxy (its decoder is small);
- bare bf16-autocast encoder at 352 px (where bf16 runs): that proxy under CPU bf16 autocast,
  for a ratio at like precision (CLIPSeg ships fp32; the target is against the fp32 row);
- CLIPSeg fp32 at 352 px, where ``transformers`` is installed (an optional requirement of this
  benchmark): CLIPSeg itself with random weights, text tower and decoder included;
- image tower, per precision: ``backbone.encode_image_levels`` at 512 px (the blocks CLIPMat
  reads);
- whole predict, per precision: ``CLIPMatPredictor(apply_precision(create_model(
  "clipmat-vitb16"), p)).predict`` on a new 512x512 photo each call (nothing cached), one
  expression;
- zero-shot whole predict, second phrase and the photo's dense read alone, per precision it
  runs (fp32, bf16, int8): the
  registry's zero-shot predictor, random ViT-B/16 weights, a 512x512 photo (``bench/zeroshot.py``'s
  :func:`zeroshot_rows`). Targets: a whole predict at most 0.5 of the bare encoder at 512 px, a
  second phrase at most 0.3 of a whole predict.

CLIPMat's old target (a whole predict within the 352 px encoder, CLIPSeg's) is retired, accepted
at parity; its ratios are still printed. Process CPU seconds per call are printed beside the
wall time (less sensitive to other work on the machine; ONNX Runtime's threads are counted too).

Parity (``--parity``): on ViT-B/16 with random weights, the per-patch cosine to fp32 of the
four visual token levels CLIPMat reads (level 4 is ``encode_image``'s tokens) on the example
photos, also of what the blocks add to the embedded patches (stricter: random blocks change
the tokens little); on the bundled mini-world model, ``clipmat.evaluation.evaluate`` on held-out scenes,
keyword and expression: grounding within 0.01 and MAD within 3% of fp32. The zero-shot
predictor's (``--no-zeroshot``, ``--zeroshot-only``): each dense method's patch embeddings,
windows and global pass, per-patch cosine to fp32 at least 0.999; its mini-world rows on the
bundled checkpoint's CLIP towers, grounding within 0.01 (``bench/zeroshot.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zeroshot import (  # noqa: E402  (bench/zeroshot.py)
    ZS_CANDIDATES,
    Row,
    feature_parity,
    miniworld_parity,
    zeroshot_rows,
)

import clipmat  # noqa: E402
from clipmat.model.backbone import create_clip  # noqa: E402
from clipmat.precision import PRECISIONS, apply_precision, check_precision  # noqa: E402
from clipmat.runtime import autocast  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PHRASE = "the cat with white and black fur"
PARITY_COSINE = 0.99
PARITY_GROUNDING = 0.01
PARITY_MAD = 0.03
ZS_PARITY_COSINE = 0.999
ZS_TARGET_WHOLE, ZS_TARGET_SECOND = 0.5, 0.3


def available_precisions() -> list[str]:
    """The precisions this machine can run (onnx needs onnx and onnxruntime)."""
    out = []
    for p in PRECISIONS:
        try:
            check_precision(p)
            out.append(p)
        except ValueError as err:
            print(f"skipping {p}: {err}")
    return out


def blocky_photo(rng: np.random.Generator, side: int) -> np.ndarray:
    """A new (side, side, 3) uint8 photo of 8-pixel blocks (like bench/predict_latency.py)."""
    base = rng.integers(0, 256, (side // 8 + 1, side // 8 + 1, 3), dtype=np.uint8)
    return np.kron(base, np.ones((8, 8, 1), np.uint8))[:side, :side].copy()


def interleaved(rows: dict[str, Callable[[], object] | Row], repeats: int) -> dict[str, dict]:
    """Median wall and CPU seconds of each row, timed one call per row per round, in turn,
    after one untimed call of each. A row is a call, or (an untimed set-up, the call)."""
    calls = {k: v if isinstance(v, tuple) else (None, v) for k, v in rows.items()}
    for setup, fn in calls.values():
        (setup or (lambda: None))()
        fn()
    wall: dict[str, list[float]] = {k: [] for k in rows}
    cpu: dict[str, list[float]] = {k: [] for k in rows}
    for _ in range(repeats):
        for name, (setup, fn) in calls.items():
            if setup is not None:
                setup()
            c, t = time.process_time(), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    return {
        k: {"wall_s": statistics.median(wall[k]), "cpu_s": statistics.median(cpu[k])} for k in rows
    }


def speed_rows(arch: str, side: int, proxy_side: int, precisions: list[str]) -> tuple[dict, dict]:
    """(row name -> callable or (set-up, callable), precision -> seconds apply_precision took);
    the zero-shot rows on ViT-B/16 (clipmat-vitb16) or on ``arch``'s CLIP towers."""
    torch.manual_seed(0)
    model = clipmat.create_model(arch).eval()
    cfg = model.cfg.clip
    proxy_vision = {**cfg.vision, "image_size": proxy_side}
    proxy = create_clip(dataclasses.replace(cfg, vision=proxy_vision)).visual.eval()
    x = model.backbone.normalize(torch.rand(1, 3, side, side))
    xp = model.backbone.normalize(torch.rand(1, 3, proxy_side, proxy_side))
    rng = np.random.default_rng(0)
    rows: dict[str, Callable[[], object]] = {
        f"bare fp32 encoder {side}": _no_grad(lambda: model.backbone.clip.visual(x)),
        f"bare fp32 encoder {proxy_side} (CLIPSeg proxy)": _no_grad(lambda: proxy(xp)),
    }
    if "bf16" in precisions:  # the proxy at our fastest precision, for a like-for-like ratio
        rows[f"bare bf16-autocast encoder {proxy_side}"] = _no_grad(_bf16(lambda: proxy(xp)))
    clipseg = _clipseg(proxy_side) if arch == "clipmat-vitb16" else None
    if clipseg is not None:
        rows[f"CLIPSeg fp32 {proxy_side} (transformers)"] = _no_grad(clipseg)
    setup = {}
    for p in precisions:
        start = time.perf_counter()
        m = apply_precision(model, p)
        setup[p] = time.perf_counter() - start
        predictor = clipmat.CLIPMatPredictor(m, name=p, device="cpu")  # at m's precision
        rows[f"image tower {p}"] = _no_grad(lambda m=m: m.backbone.encode_image_levels(x))
        rows[f"whole predict {p}"] = _new_photo_predict(predictor, rng, side)
    towers = None if arch == "clipmat-vitb16" else cfg
    return {**rows, **zeroshot_rows(precisions, side, towers)}, setup


def _clipseg(side: int) -> Callable[[], object] | None:
    """CLIPSeg itself (transformers' CLIPSegForImageSegmentation, random weights, the
    architecture of CIDAS/clipseg-rd64-refined: ViT-B/16 at ``side``, decoder width 64, complex
    transposed convolution): one call on a photo and a 10-token phrase. None without
    transformers."""
    try:
        from transformers import CLIPSegConfig, CLIPSegForImageSegmentation
    except ImportError:
        print("skipping CLIPSeg itself: pip install transformers (its encoder row stands in)")
        return None
    cfg = CLIPSegConfig(
        vision_config={"patch_size": 16, "image_size": side},
        reduce_dim=64,
        use_complex_transposed_convolution=True,
    )
    model = CLIPSegForImageSegmentation(cfg).eval()
    ids = torch.randint(1, cfg.text_config.vocab_size - 2, (1, 10))
    pixels = torch.rand(1, 3, side, side)
    return lambda: model(input_ids=ids, pixel_values=pixels)


def _bf16(fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        with autocast(torch.device("cpu"), "bf16"):  # as a bf16 predictor runs
            return fn()

    return run


def _no_grad(fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode():
            return fn()

    return run


def _new_photo_predict(predictor, rng: np.random.Generator, side: int) -> Callable[[], object]:
    """A call that predicts on a photo made before the clock starts (new every call)."""
    photos = [blocky_photo(rng, side)]

    def run() -> object:
        photo = photos.pop()
        photos.append(blocky_photo(rng, side))  # the next call's photo, made now
        return predictor.predict(photo, PHRASE)

    return run


def run_speed(args: argparse.Namespace) -> dict:
    precisions = available_precisions()
    rows, setup = speed_rows(args.model, args.side, args.proxy_side, precisions)
    timings = interleaved(rows, args.repeats)
    bare = timings[f"bare fp32 encoder {args.side}"]["wall_s"]
    proxy = timings[f"bare fp32 encoder {args.proxy_side} (CLIPSeg proxy)"]["wall_s"]
    print(
        f"{args.model}, {args.side}x{args.side} photo, {torch.get_num_threads()} threads, "
        f"{args.repeats} interleaved rounds, medians"
    )
    print(f"| row | wall s | CPU s | / bare {args.side} | / bare {args.proxy_side} |")
    print("|---|---|---|---|---|")
    for name, t in timings.items():
        t["ratio_bare"], t["ratio_proxy"] = t["wall_s"] / bare, t["wall_s"] / proxy
        print(
            f"| {name} | {t['wall_s']:.3f} | {t['cpu_s']:.3f} | {t['ratio_bare']:.2f} | "
            f"{t['ratio_proxy']:.2f} |"
        )
    clipseg = timings.get(f"CLIPSeg fp32 {args.proxy_side} (transformers)", {}).get("wall_s")
    for p in precisions:
        t = timings[f"whole predict {p}"]
        if clipseg:
            t["ratio_clipseg"] = t["wall_s"] / clipseg
        print(
            f"{p}: whole predict / CLIPSeg proxy {t['ratio_proxy']:.2f}"
            + (f", / CLIPSeg itself {t['ratio_clipseg']:.2f}" if clipseg else "")
            + f"; apply_precision took {setup[p]:.1f} s"
        )
    summary = zeroshot_summary(timings)
    return {"threads": torch.get_num_threads(), "timings": timings, "setup_s": setup, **summary}


def zeroshot_summary(timings: dict[str, dict]) -> dict[str, dict]:
    """Print and return, per zero-shot precision, a whole predict / the bare encoder and a
    second phrase / a whole predict (wall medians of this run) against their targets."""
    out = {}
    for p in [k.rsplit(" ", 1)[1] for k in timings if k.startswith("zero-shot whole predict")]:
        whole = timings[f"zero-shot whole predict {p}"]
        second = timings[f"zero-shot second phrase {p}"]
        ratios = {
            "whole_bare": whole["ratio_bare"],
            "second_whole": second["wall_s"] / whole["wall_s"],
        }
        found = ZS_CANDIDATES.get(p, [])
        out[p] = {**ratios, "candidates_mean": sum(found) / max(1, len(found))}
        read = timings.get(f"zero-shot photo read {p}")
        if read is not None:  # the dense pass alone: a floor under a whole predict
            out[p]["read_bare"] = read["ratio_bare"]
            print(
                f"zero-shot {p}: the photo's dense read alone / bare encoder {read['ratio_bare']:.2f}"
            )
        verdicts = [
            "meets" if v <= t else "misses"
            for v, t in zip(ratios.values(), (ZS_TARGET_WHOLE, ZS_TARGET_SECOND), strict=True)
        ]
        print(
            f"zero-shot {p}: whole predict / bare encoder {ratios['whole_bare']:.2f} "
            f"({verdicts[0]} <= {ZS_TARGET_WHOLE}); second phrase / whole predict "
            f"{ratios['second_whole']:.2f} ({verdicts[1]} <= {ZS_TARGET_SECOND}); "
            f"{out[p]['candidates_mean']:.1f} candidates per predict"
        )
    return {"zeroshot": out}


def cosine_rows(arch: str, side: int, precisions: list[str]) -> dict[str, dict]:
    """Per-patch cosine to fp32 of each token level on the example photos, and of the blocks'
    update (level minus embedded patches): {precision: {"level1": (min, mean), ...}}."""
    from PIL import Image

    torch.manual_seed(0)
    model = clipmat.create_model(arch).eval()
    photos = sorted((ROOT / "examples").glob("*.jpg"))
    images = [
        torch.from_numpy(np.asarray(Image.open(p).convert("RGB").resize((side, side))).copy())
        for p in photos
    ]
    x = torch.stack(images).permute(0, 3, 1, 2).float() / 255
    with torch.inference_mode():
        xn = model.backbone.normalize(x)
        embedded, _ = model.backbone._embed_patches(xn)
        ref = model.backbone.encode_image_levels(xn)
    out = {}
    for p in precisions:
        if p == "fp32":
            continue
        m = apply_precision(model, p)
        with torch.inference_mode():
            levels = m.backbone.encode_image_levels(xn)
        row = {}
        for i, (a, b) in enumerate(zip(levels, ref, strict=True), start=1):
            row[f"level{i}"] = _cosine(a[:, 1:], b[:, 1:])
            row[f"level{i} update"] = _cosine((a - embedded)[:, 1:], (b - embedded)[:, 1:])
        out[p] = row
    return out


def _cosine(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(min, mean) per-token cosine of (B, N, D) tensors."""
    cos = torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)
    return float(cos.min()), float(cos.mean())


def miniworld_rows(precisions: list[str], images: int) -> dict[str, dict]:
    """``clipmat.evaluation.evaluate`` of the bundled mini-world model per precision and setting."""
    from clipmat.evaluation.evaluate import evaluate, miniworld_items, predictor_fn

    base = clipmat.load_predictor("mini-world", device="cpu").model
    out: dict[str, dict] = {}
    for p in precisions:
        predictor = clipmat.CLIPMatPredictor(apply_precision(base, p), name=p, device="cpu")
        for setting in ("keyword", "expression"):
            r = evaluate(predictor_fn(predictor, setting), miniworld_items(setting, images))
            out.setdefault(p, {})[setting] = {
                k: r[k] for k in ("n", "grounding_accuracy", "mad", "sad", "selection_accuracy")
            }
    return out


def run_parity(args: argparse.Namespace) -> dict:
    """CLIPMat's parity rows (unless ``--zeroshot-only``), then the zero-shot predictor's
    (unless ``--no-zeroshot``)."""
    out = {} if args.zeroshot_only else clipmat_parity(args)
    if not args.no_zeroshot:
        out["zeroshot"] = zeroshot_parity(args)
    return out


def zeroshot_parity(args: argparse.Namespace) -> dict:
    """Print the zero-shot predictor's feature parity (bf16 emulated where this CPU has no
    native bf16) and its mini-world rows per precision."""
    precisions = ["fp32", *args.zeroshot_precisions.split(",")]
    feats = feature_parity(precisions) if args.zeroshot_features else {}
    if feats:
        print("\nzero-shot, random ViT-B/16, example photos: per-patch cosine to fp32 (min / mean)")
        print("| precision | " + " | ".join(next(iter(feats.values()))) + " |")
        print("|---|" + "---|" * len(next(iter(feats.values()))))
    for p, row in feats.items():
        print(f"| {p} | " + " | ".join(f"{lo:.5f} / {m:.5f}" for lo, m in row.values()) + " |")
        worst = min(lo for lo, _ in row.values())
        verdict = "holds" if worst >= ZS_PARITY_COSINE else "fails"
        print(f"{p}: worst per-patch cosine {worst:.5f} ({verdict}: >= {ZS_PARITY_COSINE})")
    clip = ROOT / "weights" / "miniworld.safetensors"
    mw = miniworld_parity(precisions, args.zeroshot_images, clip) if clip.is_file() else {}
    print(f"\nzero-shot mini-world rows, CLIP towers of {clip.name}: n, grounding (- fp32), MAD")
    for p, methods in mw.items():
        for method, settings in methods.items():
            for setting, r in settings.items():
                ref = mw["fp32"][method][setting]["grounding_accuracy"]
                r["grounding_delta"] = r["grounding_accuracy"] - ref
                print(
                    f"| {p} | {method} | {setting} | {r['n']} | {r['grounding_accuracy']:.3f} "
                    f"({r['grounding_delta']:+.3f}) | {r['mad']:.4f} |"
                )
        worst = max(abs(r["grounding_delta"]) for m in methods.values() for r in m.values())
        verdict = "holds" if worst <= PARITY_GROUNDING else "fails"
        print(f"{p}: largest grounding change {worst:.3f} ({verdict}: <= {PARITY_GROUNDING})")
    return {"features": feats, "miniworld": mw}


def clipmat_parity(args: argparse.Namespace) -> dict:
    """CLIPMat's parity: token levels' cosine and the bundled model's mini-world scores."""
    precisions = available_precisions()
    cos = cosine_rows(args.model, args.side, precisions)
    print(f"{args.model}, random weights, example photos at {args.side} px: per-patch cosine")
    print("| precision | level | min | mean | update min | update mean |")
    print("|---|---|---|---|---|---|")
    for p, row in cos.items():
        for i in range(1, 5):
            (lo, mean), (ulo, umean) = row[f"level{i}"], row[f"level{i} update"]
            print(f"| {p} | {i} | {lo:.5f} | {mean:.5f} | {ulo:.5f} | {umean:.5f} |")
        worst = min(row[f"level{i}"][0] for i in range(1, 5))
        verdict = "holds" if worst >= PARITY_COSINE else "fails"
        print(f"{p}: worst per-patch cosine {worst:.5f} ({verdict}: >= {PARITY_COSINE})")
    mw = miniworld_rows(precisions, args.images)
    print(f"\nmini-world model, {args.images} held-out scenes")
    print(
        "| precision | setting | n | grounding | MAD | selection | grounding - fp32 | MAD / fp32 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for p, settings in mw.items():
        for setting, r in settings.items():
            ref = mw["fp32"][setting]
            r["grounding_delta"] = r["grounding_accuracy"] - ref["grounding_accuracy"]
            r["mad_ratio"] = r["mad"] / ref["mad"]
            print(
                f"| {p} | {setting} | {r['n']} | {r['grounding_accuracy']:.3f} | {r['mad']:.4f} "
                f"| {r['selection_accuracy']:.3f} | {r['grounding_delta']:+.3f} | "
                f"{r['mad_ratio']:.3f} |"
            )
        ok = all(
            abs(r["grounding_delta"]) <= PARITY_GROUNDING and abs(r["mad_ratio"] - 1) <= PARITY_MAD
            for r in settings.values()
        )
        print(f"{p}: mini-world parity {'holds' if ok else 'fails'}")
    return {"cosine": cos, "miniworld": mw}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parity", action="store_true", help="parity with fp32, not speed")
    parser.add_argument("--model", default="clipmat-vitb16")
    parser.add_argument("--side", type=int, default=512, help="photo side in pixels")
    parser.add_argument("--proxy-side", type=int, default=352, help="CLIPSeg's input side")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--images", type=int, default=200, help="mini-world scenes (--parity)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--smoke", action="store_true", help="every row on clipmat-tiny, small")
    parser.add_argument("--no-zeroshot", action="store_true", help="--parity: CLIPMat's only")
    parser.add_argument("--zeroshot-only", action="store_true", help="--parity: zero-shot only")
    parser.add_argument("--zeroshot-images", type=int, default=150, help="zero-shot scenes")
    parser.add_argument(
        "--zeroshot-precisions",
        default="bf16,int8",
        help="--parity: the zero-shot predictor's precisions beside fp32 (bf16 is emulated in "
        "software where the CPU has no native bf16: slow)",
    )
    parser.add_argument(
        "--no-zeroshot-features",
        dest="zeroshot_features",
        action="store_false",
        help="--parity: the zero-shot mini-world rows only, not the ViT-B/16 feature cosines",
    )
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.smoke:
        smoke = ("clipmat-tiny", 128, 96, 1, 2, 2)
        args.model, args.side, args.proxy_side, args.repeats, args.images = smoke[:5]
        args.zeroshot_images = smoke[5]
    result = run_parity(args) if args.parity else run_speed(args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), **result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""GPU benchmark in one command: CLIPMat predict latency and training throughput, measured.

    python bench/gpu.py [--json OUT]              # the first CUDA device
    python bench/gpu.py --cpu-smoke [--json OUT]  # every row shrunk, on the CPU (what tests run)

Random weights: timing does not depend on them. Every time is a median over repeats, after
warm-up calls, with CUDA synchronised before each clock reading. The rows:

- predict: ``CLIPMatPredictor(create_model("clipmat-vitb16")).predict`` on a new 512 and 1024 px
  photo each call (nothing comes from the feature cache), batch 1 (one phrase) and batch 8
  (eight phrases on the photo: what the predictor batches, a user's several phrases on one
  photo; the photo is encoded once). The predictor chooses its own precision, bf16 autocast on
  CUDA, and has no fp32 switch; the photo is resized to the model's 512 px input inside.
- forward: the model's forward, ``model(images, tokens)``, on 1 and 8 photos (one phrase each)
  at its input size, in fp32 and in bf16 autocast. The predictor takes one photo per call, so a
  batch of photos is timed here; any photo reaches the model at this size.
- train: one real training step (the loop's parameter groups and autocast, ``make_trimap``,
  ``clipmat_loss``, backward, gradient clipping, AdamW) on synthetic batches at the config's
  image size, for clipmat-vitb16 (512 px) and clipmat-vitl14 (448 px): samples/s and peak
  memory (``torch.cuda.max_memory_allocated``, from model transfer to the last step). Batch 16
  per GPU, the recipe's (configs/refmatte_vitb16.toml), halved until it fits in memory.

- zero-shot: the registry's zero-shot predictor (``load_predictor("zeroshot-vitb16",
  pretrained=False)``: random ViT-B/16 weights, ClearCLIP's windows) on a new 512 and 1024 px
  photo each call, batch 1 and 8 as for CLIPMat (kind "zeroshot predict"), and one new phrase
  on a photo already read (kind "zeroshot phrase"). It runs under the same CUDA autocast. These
  rows are kept apart in the JSON (``zeroshot_rows``, ratios in ``zeroshot_ratios``) and printed
  in the same table.

Ratios printed at the end come from rows of the same run. ``--cpu-smoke`` keeps every row but
uses clipmat-tiny (training: clipmat-tiny and clipmat-mini; zero-shot: "zeroshot-tiny",
clipmat-tiny's CLIP towers with windows at their own size), photos of 128 and 256 px, batches
of 1 and 2 and one repeat; its peak memory is the process's peak resident memory. Without CUDA
and without ``--cpu-smoke`` the script says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import platform
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import median_time  # noqa: E402

PHRASES = (
    "the cat with white and black fur",
    "the man on the left",
    "the red umbrella",
    "the dog lying on the sofa",
    "the glass of water on the table",
    "the woman's hair",
    "the plant in the corner",
    "the smoke above the chimney",
)


@dataclass(frozen=True)
class Plan:
    """What one run measures."""

    model: str  # the predict and forward rows' config
    train_models: tuple[str, ...]
    photo_sides: tuple[int, ...]  # predict rows' photo sides in pixels
    batches: tuple[int, ...]  # predict and forward batch sizes
    train_batch: int
    warmup: int
    repeats: int
    train_steps: int
    zeroshot: str = "zeroshot-vitb16"  # the zero-shot rows' predictor, with random weights


FULL = Plan(
    "clipmat-vitb16",
    ("clipmat-vitb16", "clipmat-vitl14"),
    (512, 1024),
    (1, 8),
    16,
    warmup=3,
    repeats=20,
    train_steps=10,
)
SMOKE = Plan(
    "clipmat-tiny",
    ("clipmat-tiny", "clipmat-mini"),
    (128, 256),
    (1, 2),
    2,
    warmup=1,
    repeats=1,
    train_steps=1,
    zeroshot="zeroshot-tiny",
)


def phrases(n: int) -> list[str]:
    """``n`` expressions, cycling through ``PHRASES``."""
    return [PHRASES[i % len(PHRASES)] for i in range(n)]


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_ms(fn, device: torch.device, warmup: int, repeats: int) -> float:
    """Median milliseconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""

    def call() -> None:
        fn()
        synchronize(device)

    for _ in range(warmup):
        call()
    return 1000 * median_time(call, repeats)


def photo(side: int, variant: int) -> np.ndarray:
    """(side, side, 3) uint8 blocky noise; ``variant`` changes one pixel, so each variant is a
    new photo to the predictor's feature cache."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (side // 8 + 1, side // 8 + 1, 3), dtype=np.uint8)
    out = np.kron(base, np.ones((8, 8, 1), np.uint8))[:side, :side].copy()
    out[0, 0, 0] = variant % 256
    out[0, 0, 1] = variant // 256
    return out


def row(
    kind: str, model: str, photo_px: int, input_px: int, batch: int, precision: str, ms: float
) -> dict:
    """One result row; its samples/s follow from the batch and the median milliseconds."""
    return {
        "kind": kind,
        "model": model,
        "photo_px": photo_px,
        "input_px": input_px,
        "batch": batch,
        "precision": precision,
        "median_ms": ms,
        "samples_per_s": 1000 * batch / ms,
    }


def predictor_precision(device: torch.device) -> str:
    """The precision ``CLIPMatPredictor`` runs at on ``device`` (its documented autocast)."""
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def predict_ms(predictor, side: int, batch: int, plan: Plan, device: torch.device) -> float:
    """Median ms of ``predict`` with ``batch`` phrases, each call on a new ``side`` px photo."""
    photos = iter([photo(side, i) for i in range(plan.warmup + plan.repeats)])
    texts = phrases(batch)
    return timed_ms(
        lambda: predictor.predict(next(photos), texts), device, plan.warmup, plan.repeats
    )


def predict_rows(plan: Plan, device: torch.device) -> list[dict]:
    """Whole predicts on new photos, for each photo side and number of phrases."""
    import clipmat

    torch.manual_seed(0)
    model = clipmat.create_model(plan.model)
    input_px = model.cfg.image_size
    predictor = clipmat.CLIPMatPredictor(model, device=device)
    rows = []
    for side in plan.photo_sides:
        for batch in plan.batches:
            ms = predict_ms(predictor, side, batch, plan, device)
            precision = predictor_precision(device)
            rows.append(row("predict", plan.model, side, input_px, batch, precision, ms))
    return rows


def zeroshot_rows(plan: Plan, device: torch.device) -> list[dict]:
    """Zero-shot whole predicts on new photos (each photo side, each number of phrases) and a
    new phrase on a photo already read (batch 1), as for CLIPMat's predict rows."""
    import clipmat

    predictor = clipmat.load_predictor(plan.zeroshot, pretrained=False, device=device)
    input_px = predictor.image_size
    precision = predictor_precision(device)
    rows = []
    for side in plan.photo_sides:
        for batch in plan.batches:
            ms = predict_ms(predictor, side, batch, plan, device)
            rows.append(
                row("zeroshot predict", plan.zeroshot, side, input_px, batch, precision, ms)
            )
        known = photo(side, 0)
        predictor.predict(known, PHRASES[0])
        texts = (f"{PHRASES[1]} {i}" for i in range(10**6))  # a new phrase each call
        ms = timed_ms(
            lambda known=known, texts=texts: predictor.predict(known, next(texts)),
            device,
            plan.warmup,
            plan.repeats,
        )
        rows.append(row("zeroshot phrase", plan.zeroshot, side, input_px, 1, precision, ms))
    return rows


def zeroshot_ratios(rows: list[dict], zs: list[dict]) -> dict[str, float]:
    """The zero-shot rows against CLIPMat's predict rows of the same run, and a second phrase
    against a whole predict."""
    ms = {(r["kind"], r["photo_px"], r["batch"]): r["median_ms"] for r in rows + zs}
    out = {}
    for side in sorted({r["photo_px"] for r in zs}):
        whole = ms["zeroshot predict", side, 1]
        out[f"zero-shot / CLIPMat predict, 1 phrase, {side} px"] = whole / ms["predict", side, 1]
        second = ms["zeroshot phrase", side, 1] / whole
        out[f"zero-shot second phrase / whole predict, {side} px"] = second
    return out


def forward_rows(plan: Plan, device: torch.device) -> list[dict]:
    """The model's forward on a batch of photos (one phrase each), fp32 and bf16 autocast."""
    import clipmat

    torch.manual_seed(0)
    model = clipmat.create_model(plan.model).to(device).eval()
    size = model.cfg.image_size
    rows = []
    for precision in ("fp32", "bf16"):
        for batch in plan.batches:
            images = torch.rand(batch, 3, size, size, device=device)
            tokens = model.tokenize(phrases(batch), ["expression"] * batch)
            cast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

            def forward(images=images, tokens=tokens, cast=cast, model=model) -> None:
                with torch.inference_mode(), cast:
                    model(images, tokens)

            ms = timed_ms(forward, device, plan.warmup, plan.repeats)
            rows.append(row("forward", plan.model, size, size, batch, precision, ms))
    return rows


def synthetic_batch(batch: int, size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(B, 3, S, S) images in [0, 1] and (B, 1, S, S) soft discs as alphas (every trimap
    class present)."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, size, size, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = size * (0.3 + 0.4 * torch.rand(batch, 2, generator=g))
    dist = ((yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2).sqrt()
    alphas = ((size / 4 - dist) / (size / 32)).clamp(0, 1)[:, None]
    return images.to(device), alphas.float().to(device)


def train_row(name: str, batch: int, plan: Plan, device: torch.device) -> dict:
    """Samples/s and peak memory of the training loop's step on one synthetic batch."""
    from clipmat.training import TrainConfig, build_model
    from clipmat.training.loop import _autocast, param_groups
    from clipmat.training.losses import LossWeights, clipmat_loss, make_trimap, trimap_kernel_size

    cfg = TrainConfig(model=name, batch_size=batch, device=str(device))
    torch.manual_seed(0)
    model = build_model(cfg)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model = model.to(device)
    size = model.cfg.image_size
    optimizer = torch.optim.AdamW(param_groups(model, cfg), betas=(0.9, 0.999))
    autocast, scaled = _autocast(device, cfg.amp)
    scaler = torch.amp.GradScaler("cuda") if scaled else None
    weights = LossWeights(cfg.loss_sem, cfg.loss_detail, cfg.loss_fusion, cfg.loss_dice)
    images, alphas = synthetic_batch(batch, size, device)
    tokens = model.tokenize(phrases(batch), ["expression"] * batch)
    rng = np.random.default_rng(0)

    def step() -> None:
        trimap = make_trimap(alphas, trimap_kernel_size(size, rng, cfg.trimap_kernel))
        with autocast:
            out = model(images, tokens)
        loss = clipmat_loss(out.semantic_logits, out.detail, alphas, trimap, weights)["loss"]
        optimizer.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()

    ms = timed_ms(step, device, plan.warmup, plan.train_steps)
    if device.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(device) / 2**30, "cuda_max_allocated"
    else:
        peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "cpu_max_rss"
    dtype = getattr(autocast, "fast_dtype", None)  # the loop's autocast, or none on the CPU
    precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
    measured = row("train", name, size, size, batch, precision, ms)
    return {**measured, "peak_memory_gib": peak, "memory": kind}


def release(device: torch.device) -> None:
    """Free what earlier rows left, so the next peak memory is the next row's own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def train_rows(plan: Plan, device: torch.device) -> list[dict]:
    """A training row per config, at the largest batch up to the plan's that fits."""
    rows = []
    for name in plan.train_models:
        batch = plan.train_batch
        while True:
            try:
                rows.append(train_row(name, batch, plan, device))
                break
            except torch.cuda.OutOfMemoryError:
                if batch == 1:
                    raise
                batch //= 2
            finally:
                release(device)
    return rows


def ratios(rows: list[dict]) -> dict[str, float]:
    """Ratios between rows of this run (``n``: the largest batch)."""
    ms = {(r["kind"], r["photo_px"], r["batch"], r["precision"]): r["median_ms"] for r in rows}
    fwd = {(b, p): v for (k, _, b, p), v in ms.items() if k == "forward"}
    pred = {(s, b): v for (k, s, b, _), v in ms.items() if k == "predict"}
    sides, n = sorted({s for s, _ in pred}), max(b for b, _ in fwd)
    out = {f"forward fp32 / bf16, batch {b}": fwd[b, "fp32"] / fwd[b, "bf16"] for b in (1, n)}
    per_photo = fwd[n, "bf16"] / n
    out[f"forward bf16, time per photo: batch 1 / batch {n}"] = fwd[1, "bf16"] / per_photo
    for side in sides:
        out[f"predict {n} phrases / 1 phrase, {side} px photo"] = pred[side, n] / pred[side, 1]
    small, large = sides[0], sides[-1]
    out[f"predict 1 phrase, {large} px / {small} px photo"] = pred[large, 1] / pred[small, 1]
    ratio = pred[small, 1] / fwd[1, "bf16"]
    out[f"predict 1 phrase on a {small} px photo / forward bf16 batch 1"] = ratio
    return out


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment(device: torch.device) -> dict:
    """What the numbers were measured on."""
    env = {
        "device": cpu_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        env["device"] = torch.cuda.get_device_name(device)
    return env


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    head = "| kind | model | photo px | input px | batch | precision | median ms | samples/s "
    lines = [head + "| peak GiB |", "|" + "---|" * 9]
    for r in rows:
        peak = f"{r['peak_memory_gib']:.2f}" if "peak_memory_gib" in r else ""
        lines.append(
            f"| {r['kind']} | {r['model']} | {r['photo_px']} | {r['input_px']} | "
            f"{r['batch']} | {r['precision']} | {r['median_ms']:.2f} | "
            f"{r['samples_per_s']:.1f} | {peak} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure every row, print the environment, table and ratios, write ``--json``; exit
    status 2 without CUDA (and without ``--cpu-smoke``), 1 when a time is not finite."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="every row shrunk, on the CPU")
    parser.add_argument("--json", help="write the environment, rows and ratios here")
    args = parser.parse_args(argv)
    if not args.cpu_smoke and not torch.cuda.is_available():
        message = "bench/gpu.py needs CUDA; --cpu-smoke runs every row shrunk on the CPU"
        print(message, file=sys.stderr)
        return 2
    plan = SMOKE if args.cpu_smoke else FULL
    device = torch.device("cpu" if args.cpu_smoke else "cuda:0")
    env = environment(device)
    print(
        f"device: {env['device']}; torch {env['torch']}; CUDA {env['cuda']}; "
        f"cuDNN {env['cudnn']}; TF32 matmul {env['tf32_matmul']}",
        flush=True,
    )
    start = time.perf_counter()
    rows, zs = [], []
    for measure in (predict_rows, zeroshot_rows, forward_rows, train_rows):
        (zs if measure is zeroshot_rows else rows).extend(measure(plan, device))
        release(device)
        print(f"{measure.__name__}: done at {time.perf_counter() - start:.0f} s", flush=True)
    result = {
        **env,
        "smoke": args.cpu_smoke,
        "rows": rows,
        "ratios": ratios(rows),
        "zeroshot_rows": zs,
        "zeroshot_ratios": zeroshot_ratios(rows, zs),
        "seconds": time.perf_counter() - start,
    }
    print(table(rows + zs))
    for name, value in {**result["ratios"], **result["zeroshot_ratios"]}.items():
        print(f"{name}: {value:.2f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    finite = ("median_ms", "samples_per_s")
    bad = [r for r in rows + zs if not all(math.isfinite(r[k]) for k in finite)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

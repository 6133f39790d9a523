"""Latency of a whole CLIPMat predict against open_clip's bare image encoder, side by side.

    python bench/predict_latency.py [--model clipmat-vitb16] [--repeats 3] [--threads N]

Random weights are fine for timing. Prints, for a 512x512 photo on this machine:
  - the bare open_clip image encoder (``clip.visual``) on the same 512x512 input,
  - a whole ``predict`` (resize, encoder, details branch, text, pop-up, decoders, upsampling),
  - their ratio (target <= 1.3),
  - a second phrase on the same image (target <= 0.15 of the first predict),
and the peak resident memory of a predict on a 4000x3000 photo (measured in a fresh process).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import median_time  # noqa: E402

import clipmat  # noqa: E402

TARGET_WHOLE = 1.3
TARGET_SECOND = 0.15


def _photo(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return np.kron(base, np.ones((8, 8, 1), np.uint8))[:height, :width].copy()


def _peak_memory_child(model_name: str, queue) -> None:
    torch.manual_seed(0)
    predictor = clipmat.CLIPMatPredictor(clipmat.create_model(model_name), device="cpu")
    photo = _photo(3000, 4000)
    predictor.predict(_photo(512, 512), "warm up")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = predictor.predict(photo, "the cat")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put((before / 1024, after / 1024, result.alpha.shape))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="clipmat-vitb16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = clipmat.create_model(args.model)
    predictor = clipmat.CLIPMatPredictor(model, device="cpu")
    side = model.cfg.image_size
    photo = _photo(side, side)
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255

    with torch.inference_mode():
        bare = median_time(
            lambda: model.backbone.clip.visual(model.backbone.normalize(x)),
            args.repeats,
            warmup=True,
        )

    def whole() -> None:
        predictor.clear_cache()
        predictor.predict(photo, "the cat with white and black fur")

    first = median_time(whole, args.repeats, warmup=True)
    predictor.predict(photo, "warm the cache")
    second = median_time(
        lambda: predictor.predict(photo, "the dog on the left"), args.repeats, warmup=True
    )
    second_kw = median_time(lambda: predictor.predict(photo, "dog"), args.repeats, warmup=True)

    print(f"model {args.model}, input {side}x{side}, {torch.get_num_threads()} threads, CPU")
    print(f"bare open_clip image encoder      {bare * 1000:8.1f} ms")
    print(f"whole predict (first phrase)      {first * 1000:8.1f} ms")
    print(f"  ratio whole / bare encoder      {first / bare:8.2f}   (target <= {TARGET_WHOLE})")
    print(f"second phrase, expression         {second * 1000:8.1f} ms")
    print(f"  ratio second / first            {second / first:8.3f}   (target <= {TARGET_SECOND})")
    print(f"second phrase, keyword (4 templates) {second_kw * 1000:5.1f} ms")
    print(
        f"  ratio second keyword / first    {second_kw / first:8.3f}   (target <= {TARGET_SECOND})"
    )

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_memory_child, args=(args.model, queue))
    proc.start()
    before, after, shape = queue.get()
    proc.join()
    print(
        f"4000x3000 photo: alpha {shape}, peak RSS {after:.0f} MiB "
        f"(model loaded and warm: {before:.0f} MiB; the photo's predict added {after - before:.0f} MiB)"
    )


if __name__ == "__main__":
    main()

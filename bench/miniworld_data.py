"""Mini-world data against training: can one loader process keep the training step fed?

    python bench/miniworld_data.py [--batch 32] [--size 96] [--threads 2]

Prints, measured in one run, the samples per second that the on-the-fly generator makes in
one process (scenes, augmentation, collation: a training batch), the samples per second that a
CLIPMat-mini training step consumes (forward, losses, backward, gradient clipping, AdamW, with
the training loop's parameter groups, trimap kernel and loss weights), and their ratio; above
1, ``workers=1`` keeps training fed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipmat.training.config import TrainConfig  # noqa: E402
from clipmat.training.data import BatchStream  # noqa: E402
from clipmat.training.loop import build_model, param_groups  # noqa: E402
from clipmat.training.losses import LossWeights, clipmat_loss, make_trimap, trimap_kernel_size  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the step")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(model="clipmat-mini", image_size=args.size, batch_size=args.batch)
    stream = BatchStream(cfg, args.size, rank=0, start_step=0)
    stream.batch(0)  # loads the background photos once
    start = time.perf_counter()
    batch = stream.batch(1)
    generated = args.batch / (time.perf_counter() - start)

    model = build_model(cfg).train()
    optimizer = torch.optim.AdamW(param_groups(model, cfg))
    weights = LossWeights(cfg.loss_sem, cfg.loss_detail, cfg.loss_fusion, cfg.loss_dice)
    tokens = model.tokenize(batch["texts"], batch["settings"], batch["template_ids"])
    kernel = trimap_kernel_size(args.size, np.random.default_rng(0), cfg.trimap_kernel)
    alphas = batch["alphas"]
    trimap = make_trimap(alphas, kernel)

    def step() -> None:
        output = model(batch["images"], tokens)
        losses = clipmat_loss(output.semantic_logits, output.detail, alphas, trimap, weights)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    consumed = args.batch * args.steps / (time.perf_counter() - start)
    print(f"generator, one process, {args.size} px: {generated:.1f} samples/s")
    print(f"training step, batch {args.batch}, {args.threads} threads: {consumed:.1f} samples/s")
    print(f"ratio generator / training: {generated / consumed:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

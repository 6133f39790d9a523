"""Contrastive pretraining of a tiny CLIP on mini-world images and captions.

``python -m clipmat.training.clip_pretrain --model clipmat-mini --steps N --out FILE`` trains the CLIP
towers that a CLIPMat config describes (open_clip's ``CLIP`` with ``ClipLoss``) on
(image, caption) pairs of the mini world's train split: single entities with their basic
expression, and whole scenes with all entities' expressions joined by "and". The file it writes
loads with :func:`clipmat.load_clip_pretrained` (``clip_init`` in a training config).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from clipmat.config import CLIPMatConfig
from clipmat.data.miniworld import MiniWorld
from clipmat.factory import get_model_config
from clipmat.model.backbone import CLIP_MEAN, CLIP_STD, create_clip
from clipmat.pretrained import weights_io


def _to_images(images: list[np.ndarray]) -> torch.Tensor:
    """B (S, S, 3) uint8 images -> (B, 3, S, S) float32 in [0, 1]."""
    x = torch.from_numpy(np.stack(images).astype(np.float32) / 255.0)
    return x.permute(0, 3, 1, 2).contiguous()


def _normalise(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) in [0, 1] -> CLIP-normalised."""
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def caption_batch(
    world: MiniWorld,
    step: int,
    batch_size: int,
    scene_prob: float,
    seed: int,
    keyword_prob: float = 0.0,
) -> tuple[torch.Tensor, list[str]]:
    """(B, 3, S, S) float images in [0, 1] and B captions for one step (deterministic).

    A share ``scene_prob`` of the pairs are whole scenes, the rest single entities; a share
    ``keyword_prob`` name their entities by bare keyword instead of by basic expression.
    """
    rng = np.random.default_rng([seed, step])
    images, captions = [], []
    for j in range(batch_size):
        index = step * batch_size + j
        mode = "scene" if rng.random() < scene_prob else "entity"
        image, caption = world.caption_pair(index, mode, keyword=rng.random() < keyword_prob)
        if rng.random() < 0.5 and "left" not in caption and "right" not in caption:
            image = image[:, ::-1]
        images.append(np.ascontiguousarray(image))
        captions.append(caption)
    return _to_images(images), captions


@torch.no_grad()
def keyword_accuracy(clip: torch.nn.Module, world: MiniWorld, n: int = 320) -> float:
    """Zero-shot classification of lone entities by bare keyword (chance: 1 / categories).

    Images are ``world.caption_pair(i, "entity")`` for i < n; each is assigned the category
    whose keyword's text embedding is nearest to the image embedding. This is what a CLIP must
    know to ground a keyword with no training of its own.
    """
    was_training = clip.training
    clip.eval()
    keywords = [c["keyword"] for c in world.categories]
    context = int(clip.context_length)
    text = F.normalize(
        clip.encode_text(open_clip.tokenize(keywords, context_length=context)), dim=-1
    )
    hits = 0
    for start in range(0, n, 64):
        pairs = [
            world.caption_pair(i, "entity", keyword=True) for i in range(start, min(n, start + 64))
        ]
        x = _normalise(_to_images([im for im, _ in pairs]))
        image = F.normalize(clip.encode_image(x), dim=-1)
        guess = (image @ text.T).argmax(1).tolist()
        hits += sum(keywords[g] == cap for g, (_, cap) in zip(guess, pairs))
    clip.train(was_training)
    return hits / n


def _optimizer(clip: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over the towers; no weight decay on biases, norms and embeddings."""
    decay = [p for n, p in clip.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    other = [p for n, p in clip.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": other, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)


def _lr_factor(step: int, warmup: int, steps: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine down to 0 at ``steps`` (step counts
    from 1)."""
    if step < warmup:
        return step / warmup
    return 0.5 * (1 + math.cos(math.pi * step / steps))


def _contrastive_step(
    clip: torch.nn.Module,
    opt: torch.optim.Optimizer,
    loss_fn: ClipLoss,
    images: torch.Tensor,
    text: torch.Tensor,
) -> float:
    """One update on a batch of pairs: CLIP loss, backward, clip the gradients at 1, step, and
    keep the logit scale within [1, 100]. Returns the loss."""
    img_f, txt_f, scale = clip(_normalise(images), text)
    loss = loss_fn(img_f, txt_f, scale)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(clip.parameters(), 1.0)
    opt.step()
    with torch.no_grad():
        clip.logit_scale.clamp_(0, math.log(100))
    return float(loss.detach())


@dataclass
class _Progress:
    """The losses since the last progress line, and the means of the first and last lines.

    Lines read ``step N loss L minutes M``; they are printed, and appended to ``log`` when given.
    """

    log: Path | None
    t0: float = field(default_factory=time.monotonic)
    losses: list[float] = field(default_factory=list)
    first: float = float("nan")
    last: float = float("nan")

    def seconds(self) -> float:
        """Wall time since the start."""
        return time.monotonic() - self.t0

    def report(self, step: int) -> None:
        """Close the window of losses: keep its mean and write its line."""
        mean_loss = float(np.mean(self.losses))
        self.first = mean_loss if math.isnan(self.first) else self.first
        self.last, self.losses = mean_loss, []
        line = f"step {step} loss {mean_loss:.4f} minutes {self.seconds() / 60:.2f}"
        print(line, flush=True)
        if self.log is not None:
            with Path(self.log).open("a") as fh:
                fh.write(line + "\n")


def _save_clip(
    clip: torch.nn.Module, cfg: CLIPMatConfig, out: str | Path, step: int, accuracy: float
) -> Path:
    """Write the towers to ``out`` with the metadata :func:`clipmat.load_clip_pretrained` reads."""
    meta = {
        "format": "open_clip",
        "arch": cfg.name,
        "clip": json.dumps(cfg.clip.__dict__),
        "steps": str(step),
        "data": "mini-world train split",
        "keyword_accuracy": f"{accuracy:.4f}",
    }
    return weights_io.save_state_dict(clip.state_dict(), out, metadata=meta)


def pretrain_clip(
    model_config: str | CLIPMatConfig,
    out: str | Path,
    *,
    steps: int = 2000,
    batch_size: int = 128,
    lr: float = 5e-4,
    weight_decay: float = 0.1,
    warmup: int = 100,
    scene_prob: float = 0.5,
    keyword_prob: float = 0.3,
    seed: int = 0,
    world_seed: int = 0,
    init: str | Path | None = None,
    max_minutes: float = 0.0,
    stop_step: int = 0,
    log_every: int = 50,
    log: Path | None = None,
) -> dict:
    """Train the CLIP towers of ``model_config`` contrastively and save them to ``out``.

    Args:
        init: a tiny CLIP file written by this function to start from (its optimiser state is
            not kept; the learning-rate schedule starts again).

    Returns:
        {"step", "first_loss", "last_loss", "path", "keyword_accuracy"}; the losses are means of
        the first and last ``log_every`` steps; the accuracy is :func:`keyword_accuracy` on the
        test split's held-out entities.
    """
    cfg = get_model_config(model_config) if isinstance(model_config, str) else model_config
    size = cfg.clip.vision["image_size"]
    torch.manual_seed(seed)
    clip = create_clip(cfg.clip).train()
    if init is not None:
        clip.load_state_dict(weights_io.load_state_dict(init)[0])
    context = int(cfg.clip.text.get("context_length", 77))
    opt = _optimizer(clip, lr, weight_decay)
    loss_fn = ClipLoss()
    world = MiniWorld("train", size, world_seed)
    progress = _Progress(log)
    step = 0
    for step in range(1, steps + 1):
        for g in opt.param_groups:
            g["lr"] = lr * _lr_factor(step, warmup, steps)
        images, captions = caption_batch(world, step, batch_size, scene_prob, seed, keyword_prob)
        text = open_clip.tokenize(captions, context_length=context)
        progress.losses.append(_contrastive_step(clip, opt, loss_fn, images, text))
        if step % log_every == 0 or step == steps:
            progress.report(step)
        if max_minutes and progress.seconds() > max_minutes * 60:
            break
        if stop_step and step >= stop_step:
            break
    accuracy = keyword_accuracy(clip, MiniWorld("test", size, world_seed))
    print(f"held-out keyword accuracy {accuracy:.3f} (chance {1 / len(world.categories):.3f})")
    path = _save_clip(clip, cfg, out, step, accuracy)
    losses = {"first_loss": progress.first, "last_loss": progress.last}
    return {"step": step, **losses, "path": str(path), "keyword_accuracy": accuracy}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clipmat.training.clip_pretrain",
        description="Contrastive pretraining of a tiny CLIP on the mini world.",
    )
    parser.add_argument("--model", default="clipmat-mini", help="CLIPMat config naming the towers")
    parser.add_argument("--out", required=True, help="output .safetensors file")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scene-prob", type=float, default=0.5, help="share of whole scenes")
    parser.add_argument(
        "--keyword-prob", type=float, default=0.3, help="share of captions by bare keyword"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--init", default=None, help="a tiny CLIP file to start from")
    parser.add_argument("--max-minutes", type=float, default=0.0, help="stop after this long")
    parser.add_argument(
        "--stop-step", type=int, default=0, help="stop after this step (the schedule keeps --steps)"
    )
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 2:
        parser.error("--steps must be >= 1 and --batch-size >= 2 (contrastive pairs)")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    summary = pretrain_clip(
        args.model,
        args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        scene_prob=args.scene_prob,
        keyword_prob=args.keyword_prob,
        init=args.init,
        max_minutes=args.max_minutes,
        stop_step=args.stop_step,
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

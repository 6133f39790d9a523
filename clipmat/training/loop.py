"""The training loop: AdamW with two learning rates, autocast, clipping, DDP, checkpoints, logs."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import time
import warnings
from dataclasses import astuple, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from clipmat.config import CLIPMatConfig
from clipmat.distributed import join
from clipmat.factory import create_model, get_model_config, load_clip_pretrained, load_model
from clipmat.model.clipmat import CLIPMat
from clipmat.training.checkpoint import (
    MODEL_FILE,
    OPTIM_FILE,
    load_optimizer_state,
    save_checkpoint,
)
from clipmat.training.config import TrainConfig
from clipmat.training.data import BatchStream
from clipmat.training.losses import LossWeights, clipmat_loss, make_trimap, trimap_kernel_size

LOG_FILE = "log.csv"
CONFIG_FILE = "config.json"
LOSS_TERMS = ("loss", "sem", "detail", "fusion", "dice")
LOG_COLUMNS = ("step", *LOSS_TERMS, "lr", "lr_image", "samples_per_s", "minutes")


def model_config(cfg: TrainConfig) -> CLIPMatConfig:
    """The CLIPMat config a run trains: a built-in name or a JSON path, plus its overrides."""
    base = (
        CLIPMatConfig.from_json(cfg.model)
        if cfg.model.endswith(".json")
        else (get_model_config(cfg.model))
    )
    return CLIPMatConfig.from_dict({**base.to_dict(), **cfg.model_overrides})


def build_model(cfg: TrainConfig) -> CLIPMat:
    """A fresh model for ``cfg``: random init, then CLIP weights (``clip_init``) or a CLIPMat
    checkpoint (``init``) when named. Returned in train mode, freezing applied.

    ``init`` may lack modules this config adds (say ``details_full_res``): they keep their
    initialisation, with a warning that names them. Weights the config has no place for are an
    error.
    """
    mcfg = model_config(cfg)
    model = create_model(mcfg)
    if cfg.clip_init:
        load_clip_pretrained(model, cfg.clip_init)
    if cfg.init:
        source = load_model(cfg.init)
        missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
        if unexpected:
            raise ValueError(
                f"init {cfg.init} holds {len(unexpected)} tensors this config has no place for, "
                f"e.g. {unexpected[:3]}; check model and model_overrides"
            )
        if missing:
            modules = sorted({k.rsplit(".", 1)[0] for k in missing})
            warnings.warn(
                f"init {cfg.init} has no weights for {len(missing)} tensors; these modules "
                f"start from their initialisation: {modules}",
                stacklevel=2,
            )
    model.apply_freezing()
    return model.train()


def param_groups(model: CLIPMat, cfg: TrainConfig) -> list[dict]:
    """AdamW groups: new modules at ``lr``, the CLIP towers (the image tower, and the text tower
    when it is trained) at ``lr_image``; no weight decay on biases, norms, embeddings and
    context vectors."""
    visual = {id(p) for p in model.backbone.clip.parameters()}
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = p.ndim >= 2 and "embedding" not in name and "context" not in name
        groups.setdefault((id(p) in visual, decay), []).append(p)
    out = []
    for (is_visual, decay), params in sorted(groups.items()):
        lr = cfg.lr_image if is_visual else cfg.lr
        weight_decay = cfg.weight_decay if decay else 0.0
        out.append({"params": params, "lr": lr, "base_lr": lr, "weight_decay": weight_decay})
    return out


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine down to ``min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def _autocast(device: torch.device, mode: str) -> tuple[contextlib.AbstractContextManager, bool]:
    """(autocast context, whether fp16 gradient scaling is needed)."""
    if device.type != "cuda" or mode == "off":
        return contextlib.nullcontext(), False
    if mode == "auto":
        mode = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    return torch.autocast("cuda", dtype=dtype), dtype == torch.float16


def _device(cfg: TrainConfig, local_rank: int) -> torch.device:
    """The device a process trains on: ``cfg.device``, or under "auto" its GPU when there is one."""
    if cfg.device == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def _resume(out: Path, model: CLIPMat, optimizer: torch.optim.Optimizer) -> int:
    """Load the run's last model and optimizer state; returns the step they were saved at."""
    ckpt = out / MODEL_FILE
    saved = load_model(ckpt)
    if saved.cfg != model.cfg:
        raise ValueError(f"{ckpt} holds a {saved.cfg.name!r} model that differs from this config")
    model.load_state_dict(saved.state_dict(), strict=True)
    return load_optimizer_state(out / OPTIM_FILE, optimizer)


@dataclass
class _Run:
    """What one process of a run holds: its place in the job, the model, its optimiser, the data.

    ``net`` is ``model`` itself, or its DistributedDataParallel wrapper when ``world`` > 1;
    ``start`` is the step the run continues from (0 for a fresh run).
    """

    cfg: TrainConfig
    rank: int
    world: int
    device: torch.device
    out: Path
    model: CLIPMat
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    autocast: contextlib.AbstractContextManager
    scaler: torch.amp.GradScaler | None
    weights: LossWeights
    size: int
    start: int
    loader: DataLoader


def _set_up(cfg: TrainConfig) -> _Run:
    """Join the job and build the run: model, optimizer (resumed when saved), autocast, scaler and
    loader; rank 0 writes ``config.json`` and the log's header."""
    rank, world, local = astuple(join())
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = _device(cfg, local)
    torch.manual_seed(cfg.seed + rank)
    out = Path(cfg.out_dir)
    model = build_model(cfg).to(device)
    size = int(cfg.image_size or model.cfg.image_size)
    if size % model.cfg.patch_size:
        raise ValueError(f"image_size {size} is not a multiple of the patch size")
    optimizer = torch.optim.AdamW(param_groups(model, cfg), betas=(0.9, 0.999))
    start = 0
    if cfg.resume and (out / MODEL_FILE).is_file() and (out / OPTIM_FILE).is_file():
        start = _resume(out, model, optimizer)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        saved = {"train": cfg.to_dict(), "model": model.cfg.to_dict()}
        (out / CONFIG_FILE).write_text(json.dumps(saved, indent=2))
    net = DistributedDataParallel(model) if world > 1 else model
    autocast, scaled = _autocast(device, cfg.amp)
    stream = BatchStream(cfg, size, rank, start)
    loader = DataLoader(
        stream, batch_size=None, num_workers=cfg.workers, persistent_workers=cfg.workers > 0
    )
    log_path = out / LOG_FILE
    if rank == 0 and not log_path.exists():
        with log_path.open("w", newline="") as f:
            csv.writer(f).writerow(LOG_COLUMNS)
    return _Run(
        cfg=cfg,
        rank=rank,
        world=world,
        device=device,
        out=out,
        model=model,
        net=net,
        optimizer=optimizer,
        autocast=autocast,
        scaler=torch.amp.GradScaler("cuda") if scaled else None,
        weights=LossWeights(cfg.loss_sem, cfg.loss_detail, cfg.loss_fusion, cfg.loss_dice),
        size=size,
        start=start,
        loader=loader,
    )


def _optimisation_step(run: _Run, batch: dict, step: int) -> dict[str, torch.Tensor]:
    """One step on ``batch``: schedule the learning rates, forward under autocast, the loss,
    backward (scaled for fp16), clip, and update. Returns the loss terms."""
    cfg, model, optimizer, scaler = run.cfg, run.model, run.optimizer, run.scaler
    factor = lr_factor(step, cfg)
    for g in optimizer.param_groups:
        g["lr"] = g["base_lr"] * factor
    images = batch["images"].to(run.device, non_blocking=True)
    alphas = batch["alphas"].to(run.device, non_blocking=True)
    tokens = model.tokenize(batch["texts"], batch["settings"], batch["template_ids"])
    rng = np.random.default_rng([cfg.seed, step, run.rank, 7])
    trimap = make_trimap(alphas, trimap_kernel_size(run.size, rng, cfg.trimap_kernel))
    with run.autocast:
        output = run.net(images, tokens)
    losses = clipmat_loss(output.semantic_logits, output.detail, alphas, trimap, run.weights)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(losses["loss"]).backward()
        scaler.unscale_(optimizer)
    else:
        losses["loss"].backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return losses


def _should_stop(run: _Run, step: int, elapsed: float) -> bool:
    """Stop early after ``max_minutes`` or at ``stop_step``; rank 0 decides for every rank."""
    cfg = run.cfg
    stop = cfg.max_minutes > 0 and elapsed > cfg.max_minutes * 60
    stop = stop or (0 < cfg.stop_step <= step < cfg.steps)
    if run.world > 1:  # every rank must agree on when to stop
        flag = torch.tensor([float(stop)], device=run.device)
        dist.broadcast(flag, src=0)
        stop = bool(flag.item())
    return stop


@dataclass
class _LossWindow:
    """The losses of the steps since the last log row, and the means of the first and last rows."""

    terms: list[list[float]] = field(default_factory=list)
    first_loss: float = float("nan")
    last_loss: float = float("nan")

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        """Keep one step's loss terms, in the log's column order."""
        self.terms.append([float(losses[k].detach()) for k in LOSS_TERMS])

    def close(self, run: _Run, step: int, elapsed: float, bar: tqdm) -> None:
        """Average the window over its steps and over the ranks, and start a new one; rank 0
        appends the row to ``log.csv`` and shows the loss on the progress bar."""
        mean = torch.tensor(self.terms, device=run.device).mean(0)
        if run.world > 1:
            dist.all_reduce(mean)
            mean /= run.world
        values = mean.tolist()
        self.first_loss = values[0] if math.isnan(self.first_loss) else self.first_loss
        self.last_loss = values[0]
        self.terms = []
        if run.rank != 0:
            return
        rate = (step - run.start) * run.cfg.batch_size * run.world / max(elapsed, 1e-6)
        lrs = [g["lr"] for g in run.optimizer.param_groups]
        losses = [f"{v:.5f}" for v in values]
        lr_high, lr_low = f"{max(lrs):.3e}", f"{min(lrs):.3e}"
        row = [step, *losses, lr_high, lr_low, f"{rate:.1f}", f"{elapsed / 60:.2f}"]
        with (run.out / LOG_FILE).open("a", newline="") as f:
            csv.writer(f).writerow(row)
        bar.set_postfix(loss=f"{values[0]:.4f}", rate=f"{rate:.0f}/s")


def train(cfg: TrainConfig) -> dict:
    """Run (or continue) a training run; every process of a torchrun job calls this.

    Returns:
        {"step": steps completed, "first_loss", "last_loss" (means over the first and last
        logged windows), "checkpoint": path of the last checkpoint, "out_dir"}.
    """
    run = _set_up(cfg)
    show = run.rank == 0 and cfg.progress
    bar = tqdm(
        total=cfg.steps, initial=run.start, disable=not show, mininterval=10.0, dynamic_ncols=True
    )
    t0 = last_ckpt = time.monotonic()
    window = _LossWindow()
    step = run.start
    ckpt_path = run.out / MODEL_FILE
    batches = iter(run.loader)
    while step < cfg.steps:
        window.add(_optimisation_step(run, next(batches), step))
        step += 1
        elapsed = time.monotonic() - t0
        stop = _should_stop(run, step, elapsed)
        if step % cfg.log_every == 0 or step == cfg.steps or stop:
            window.close(run, step, elapsed, bar)
        bar.update(1)
        due = step % cfg.ckpt_every == 0 or time.monotonic() - last_ckpt > cfg.ckpt_minutes * 60
        if run.rank == 0 and (due or step == cfg.steps or stop):
            ckpt_path = save_checkpoint(run.out, run.model, run.optimizer, step, cfg.to_dict())
            last_ckpt = time.monotonic()
        if stop:
            break
    bar.close()
    if run.world > 1:
        dist.barrier()
    return {
        "step": step,
        "first_loss": window.first_loss,
        "last_loss": window.last_loss,
        "checkpoint": str(ckpt_path),
        "out_dir": str(run.out),
    }

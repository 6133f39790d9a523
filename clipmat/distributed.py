"""torchrun's process group, shared by training, evaluation and batch matting.

Outside torchrun (no ``WORLD_SIZE`` in the environment, or 1) everything here is a no-op for
one process: rank 0 of a world of 1.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """Where this process stands under torchrun."""

    rank: int = 0
    world: int = 1
    local: int = 0  # the rank on this machine: which GPU it takes


def join() -> Ranks:
    """Read torchrun's environment and join its process group (nccl with CUDA, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    ranks = Ranks(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend, rank=ranks.rank, world_size=world)
    return ranks


@contextlib.contextmanager
def process_group(device: str) -> Iterator[tuple[Ranks, str]]:
    """Join torchrun's group for the block; leave it after, when this block joined it.

    Yields:
        (the ranks, this rank's device: ``cuda:LOCAL_RANK`` when CUDA is present under
        torchrun and ``device`` is "auto" or "cuda", else ``device``).
    """
    already = dist.is_initialized()
    ranks = join()
    if ranks.world > 1 and torch.cuda.is_available():
        torch.cuda.set_device(ranks.local)  # nccl gathers through the current device
        if device in ("auto", "cuda"):
            device = f"cuda:{ranks.local}"
    try:
        yield ranks, device
    finally:
        if not already and dist.is_initialized():
            dist.destroy_process_group()


def gather_rows(rows: list[dict], world: int) -> list[dict] | None:
    """Every rank's rows on rank 0 (None on the other ranks); ``rows`` itself when ``world`` is
    1. With several ranks it is a collective: each rank of the group calls it."""
    if world == 1:
        return rows
    parts: list | None = [None] * world if dist.get_rank() == 0 else None
    dist.gather_object(rows, parts, dst=0)
    return None if parts is None else [row for part in parts for row in part]

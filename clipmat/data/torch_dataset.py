"""torch.utils.data wrappers over the numpy sample dicts (the only module here importing torch)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from clipmat.data.miniworld import MiniWorld


def to_tensors(sample: dict) -> dict:
    """Image -> (3, H, W) float32 in [0, 1]; alpha -> (1, H, W) float32; strings kept."""
    out = dict(sample)
    out["image"] = torch.from_numpy(np.ascontiguousarray(sample["image"])).permute(2, 0, 1)
    out["image"] = out["image"].float().div_(255.0)
    out["alpha"] = torch.from_numpy(np.ascontiguousarray(sample["alpha"]))[None].float()
    return out


def collate_samples(batch: Sequence[dict]) -> dict:
    """Stack tensors of equal size; every other field becomes a list (expressions stay lists)."""
    out = {}
    for key in batch[0]:
        values = [b[key] for b in batch]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return out


class MiniWorldDataset(Dataset):
    """On-the-fly mini-world samples; item i is sample i of the world (deterministic).

    Args:
        world: the MiniWorld to draw from.
        length: number of items (scene indices 0..length-1).
        setting: "keyword", "expression" or "mixed".
        transform: optional callable on the numpy sample dict (augmentation), before tensors.
        tensors: convert image/alpha to tensors with to_tensors.
    """

    def __init__(
        self,
        world: MiniWorld,
        length: int,
        setting: str = "mixed",
        transform: Callable[[dict], dict] | None = None,
        tensors: bool = True,
    ) -> None:
        if length < 1:
            raise ValueError(f"length must be positive, got {length}")
        self.world, self.length, self.setting = world, int(length), setting
        self.transform, self.tensors = transform, tensors

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range for {self.length} samples")
        sample = self.world.sample(i, self.setting)
        if self.transform is not None:
            sample = self.transform(sample)
        return to_tensors(sample) if self.tensors else sample

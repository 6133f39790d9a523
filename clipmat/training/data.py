"""Training batches: the on-the-fly mini world and RefMatte-layout folders, with flips.

A batch is a dict: ``images`` (B, 3, S, S) float32 in [0, 1], ``alphas`` (B, 1, S, S) float32 in
[0, 1], ``texts`` (B strings), ``settings`` (B of "keyword"/"expression"), ``template_ids`` (B ints).
Batch ``step`` of process ``rank`` depends only on (seed, step, rank), so a resumed run sees the
same data it would have seen without the interruption.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from clipmat.data.expressions import swap_left_right
from clipmat.data.miniworld import MiniWorld
from clipmat.data.refmatte import load_alpha, load_image, load_records
from clipmat.data.samples import build_sample, unique_keyword_flags
from clipmat.training.config import TrainConfig

N_TEMPLATES = 64  # template ids are drawn below this; the prompt takes them modulo its count


class RecordSampler:
    """Random samples from a RefMatte-layout split, read by :mod:`clipmat.data.refmatte`.

    An entity whose keyword repeats in its image is trained with an expression instead.

    Args:
        root: the dataset folder.
        split: "train", "test" or "rw100".
    """

    def __init__(self, root: str | Path, split: str = "train") -> None:
        self.records = load_records(root, split)
        if not self.records:
            raise ValueError(f"{root} ({split}) holds no annotated entity")
        by_image: dict[str, list[int]] = {}
        for i, rec in enumerate(self.records):
            by_image.setdefault(rec.image_name, []).append(i)
        self.unique = [False] * len(self.records)
        for rows in by_image.values():
            flags = unique_keyword_flags([self.records[i].keyword for i in rows])
            for i, flag in zip(rows, flags, strict=True):
                self.unique[i] = flag

    def __len__(self) -> int:
        return len(self.records)

    def sample(self, index: int, setting: str, rng: np.random.Generator) -> dict:
        """The sample dict (clipmat.data.samples) of entity ``index`` with a random text."""
        rec = self.records[index]
        if setting == "keyword" and not self.unique[index] and rec.expressions:
            setting = "expression"
        if setting == "keyword":
            text = rec.keyword
        else:
            text = rec.expressions[int(rng.integers(len(rec.expressions)))]
        image, alpha = load_image(rec.image_path), load_alpha(rec.mask_path)
        return build_sample(
            image, alpha, rec.keyword, rec.expressions, setting, text, rec.image_name, rec.entity
        )


def _resize_square(image: np.ndarray, alpha: np.ndarray, size: int, rng: np.random.Generator):
    """Random square crop (side in [0.6, 1] of the short side) resized to ``size``."""
    h, w = alpha.shape
    if (h, w) != (size, size):
        side = int(min(h, w) * rng.uniform(0.6, 1.0)) if min(h, w) > size else min(h, w)
        y0 = int(rng.integers(0, h - side + 1))
        x0 = int(rng.integers(0, w - side + 1))
        image = image[y0 : y0 + side, x0 : x0 + side]
        alpha = alpha[y0 : y0 + side, x0 : x0 + side]
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, (size, size), interpolation=cv2.INTER_LINEAR)
    return image, alpha


def augment(sample: dict, size: int, flip: bool, rng: np.random.Generator) -> dict:
    """Crop/resize to ``size`` and flip horizontally with p = 0.5 (swapping left/right words)."""
    image, alpha = _resize_square(sample["image"], sample["alpha"], size, rng)
    text = sample["text"]
    if flip and rng.random() < 0.5:
        image, alpha = image[:, ::-1], alpha[:, ::-1]
        if sample["setting"] == "expression":
            text = swap_left_right(text)
    image, alpha = np.ascontiguousarray(image), np.ascontiguousarray(alpha)
    return {**sample, "image": image, "alpha": alpha, "text": text}


def collate(samples: list[dict], rng: np.random.Generator, shuffle_text: bool = False) -> dict:
    """Stack samples into a batch dict (see the module docstring)."""
    images = np.stack([s["image"] for s in samples]).astype(np.float32) / 255.0
    alphas = np.stack([s["alpha"] for s in samples]).astype(np.float32)
    texts = [s["text"] for s in samples]
    settings = [s["setting"] for s in samples]
    if shuffle_text:
        perm = rng.permutation(len(samples))
        texts, settings = [texts[i] for i in perm], [settings[i] for i in perm]
    return {
        "images": torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        "alphas": torch.from_numpy(alphas).unsqueeze(1),
        "texts": texts,
        "settings": settings,
        "template_ids": [int(t) for t in rng.integers(0, N_TEMPLATES, len(samples))],
    }


class BatchStream(IterableDataset):
    """Endless batches for one training process, starting at ``start_step``.

    With several data workers, worker w makes the batches of steps w, w + W, ...; the loader
    hands them out in step order.
    """

    def __init__(self, cfg: TrainConfig, size: int, rank: int, start_step: int) -> None:
        super().__init__()
        self.cfg, self.size, self.rank, self.start = cfg, size, rank, start_step
        self._world: MiniWorld | None = None
        self._folder: RecordSampler | None = None

    def _setting(self, rng: np.random.Generator) -> str:
        if self.cfg.setting != "mixed":
            return self.cfg.setting
        return "expression" if rng.random() < self.cfg.expression_prob else "keyword"

    def _sample(self, step: int, j: int, rng: np.random.Generator) -> dict:
        cfg = self.cfg
        setting = self._setting(rng)
        if cfg.data == "miniworld":
            if self._world is None:
                self._world = MiniWorld(cfg.split, self.size, cfg.world_seed)
            # scene indices advance with the step; ranks interleave; never revisited
            index = (step * 4096 + self.rank * 512 + j) % (2**31 - 1)
            return self._world.sample(index, setting)
        if self._folder is None:
            self._folder = RecordSampler(cfg.data_root, cfg.split)
        return self._folder.sample(int(rng.integers(len(self._folder))), setting, rng)

    def batch(self, step: int) -> dict:
        """The batch of ``step`` for this process."""
        rng = np.random.default_rng([self.cfg.seed, step, self.rank])
        samples = [
            augment(self._sample(step, j, rng), self.size, self.cfg.flip, rng)
            for j in range(self.cfg.batch_size)
        ]
        return collate(samples, rng, self.cfg.shuffle_text)

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        step = self.start + wid
        while True:
            yield self.batch(step)
            step += nw

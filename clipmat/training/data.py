"""Training batches: the on-the-fly mini world and RefMatte-layout folders, with flips.

A batch is a dict: ``images`` (B, 3, S, S) float32 in [0, 1], ``alphas`` (B, 1, S, S) float32 in
[0, 1], ``texts`` (B strings), ``settings`` (B of "keyword"/"expression"), ``template_ids`` (B ints).
Batch ``step`` of process ``rank`` depends only on (seed, step, rank), so a resumed run sees the
same data it would have seen without the interruption.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from clipmat.data.expressions import swap_left_right
from clipmat.data.miniworld import MiniWorld
from clipmat.data.samples import build_sample, unique_keyword_flags
from clipmat.training.config import TrainConfig

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
N_TEMPLATES = 64  # template ids are drawn below this; the prompt takes them modulo its count


class RefMatteFolder:
    """A folder in the RefMatte layout (``<split>/img``, ``<split>/mask``, label JSON).

    Reads ``refmatte_<split>_label.json`` (keyed by mask stem: ``image_name``, ``keyword``,
    ``expressions``) next to or inside the split folder; RW100's ``image/`` folder name and
    ``refmatte_rw100_label.json`` are accepted too. A missing keyword falls back to the first
    expression.

    Args:
        root: the dataset folder.
        split: "train", "test" or "rw100".
    """

    def __init__(self, root: str | Path, split: str = "test") -> None:
        self.root = Path(root)
        base = self.root / split if (self.root / split).is_dir() else self.root
        candidates = [
            self.root / f"refmatte_{split}_label.json",
            base / f"refmatte_{split}_label.json",
            *sorted(self.root.glob("*label*.json")),
        ]
        label = next((p for p in candidates if p.is_file()), None)
        if label is None:
            raise FileNotFoundError(
                f"no label file under {self.root}: expected refmatte_{split}_label.json "
                "(the RefMatte layout: <split>/img, <split>/mask, refmatte_<split>_label.json)"
            )
        self.labels: dict[str, dict] = json.loads(label.read_text())
        img_dir = base / "img" if (base / "img").is_dir() else base / "image"
        self.img_dir, self.mask_dir = img_dir, base / "mask"
        if not self.img_dir.is_dir() or not self.mask_dir.is_dir():
            raise FileNotFoundError(f"{base} needs img/ (or image/) and mask/ folders")
        self.entities = sorted(k for k in self.labels if (self.mask_dir / f"{k}.png").is_file())
        if not self.entities:
            raise ValueError(f"{label} names no entity with a mask in {self.mask_dir}")
        by_image: dict[str, list[str]] = {}
        for stem in self.entities:
            by_image.setdefault(self.labels[stem]["image_name"], []).append(stem)
        self.by_image = by_image

    def __len__(self) -> int:
        return len(self.entities)

    def keyword(self, stem: str) -> str:
        rec = self.labels[stem]
        return str(rec.get("keyword") or rec.get("category") or rec["expressions"][0])

    def image(self, image_name: str) -> np.ndarray:
        """(H, W, 3) uint8 RGB photo."""
        for suffix in IMAGE_SUFFIXES:
            path = self.img_dir / f"{image_name}{suffix}"
            if path.is_file():
                return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        raise FileNotFoundError(f"image {image_name} not found in {self.img_dir}")

    def alpha(self, stem: str) -> np.ndarray:
        """(H, W) float32 alpha in [0, 1]."""
        mask = cv2.imread(str(self.mask_dir / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        if mask.ndim == 3:
            mask = mask[..., 0]
        scale = 65535.0 if mask.dtype == np.uint16 else 255.0
        return mask.astype(np.float32) / scale

    def sample(self, stem: str, setting: str, rng: np.random.Generator) -> dict:
        """The sample dict (clipmat.data.samples) of one entity with a random text of ``setting``."""
        rec = self.labels[stem]
        exprs = list(rec.get("expressions", []))
        keyword = self.keyword(stem)
        siblings = self.by_image[rec["image_name"]]
        unique = unique_keyword_flags([self.keyword(s) for s in siblings])[siblings.index(stem)]
        if setting == "keyword" and not unique and exprs:
            setting = "expression"
        text = keyword if setting == "keyword" else str(exprs[int(rng.integers(len(exprs)))])
        return build_sample(
            self.image(rec["image_name"]), self.alpha(stem), keyword, exprs, setting, text,
            rec["image_name"], stem,
        )  # fmt: skip


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
    return {**sample, "image": np.ascontiguousarray(image), "alpha": np.ascontiguousarray(alpha),
            "text": text}  # fmt: skip


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
        self._folder: RefMatteFolder | None = None

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
            self._folder = RefMatteFolder(cfg.data_root, cfg.split)
        stem = self._folder.entities[int(rng.integers(len(self._folder)))]
        return self._folder.sample(stem, setting, rng)

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

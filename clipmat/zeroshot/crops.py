"""Candidate regions scored whole: ReCLIP's isolated proposals, batched and cached per photo.

A region's crop (a square around it, everything outside the region blurred) depends only on
the photo and the region's mask, not on the phrase, so its pooled embedding is kept with the
photo's features: a second phrase whose candidates are regions already seen (the same object
found again, the other candidate of a union) scores them with no pass through the image tower.
The crops still to embed, of every part of a request, go through the tower in one batch.
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import torch

from clipmat.model.backbone import CLIPBackbone
from clipmat.runtime import LRUCache, autocast
from clipmat.transforms import to_model_input

CROP_FILL = 0.75  # a region's crop is a square whose side is its longest side / this
CROP_SIDE = 224  # crops are scored at most at this side (CLIP's pretraining resolution)
CACHED_CROPS = 64  # regions whose embeddings a photo keeps


def isolate_region(photo: np.ndarray, mask: np.ndarray, fill: float = CROP_FILL) -> np.ndarray:
    """A square crop of ``photo`` around a patch-grid ``mask``, blurred outside the mask.

    Args:
        photo: (H, W, 3) uint8.
        mask: (h, w) bool on the patch grid.
        fill: share of the crop's side that the region's longer side takes.

    Returns:
        (S, S, 3) uint8 crop (the square is moved to stay inside the photo, and shrinks to the
        photo's shorter side when it cannot).
    """
    height, width = photo.shape[:2]
    sy, sx = height / mask.shape[0], width / mask.shape[1]
    ys, xs = np.nonzero(mask)
    y0, y1 = ys.min() * sy, (ys.max() + 1) * sy
    x0, x1 = xs.min() * sx, (xs.max() + 1) * sx
    side = round(min(max(y1 - y0, x1 - x0) / fill, height, width))
    top = round(np.clip((y0 + y1) / 2 - side / 2, 0, height - side))
    left = round(np.clip((x0 + x1) / 2 - side / 2, 0, width - side))
    crop = photo[top : top + side, left : left + side]
    keep = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    rows = np.minimum(((top + np.arange(side)) / sy).astype(int), mask.shape[0] - 1)
    cols = np.minimum(((left + np.arange(side)) / sx).astype(int), mask.shape[1] - 1)
    blurred = cv2.GaussianBlur(crop, (0, 0), max(1.0, side / 32))
    return np.where(keep[rows][:, cols][..., None], crop, blurred)


def mask_key(mask: np.ndarray) -> str:
    """A key for a (h, w) bool mask: its shape and a hash of its bits."""
    bits = np.packbits(np.ascontiguousarray(mask, dtype=bool))
    return f"{mask.shape}:{hashlib.blake2b(bits.tobytes(), digest_size=12).hexdigest()}"


def new_cache() -> LRUCache[torch.Tensor]:
    """A photo's cache of crop embeddings, by :func:`mask_key`."""
    return LRUCache(CACHED_CROPS)


def crop_embeddings(
    backbone: CLIPBackbone,
    rgb: np.ndarray,
    masks: list[np.ndarray],
    cache: LRUCache[torch.Tensor],
    *,
    side: int,
    device: torch.device,
    precision: str = "fp32",
) -> torch.Tensor:
    """Unit pooled embeddings of each mask's isolated crop (:func:`isolate_region`).

    Crops whose mask is in ``cache`` are not computed again; the others (each distinct mask
    once) go through ``backbone.encode_pooled`` in one batch at ``side`` x ``side`` pixels and
    are put in ``cache``.

    Args:
        backbone: the CLIP, on ``device``.
        rgb: (H, W, 3) uint8 photo.
        masks: (h, w) bool regions on the patch grid, each with at least one patch.
        cache: the photo's crop embeddings (see :func:`new_cache`).
        side: pixels, a multiple of the patch.
        device: the backbone's device.
        precision: the towers' precision, for CPU bf16 autocast.

    Returns:
        (N, E) float32 unit embeddings, in the order of ``masks``.
    """
    keys = [mask_key(m) for m in masks]
    found = {k: cache.get(k) for k in keys}
    todo = {k: m for k, m in zip(keys, masks, strict=True) if found[k] is None}
    if todo:
        crops = [to_model_input(isolate_region(rgb, m), (side, side)) for m in todo.values()]
        x = backbone.normalize(torch.cat(crops).to(device))
        with autocast(device, precision):
            emb = backbone.encode_pooled(x).float()
        emb = torch.nn.functional.normalize(emb, dim=-1)
        for k, e in zip(todo, emb, strict=True):
            found[k] = e
            cache.put(k, e)
    return torch.stack([found[k] for k in keys])

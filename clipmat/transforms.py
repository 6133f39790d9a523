"""Resize policy between a photo of any size and the model
(docs/decisions.md#resize-policy), and back."""

from __future__ import annotations

import cv2
import numpy as np
import torch

MIN_PATCHES = 2
"""The shortest side the model sees, in patches. CLIPMat's details extractor reads the image at
stride 16 at its coarsest level, so a side under 16 pixels leaves that level empty and the
model fails; two patches are 16 pixels for a patch of 8 (the tiny configs) and more for larger
patches, and give the zero-shot predictor's patch grid two cells per side."""


def model_input_size(
    height: int,
    width: int,
    *,
    short_side: int,
    multiple: int,
    max_long_side: int | None = None,
    min_side: int | None = None,
) -> tuple[int, int]:
    """Size the model sees, for a photo of any size and aspect ratio.

    The short side becomes ``short_side`` with the aspect ratio kept, unless the long side would
    pass ``max_long_side`` (default 2 x ``short_side``): then the long side is the cap. Each
    side is floored to a multiple of the patch size, and raised to at least ``min_side``
    (default ``MIN_PATCHES`` patches): for photos longer than the cap allows at that short side
    (e.g. 90 x 1500 at 128 px) the aspect ratio gives way, never the cap.

    Args:
        height, width: the photo's size in pixels, at least 1 each.
        short_side: the model's resolution.
        multiple: the patch size.
        max_long_side: cap on the long side.
        min_side: floor on each side, rounded up to a multiple of the patch.

    Returns:
        (h, w), both positive multiples of ``multiple``, at least ``min_side``.

    Raises:
        ValueError: for a size or parameter below 1, or a cap below the floor.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if short_side <= 0 or multiple <= 0:
        raise ValueError(f"short_side and multiple must be positive, got {short_side}, {multiple}")
    floor = -(-(min_side or MIN_PATCHES * multiple) // multiple) * multiple
    max_long = max_long_side or 2 * short_side
    if max_long < floor:
        raise ValueError(f"max_long_side {max_long} is below the smallest side {floor}")
    scale = min(short_side / min(height, width), max_long / max(height, width))
    h = max(floor, int(height * scale) // multiple * multiple)
    w = max(floor, int(width * scale) // multiple * multiple)
    return h, w


def to_model_input(image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, h, w) float32 in [0, 1] at ``size`` = (h, w)."""
    h, w = size
    shrink = h < image.shape[0] or w < image.shape[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    resized = cv2.resize(image, (w, h), interpolation=interp)
    return torch.from_numpy(resized).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def to_input_size(map_: torch.Tensor | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A model-resolution map (h, w) -> float32 (H, W) at the photo's size, bilinear, in [0, 1]."""
    if isinstance(map_, torch.Tensor):
        map_ = map_.detach().float().cpu().numpy()
    map_ = np.ascontiguousarray(map_, dtype=np.float32)
    height, width = size
    if map_.shape != (height, width):
        map_ = cv2.resize(map_, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(map_, 0.0, 1.0, out=map_)


def labels_to_input_size(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an integer label map (h, w) to (H, W)."""
    height, width = size
    if labels.shape == (height, width):
        return labels
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)

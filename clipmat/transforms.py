"""Resize policy between a photo of any size and the model (spec 5.2 [D]), and back."""

from __future__ import annotations

import cv2
import numpy as np
import torch


def model_input_size(
    height: int, width: int, *, short_side: int, multiple: int, max_long_side: int | None = None
) -> tuple[int, int]:
    """Size the model sees: short side ``short_side``, aspect ratio kept, each side floored to a
    multiple of the patch size; the long side capped at ``max_long_side`` (default 2 x short).

    Returns:
        (h, w), both positive multiples of ``multiple``.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    max_long = max_long_side or 2 * short_side
    scale = short_side / min(height, width)
    scale = min(scale, max_long / max(height, width))
    h = max(multiple, int(height * scale) // multiple * multiple)
    w = max(multiple, int(width * scale) // multiple * multiple)
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

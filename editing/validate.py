"""Input coercion and checks: images to RGB uint8, mattes to float32 in [0, 1], fingerprints."""

from __future__ import annotations

import zlib
from typing import Any

import cv2
import numpy as np
from PIL import Image

# Float inputs may overshoot [0, 1] by this much (rounding in a model's output); they are clipped.
RANGE_TOLERANCE = 1e-3

_IMAGE_FORMATS = (
    "an HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA) array of uint8 (0..255), "
    "uint16 (0..65535) or float (0..1), or a PIL.Image"
)
_ALPHA_FORMATS = (
    "an HxW or HxWx1 array of float (0..1), uint8 (0..255), uint16 (0..65535) or bool, "
    "or a grayscale PIL.Image"
)


def _float_range_check(array: np.ndarray, what: str, accepted: str) -> np.ndarray:
    """Check a float array for NaN/inf and the [0, 1] range; clip tiny overshoots.

    Returns:
        The array as float32 in [0, 1] (the same object when nothing had to change).
    """
    array = array.astype(np.float32, copy=False)
    lo, hi = float(array.min()), float(array.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise ValueError(f"{what} holds {bad} NaN or infinite values; expected {accepted}")
    if lo < -RANGE_TOLERANCE or hi > 1.0 + RANGE_TOLERANCE:
        raise ValueError(
            f"{what} is float with values in [{lo:.4g}, {hi:.4g}], outside [0, 1]; "
            f"expected {accepted} (divide 0..255 data by 255, or pass it as uint8)"
        )
    if lo < 0.0 or hi > 1.0:
        array = np.clip(array, 0.0, 1.0)
    return array


def as_rgb(image: Any, *, name: str = "image") -> np.ndarray:
    """Coerce an image to contiguous RGB uint8.

    Grayscale is repeated over three channels; the alpha channel of an RGBA image is dropped
    (the matte passed beside the image decides transparency); uint16 is scaled by 255/65535
    and float in [0, 1] by 255, both rounded.

    Args:
        image: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array of uint8, uint16 or float in
            [0, 1], or a PIL.Image of any mode.
        name: What to call the argument in error messages.

    Returns:
        (H, W, 3) uint8 in [0, 255], C-contiguous; the input itself when it already is one.

    Raises:
        TypeError: For an unsupported type or dtype.
        ValueError: For an unsupported shape, an empty image, NaN or values outside [0, 1].
    """
    if isinstance(image, Image.Image):
        if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            image = np.asarray(image)
            if image.dtype.kind == "i":
                image = np.clip(image, 0, 65535).astype(np.uint16)
        else:
            image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be {_IMAGE_FORMATS}; got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] in (1, 3, 4):
        if image.shape[2] != 3:
            image = image[..., 0] if image.shape[2] == 1 else image[..., :3]
    elif image.ndim != 2:
        raise ValueError(f"{name} has shape {image.shape}; expected {_IMAGE_FORMATS}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {image.shape}); expected {_IMAGE_FORMATS}")

    if image.dtype == np.uint8:
        out = image
    elif image.dtype == np.uint16:
        out = cv2.convertScaleAbs(np.ascontiguousarray(image), alpha=255.0 / 65535.0)
    elif image.dtype.kind == "f":
        checked = _float_range_check(image, name, _IMAGE_FORMATS)
        out = cv2.convertScaleAbs(np.ascontiguousarray(checked), alpha=255.0)
    else:
        raise TypeError(f"{name} has dtype {image.dtype}; expected {_IMAGE_FORMATS}")

    if out.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(out), cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(out)


def as_alpha(alpha: Any, *, name: str = "alpha") -> np.ndarray:
    """Coerce a matte to contiguous float32 in [0, 1].

    Args:
        alpha: (H, W) or (H, W, 1) array of float in [0, 1], uint8 (0..255), uint16
            (0..65535) or bool, or a PIL.Image (modes L, I;16, F, or any mode converted to L).
        name: What to call the argument in error messages.

    Returns:
        (H, W) float32 in [0, 1], C-contiguous; the input itself when it already is one.

    Raises:
        TypeError: For an unsupported type or dtype.
        ValueError: For an unsupported shape, NaN, or float values outside [0, 1].
    """
    if isinstance(alpha, Image.Image):
        if alpha.mode in ("I;16", "I;16B", "I;16L", "I", "F", "L", "1"):
            alpha = np.asarray(alpha)
            if alpha.dtype.kind == "i":
                alpha = np.clip(alpha, 0, 65535).astype(np.uint16)
        else:
            alpha = np.asarray(alpha.convert("L"))
    if not isinstance(alpha, np.ndarray):
        raise TypeError(f"{name} must be {_ALPHA_FORMATS}; got {type(alpha).__name__}")
    if alpha.ndim == 3 and alpha.shape[2] == 1:
        alpha = alpha[..., 0]
    if alpha.ndim != 2:
        raise ValueError(f"{name} has shape {alpha.shape}; expected {_ALPHA_FORMATS}")
    if alpha.shape[0] == 0 or alpha.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {alpha.shape}); expected {_ALPHA_FORMATS}")

    if alpha.dtype.kind == "f":
        out = _float_range_check(alpha, name, _ALPHA_FORMATS)
    elif alpha.dtype == np.uint8:
        out = np.multiply(alpha, np.float32(1.0 / 255.0), dtype=np.float32)
    elif alpha.dtype == np.uint16:
        out = np.multiply(alpha, np.float32(1.0 / 65535.0), dtype=np.float32)
    elif alpha.dtype == np.bool_:
        out = alpha.astype(np.float32)
    else:
        raise TypeError(f"{name} has dtype {alpha.dtype}; expected {_ALPHA_FORMATS}")
    return np.ascontiguousarray(out)


def check_same_size(image: np.ndarray, alpha: np.ndarray) -> None:
    """Raise a ValueError unless image and matte have the same height and width.

    Args:
        image: (H, W, C) array.
        alpha: (H', W') array.
    """
    if image.shape[:2] != alpha.shape[:2]:
        (h, w), (ha, wa) = image.shape[:2], alpha.shape[:2]
        raise ValueError(
            f"image is {h}x{w} (HxW) but alpha is {ha}x{wa}; the matte must have the "
            f"image's size (predict it on this image, or resize it to {h}x{w} first)"
        )


def prepare(image: Any, alpha: Any) -> tuple[np.ndarray, np.ndarray]:
    """Coerce and cross-check an image and its matte.

    Args:
        image: Any input `as_rgb` accepts.
        alpha: Any input `as_alpha` accepts, with the image's height and width.

    Returns:
        image: (H, W, 3) uint8.
        alpha: (H, W) float32 in [0, 1].
    """
    rgb = as_rgb(image)
    matte = as_alpha(alpha)
    check_same_size(rgb, matte)
    return rgb, matte


def fingerprint(image: np.ndarray, alpha: np.ndarray) -> tuple[int, int, int, int]:
    """A cheap content key for an image and its matte (CRC-32 of every byte of each).

    Args:
        image: (H, W, 3) uint8, C-contiguous.
        alpha: (H, W) float32, C-contiguous.

    Returns:
        (H, W, crc of image, crc of alpha).
    """
    return (image.shape[0], image.shape[1], zlib.crc32(image), zlib.crc32(alpha))

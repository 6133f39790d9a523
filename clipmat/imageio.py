"""Image input normalisation: anything image-like in, HxWx3 uint8 RGB out.

Accepted sources: a path, encoded bytes, a binary file object, a `PIL.Image.Image`, or a numpy
array. EXIF orientation is applied, so the result is upright as a viewer shows it. An alpha
channel (RGBA, LA, palette transparency) is dropped, not composited: the RGB values under it are
kept, because blending onto white would bake a halo into the very pixels a matting model must
read. `load_image_with_alpha` returns the alpha separately for callers that want it.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 100_000_000  # 100 megapixels; None disables the check
UINT16_TO_UINT8 = 257.0  # 65535 / 255: 16-bit values are scaled, never clipped
FLOAT_RANGE_TOLERANCE = 1e-3  # float images may stray this far outside [0, 1] (then clipped)
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_ACCEPTED = "a path, bytes, a binary file object, a PIL.Image or a numpy array"

ImageSource = (
    str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Image.Image | np.ndarray
)


class ImageInputError(ValueError):
    """The input is not a usable image: corrupt, empty, too large, or of unsupported shape/dtype."""


def load_image(src: ImageSource, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load any supported image as upright RGB.

    Args:
        src: path, encoded bytes, binary file object, PIL image, or array. Arrays may be
            (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), of dtype uint8, uint16 (scaled by 1/257),
            bool, other integers holding 0..255, or float in [0, 1]. Only the first frame of
            an animation is read.
        max_pixels: refuse images with more pixels than this (decompression bombs, memory);
            None disables the check (Pillow still refuses files above about 179 megapixels).

    Returns:
        (H, W, 3) uint8 RGB, C-contiguous, a new array (never a view of `src`).

    Raises:
        ImageInputError: corrupt or non-image data, empty or NaN arrays, unsupported shape or
            dtype, or more than `max_pixels` pixels.
        FileNotFoundError: a path that does not exist.
        TypeError: a source of an unsupported type.
    """
    return load_image_with_alpha(src, max_pixels=max_pixels)[0]


def load_image_with_alpha(
    src: ImageSource, *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, np.ndarray | None]:
    """Like `load_image`, also returning the alpha channel when the source has one.

    Returns:
        (rgb, alpha): rgb (H, W, 3) uint8; alpha (H, W) uint8 in 0..255, or None when the
        source has no transparency.
    """
    if isinstance(src, np.ndarray):
        _check_pixels(src.shape[:2] if src.ndim >= 2 else (0, 0), max_pixels, "array")
        rgb, alpha = _from_array(src, "array")
    elif isinstance(src, Image.Image):
        _check_pixels(src.size, max_pixels, "PIL image")
        rgb, alpha = _from_pil(src, "PIL image")
    elif isinstance(src, str | os.PathLike):
        if not os.path.isfile(src):
            raise FileNotFoundError(f"Image file not found: {os.fspath(src)}")
        rgb, alpha = _decode(src, f"image file {os.fspath(src)}", max_pixels)
    elif isinstance(src, bytes | bytearray | memoryview):
        if len(src) == 0:
            raise ImageInputError("Image bytes are empty")
        rgb, alpha = _decode(io.BytesIO(bytes(src)), "image bytes", max_pixels)
    elif hasattr(src, "read"):
        rgb, alpha = _decode(src, "image file object", max_pixels)
    else:
        raise TypeError(f"Unsupported image source {type(src).__name__}; expected {_ACCEPTED}.")
    return np.ascontiguousarray(rgb), alpha


def _check_pixels(size: tuple[int, int], max_pixels: int | None, label: str) -> None:
    a, b = int(size[0]), int(size[1])
    if max_pixels is not None and a * b > max_pixels:
        raise ImageInputError(
            f"{label} has {a * b:,} pixels ({a} x {b}), more than the limit of {max_pixels:,}. "
            "Downscale it first, or raise max_pixels if you trust the source."
        )


def _decode(
    source: str | os.PathLike | BinaryIO, label: str, max_pixels: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Open with Pillow, check the size from the header, then decode fully."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                _check_pixels(im.size, max_pixels, label)
                im.load()
                return _from_pil(im, label)
    except ImageInputError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageInputError(f"{label} is too large to decode safely: {err}") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageInputError(
            f"{label} is not a readable image (corrupt, truncated or unsupported format: {err}). "
            "Use a PNG, JPEG, WebP, BMP, TIFF or GIF file."
        ) from err


def _from_pil(im: Image.Image, label: str) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        im = ImageOps.exif_transpose(im)
    except (ValueError, TypeError, KeyError, OSError, SyntaxError):
        pass  # unreadable EXIF: keep the stored orientation rather than fail
    if im.width == 0 or im.height == 0:
        raise ImageInputError(f"{label} is empty ({im.width} x {im.height})")
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(im)
        return _from_array(np.clip(values, 0, 65535).astype(np.uint16), label)
    if mode == "F":
        return _from_array(np.asarray(im), label)
    alpha = None
    if mode in _ALPHA_MODES:
        alpha = np.array(im.getchannel("A"), dtype=np.uint8)
    return np.array(im.convert("RGB"), dtype=np.uint8), alpha


def _from_array(a: np.ndarray, label: str) -> tuple[np.ndarray, np.ndarray | None]:
    if a.size == 0:
        raise ImageInputError(f"{label} is empty (shape {a.shape})")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        hint = ""
        if a.ndim == 3 and a.shape[0] in (1, 3, 4):
            hint = " It looks channels-first: use a.transpose(1, 2, 0)."
        raise ImageInputError(
            f"{label} has shape {a.shape}; expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)."
            + hint
        )
    a = _to_uint8(a, label)
    channels = a.shape[2]
    alpha = a[..., -1].copy() if channels in (2, 4) else None
    colour = a[..., :3] if channels >= 3 else np.repeat(a[..., :1], 3, axis=2)
    return np.array(colour, dtype=np.uint8, order="C"), alpha


def _to_uint8(a: np.ndarray, label: str) -> np.ndarray:
    """Map an array of any supported dtype to uint8 0..255 (scaling, never wrapping)."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * np.uint8(255)
    if a.dtype == np.uint16:
        return np.round(a / UINT16_TO_UINT8).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ImageInputError(f"{label} contains NaN or infinite values")
        low, high = float(a.min()), float(a.max())
        if low < -FLOAT_RANGE_TOLERANCE or high > 1.0 + FLOAT_RANGE_TOLERANCE:
            raise ImageInputError(
                f"{label} is float with values in [{low:g}, {high:g}]; float images must lie in "
                "[0, 1]. For 0..255 data pass a.astype(np.uint8)."
            )
        return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        low, high = int(a.min()), int(a.max())
        if low < 0 or high > 255:
            raise ImageInputError(
                f"{label} is {a.dtype} with values in [{low}, {high}]; integer images must hold "
                "0..255 (or be uint16 for 16-bit data)."
            )
        return a.astype(np.uint8)
    raise ImageInputError(
        f"{label} has dtype {a.dtype}; expected uint8, uint16, bool, integer or float."
    )


def limit_size(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale so that the longer side is at most `max_side` (area interpolation).

    Args:
        image: (H, W) or (H, W, C) array.
        max_side: the longest side allowed, in pixels (> 0).

    Returns:
        (image, scale): the resized image (the input itself if already small enough) and
        new size / old size (1.0 when unchanged).
    """
    import cv2

    if not isinstance(max_side, int | np.integer) or max_side <= 0:
        raise ValueError(f"max_side must be a positive integer; got {max_side!r}")
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image, 1.0
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale

"""Image input normalisation: anything image-like in, HxWx3 uint8 RGB out.

Accepted sources: a path, encoded bytes, a binary file object, a `PIL.Image.Image`, or a numpy
array. EXIF orientation is applied, so the result is upright as a viewer shows it. An alpha
channel (RGBA, LA, palette transparency) is dropped, not composited: the RGB values under it are
kept, because blending onto white would bake a halo into the very pixels a matting model must
read. `load_image_with_alpha` returns the alpha separately for callers that want it.

Decoding is bounded: the header's size and mode are checked against a pixel limit and a memory
limit before any pixel is decoded, and the conversion to 8 bits works on strips of rows written
straight into the one output array (16-bit in integer arithmetic, floats in their own precision).
"""

from __future__ import annotations

import functools
import io
import os
import warnings
from collections.abc import Callable
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 100_000_000  # 100 megapixels; None disables the check
# Peak memory allowed for decoding plus conversion (see `estimate_decode_bytes`): enough for a
# JPEG or PNG photo of DEFAULT_MAX_PIXELS (7 to 10 bytes a pixel). None disables the check.
DEFAULT_MAX_BYTES = 1 << 30
FLOAT_RANGE_TOLERANCE = 1e-3  # float images may stray this far outside [0, 1] (then clipped)
STRIP_PIXELS = 1 << 18  # conversion works on row strips of about this many pixels
EXIF_ORIENTATION = 0x0112
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
_NUMERIC_MODES = _SIXTEEN_BIT_MODES | {"F"}
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_PREMULTIPLIED = {"RGBa": "RGBA", "La": "LA"}
_ONE_BYTE_MODES = frozenset({"1", "L", "P"})  # Pillow stores every other mode in 2 or 4 bytes
_STREAMING_FORMATS = frozenset({"PNG", "GIF", "BMP", "DIB", "PPM", "ICO", None})
_STRIP_BYTES_PER_PIXEL = 48  # a strip's crop, its bytes and its temporaries, worst case
_MODE_WORDS = {
    "1": "1-bit",
    "L": "8-bit grayscale",
    "P": "palette",
    "I;16": "16-bit grayscale",
    "I": "32-bit integer grayscale",
    "F": "32-bit float grayscale",
    "RGB": "8-bit RGB",
    "RGBA": "8-bit RGBA",
    "LA": "8-bit grayscale with alpha",
    "CMYK": "CMYK",
}
_ACCEPTED = "a path, bytes, a binary file object, a PIL.Image or a numpy array"

ImageSource = (
    str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Image.Image | np.ndarray
)


class ImageInputError(ValueError):
    """The input is not a usable image: corrupt, empty, too large, or of unsupported shape/dtype."""


def load_image(
    src: ImageSource,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> np.ndarray:
    """Load any supported image as upright RGB.

    Args:
        src: path, encoded bytes, binary file object, PIL image, or array. Arrays may be
            (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), of dtype uint8, uint16 (scaled by 1/257),
            bool, other integers holding 0..255, or float in [0, 1]. Only the first frame of
            an animation is read.
        max_pixels: refuse images with more pixels than this (decompression bombs, memory);
            None disables the check (Pillow still refuses files above about 179 megapixels).
        max_bytes: refuse files, bytes and PIL images whose decoding and conversion would need
            more memory than this at peak, estimated from the header's size and mode before
            decoding (see `estimate_decode_bytes`); None disables the check. Arrays are
            already in memory and only checked against `max_pixels`.

    Returns:
        (H, W, 3) uint8 RGB, C-contiguous, a new array (never a view of `src`).

    Raises:
        ImageInputError: corrupt or non-image data, empty or NaN arrays, unsupported shape or
            dtype, more than `max_pixels` pixels, or more than `max_bytes` to decode.
        FileNotFoundError: a path that does not exist.
        TypeError: a source of an unsupported type.
    """
    return load_image_with_alpha(src, max_pixels=max_pixels, max_bytes=max_bytes)[0]


def load_image_with_alpha(
    src: ImageSource,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
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
        _check_bytes(src, max_bytes, "PIL image")
        rgb, alpha = _from_pil(src, "PIL image")
    elif isinstance(src, str | os.PathLike):
        if not os.path.isfile(src):
            raise FileNotFoundError(f"Image file not found: {os.fspath(src)}")
        rgb, alpha = _decode(src, f"image file {os.fspath(src)}", max_pixels, max_bytes)
    elif isinstance(src, bytes | bytearray | memoryview):
        if len(src) == 0:
            raise ImageInputError("Image bytes are empty")
        rgb, alpha = _decode(io.BytesIO(bytes(src)), "image bytes", max_pixels, max_bytes)
    elif hasattr(src, "read"):
        rgb, alpha = _decode(src, "image file object", max_pixels, max_bytes)
    else:
        raise TypeError(f"Unsupported image source {type(src).__name__}; expected {_ACCEPTED}.")
    return np.ascontiguousarray(rgb), alpha


def estimate_decode_bytes(image: Image.Image) -> int:
    """Peak memory `load_image` needs to decode and convert an opened image, from its header.

    Pillow's decoded pixels (1 byte a pixel for 1-bit, gray and palette images, 2 for 16-bit
    gray, 4 for every other mode), plus the larger of the decoder's whole-image buffers
    (freed once decoded) and the output (3 bytes a pixel, 4 with alpha), plus one conversion
    strip. Decoder buffers: none for PNG, GIF, BMP and baseline JPEG (they decode row by row);
    the 16-bit DCT coefficients of every channel for progressive JPEG; 12 bytes a pixel for
    WebP (measured with Pillow 12); two bytes per channel and pixel for other formats (TIFF).

    Args:
        image: an image opened with `PIL.Image.open` (not decoded yet) or in memory.

    Returns:
        The estimate in bytes.
    """
    pixels = image.width * image.height
    mode = image.mode
    stored = 1 if mode in _ONE_BYTE_MODES else 2 if mode.startswith("I;16") else 4
    output = 4 if _has_alpha(image) else 3
    strip = min(pixels, STRIP_PIXELS) * _STRIP_BYTES_PER_PIXEL
    return int(pixels * (stored + max(_decoder_bytes_per_pixel(image), output))) + strip


def _decoder_bytes_per_pixel(image: Image.Image) -> float:
    """Bytes a pixel that the decoder holds for the whole image besides Pillow's pixels."""
    fmt = image.format
    if fmt in ("JPEG", "MPO"):
        if not image.info.get("progressive"):
            return 0.0  # baseline JPEG decodes a few rows at a time
        layers = getattr(image, "layer", None) or [(0, 1, 1, 0)] * len(image.getbands())
        h_max = max(layer[1] for layer in layers)
        v_max = max(layer[2] for layer in layers)
        # progressive JPEG keeps every 16-bit DCT coefficient of every (subsampled) channel
        return 2.0 * sum(layer[1] * layer[2] for layer in layers) / (h_max * v_max)
    if fmt in _STREAMING_FORMATS:
        return 0.0
    if fmt == "WEBP":
        return 12.0
    return 2.0 * len(image.getbands())


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info)


def _megabytes(n: int) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 10e6 else f"{n / 1e6:.1f} MB"


def _check_pixels(size: tuple[int, int], max_pixels: int | None, label: str) -> None:
    a, b = int(size[0]), int(size[1])
    if max_pixels is not None and a * b > max_pixels:
        raise ImageInputError(
            f"{label} has {a * b:,} pixels ({a} x {b}), more than the limit of {max_pixels:,}. "
            "Downscale it first, or raise max_pixels if you trust the source."
        )


def _check_bytes(image: Image.Image, max_bytes: int | None, label: str) -> None:
    """Refuse an image whose decoding would need more than `max_bytes` (header only)."""
    if max_bytes is None:
        return
    need = estimate_decode_bytes(image)
    if need > max_bytes:
        kind = _MODE_WORDS.get(image.mode, f"{len(image.getbands())}-channel")
        if image.mode.startswith("I;16"):
            kind = _MODE_WORDS["I;16"]
        raise ImageInputError(
            f"{label} is {image.width} x {image.height} pixels of {kind} data; decoding it "
            f"needs about {_megabytes(need)} of memory, more than the limit of "
            f"{_megabytes(max_bytes)}. Accepted: images that decode within the limit (an "
            f"8-bit RGB photo takes about 7 bytes a pixel, so up to "
            f"{max_bytes // 7 / 1e6:.1f} megapixels). Downscale it or save it as 8-bit first, "
            "or raise max_bytes if you trust the source."
        )


def _decode(
    source: str | os.PathLike | BinaryIO,
    label: str,
    max_pixels: int | None,
    max_bytes: int | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Open with Pillow, check size and memory from the header, then decode fully."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                _check_pixels(im.size, max_pixels, label)
                _check_bytes(im, max_bytes, label)
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


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation (1..8) of a decoded image; 1 when absent or unreadable."""
    try:
        value = im.getexif().get(EXIF_ORIENTATION, 1)
    except (ValueError, TypeError, KeyError, OSError, SyntaxError):
        return 1  # unreadable EXIF: keep the stored orientation rather than fail
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _stored_view(upright: np.ndarray, orientation: int) -> np.ndarray:
    """A view of an upright array indexed like the stored image (EXIF orientation undone).

    Writing the stored pixels into this view fills `upright` as a viewer shows the photo, the
    same pixels as Pillow's `ImageOps.exif_transpose`, with no second copy of the image.
    """
    views = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, 1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, -1),
    }
    return views[orientation](upright)


def _allocate(
    height: int, width: int, alpha: bool, orientation: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Empty upright outputs for a stored height x width image."""
    if orientation in (5, 6, 7, 8):
        height, width = width, height
    rgb = np.empty((height, width, 3), np.uint8)
    return rgb, (np.empty((height, width), np.uint8) if alpha else None)


def _row_strips(height: int, width: int) -> list[tuple[int, int]]:
    rows = max(1, STRIP_PIXELS // max(width, 1))
    return [(y, min(y + rows, height)) for y in range(0, height, rows)]


def _from_pil(im: Image.Image, label: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Convert a Pillow image strip by strip into upright uint8 outputs."""
    im.load()  # before reading EXIF: a PNG may store it after the pixels
    orientation = _orientation(im)
    width, height = im.size
    if width == 0 or height == 0:
        raise ImageInputError(f"{label} is empty ({width} x {height})")
    if im.mode in _NUMERIC_MODES:
        dtype = np.dtype(np.float32 if im.mode == "F" else np.uint16)
        get = functools.partial(_numeric_strip, im)
        return _convert_strips(get, im.size, dtype, 1, label, orientation)
    has_alpha = _has_alpha(im)
    rgb, alpha = _allocate(height, width, has_alpha, orientation)
    rgb_view = _stored_view(rgb, orientation)
    alpha_view = None if alpha is None else _stored_view(alpha, orientation)
    for y0, y1 in _row_strips(height, width):
        part = im.crop((0, y0, width, y1))
        if part.mode == "P":
            part = part.convert("RGBA" if has_alpha else "RGB")
        elif part.mode in _PREMULTIPLIED:
            part = part.convert(_PREMULTIPLIED[part.mode])
        if alpha_view is not None:
            alpha_view[y0:y1] = np.asarray(part.getchannel("A"))
        rgb_view[y0:y1] = np.asarray(part if part.mode == "RGB" else part.convert("RGB"))
    return rgb, alpha


def _numeric_strip(im: Image.Image, y0: int, y1: int) -> np.ndarray:
    """Rows y0..y1 of a 16-bit, 32-bit integer or float image as uint16 or float32."""
    values = np.asarray(im.crop((0, y0, im.width, y1)))
    if im.mode == "F":
        return values
    if im.mode == "I":
        values = np.clip(values, 0, 65535)
    return values.astype(np.uint16)


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
    size = (a.shape[1], a.shape[0])
    return _convert_strips(lambda y0, y1: a[y0:y1], size, a.dtype, a.shape[2], label)


def _convert_strips(
    strip: Callable[[int, int], np.ndarray],
    size: tuple[int, int],
    dtype: np.dtype,
    channels: int,
    label: str,
    orientation: int = 1,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Fill upright (H, W, 3) uint8 and, for 2 or 4 channels, (H, W) alpha from row strips.

    Args:
        strip: returns rows y0..y1 as (rows, W) or (rows, W, channels) of `dtype`.
        size: (W, H).
        dtype: the strips' dtype.
        channels: 1, 2, 3 or 4.
        label: what to call the source in errors.
        orientation: the EXIF orientation to apply (1: as stored).
    """
    width, height = size
    strips = _row_strips(height, width)
    _check_values(strip, strips, dtype, label)
    rgb, alpha = _allocate(height, width, channels in (2, 4), orientation)
    rgb_view = _stored_view(rgb, orientation)
    alpha_view = None if alpha is None else _stored_view(alpha, orientation)
    for y0, y1 in strips:
        values = _to_uint8(strip(y0, y1))
        if values.ndim == 2:
            values = values[..., None]
        rgb_view[y0:y1] = values[..., :3] if channels >= 3 else values[..., :1]
        if alpha_view is not None:
            alpha_view[y0:y1] = values[..., -1]
    return rgb, alpha


def _check_values(
    strip: Callable[[int, int], np.ndarray],
    strips: list[tuple[int, int]],
    dtype: np.dtype,
    label: str,
) -> None:
    """Refuse an unsupported dtype, non-finite floats, or values outside the accepted range."""
    if dtype in (np.uint8, np.uint16, np.bool_):
        return
    floating = np.issubdtype(dtype, np.floating)
    if not floating and not np.issubdtype(dtype, np.integer):
        raise ImageInputError(
            f"{label} has dtype {dtype}; expected uint8, uint16, bool, integer or float."
        )
    low, high = np.inf, -np.inf
    for y0, y1 in strips:
        values = strip(y0, y1)
        if floating and not np.isfinite(values).all():
            raise ImageInputError(f"{label} contains NaN or infinite values")
        low, high = min(low, values.min()), max(high, values.max())
    if floating and (low < -FLOAT_RANGE_TOLERANCE or high > 1.0 + FLOAT_RANGE_TOLERANCE):
        raise ImageInputError(
            f"{label} is float with values in [{float(low):g}, {float(high):g}]; float images "
            "must lie in [0, 1]. For 0..255 data pass a.astype(np.uint8)."
        )
    if not floating and (low < 0 or high > 255):
        raise ImageInputError(
            f"{label} is {dtype} with values in [{int(low)}, {int(high)}]; integer images must "
            "hold 0..255 (or be uint16 for 16-bit data)."
        )


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """Map a checked strip of any supported dtype to uint8 0..255 (scaling, never wrapping).

    16-bit values become round(v / 257) in exact integer arithmetic ((v + 128) // 257: v / 257
    is never halfway between integers); floats are scaled in their own precision.
    """
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * np.uint8(255)
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    return a.astype(np.uint8)  # other integers, already checked to hold 0..255


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

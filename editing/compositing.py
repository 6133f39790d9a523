"""Blend primitives on uint8 frames (OpenCV, float32 weights) and colour parsing."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from PIL import ImageColor

Color = tuple[int, int, int]

_COLOR_FORMATS = (
    "an (R, G, B) tuple of integers 0..255 (or of floats 0..1), a hex string such as "
    "'#00ff00' or '#0f0', 'rgb(0, 255, 0)', 'rgb(0%, 100%, 0%)', 'hsl(120, 100%, 50%)', or a "
    "CSS colour name such as 'white', 'black', 'lightgreen', 'royalblue'"
)
_HEX = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_FUNCTION = re.compile(r"^(rgba|rgb|hsl|hsv|hsb)\((.*)\)$")
_COMPONENT = re.compile(r"^(-?(?:\d+\.?\d*|\.\d+))(%?)$")
_FUNCTION_RULES = {
    "rgb": "rgb(R, G, B) takes three integers 0-255, or three whole percentages 0%-100%",
    "rgba": "rgba(R, G, B, A) takes four integers 0-255 (the alpha is ignored)",
    "hsl": "hsl(H, S%, L%) takes a hue of 0-360 degrees and two percentages 0%-100%",
    "hsv": "hsv(H, S%, V%) takes a hue of 0-360 degrees and two percentages 0%-100%",
}
_SHOWN_CHARS = 40  # echo at most this much of a bad colour string
# Blurs are computed at a reduced size where they are wide: the reduced sigma is at least this.
_MIN_SMALL_SIGMA = 3.0


def parse_color(color: Any) -> Color:
    """Parse a colour given as a tuple, a hex string, a CSS function or a CSS name.

    Args:
        color: (R, G, B) integers 0..255, (R, G, B) floats 0..1, a hex string ('#00ff00',
            '#0f0', '00ff00'), a CSS functional string ('rgb(0, 255, 0)', 'rgb(0%, 100%, 0%)',
            'rgba(0, 255, 0, 255)', 'hsl(120, 100%, 50%)', 'hsv(...)'), or a CSS colour name
            (case and spaces ignored).

    Returns:
        (R, G, B) integers in [0, 255].

    Raises:
        ValueError: For an unknown name, a malformed value or a component out of its range;
            the message says what is accepted.
        TypeError: For a value that is neither a string nor a sequence of three numbers.
    """
    if isinstance(color, str):
        return _parse_color_string(color)
    if isinstance(color, np.ndarray):
        color = color.tolist()
    if not isinstance(color, Sequence) or len(color) != 3:
        raise TypeError(f"colour must be {_COLOR_FORMATS}; got {_shown(color)}")
    if not all(isinstance(c, int | float | np.integer | np.floating) for c in color):
        raise TypeError(
            f"colour components must be numbers; got {_shown(color)}; give {_COLOR_FORMATS}"
        )
    if any(isinstance(c, float | np.floating) and not float(c).is_integer() for c in color):
        if not all(0.0 <= float(c) <= 1.0 for c in color):
            raise ValueError(
                f"float colour {_shown(color)} must lie in [0, 1]; give {_COLOR_FORMATS}"
            )
        return tuple(int(round(float(c) * 255)) for c in color)  # type: ignore[return-value]
    if not all(0 <= int(c) <= 255 for c in color):
        raise ValueError(
            f"colour {_shown(color)} must have components in 0..255; give {_COLOR_FORMATS}"
        )
    return tuple(int(c) for c in color)  # type: ignore[return-value]


def _shown(color: Any) -> str:
    """repr() of a user's colour, shortened: a long string is not echoed whole."""
    text = repr(color)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _parse_color_string(color: str) -> Color:
    text = color.strip()
    match = _HEX.match(text)
    if match:
        text = "#" + match.group(1)
    name = "".join(text.lower().split())
    _check_function(name, color)
    try:
        rgb = ImageColor.getrgb(name)[:3]
    except ValueError:
        close = difflib.get_close_matches(name, list(ImageColor.colormap), n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise ValueError(f"unknown colour {_shown(color)}{hint}; give {_COLOR_FORMATS}") from None
    if not all(0 <= c <= 255 for c in rgb):  # a guard: every accepted form is checked above
        raise ValueError(f"colour {_shown(color)} gives {rgb}, outside 0-255")
    return tuple(int(c) for c in rgb)  # type: ignore[return-value]


def _check_function(name: str, color: str) -> None:
    """Check the components of 'rgb(...)', 'rgba(...)', 'hsl(...)' or 'hsv(...)' and their ranges.

    Args:
        name: the colour lower-cased, without spaces.
        color: the colour as given, for the message.

    Raises:
        ValueError: naming the colour, what the function takes and the first bad component.
    """
    match = _FUNCTION.match(name)
    if match is None:
        return
    function = "hsv" if match.group(1) == "hsb" else match.group(1)
    rule = _FUNCTION_RULES[function]
    parts = match.group(2).split(",")
    count = 4 if function == "rgba" else 3
    parsed = [_COMPONENT.match(part) for part in parts]
    shown = f"colour {_shown(color)}"
    if len(parts) != count or not all(parsed):
        raise ValueError(f"{shown} is malformed; {rule}")
    percents = [m.group(2) == "%" for m in parsed]  # type: ignore[union-attr]
    values = [float(m.group(1)) for m in parsed]  # type: ignore[union-attr]
    if function in ("rgb", "rgba"):
        tops = [100 if all(percents) else 255] * count
        if function == "rgba" and any(percents):
            raise ValueError(f"{shown} is malformed; {rule}")
        if any(percents) and not all(percents):
            raise ValueError(f"{shown} mixes percentages and plain numbers; {rule}")
    else:
        tops = [360, 100, 100]
        if percents[0] or not all(percents[1:]):
            raise ValueError(f"{shown} is malformed; {rule}")
    for part, value, top in zip(parts, values, tops, strict=True):
        if function in ("rgb", "rgba") and not value.is_integer():
            raise ValueError(f"{shown}: {_shown(part)} is not a whole number; {rule}")
        if not 0 <= value <= top:
            raise ValueError(f"{shown}: {_shown(part)} is out of range; {rule}")


def solid(height: int, width: int, color: Color) -> np.ndarray:
    """A (H, W, 3) uint8 frame filled with one RGB colour."""
    row = np.tile(np.asarray(color, dtype=np.uint8), (width, 1))  # (W, 3)
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:] = row  # row-wise copies: much faster than broadcasting a 3-vector
    return frame


def blend(top: np.ndarray, bottom: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per-pixel linear blend weight * top + (1 - weight) * bottom.

    Args:
        top: (H, W, 3) uint8.
        bottom: (H, W, 3) uint8.
        weight: (H, W) float32 in [0, 1].

    Returns:
        (H, W, 3) uint8, rounded.
    """
    return cv2.blendLinear(top, bottom, weight, 1.0 - weight)


def premultiply(layer: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """weight * layer, rounded to uint8.

    Args:
        layer: (H, W, 3) uint8.
        weight: (H, W) float32 in [0, 1].

    Returns:
        (H, W, 3) uint8.
    """
    zeros = np.zeros_like(layer)
    return cv2.blendLinear(layer, zeros, weight, 1.0 - weight)


def reduced_gaussian(image: np.ndarray, sigma: float) -> tuple[np.ndarray, int]:
    """Gaussian blur on an area-reduced copy: wide blurs cost little at any resolution.

    The reduction is by a whole factor (OpenCV's fast path); the last rows and columns
    that do not fill a whole cell are left out, and `upsample` restores the full size.

    Args:
        image: (H, W) or (H, W, C) uint8 or float32.
        sigma: Blur standard deviation in full-resolution pixels (> 0).

    Returns:
        The blurred float32 reduced image and the reduction factor (1 = full size).
    """
    h, w = image.shape[:2]
    factor = max(1, min(int(sigma // _MIN_SMALL_SIGMA), h, w))
    small = image
    if factor > 1:
        # Reduce in the input's own dtype (cheaper on uint8), then blur in float32.
        hs, ws = h // factor, w // factor
        crop = image[: hs * factor, : ws * factor]
        small = cv2.resize(crop, (ws, hs), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float32)
    return cv2.GaussianBlur(small, (0, 0), sigma / factor, borderType=cv2.BORDER_REFLECT), factor


def upsample(small: np.ndarray, height: int, width: int, factor: int = 0) -> np.ndarray:
    """Bilinear resize back to (height, width).

    Args:
        small: (h, w) or (h, w, C) array from `reduced_gaussian` (or any small image).
        height: Full height.
        width: Full width.
        factor: The reduction factor `reduced_gaussian` returned; 0 stretches `small` over the
            whole frame instead.

    Returns:
        (height, width[, C]) array of small's dtype; `small` itself when already that size.
    """
    if small.shape[:2] == (height, width):
        return small
    if factor <= 1:
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    hs, ws = small.shape[0] * factor, small.shape[1] * factor
    big = cv2.resize(small, (ws, hs), interpolation=cv2.INTER_LINEAR)
    if (hs, ws) != (height, width):
        big = cv2.copyMakeBorder(big, 0, height - hs, 0, width - ws, cv2.BORDER_REPLICATE)
    return big


def upsample_u8(small: np.ndarray, height: int, width: int, factor: int = 0) -> np.ndarray:
    """Round a smooth float image in [0, 255] to uint8, then `upsample` it.

    Resizing 8-bit data is several times faster than float32 at full resolution, and a
    smooth (blurred) image loses nothing visible by the early rounding.
    """
    return upsample(cv2.convertScaleAbs(small), height, width, factor)


def normalized_blur(layer: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Blur a layer counting only where weight is high (normalised convolution).

    Blurring the background of a photo this way keeps the object's colours out of it:
    blur(weight * layer) / blur(weight), with the weight being 1 - alpha.

    Args:
        layer: (H, W, 3) uint8.
        weight: (H, W) float32 in [0, 1].
        sigma: Blur standard deviation in pixels (> 0).

    Returns:
        (H, W, 3) uint8 blurred layer at full resolution.
    """
    h, w = weight.shape
    num, factor = reduced_gaussian(premultiply(layer, weight), sigma)
    den, _ = reduced_gaussian(weight, sigma)
    num /= np.maximum(den, 1e-3)[..., None]
    # Where no background is near at all, fall back to a plain blur of the layer.
    empty = den < 1e-3
    if empty.any():
        plain, _ = reduced_gaussian(layer, sigma)
        num[empty] = plain[empty]
    return upsample_u8(num, h, w, factor)


def color_matrix(
    *,
    desaturate: float = 0.0,
    dim: float = 0.0,
    tint: Color | None = None,
    tint_amount: float = 0.0,
) -> np.ndarray:
    """A 3x4 affine RGB map: desaturate, then dim, then mix towards a tint colour.

    Args:
        desaturate: 0 keeps colours, 1 makes gray (Rec. 601 luma).
        dim: 0 keeps brightness, 1 makes black.
        tint: RGB colour mixed in, 0..255.
        tint_amount: 0 keeps the colour, 1 gives the tint colour.

    Returns:
        (3, 4) float32 matrix M for cv2.transform: out = M[:, :3] @ rgb + M[:, 3].
    """
    luma = np.array([0.299, 0.587, 0.114], dtype=np.float64)
    m = (1.0 - desaturate) * np.eye(3) + desaturate * np.tile(luma, (3, 1))
    m = (1.0 - dim) * m
    offset = np.zeros(3)
    if tint is not None and tint_amount > 0:
        m = (1.0 - tint_amount) * m
        offset = tint_amount * np.asarray(tint, dtype=np.float64)
    return np.concatenate([m, offset[:, None]], axis=1).astype(np.float32)


def apply_color_matrix(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 3x4 affine colour map to a (H, W, 3) uint8 frame; returns uint8, saturated."""
    return cv2.transform(image, matrix)


FIT_MODES = ("cover", "contain", "stretch", "place")


def fit_background(
    background: np.ndarray,
    height: int,
    width: int,
    *,
    fit: str = "cover",
    position: tuple[float, float] = (0.5, 0.5),
    scale: float = 1.0,
    fill: Color = (0, 0, 0),
) -> np.ndarray:
    """Lay a background image out on a (height, width) canvas.

    Args:
        background: (h, w, 3) uint8 RGB.
        height: Canvas height in pixels.
        width: Canvas width in pixels.
        fit: 'cover' fills the canvas and crops the overflow; 'contain' shows the whole
            background and fills the rest with `fill`; 'stretch' resizes to the canvas without
            keeping the aspect ratio; 'place' keeps the background's own pixel size.
        position: (x, y) alignment in [0, 1]: (0, 0) puts the background's top-left corner on
            the canvas's, (1, 1) its bottom-right corner on the canvas's, (0.5, 0.5) centres it;
            for 'cover' it picks which part of the overflow is kept.
        scale: Multiplies the size chosen by `fit` (> 0); e.g. 'place' with 0.5 halves it.
        fill: RGB colour of canvas parts the background does not cover.

    Returns:
        (height, width, 3) uint8 canvas.
    """
    if fit not in FIT_MODES:
        raise ValueError(f"unknown fit {fit!r}; expected one of {', '.join(FIT_MODES)}")
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    px, py = (float(v) for v in position)
    if not (0.0 <= px <= 1.0 and 0.0 <= py <= 1.0):
        raise ValueError(f"position must be (x, y) with both in [0, 1], got {position!r}")
    h, w = background.shape[:2]
    if fit == "cover":
        sx = sy = max(width / w, height / h) * scale
    elif fit == "contain":
        sx = sy = min(width / w, height / h) * scale
    elif fit == "stretch":
        sx, sy = width / w * scale, height / h * scale
    else:
        sx = sy = scale
    src = background
    if sx < 1.0 or sy < 1.0:
        # Shrink by area averaging first; the affine map below then only resamples finely.
        size = (max(1, round(w * min(sx, 1.0))), max(1, round(h * min(sy, 1.0))))
        src = cv2.resize(background, size, interpolation=cv2.INTER_AREA)
        sx, sy = sx * w / size[0], sy * h / size[1]
    sh, sw = src.shape[:2]
    # Continuous coordinates with pixel centres at i + 0.5; align the scaled image by position.
    ox = px * (width - sx * sw)
    oy = py * (height - sy * sh)
    matrix = np.array([[sx, 0.0, ox + 0.5 * sx - 0.5], [0.0, sy, oy + 0.5 * sy - 0.5]])
    covers = fit in ("cover", "stretch") and scale >= 1.0
    border = cv2.BORDER_REPLICATE if covers else cv2.BORDER_CONSTANT
    return cv2.warpAffine(
        src,
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=border,
        borderValue=tuple(int(c) for c in fill),
    )

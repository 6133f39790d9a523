"""User-level edits from an image and a soft matte: highlight, new background, colour, cutout.

Every edit composites the estimated foreground colour F over a new backdrop with the matte,
alpha F + (1 - alpha) backdrop, at the image's full resolution. F (and the old background B)
are estimated once per image and matte: `MatteEdit` holds them for callers that keep state,
and the module functions find them in a small cache keyed by the content of image and matte.

Each edit is defined once, as a function that checks its options (so a typo fails before any
estimation work) and returns the edit (`_Edit`); the module functions and `MatteEdit`'s methods
only build one and run it on their image, matte and foreground estimate.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from PIL import Image

from editing.compositing import (
    FIT_MODES,
    Color,
    apply_color_matrix,
    blend,
    color_matrix,
    fit_background,
    normalized_blur,
    parse_color,
    reduced_gaussian,
    solid,
    upsample_u8,
)
from editing.effects import default_width, glow_weight, outline_weight
from editing.effects import light_wrap as apply_light_wrap
from editing.foreground import (
    Foreground,
    ForegroundCache,
    default_cache,
    estimate_foreground_arrays,
)
from editing.validate import as_rgb, prepare

EFFECTS = ("dim", "desaturate", "blur", "tint")
# Blur sigma at strength 1 (highlight) and by default (blurred background), per longer side.
BLUR_SHARE = 0.02
# Default outline width, glow radius and light-wrap reach, per longer side.
OUTLINE_SHARE = 0.003
GLOW_SHARE = 0.015
WRAP_SHARE = 0.01

Effect = str | list[str] | tuple[str, ...]


def _check_unit(value: float, name: str) -> float:
    value = float(value)
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return value


def _check_length(value: float | None, name: str) -> float | None:
    if value is not None and not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number of pixels or None, got {value!r}")
    return value


def parse_effects(effect: Effect) -> tuple[str, ...]:
    """Read an effect spec: a name, names joined by '+', or a sequence of names.

    Raises:
        ValueError: For a name outside EFFECTS; the message lists the known names.
    """
    names = effect.split("+") if isinstance(effect, str) else list(effect)
    names = [str(n).strip().lower() for n in names]
    unknown = [n for n in names if n not in EFFECTS]
    if unknown or not names:
        raise ValueError(
            f"unknown effect {effect!r}; expected one of {', '.join(EFFECTS)}, "
            "or several joined by '+' (e.g. 'dim+blur')"
        )
    return tuple(dict.fromkeys(names))


# Returns the foreground estimate of the image and matte being edited (computed or cached).
_Estimate = Callable[[], Foreground]
# An edit with its options checked: (image (H, W, 3) uint8, alpha (H, W) float32 in [0, 1],
# their estimate) -> the edited image, (H, W, 3) uint8 RGB or (H, W, 4) uint8 RGBA for a
# cutout. The estimate is asked for only when the edit needs it.
_Edit = Callable[[np.ndarray, np.ndarray, _Estimate], np.ndarray]


def _highlight(
    effect: Effect = "dim",
    strength: float = 0.6,
    tint_color: Color | str = "royalblue",
    outline: Color | str | None = None,
    outline_width: float | None = None,
    glow: Color | str | None = None,
    glow_radius: float | None = None,
    glow_strength: float = 0.8,
) -> _Edit:
    """Check the options of `highlight` (see there) and return the edit."""
    effects = parse_effects(effect)
    strength = _check_unit(strength, "strength")
    glow_strength = _check_unit(glow_strength, "glow_strength")
    tint = parse_color(tint_color)
    outline_rgb = None if outline is None else parse_color(outline)
    glow_rgb = None if glow is None else parse_color(glow)
    _check_length(outline_width, "outline_width")
    _check_length(glow_radius, "glow_radius")

    def edit(image: np.ndarray, alpha: np.ndarray, foreground: _Estimate) -> np.ndarray:
        if strength == 0.0 and outline_rgb is None and glow_rgb is None:
            return image.copy()
        fg = foreground()
        h, w = alpha.shape
        backdrop = fg.background
        if "blur" in effects and strength > 0:
            sigma = strength * BLUR_SHARE * max(h, w)
            backdrop = normalized_blur(backdrop, 1.0 - alpha, sigma)
        matrix = color_matrix(
            desaturate=strength if "desaturate" in effects else 0.0,
            dim=strength if "dim" in effects else 0.0,
            tint=tint if "tint" in effects else None,
            tint_amount=strength if "tint" in effects else 0.0,
        )
        if not np.array_equal(matrix, np.eye(3, 4, dtype=np.float32)):
            backdrop = apply_color_matrix(backdrop, matrix)
        if glow_rgb is not None and glow_strength > 0:
            radius = glow_radius or default_width(h, w, GLOW_SHARE)
            weight = glow_weight(alpha, radius, glow_strength)
            backdrop = blend(solid(h, w, glow_rgb), backdrop, weight)
        if outline_rgb is not None:
            width = outline_width or default_width(h, w, OUTLINE_SHARE)
            backdrop = blend(solid(h, w, outline_rgb), backdrop, outline_weight(alpha, width))
        return blend(fg.color, backdrop, alpha)

    return edit


def _new_canvas(
    background: Any, fit: str, position: tuple[float, float], scale: float, fill: Color | str
) -> Callable[[int, int], np.ndarray] | None:
    """Check a background spec; None for 'blur', else a function (H, W) -> (H, W, 3) uint8."""
    if fit not in FIT_MODES:
        raise ValueError(f"unknown fit {fit!r}; expected one of {', '.join(FIT_MODES)}")
    fill_rgb = parse_color(fill)
    if isinstance(background, str) and background.strip().lower() == "blur":
        return None
    if isinstance(background, np.ndarray | Image.Image):
        photo = as_rgb(background, name="background")  # (h, w, 3) uint8, any size
        return lambda h, w: fit_background(
            photo, h, w, fit=fit, position=position, scale=scale, fill=fill_rgb
        )
    if isinstance(background, str | tuple | list):
        color = parse_color(background)
        return lambda h, w: solid(h, w, color)
    raise TypeError(
        "background must be an image (array or PIL.Image), a colour (tuple, hex or "
        f"CSS name) or 'blur'; got {type(background).__name__}"
    )


def _replace_background(
    background: Any,
    fit: str = "cover",
    position: tuple[float, float] = (0.5, 0.5),
    scale: float = 1.0,
    fill: Color | str = "black",
    blur: float | None = None,
    light_wrap: float = 0.0,
    light_wrap_radius: float | None = None,
) -> _Edit:
    """Check the options of `replace_background` (see there) and return the edit."""
    wrap = _check_unit(light_wrap, "light_wrap")
    _check_length(light_wrap_radius, "light_wrap_radius")
    if blur is not None and not (np.isfinite(blur) and 0 <= blur <= 1):
        raise ValueError(f"blur is a share of the longer side in [0, 1], got {blur!r}")
    new_canvas = _new_canvas(background, fit, position, scale, fill)

    def edit(image: np.ndarray, alpha: np.ndarray, foreground: _Estimate) -> np.ndarray:
        fg = foreground()
        h, w = alpha.shape
        if new_canvas is None:  # 'blur': the photo's own background, blurred
            sigma = (BLUR_SHARE if blur is None else blur) * max(h, w)
            canvas = fg.background
            if sigma > 0:
                canvas = normalized_blur(canvas, 1.0 - alpha, sigma)
        else:
            canvas = new_canvas(h, w)
            if blur:
                smooth, factor = reduced_gaussian(canvas, blur * max(h, w))
                canvas = upsample_u8(smooth, h, w, factor)
        out = blend(fg.color, canvas, alpha)
        if wrap > 0:
            radius = light_wrap_radius or default_width(h, w, WRAP_SHARE)
            out = apply_light_wrap(out, alpha, canvas, radius, wrap)
        return out

    return edit


def _fill_color(color: Color | str) -> _Edit:
    """Check the colour of `fill_color` and return the edit."""
    rgb = parse_color(color)

    def edit(image: np.ndarray, alpha: np.ndarray, foreground: _Estimate) -> np.ndarray:
        return blend(foreground().color, solid(*alpha.shape, rgb), alpha)

    return edit


def _cutout(image: np.ndarray, alpha: np.ndarray, foreground: _Estimate) -> np.ndarray:
    """The `cutout` edit: (H, W, 4) uint8, the foreground colour with the matte as alpha."""
    color = foreground().color
    a8 = cv2.convertScaleAbs(alpha, alpha=255.0)
    return cv2.merge([color[..., 0], color[..., 1], color[..., 2], a8])


class MatteEdit:
    """An image, its matte and their foreground estimate, edited many times.

    The foreground is estimated on first use and kept; every edit after that costs only the
    compositing. The image and matte are copied, so later changes to the caller's arrays do
    not leak in.

    Args:
        image: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array of uint8, uint16 or float in
            [0, 1], or a PIL.Image (an RGBA image's own alpha channel is ignored).
        alpha: (H, W) or (H, W, 1) float in [0, 1], uint8 0..255 or uint16, same H and W.
    """

    def __init__(self, image: Any, alpha: Any) -> None:
        rgb, matte = prepare(image, alpha)
        self.image = rgb.copy()  # (H, W, 3) uint8
        self.alpha = matte.copy()  # (H, W) float32 in [0, 1]
        self._foreground: Foreground | None = None
        self._lock = threading.Lock()

    @property
    def foreground(self) -> Foreground:
        """The Foreground estimate, computed on first access."""
        with self._lock:
            if self._foreground is None:
                self._foreground = estimate_foreground_arrays(self.image, self.alpha)
            return self._foreground

    def _run(self, edit: _Edit) -> np.ndarray:
        return edit(self.image, self.alpha, lambda: self.foreground)

    def highlight(self, **kwargs: Any) -> np.ndarray:
        """Like `editing.highlight` on this image and matte; (H, W, 3) uint8."""
        return self._run(_highlight(**kwargs))

    def replace_background(self, background: Any, **kwargs: Any) -> np.ndarray:
        """Like `editing.replace_background` on this image and matte; (H, W, 3) uint8."""
        return self._run(_replace_background(background, **kwargs))

    def fill_color(self, color: Any) -> np.ndarray:
        """Like `editing.fill_color` on this image and matte; (H, W, 3) uint8."""
        return self._run(_fill_color(color))

    def cutout(self) -> np.ndarray:
        """Like `editing.cutout` on this image and matte; (H, W, 4) uint8 RGBA."""
        return self._run(_cutout)


def _edit_photo(edit: _Edit, image: Any, alpha: Any, cache: ForegroundCache | None) -> np.ndarray:
    """Coerce and check image and matte, then run `edit` with the estimate from `cache`."""
    rgb, matte = prepare(image, alpha)
    store = cache if cache is not None else default_cache()  # an empty cache is falsy
    return edit(rgb, matte, lambda: store.get(rgb, matte))


def highlight(
    image: Any,
    alpha: Any,
    *,
    effect: str | list[str] | tuple[str, ...] = "dim",
    strength: float = 0.6,
    tint_color: Color | str = "royalblue",
    outline: Color | str | None = None,
    outline_width: float | None = None,
    glow: Color | str | None = None,
    glow_radius: float | None = None,
    glow_strength: float = 0.8,
    cache: ForegroundCache | None = None,
) -> np.ndarray:
    """Make the object stand out: the rest of the photo dimmed, desaturated, blurred or tinted.

    The effect applies to the estimated background layer B only and the object is composited
    back with its matte, so hair and soft edges stay soft and keep their own colour.

    Args:
        image: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array of uint8, uint16 or float in
            [0, 1], or a PIL.Image.
        alpha: (H, W) or (H, W, 1) float in [0, 1], uint8 0..255 or uint16, same H and W.
        effect: 'dim', 'desaturate', 'blur' or 'tint', or several ('dim+blur' or a list).
        strength: In [0, 1]; 0 changes nothing, 1 is black / gray / a blur of 2% of the
            longer side / the tint colour.
        tint_color: Colour for 'tint' (tuple, hex or CSS name).
        outline: Colour of a ring drawn around the object, or None for no ring.
        outline_width: Ring width in pixels; default 0.3% of the longer side.
        glow: Colour of a soft halo around the object, or None for no halo.
        glow_radius: Halo spread in pixels; default 1.5% of the longer side.
        glow_strength: Peak opacity of the halo in [0, 1].
        cache: Where to find or keep the foreground estimate; default the module's cache.

    Returns:
        (H, W, 3) uint8 RGB at the input's full resolution.
    """
    options = (effect, strength, tint_color, outline, outline_width, glow, glow_radius)
    edit = _highlight(*options, glow_strength)
    return _edit_photo(edit, image, alpha, cache)


def replace_background(
    image: Any,
    alpha: Any,
    background: Any,
    *,
    fit: str = "cover",
    position: tuple[float, float] = (0.5, 0.5),
    scale: float = 1.0,
    fill: Color | str = "black",
    blur: float | None = None,
    light_wrap: float = 0.0,
    light_wrap_radius: float | None = None,
    cache: ForegroundCache | None = None,
) -> np.ndarray:
    """Put the object on another background, with its estimated foreground colour.

    Args:
        image: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array of uint8, uint16 or float in
            [0, 1], or a PIL.Image.
        alpha: (H, W) or (H, W, 1) float in [0, 1], uint8 0..255 or uint16, same H and W.
        background: An image of any size (array or PIL.Image, as for `image`), a colour
            (tuple, hex or CSS name), or 'blur' for a blurred copy of the photo's own
            background (the object's colours are kept out of the blur).
        fit: How an image background is laid out: 'cover', 'contain', 'stretch' or 'place'
            (see `editing.compositing.fit_background`).
        position: (x, y) alignment in [0, 1] of an image background; (0.5, 0.5) centres it.
        scale: Size factor on top of `fit` (> 0).
        fill: Colour where an image background does not reach ('contain', 'place').
        blur: Blur sigma as a share of the longer side: for 'blur' (default 0.02), or to
            soften an image or colour background (default none).
        light_wrap: In [0, 1]: how much of the new background's light spills over the
            object's edges (0: none).
        light_wrap_radius: Reach of the light wrap in pixels; default 1% of the longer side.
        cache: Where to find or keep the foreground estimate; default the module's cache.

    Returns:
        (H, W, 3) uint8 RGB at the input's full resolution.
    """
    options = (fit, position, scale, fill, blur, light_wrap, light_wrap_radius)
    edit = _replace_background(background, *options)
    return _edit_photo(edit, image, alpha, cache)


def fill_color(
    image: Any, alpha: Any, color: Color | str, *, cache: ForegroundCache | None = None
) -> np.ndarray:
    """Paste the object on a solid colour.

    Args:
        image: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array of uint8, uint16 or float in
            [0, 1], or a PIL.Image.
        alpha: (H, W) or (H, W, 1) float in [0, 1], uint8 0..255 or uint16, same H and W.
        color: (R, G, B) 0..255, a hex string ('#00ff00', '#0f0') or a CSS colour name.
        cache: Where to find or keep the foreground estimate; default the module's cache.

    Returns:
        (H, W, 3) uint8 RGB at the input's full resolution.
    """
    return _edit_photo(_fill_color(color), image, alpha, cache)


def cutout(image: Any, alpha: Any, *, cache: ForegroundCache | None = None) -> np.ndarray:
    """The object as a transparent RGBA image with its estimated foreground colour.

    Args:
        image: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array of uint8, uint16 or float in
            [0, 1], or a PIL.Image.
        alpha: (H, W) or (H, W, 1) float in [0, 1], uint8 0..255 or uint16, same H and W.
        cache: Where to find or keep the foreground estimate; default the module's cache.

    Returns:
        (H, W, 4) uint8 RGBA; A is the matte rounded to 0..255.
    """
    return _edit_photo(_cutout, image, alpha, cache)

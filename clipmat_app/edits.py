"""One edit of a matte as the app's controls set it, and applying it. Nothing here imports
gradio."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import editing
from clipmat_app.inputs import MAX_PIXELS, MAX_SIDE, read_photo

MODES = ("highlight", "background", "color", "cutout")
EFFECTS = editing.EFFECTS
DEFAULT_COLOR = "#2563eb"
COLOR_HINT = "a colour such as '#2563eb', 'rgb(37, 99, 235)' or 'orange'"


@dataclass(frozen=True)
class EditSettings:
    """One edit of a matte, as the app's controls set it.

    Attributes:
        mode: "highlight", "background", "color" or "cutout".
        effects: highlight effects (editing.EFFECTS); none means "dim".
        strength: highlight strength in [0, 1].
        color: colour for "color" and the "tint" effect (hex, rgb() or a CSS name).
        background: a photo for "background" (path or array); None blurs the photo's own.
    """

    mode: str = "highlight"
    effects: tuple[str, ...] = ("dim",)
    strength: float = 0.6
    color: str = DEFAULT_COLOR
    background: Any = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(
                f"unknown edit mode {str(self.mode)[:40]!r}; choose one of {', '.join(MODES)}"
            )
        unknown = [str(e)[:40] for e in self.effects if e not in EFFECTS]
        if unknown:
            raise ValueError(f"unknown effect(s) {unknown}; choose from {', '.join(EFFECTS)}")
        strength = self.strength
        if isinstance(strength, bool) or not isinstance(strength, int | float | np.number):
            raise ValueError(
                f"strength must be a number from 0 to 1, got {type(strength).__name__}"
            )
        if not 0.0 <= float(strength) <= 1.0:
            raise ValueError(f"strength must be a number from 0 to 1, got {strength!r}")
        if not isinstance(self.color, str | tuple):
            raise ValueError(f"the colour must be text, {COLOR_HINT}")
        editing.parse_color(self.color)


def apply_edit(
    matte: editing.MatteEdit,
    settings: EditSettings,
    *,
    max_side: int = MAX_SIDE,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Apply one edit to a matte whose foreground estimate is kept between edits.

    A background photo is read under the same size and memory policy as the photo.

    Returns:
        (H, W, 3) uint8 RGB, or (H, W, 4) uint8 RGBA for "cutout".
    """
    if settings.mode == "highlight":
        effect = "+".join(settings.effects) or "dim"
        return matte.highlight(
            effect=effect, strength=float(settings.strength), tint_color=settings.color
        )
    if settings.mode == "background":
        if settings.background is None:
            return matte.replace_background("blur")
        backdrop = read_photo(settings.background, max_side=max_side, max_pixels=max_pixels).rgb
        return matte.replace_background(backdrop)
    if settings.mode == "color":
        return matte.fill_color(settings.color)
    return matte.cutout()

"""Weights for outlines, glows and light wrap, computed on a reduced matte and upsampled."""

from __future__ import annotations

import cv2
import numpy as np

from editing.compositing import blend, reduced_gaussian, upsample, upsample_u8

# Outlines are traced on a matte reduced until its longer side is about this long.
_OUTLINE_WORK_SIDE = 1024
# The matte level that separates object from background when tracing an outline.
_OUTLINE_LEVEL = 0.5
# The matte is smoothed over this many ring widths before the ring is traced.
_OUTLINE_SMOOTH = 2.0
# A glow's weight is the blurred matte times this gain (0.5 at the edge becomes full strength).
_GLOW_GAIN = 2.0


def default_width(height: int, width: int, share: float, minimum: float = 2.0) -> float:
    """A length in pixels proportional to the longer image side, at least `minimum`."""
    return max(minimum, share * max(height, width))


def outline_weight(alpha: np.ndarray, width: float) -> np.ndarray:
    """Weight of an anti-aliased ring of a given width around the object.

    The ring is traced where the matte, smoothed over the ring's width, crosses 0.5, so thin
    hair does not make it ragged; it is meant to be drawn behind the object, which then covers
    its inner side.

    Args:
        alpha: (H, W) float32 in [0, 1].
        width: Ring width in full-resolution pixels (> 0).

    Returns:
        (H, W) float32 in [0, 1]: 1 on the ring and under the object, falling to 0 outside.
    """
    h, w = alpha.shape
    factor = max(1, min(int(max(h, w) // _OUTLINE_WORK_SIDE) + 1, int(width // 2)))
    factor = min(factor, h, w)
    small = alpha
    if factor > 1:
        hs, ws = h // factor, w // factor
        crop = alpha[: hs * factor, : ws * factor]
        small = cv2.resize(crop, (ws, hs), interpolation=cv2.INTER_AREA)
    # Smooth the matte over the ring's width first: the ring then follows the silhouette of
    # dense hair instead of circling every strand.
    smooth = cv2.GaussianBlur(small, (0, 0), max(1.0, _OUTLINE_SMOOTH * width / factor))
    outside = (smooth < _OUTLINE_LEVEL).astype(np.uint8)
    if not outside.any():
        return np.ones((h, w), dtype=np.float32)
    if outside.all():
        return np.zeros((h, w), dtype=np.float32)
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    ring = np.clip(width / factor + 0.5 - distance, 0.0, 1.0).astype(np.float32)
    return np.clip(upsample(ring, h, w, factor), 0.0, 1.0)


def glow_weight(alpha: np.ndarray, radius: float, strength: float) -> np.ndarray:
    """Weight of a soft halo that spreads from the object over a given radius.

    Args:
        alpha: (H, W) float32 in [0, 1].
        radius: Gaussian standard deviation of the halo in pixels (> 0).
        strength: Peak weight in [0, 1].

    Returns:
        (H, W) float32 in [0, strength].
    """
    h, w = alpha.shape
    spread, factor = reduced_gaussian(alpha, radius)
    weight = np.clip(spread * (_GLOW_GAIN * strength), 0.0, strength)
    return upsample(weight, h, w, factor)


def light_wrap(
    composite: np.ndarray, alpha: np.ndarray, background: np.ndarray, radius: float, strength: float
) -> np.ndarray:
    """Let the new background's light spill softly over the object's edges.

    Args:
        composite: (H, W, 3) uint8, the object already on the new background.
        alpha: (H, W) float32 in [0, 1].
        background: (H, W, 3) uint8, the new background.
        radius: How far the light reaches into the object, in pixels (> 0).
        strength: In [0, 1]; 0 returns the composite unchanged.

    Returns:
        (H, W, 3) uint8.
    """
    if strength <= 0:
        return composite
    h, w = alpha.shape
    light, factor = reduced_gaussian(background, radius)
    near, _ = reduced_gaussian(1.0 - alpha, radius)
    amount = cv2.multiply(upsample(near, h, w, factor), alpha, scale=float(strength))
    return blend(upsample_u8(light, h, w, factor), composite, amount)

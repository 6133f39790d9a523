"""Synthetic soft mattes with hair-like strands, for the tests and the benchmarks (bench/).

Under pytest `from synthetic import make_hair_matte`; from a bench script, with the repository
root on sys.path, `from tests.synthetic import make_scene`.
"""

from __future__ import annotations

import cv2
import numpy as np

# Share of the shorter image side taken by the body's half axes.
_BODY_AXES = (0.28, 0.36)
# Width of the soft body edge as a share of the shorter side (a smooth alpha gradient).
_EDGE_SHARE = 0.012
# Strand length as a share of the shorter side: (shortest, longest).
_STRAND_LENGTH = (0.05, 0.16)
# Number of points along each strand polyline.
_STRAND_POINTS = 12


def make_hair_matte(
    height: int,
    width: int,
    rng: np.random.Generator,
    *,
    strands: int | None = None,
    veil: bool = True,
) -> np.ndarray:
    """Draw a soft matte: a body with a gradient edge, hair-like strands and a translucent veil.

    The body is an ellipse whose edge falls from 1 to 0 over about 1.2% of the shorter side.
    Strands are thin anti-aliased curves (1 to 3 pixels wide, opacity 0.35 to 1) that leave
    the body outwards on a random walk, as hair or fur does. The veil is a translucent band
    (alpha up to about 0.55) beside the body, like a scarf or smoke.

    Args:
        height: Matte height in pixels (at least 16).
        width: Matte width in pixels (at least 16).
        rng: Source of all randomness; the same seed draws the same matte.
        strands: Number of strands; by default proportional to the body's perimeter.
        veil: Whether to add the translucent veil.

    Returns:
        (H, W) float32 alpha in [0, 1], with many pixels strictly between 0 and 1.
    """
    if height < 16 or width < 16:
        raise ValueError(f"make_hair_matte needs at least 16x16 pixels, got {height}x{width}")
    short = min(height, width)
    cy, cx = height * 0.52, width * 0.5
    ry, rx = _BODY_AXES[1] * short, _BODY_AXES[0] * short

    # Body: normalised elliptic distance turned into a linear ramp of alpha.
    yy = (np.arange(height, dtype=np.float32)[:, None] - cy) / ry
    xx = (np.arange(width, dtype=np.float32)[None, :] - cx) / rx
    radius = np.sqrt(yy * yy + xx * xx)
    edge = max(_EDGE_SHARE * short / min(rx, ry), 1e-3)
    alpha = np.clip((1.0 - radius) / edge + 0.5, 0.0, 1.0).astype(np.float32)

    # Strands: anti-aliased polylines drawn on an 8-bit canvas, opacity coded in the value.
    canvas = np.zeros((height, width), np.uint8)
    count = strands if strands is not None else int(2.0 * np.pi * max(rx, ry) / 3.0)
    angles = rng.uniform(0.0, 2.0 * np.pi, count)
    for angle in angles:
        length = rng.uniform(*_STRAND_LENGTH) * short
        start = np.array([cx + 0.97 * rx * np.cos(angle), cy + 0.97 * ry * np.sin(angle)])
        heading = angle + rng.normal(0.0, 0.25)
        step = length / (_STRAND_POINTS - 1)
        points = [start]
        for _ in range(_STRAND_POINTS - 1):
            heading += rng.normal(0.0, 0.18)
            points.append(points[-1] + step * np.array([np.cos(heading), np.sin(heading)]))
        pts = np.round(np.array(points) * 16).astype(np.int32).reshape(-1, 1, 2)
        value = int(rng.uniform(0.35, 1.0) * 255)
        thickness = int(rng.integers(1, 4))
        cv2.polylines(canvas, [pts], False, value, thickness, cv2.LINE_AA, shift=4)
    alpha = np.maximum(alpha, canvas.astype(np.float32) / 255.0)

    if veil:
        # A translucent vertical band that fades out towards its sides and its bottom.
        vx = cx + 1.15 * rx
        vhalf = 0.08 * short
        across = np.clip(1.0 - np.abs(np.arange(width, dtype=np.float32) - vx) / vhalf, 0, 1)
        down = np.clip(np.linspace(0.55, 0.0, height, dtype=np.float32), 0, 1)
        alpha = np.maximum(alpha, down[:, None] * across[None, :])
    return np.clip(alpha, 0.0, 1.0).astype(np.float32)


def make_scene(
    height: int,
    width: int,
    rng: np.random.Generator,
    foreground: np.ndarray,
    background: np.ndarray,
    *,
    strands: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Composite a known foreground onto a known background through a hair matte.

    Args:
        height: Output height in pixels.
        width: Output width in pixels.
        rng: Source of randomness for the matte.
        foreground: (H, W, 3) float32 in [0, 1], the true foreground colour everywhere.
        background: (H, W, 3) float32 in [0, 1], the true background colour everywhere.
        strands: Number of strands (see `make_hair_matte`).

    Returns:
        image: (H, W, 3) float32 in [0, 1], alpha * F + (1 - alpha) * B.
        alpha: (H, W) float32 in [0, 1].
    """
    for name, layer in (("foreground", foreground), ("background", background)):
        if layer.shape != (height, width, 3):
            raise ValueError(f"{name} must have shape {(height, width, 3)}, got {layer.shape}")
    alpha = make_hair_matte(height, width, rng, strands=strands)
    a = alpha[..., None]
    image = a * foreground + (1.0 - a) * background
    return image.astype(np.float32), alpha

"""What the app draws for the user: the overlay with the clicks and the box, and the strip of
candidates. Pure numpy and OpenCV, no gradio.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from clipmat_app.corrections import MAX_CANDIDATE, Corrections

OVERLAY_COLOR = (255, 48, 112)  # tint of the matted object in the overlay view
OVERLAY_OPACITY = 0.55
ADD_COLOR = (34, 197, 94)  # a positive click
REMOVE_COLOR = (239, 68, 68)  # a negative click
BOX_COLOR = (250, 204, 21)
OUTLINE = (255, 255, 255)
THUMB_SIDE = 160  # long side of a candidate's picture in the strip
DIM = 0.35  # what is left of the photo outside a candidate in its picture


def overlay(photo: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The photo with the matted object tinted, to check at a glance what was picked.

    Args:
        photo: (H, W, 3) uint8 RGB.
        alpha: (H, W) float32 in [0, 1].

    Returns:
        (H, W, 3) uint8 RGB.
    """
    weight = (alpha * np.float32(OVERLAY_OPACITY))[..., None]
    tint = np.asarray(OVERLAY_COLOR, np.float32)
    out = photo.astype(np.float32) * (1.0 - weight) + tint * weight
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def marker_radius(height: int, width: int) -> int:
    """Radius of a click's marker: small, but visible on any size."""
    return max(4, round(max(height, width) / 60))


def draw_corrections(
    image: np.ndarray, corrections: Corrections, corner: tuple[float, float] | None = None
) -> np.ndarray:
    """``image`` with the clicks (green dots add, red dots remove), the box and a box's first
    corner drawn on it; coordinates in ``image``'s pixels. Returns a new array."""
    out = np.ascontiguousarray(image).copy()
    height, width = out.shape[:2]
    radius = marker_radius(height, width)
    line = max(1, radius // 3)
    if corrections.box is not None:
        x0, y0, x1, y1 = (round(v) for v in corrections.box)
        corners = (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1))
        cv2.rectangle(out, *corners, (0, 0, 0), line + 2, cv2.LINE_AA)
        cv2.rectangle(out, *corners, BOX_COLOR, line, cv2.LINE_AA)
    if corner is not None:
        cx, cy = round(corner[0]), round(corner[1])
        for dx, dy in ((radius * 2, 0), (0, radius * 2)):
            ends = (cx - dx, cy - dy), (cx + dx, cy + dy)
            cv2.line(out, *ends, (0, 0, 0), line + 2, cv2.LINE_AA)
            cv2.line(out, *ends, BOX_COLOR, line, cv2.LINE_AA)
    for x, y, positive in corrections.points:
        centre = (round(x), round(y))
        cv2.circle(out, centre, radius + line, OUTLINE, -1, cv2.LINE_AA)
        cv2.circle(out, centre, radius, ADD_COLOR if positive else REMOVE_COLOR, -1, cv2.LINE_AA)
        bar = max(1, radius // 2)
        cv2.line(out, (centre[0] - bar, centre[1]), (centre[0] + bar, centre[1]), OUTLINE, line)
        if positive:
            cv2.line(out, (centre[0], centre[1] - bar), (centre[0], centre[1] + bar), OUTLINE, line)
    return out


def thumbnail(photo: np.ndarray, mask: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """A small picture of a candidate: the photo, dimmed and tinted but for the region.

    Args:
        photo: (H, W, 3) uint8.
        mask: (h, w) bool at any grid over the photo.
    """
    height, width = photo.shape[:2]
    scale = min(1.0, side / max(height, width))
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    small = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    region = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    tint = np.asarray(OVERLAY_COLOR, np.float32)
    dimmed = small * DIM
    lit = small * (1 - OVERLAY_OPACITY / 2) + tint * (OVERLAY_OPACITY / 2)
    out = np.where(region[..., None], lit, dimmed)
    edge = region ^ (cv2.erode(region.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    out[edge] = OUTLINE
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def candidate_rows(result: Any, sx: float, sy: float) -> list[dict[str, Any]]:
    """The API's list of a result's candidates (the first MAX_CANDIDATE + 1, whose indices
    ``candidate=`` takes), boxes in the photo's own pixels (the matted photo's boxes divided by
    ``sx`` across and ``sy`` down)."""
    rows = []
    for index, c in enumerate(result.candidates[: MAX_CANDIDATE + 1]):
        x0, y0, x1, y1 = c.box
        rows.append(
            {
                "index": index,
                "phrase": c.phrase,
                "score": round(float(c.score), 4),
                "box": [round(x0 / sx), round(y0 / sy), round(x1 / sx), round(y1 / sy)],
                "area": round(float(c.area), 4),
                "chosen": bool(c.chosen),
            }
        )
    return rows


def caption(row: dict[str, Any]) -> str:
    """A candidate's caption in the strip."""
    return f"#{row['index']} · {row['score']:.2f}" + (" · in matte" if row["chosen"] else "")

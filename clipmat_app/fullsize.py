"""The downloads at the photo's own size when the app matted it scaled down.

The app mattes at most MAX_SIDE pixels on the longer side; the cutout and the 16-bit matte a
user downloads are at the photo's own size: the matte upsampled along the photo's edges (the
fast guided filter of :func:`clipmat.refine.guided_upsample`), the foreground colour estimated
at full size (:func:`editing.estimate_foreground`). Both run in strips of rows, so beside the
decoded photo (3 B/px) the memory is the 16-bit matte and the cutout (2 + 4 B/px), the PNG
being encoded and one strip's work: measured, about 240 MB more at peak for a 12 MP photo and
420 MB (11 B/px) for a 40 MP one (the library's guided_upsample on a 2048 px matte alone took
600 MB). Nothing here imports gradio.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

import editing
from clipmat.refine import GUIDE_EPS, GUIDE_RADIUS, guided_coefficients
from editing.export import PNG_COMPRESSION, write_bytes_atomic
from editing.foreground import TILE

STRIP_TILES = 4  # rows of the foreground's tiles solved at once
STRIP_ROWS = 512  # full-size rows of the matte upsampled at once
# Rows of context the guided filter's coefficients need on each side of a strip: two box
# filters of GUIDE_RADIUS (the fit, then the coefficients' average), with a margin.
GUIDE_REACH = 2 * GUIDE_RADIUS + 2


def upsample_matte(alpha: np.ndarray, original: np.ndarray) -> np.ndarray:
    """The matte ``alpha`` (h, w) of a photo scaled down, at ``original``'s size (H, W), as
    16-bit integers, edge-aware: :func:`clipmat.refine.guided_upsample` computed in strips of
    rows (its coefficients fitted on the strip's rows of the scaled photo with the context
    their box filters reach, so each strip is what the whole frame gives)."""
    h, w = alpha.shape
    height, width = original.shape[:2]
    small = cv2.resize(original, (w, h), interpolation=cv2.INTER_AREA)
    alpha = alpha.astype(np.float32)
    out = np.empty((height, width), np.uint16)
    xs = (np.arange(width, dtype=np.float32) + 0.5) * np.float32(w / width) - 0.5
    for top in range(0, height, STRIP_ROWS):
        bottom = min(height, top + STRIP_ROWS)
        ys = (np.arange(top, bottom, dtype=np.float32) + 0.5) * np.float32(h / height) - 0.5
        r0 = min(h - 1, max(0, math.floor(ys[0])))
        r1 = min(h, max(0, math.floor(ys[-1])) + 2)  # the low rows the strip samples
        s0, s1 = max(0, r0 - GUIDE_REACH), min(h, r1 + GUIDE_REACH)
        guide = small[s0:s1].astype(np.float32) / 255.0
        a, b = guided_coefficients(guide, alpha[s0:s1], GUIDE_RADIUS, GUIDE_EPS)
        coeffs = np.dstack([a, b[..., None]])[r0 - s0 : r1 - s0]
        map_x = np.broadcast_to(xs[None, :], (bottom - top, width))
        map_y = np.broadcast_to((ys - r0)[:, None], (bottom - top, width))
        up = cv2.remap(
            coeffs,
            np.ascontiguousarray(map_x),
            np.ascontiguousarray(map_y),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        values = (up[..., :3] * (original[top:bottom].astype(np.float32) / 255.0)).sum(axis=-1)
        values = np.clip(values + up[..., 3], 0.0, 1.0)
        out[top:bottom] = np.round(values * np.float32(65535.0)).astype(np.uint16)
    return out


def cutout_bgra(original: np.ndarray, alpha16: np.ndarray) -> np.ndarray:
    """The cutout of ``original`` under ``alpha16`` as (H, W, 4) uint8 BGRA (PNG's order): the
    estimated foreground colour and the alpha, as :func:`editing.cutout` makes it.

    The foreground is estimated in strips of ``STRIP_TILES`` tile rows, each with one tile row
    of context above and below, so its tiles are the whole frame's tiles and solved with the
    same context: the result equals a whole-frame estimate.
    """
    height, width = alpha16.shape
    out = np.empty((height, width, 4), np.uint8)
    strip = STRIP_TILES * TILE
    for top in range(0, height, strip):
        bottom = min(height, top + strip)
        lo, hi = max(0, top - TILE), min(height, bottom + TILE)
        alpha = alpha16[lo:hi].astype(np.float32) / np.float32(65535.0)
        colour = editing.estimate_foreground(original[lo:hi], alpha).color
        rows = slice(top - lo, bottom - lo)
        out[top:bottom, :, :3] = colour[rows, :, ::-1]
        out[top:bottom, :, 3] = cv2.convertScaleAbs(alpha[rows], alpha=255.0)
    return out


def write_downloads(folder: Path, original: np.ndarray, alpha: np.ndarray) -> None:
    """Write ``matte16.png`` and ``cutout.png`` in ``folder`` at ``original``'s size from the
    matte ``alpha`` of the photo scaled down; each file replaced atomically."""
    alpha16 = upsample_matte(alpha, original)
    editing.save_png(alpha16, folder / "matte16.png")
    bgra = cutout_bgra(original, alpha16)
    del alpha16
    ok, encoded = cv2.imencode(".png", bgra, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise RuntimeError(f"PNG encoding failed for a cutout of shape {bgra.shape}")
    del bgra
    write_bytes_atomic(folder / "cutout.png", encoded)

"""The zero-shot predictor's last step: chosen regions' probability maps to an alpha matte.

The regions' maps become one trimap at a working resolution, its unknown band is matted in
closed form and the result is upsampled to the photo's size with a guided filter
(:mod:`clipmat.refine`). The closed-form solve costs what the regions' edges cost: the unknown
band is split into groups of pixels that no 3x3 window of the matting Laplacian joins, and each
group is solved in its own bounding box, so two small regions far apart (a union, "the man, the
dog") are not solved over the whole rectangle between them. Pixels of different groups share no
window, so the split changes the solution by no more than the solver's tolerance.
"""

from __future__ import annotations

import cv2
import numpy as np

from clipmat import refine

MIN_MATTING_SIDE = 3  # closed-form matting builds its Laplacian on 3 x 3 windows; thinner
# photos get the coarse map (see matte_regions)
GROUP_GAP = 5  # unknown pixels closer than this (a 3x3 window apart, with a margin) share a solve


def matting_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """The closed-form matting resolution: long side at most ``max_side``, aspect kept (see
    :func:`refine.working_size`), but each side at least ``MIN_MATTING_SIDE`` pixels where the
    photo has them (a 700 x 3 photo is matted at 700 x 3, not 768 x 1)."""
    h, w = refine.working_size(height, width, max_side)
    return max(h, min(height, MIN_MATTING_SIDE)), max(w, min(width, MIN_MATTING_SIDE))


def matte_regions(
    rgb: np.ndarray,
    kept: list[tuple[np.ndarray, float]],
    work: tuple[int, int],
    band: int,
    matting: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, trimap) at the photo's size from chosen regions' probability maps.

    Args:
        rgb: (H, W, 3) uint8 photo.
        kept: per chosen part, its (h, w) float32 probability map on the patch grid (zero off
            its regions) and the level its regions were cut at.
        work: (h, w) matting resolution (:func:`matting_size`).
        band: half width of the trimap's unknown band, in working pixels.
        matting: False: the maps themselves upsampled bilinearly (as for a photo thinner than
            ``MIN_MATTING_SIDE``); the trimap is then all background.

    Returns:
        (H, W) float32 alpha in [0, 1] and (H, W) uint8 trimap (0, 128, 255).
    """
    height, width = rgb.shape[:2]
    if not kept:
        return np.zeros((height, width), np.float32), np.zeros((height, width), np.uint8)
    if not matting or min(work) < MIN_MATTING_SIDE:
        coarse = np.maximum.reduce([k.astype(np.float32) for k, _ in kept])
        alpha = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.clip(alpha, 0.0, 1.0).astype(np.float32), np.zeros((height, width), np.uint8)
    trimaps = [refine.trimap_from_probability(k, work, band=band, threshold=t) for k, t in kept]
    trimap_work = np.maximum.reduce(trimaps)  # fg > unknown > bg across the union
    small = rgb
    if trimap_work.shape != rgb.shape[:2]:
        small = cv2.resize(rgb, (work[1], work[0]), interpolation=cv2.INTER_AREA)
    alpha = closed_form_by_group(small, trimap_work)
    if trimap_work.shape != rgb.shape[:2]:
        alpha = refine.guided_upsample(alpha, rgb)
    trimap = cv2.resize(trimap_work, (width, height), interpolation=cv2.INTER_NEAREST)
    return alpha, trimap


def closed_form_by_group(image: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """:func:`refine.closed_form_alpha` solved per group of unknown pixels, each in its own box.

    Groups are the connected parts of the unknown band dilated by ``GROUP_GAP``; when their
    boxes together cover no less than the box of all of them, one solve is made instead.

    Args:
        image: (h, w, 3) uint8. trimap: (h, w) uint8 (0, 128, 255).

    Returns:
        (h, w) float32 alpha in [0, 1].
    """
    unknown = (trimap == refine.TRIMAP_UNKNOWN).astype(np.uint8)
    kernel = np.ones((GROUP_GAP, GROUP_GAP), np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(cv2.dilate(unknown, kernel), 8)
    boxes = [_grown_box(stats[k], trimap.shape) for k in range(1, count)]
    ys, xs = np.nonzero(unknown)
    whole = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1) if len(ys) else 0
    if len(boxes) < 2 or sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in boxes) >= whole:
        return refine.closed_form_alpha(image, trimap)
    alpha = (trimap == refine.TRIMAP_FG).astype(np.float32)
    for k, (y0, y1, x0, x1) in enumerate(boxes, start=1):
        solved = refine.closed_form_alpha(image[y0:y1, x0:x1], trimap[y0:y1, x0:x1])
        mine = (labels[y0:y1, x0:x1] == k) & (unknown[y0:y1, x0:x1] > 0)
        alpha[y0:y1, x0:x1][mine] = solved[mine]
    return alpha


def _grown_box(stat: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of a component's box (OpenCV's x, y, w, h statistics) grown by the
    closed-form solver's margin of known context, inside an image of ``shape``."""
    x, y, w, h = (int(v) for v in stat[:4])
    m = refine.CF_MARGIN
    return max(0, y - m), min(shape[0], y + h + m), max(0, x - m), min(shape[1], x + w + m)

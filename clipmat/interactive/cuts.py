"""Graph cuts from a box, clicks or a model's matte, and the matting of their region's edge.

GrabCut (Rother, Kolmogorov and Blake, 2004; OpenCV's implementation) at a working resolution:
a box's outside is sure background, a click a small disk of sure label, a model's matte (when
given) the probable labels it starts from (:func:`graph_cut`); :func:`correct_matte` mends a
model's matte this way and mattes the new region's edge in closed form.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from clipmat import refine

WORK_SIDE = 640  # long side at which a correction's graph cut runs
GRABCUT_ITERATIONS = 5
BAND = 0.012  # half width of the unknown band around a corrected model matte (working side)
CLICK_CORE = 0.015  # radius of a click's sure label, as a share of the working long side
CLICK_REACH = 0.12  # radius within which a lone positive click's object is looked for
BOX_MARGIN = 0.01  # the matte may pass a box's edge by this share of the photo's long side

Point = tuple[float, float, bool]
Box = tuple[float, float, float, float]


def _scaled(points: Sequence[Point], sy: float, sx: float) -> list[tuple[int, int, bool]]:
    return [(round(x * sx), round(y * sy), positive) for x, y, positive in points]


def _at_work_side(
    rgb: np.ndarray, points: Sequence[Point], work_side: int
) -> tuple[np.ndarray, float, float, list[tuple[int, int, bool]]]:
    """The photo at the working resolution (long side at most ``work_side``, area
    interpolation), the scales (down, across) from photo to it, and the clicks scaled to it."""
    height, width = rgb.shape[:2]
    h, w = refine.working_size(height, width, work_side)
    small = (
        rgb if (h, w) == (height, width) else cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    )
    sy, sx = h / height, w / width
    return small, sy, sx, _scaled(points, sy, sx)


def graph_cut(
    rgb: np.ndarray,
    *,
    box: Box | None = None,
    points: Sequence[Point] = (),
    prior: np.ndarray | None = None,
    work_side: int = WORK_SIDE,
) -> np.ndarray:
    """The object's region by GrabCut, at a working resolution.

    The initial labels: outside a box, sure background; inside it, probable foreground. With a
    ``prior`` matte (a model's), probable foreground where it is above 0.5 and probable
    background elsewhere. Each click is a small disk of sure foreground or background; a
    positive click also makes a disk of probable foreground of radius ``CLICK_REACH`` around
    it where nothing else says so. Without a box, the photo's border is sure background.

    Args:
        rgb: (H, W, 3) uint8 photo.
        box: (x0, y0, x1, y1) in photo pixels, or None.
        points: [(x, y, positive), ...] in photo pixels.
        prior: (H, W) float alpha in [0, 1] to start from, or None.
        work_side: long side of the working resolution.

    Returns:
        (h, w) bool at the working resolution: the components under a positive click and those
        the prior held (or, with neither, the largest one).
    """
    small, sy, sx, clicks = _at_work_side(rgb, points, work_side)
    h, w = small.shape[:2]
    start = None
    if prior is not None:
        start = cv2.resize(prior.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0.5
        start = _drop_clicked(start, [(x, y) for x, y, positive in clicks if not positive])
    mask = _initial_mask((h, w), box, clicks, sy, sx, start)
    has_fg = (mask == cv2.GC_PR_FGD).any() or (mask == cv2.GC_FGD).any()
    has_bg = (mask == cv2.GC_BGD).any() or (mask == cv2.GC_PR_BGD).any()
    if has_fg and has_bg:
        small_bgr = cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2BGR)
        grabcut(small_bgr, mask, GRABCUT_ITERATIONS)
    region = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    seeds = [(x, y) for x, y, positive in clicks if positive]
    return _keep_clicked(region, seeds, start)


def _initial_mask(
    size: tuple[int, int],
    box: Box | None,
    clicks: list[tuple[int, int, bool]],
    sy: float,
    sx: float,
    start: np.ndarray | None,
) -> np.ndarray:
    h, w = size
    side = max(h, w)
    mask = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    if start is not None:
        mask[start] = cv2.GC_PR_FGD
    for x, y, positive in clicks:
        if positive and not (start is not None and hit(start, (h, w), x, y)):
            reach = np.zeros((h, w), np.uint8)
            cv2.circle(reach, (x, y), max(2, round(CLICK_REACH * side)), 1, -1)
            mask[(reach > 0) & (mask == cv2.GC_PR_BGD)] = cv2.GC_PR_FGD
    if box is not None:
        x0, y0, x1, y1 = box
        inside = np.zeros((h, w), bool)
        c0, r0 = max(0, int(x0 * sx)), max(0, int(y0 * sy))
        c1, r1 = min(w, int(np.ceil(x1 * sx))), min(h, int(np.ceil(y1 * sy)))
        inside[r0:r1, c0:c1] = True
        if start is None:
            mask[inside] = cv2.GC_PR_FGD
        mask[~inside] = cv2.GC_BGD
    else:
        mask[[0, -1], :] = np.where(mask[[0, -1], :] == cv2.GC_PR_FGD, cv2.GC_PR_FGD, cv2.GC_BGD)
        mask[:, [0, -1]] = np.where(mask[:, [0, -1]] == cv2.GC_PR_FGD, cv2.GC_PR_FGD, cv2.GC_BGD)
    return label_clicks(mask, clicks)


def label_clicks(mask: np.ndarray, clicks: list[tuple[int, int, bool]]) -> np.ndarray:
    """``mask`` (h, w) uint8 GrabCut labels with each click's disk (radius ``CLICK_CORE`` x
    its long side) made sure foreground or background, in place; returns it."""
    core = max(1, round(CLICK_CORE * max(mask.shape)))
    for x, y, positive in clicks:
        cv2.circle(mask, (x, y), core, int(cv2.GC_FGD if positive else cv2.GC_BGD), -1)
    return mask


def grabcut(
    bgr: np.ndarray, mask: np.ndarray, iterations: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GrabCut from ``mask``'s labels (changed in place), from a fixed random state: (region
    (h, w) bool, background and foreground colour models, (1, 65) float64 each)."""
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # the colour models start from OpenCV's (per-thread) random state
    cv2.grabCut(bgr, mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), bgd, fgd


def _drop_clicked(region: np.ndarray, negatives: list[tuple[int, int]]) -> np.ndarray:
    """``region`` without its 8-connected components under a negative click."""
    if not negatives or not region.any():
        return region
    _, labels = cv2.connectedComponents(region.astype(np.uint8), connectivity=8)
    h, w = region.shape
    drop = {int(labels[min(max(y, 0), h - 1), min(max(x, 0), w - 1)]) for x, y in negatives}
    return region & ~np.isin(labels, sorted(drop - {0}))


def _keep_clicked(
    region: np.ndarray, positives: list[tuple[int, int]], start: np.ndarray | None
) -> np.ndarray:
    """The 8-connected components of ``region`` under a positive click or overlapping the
    prior's region; with neither, the largest one."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(region.astype(np.uint8), 8)
    if count <= 1:
        return region
    h, w = region.shape
    keep = {int(labels[min(max(y, 0), h - 1), min(max(x, 0), w - 1)]) for x, y in positives} - {0}
    if start is not None:
        keep |= set(np.unique(labels[start & region]).tolist()) - {0}
    if not keep:
        keep = {1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))}
    return np.isin(labels, sorted(keep))


def matte_region(
    rgb: np.ndarray, region: np.ndarray, *, band: float = BAND
) -> tuple[np.ndarray, np.ndarray]:
    """A soft matte of a hard region: a trimap with an unknown band around its boundary, matted
    in closed form at the region's resolution and upsampled along the photo's edges.

    Args:
        rgb: (H, W, 3) uint8 photo.
        region: (h, w) bool, h <= H and w <= W.
        band: half width of the unknown band as a share of the region map's long side.

    Returns:
        (alpha (H, W) float32 in [0, 1], trimap (H, W) uint8).
    """
    h, w = region.shape
    height, width = rgb.shape[:2]
    if not region.any():
        return np.zeros((height, width), np.float32), np.zeros((height, width), np.uint8)
    radius = max(1, round(band * max(h, w)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    inside = region.astype(np.uint8)
    core = cv2.erode(inside, kernel)
    if not core.any():  # thinner than the band: its centre line is sure foreground
        core = inside & (cv2.distanceTransform(inside, cv2.DIST_L2, 3) >= 1.0).astype(np.uint8)
    trimap = np.where(cv2.dilate(inside, kernel) > 0, refine.TRIMAP_UNKNOWN, refine.TRIMAP_BG)
    trimap = np.where(core > 0, refine.TRIMAP_FG, trimap).astype(np.uint8)
    alpha = refine.matte_from_trimap(rgb, trimap)
    full_trimap = cv2.resize(trimap, (width, height), interpolation=cv2.INTER_NEAREST)
    return alpha, full_trimap


def correct_matte(
    rgb: np.ndarray,
    prior: np.ndarray | None,
    *,
    box: Box | None = None,
    points: Sequence[Point] = (),
    band: float = BAND,
) -> tuple[np.ndarray, np.ndarray]:
    """A matte ``prior`` (or none) corrected by a box and clicks: a graph cut that starts from
    it, then matting of the new region's boundary band (``band``: its half width as a share of
    the working long side); the box clips the result.

    Returns:
        (alpha (H, W) float32 in [0, 1], trimap (H, W) uint8).
    """
    cut = graph_cut(rgb, box=box, points=points, prior=prior)
    alpha, trimap = matte_region(rgb, cut, band=band)
    if box is not None:
        alpha = alpha * box_window(rgb.shape[:2], box)
    return alpha.astype(np.float32), trimap


def box_window(size: tuple[int, int], box: Box, margin: float = BOX_MARGIN) -> np.ndarray:
    """(H, W) float32: 1 inside the box widened by ``margin`` x the long side, 0 outside."""
    height, width = size
    pad = margin * max(height, width)
    x0, y0, x1, y1 = box
    window = np.zeros((height, width), np.float32)
    r0, r1 = max(0, int(y0 - pad)), min(height, int(np.ceil(y1 + pad)))
    c0, c1 = max(0, int(x0 - pad)), min(width, int(np.ceil(x1 + pad)))
    window[r0:r1, c0:c1] = 1.0
    return window


def hit(mask: np.ndarray, size: tuple[int, int], x: float, y: float) -> bool:
    """Whether photo pixel (x, y) falls on a grid ``mask`` laid over a photo of ``size``."""
    height, width = size
    row = min(int(y * mask.shape[0] / height), mask.shape[0] - 1)
    col = min(int(x * mask.shape[1] / width), mask.shape[1] - 1)
    return bool(mask[max(row, 0), max(col, 0)])

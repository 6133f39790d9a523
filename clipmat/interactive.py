"""The mattes a user's clicks and box make with no model at all.

A box alone, or clicks alone, cut an object out of any photo (:func:`prompt_matte`). GrabCut
(Rother, Kolmogorov and Blake, 2004; OpenCV's implementation) separates object from background
by colour models and a graph cut; with a box it runs once per prior (:data:`PROMPT_RINGS`): the
box's outer ring of 0 and 10% of its sides starts as probable background; every click is a sure
label (clicks alone: one cut, probable foreground near the positive clicks, the photo's frame
sure background). A box that reaches the photo's border or that the object fills leaves GrabCut
little background to learn from; the ring gives it some, and the plain cut keeps what the ring
would cut off. The share of the cuts that hold a pixel is its vote; the majority's edge gets an
unknown band that follows the colour models' uncertainty (:mod:`clipmat.colour_models`: narrow
on hard edges, wide where object and background colours interleave: hair, fur, nets), matted in
closed form (:mod:`clipmat.refine`); the alpha is the vote-weighted mix of that matte and the
dissenting cuts, upsampled along the photo's edges.

A model's matte is corrected by one cut that starts from it (:func:`correct_matte`,
:func:`graph_cut`). How clicks and a box choose among a model's regions
(:class:`clipmat.Candidate`) is :mod:`clipmat.predictors.corrections`.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from clipmat import refine
from clipmat.colour_models import UNSURE_SMOOTH, colour_posterior, unsure_trimap

WORK_SIDE = 640  # long side at which a correction's graph cut runs
PROMPT_SIDE = 640  # long side at which a box's or clicks' own cuts and matting run
GRABCUT_ITERATIONS = 5
PROMPT_ITERATIONS = 5  # iterations of each of a box's or clicks' own cuts
BAND = 0.012  # half width of the unknown band around a corrected model matte (working side)
PROMPT_RINGS = (0.0, 0.10)  # a box's outer rings (shares of its sides) that start as probable
# background, one cut each. Tuned on the 23-photo real dev set at 800 px (docs/benchmarks.md,
# real photos): mean MAD 0.095 against plain GrabCut's 0.144, worst photo +0.014; rings
# (0, 0.05, 0.10): 0.093 but +0.016 and a third cut's time; cuts at 480 px or 3 iterations: worse
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
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        small_bgr = cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2BGR)
        cv2.setRNGSeed(0)  # the colour models start from OpenCV's (per-thread) random state
        cv2.grabCut(small_bgr, mask, None, bgd, fgd, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
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
    core = max(1, round(CLICK_CORE * side))
    for x, y, positive in clicks:
        cv2.circle(mask, (x, y), core, int(cv2.GC_FGD if positive else cv2.GC_BGD), -1)
    return mask


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


def prompt_matte(
    rgb: np.ndarray, *, box: Box | None = None, points: Sequence[Point] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """The matte a box and/or clicks give on their own, with no model: the cuts' votes
    (:func:`prompt_votes`), closed-form matting of the majority's edge in a band that follows
    the colour models' uncertainty (:func:`unsure_trimap`), mixed with the dissenting cuts by
    their votes, upsampled along the photo's edges and clipped to the box.

    Args:
        rgb: (H, W, 3) uint8 photo.
        box: (x0, y0, x1, y1) in photo pixels, or None.
        points: [(x, y, positive), ...] in photo pixels.

    Returns:
        (alpha (H, W) float32 in [0, 1], trimap (H, W) uint8: unknown where matted or where
        the cuts disagree).

    Raises:
        ValueError: with neither a box nor a positive click (nothing says where the object is).
    """
    if box is None and not any(positive for _, _, positive in points):
        raise ValueError("without a phrase, give a box or at least one positive click")
    small, votes, posterior = prompt_votes(rgb, box=box, points=points, work_side=PROMPT_SIDE)
    trimap = unsure_trimap(votes, posterior)
    matte = _closed_form(small, trimap, posterior)
    majority = votes > 0.5
    agree = np.where(majority, votes, 1.0 - votes)  # the share of cuts on the majority's side
    mixed = (agree * matte + (1.0 - agree) * ~majority).astype(np.float32)
    height, width = rgb.shape[:2]
    alpha = mixed if mixed.shape == (height, width) else refine.guided_upsample(mixed, rgb)
    if box is not None:
        alpha = alpha * box_window((height, width), box)
    trimap[(votes > 0) & (votes < 1)] = refine.TRIMAP_UNKNOWN
    full = cv2.resize(trimap, (width, height), interpolation=cv2.INTER_NEAREST)
    return alpha.astype(np.float32), full


def prompt_votes(
    rgb: np.ndarray,
    *,
    box: Box | None = None,
    points: Sequence[Point] = (),
    work_side: int = WORK_SIDE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One GrabCut per ring prior, and the share of them that hold each pixel.

    Each cut starts from the box: outside it sure background, inside probable foreground but
    for an outer ring (a share of the box's width and height, :data:`PROMPT_RINGS`) of probable
    background; each click is a disk of sure foreground or background. With no box, one cut
    starts as :func:`graph_cut`'s: probable foreground within :data:`CLICK_REACH` of a positive
    click, the photo's frame sure background. A cut keeps its components under the
    positive clicks (with none, its largest). A prior with nothing to learn background from (a
    box over the whole photo, no ring) is skipped.

    Args:
        rgb: (H, W, 3) uint8 photo.
        box: (x0, y0, x1, y1) in photo pixels, or None.
        points: [(x, y, positive), ...] in photo pixels.
        work_side: long side of the working resolution.

    Returns:
        (small (h, w, 3) uint8 photo at the working resolution, votes (h, w) float32 in [0, 1],
        foreground posterior (h, w) float32 of the cuts' colour models, None if none ran).
    """
    small, sy, sx, clicks = _at_work_side(rgb, points, work_side)
    h, w = small.shape[:2]
    seeds = [(x, y) for x, y, positive in clicks if positive]
    rect = _working_rect((h, w), box, sy, sx)
    bgr = cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2BGR)
    if box is None:  # clicks alone: one cut, from the clicks' reach (as :func:`graph_cut`)
        priors = [_initial_mask((h, w), None, clicks, sy, sx, None)]
    else:
        priors = [_ring_mask((h, w), rect, ring, clicks) for ring in PROMPT_RINGS]
    priors = [m for m in priors if np.isin(m, (cv2.GC_BGD, cv2.GC_PR_BGD)).any()]
    if not priors:  # nothing to learn the background from
        c0, r0, c1, r1 = rect
        whole = np.zeros((h, w), np.float32)
        whole[r0:r1, c0:c1] = 1.0
        return small, whole, None
    with ThreadPoolExecutor(max_workers=len(priors)) as pool:  # OpenCV releases the GIL
        cuts = list(pool.map(lambda mask: _grabcut(bgr, mask), priors))
    regions = [_keep_clicked(region, seeds, None) for region, _, _ in cuts]
    half = cv2.resize(bgr, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
    posterior = np.mean([colour_posterior(half, bgd, fgd) for _, bgd, fgd in cuts], axis=0)
    posterior = cv2.resize(posterior.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return small, np.mean(regions, axis=0).astype(np.float32), posterior


def _grabcut(bgr: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GrabCut from ``mask``'s labels (changed in place): (region (h, w) bool, background and
    foreground colour models, (1, 65) float64 each)."""
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # the colour models start from OpenCV's (per-thread) random state
    cv2.grabCut(bgr, mask, None, bgd, fgd, PROMPT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), bgd, fgd


def _closed_form(small: np.ndarray, trimap: np.ndarray, posterior: np.ndarray | None) -> np.ndarray:
    """Closed-form matting of ``trimap``; where its solver does not converge (colours that
    dither between object and background pixel by pixel), the smoothed colour posterior in
    the unknown band instead."""
    try:
        return refine.closed_form_alpha(small, trimap)
    except ValueError:
        alpha = (trimap == refine.TRIMAP_FG).astype(np.float32)
        unknown = trimap == refine.TRIMAP_UNKNOWN
        if posterior is not None:
            smooth = cv2.GaussianBlur(
                posterior, (0, 0), max(1.0, UNSURE_SMOOTH * max(trimap.shape))
            )
            alpha[unknown] = smooth[unknown]
        return alpha


def _working_rect(
    size: tuple[int, int], box: Box | None, sy: float, sx: float
) -> tuple[int, int, int, int]:
    """(c0, r0, c1, r1): the box at the working resolution (the whole frame when None)."""
    h, w = size
    if box is None:
        return 0, 0, w, h
    x0, y0, x1, y1 = box
    c0, r0 = min(max(0, int(x0 * sx)), w - 1), min(max(0, int(y0 * sy)), h - 1)
    return (
        c0,
        r0,
        max(c0 + 1, min(w, int(np.ceil(x1 * sx)))),
        max(r0 + 1, min(h, int(np.ceil(y1 * sy)))),
    )


def _ring_mask(
    size: tuple[int, int],
    rect: tuple[int, int, int, int],
    ring: float,
    clicks: list[tuple[int, int, bool]],
) -> np.ndarray:
    """(h, w) uint8 GrabCut labels: sure background outside ``rect``, probable background in
    its outer ``ring`` (share of its width and height), probable foreground inside, sure labels
    under the clicks."""
    h, w = size
    c0, r0, c1, r1 = rect
    mask = np.full((h, w), cv2.GC_BGD, np.uint8)
    mask[r0:r1, c0:c1] = cv2.GC_PR_BGD if ring > 0 else cv2.GC_PR_FGD
    if ring > 0:
        dy, dx = max(1, round(ring * (r1 - r0))), max(1, round(ring * (c1 - c0)))
        mask[r0 + dy : r1 - dy, c0 + dx : c1 - dx] = cv2.GC_PR_FGD
    core = max(1, round(CLICK_CORE * max(h, w)))
    for x, y, positive in clicks:
        cv2.circle(mask, (x, y), core, int(cv2.GC_FGD if positive else cv2.GC_BGD), -1)
    return mask


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

"""The matte a box or clicks make on their own (:func:`prompt_matte`).

With a box, GrabCut runs once per prior (:data:`PROMPT_RINGS`): the box's outer ring of 0 and
10% of its sides starts as probable background; every click is a sure label, and a negative
click also makes its surroundings probable background (:data:`NEGATIVE_REACH`). A box that
reaches the photo's border or that the object fills leaves GrabCut little background to learn
from; the ring gives it some, and the plain cut keeps what the ring would cut off. The share of
the cuts that hold a pixel is its vote; the majority's edge gets an unknown band that follows
the colour models' uncertainty (:mod:`clipmat.interactive.colour_models`: narrow on hard edges,
wide where object and background colours interleave: hair, fur, nets), matted in closed form
(:mod:`clipmat.refine`); the alpha is the vote-weighted mix of that matte and the dissenting
cuts, upsampled along the photo's edges.

Clicks alone stand for a box (:func:`click_box`): the first positive click's own cut (probable
foreground near it, the photo's frame sure background) gives a box around what it found, which
reaches down to the photo's bottom edge when it is near it and which every later positive click
widens to take it in; then the clicks are matted as with that box.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from clipmat import refine
from clipmat.interactive.colour_models import UNSURE_SMOOTH, colour_posterior, unsure_trimap
from clipmat.interactive.cuts import (
    WORK_SIDE,
    Box,
    Point,
    _at_work_side,
    _initial_mask,
    _keep_clicked,
    box_window,
    grabcut,
    label_clicks,
)
from clipmat.runtime import LRUCache, fingerprint

PROMPT_SIDE = 640  # long side at which a box's or clicks' own cuts and matting run
PROMPT_ITERATIONS = 5  # iterations of each of a box's or clicks' own cuts
PROMPT_RINGS = (0.0, 0.10)  # a box's outer rings (shares of its sides) that start as probable
# background, one cut each. Tuned on the 23-photo real dev set at 800 px (docs/benchmarks.md,
# real photos): mean MAD 0.095 against plain GrabCut's 0.144, worst photo +0.014; rings
# (0, 0.05, 0.10): 0.093 but +0.016 and a third cut's time; cuts at 480 px or 3 iterations: worse
NEGATIVE_REACH = 0.10  # radius around a negative click that starts as probable background
CLICK_BOX_PAD = 0.20  # clicks' box: the first click's cut widened by this share of its size
CLICK_BOX_REACH = 0.08  # ... and around each positive click by this share of the long side
CLICK_BOX_FLOOR = 1.0  # ... and down to the photo's bottom edge when the gap below the box is
# less than this many times its height (tuned on the 23-photo real dev set at 800 px,
# docs/benchmarks.md: after 3 simulated clicks mean MAD 0.072, 0.76x the box matte's; without
# the floor 0.092; negative reach 0.06: 0.095; one click-only cut: 0.118)
_FIRST_CUTS: LRUCache[Box] = LRUCache(32)  # a first click's cut's box, by photo and click
_FIRST_CUTS_LOCK = threading.Lock()


def prompt_matte(
    rgb: np.ndarray, *, box: Box | None = None, points: Sequence[Point] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """The matte a box and/or clicks give on their own, with no model: the cuts' votes
    (:func:`prompt_votes`), closed-form matting of the majority's edge in a band that follows
    the colour models' uncertainty (:func:`unsure_trimap`), mixed with the dissenting cuts by
    their votes, upsampled along the photo's edges and clipped to the box.

    Args:
        rgb: (H, W, 3) uint8 photo.
        box: (x0, y0, x1, y1) in photo pixels, or None (clicks alone: :func:`click_box`).
        points: [(x, y, positive), ...] in photo pixels.

    Returns:
        (alpha (H, W) float32 in [0, 1], trimap (H, W) uint8: unknown where matted or where
        the cuts disagree).

    Raises:
        ValueError: with neither a box nor a positive click (nothing says where the object is).
    """
    if box is None and not any(positive for _, _, positive in points):
        raise ValueError("without a phrase, give a box or at least one positive click")
    if box is None:
        box = click_box(rgb, points)
    small, votes, posterior = prompt_votes(rgb, box=box, points=points, work_side=PROMPT_SIDE)
    trimap = unsure_trimap(votes, posterior)
    matte = _closed_form(small, trimap, posterior)
    majority = votes > 0.5
    agree = np.where(majority, votes, 1.0 - votes)  # the share of cuts on the majority's side
    mixed = (agree * matte + (1.0 - agree) * ~majority).astype(np.float32)
    height, width = rgb.shape[:2]
    alpha = mixed if mixed.shape == (height, width) else refine.guided_upsample(mixed, rgb)
    alpha = alpha * box_window((height, width), box)
    trimap[(votes > 0) & (votes < 1)] = refine.TRIMAP_UNKNOWN
    full = cv2.resize(trimap, (width, height), interpolation=cv2.INTER_NEAREST)
    return alpha.astype(np.float32), full


def click_box(rgb: np.ndarray, points: Sequence[Point]) -> Box:
    """The box clicks alone stand for: the first positive click's own cut (:func:`prompt_votes`
    with that click only), its region's bounding box widened by ``CLICK_BOX_PAD`` of its size
    on each side, then widened to take in a disk of radius ``CLICK_BOX_REACH`` x the photo's
    long side around every positive click. Later clicks only widen it, so each click moves the
    box the way the user asked, and a click's own cut (unstable with many clicks) is run once.

    Objects in photos mostly stand on the bottom edge or are cut by it (21 of the 23 in the
    real dev set), and a click's cut often stops short of it at a part with the background's
    colours (a pot on sand, the lowest tassels), which the box's outside would then make sure
    background. So a box nearer the bottom edge than ``CLICK_BOX_FLOOR`` x its height reaches
    down to it; an object high above the bottom keeps its own box.

    Args:
        rgb: (H, W, 3) uint8 photo.
        points: [(x, y, positive), ...] in photo pixels, at least one positive.

    Returns:
        (x0, y0, x1, y1) in photo pixels, inside the photo.
    """
    height, width = rgb.shape[:2]
    positives = [(x, y) for x, y, positive in points if positive]
    x0, y0, x1, y1 = _first_cut_box(rgb, *positives[0])
    pad_x, pad_y = CLICK_BOX_PAD * (x1 - x0), CLICK_BOX_PAD * (y1 - y0)
    x0, x1, y0, y1 = x0 - pad_x, x1 + pad_x, y0 - pad_y, y1 + pad_y
    reach = CLICK_BOX_REACH * max(height, width)
    for x, y in positives:
        x0, y0, x1, y1 = (
            min(x0, x - reach),
            min(y0, y - reach),
            max(x1, x + reach),
            max(y1, y + reach),
        )
    x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)
    if height - y1 < CLICK_BOX_FLOOR * (y1 - y0):
        y1 = float(height)
    return x0, y0, x1, y1


def _first_cut_box(rgb: np.ndarray, x: float, y: float) -> Box:
    """The bounding box (photo pixels) of a lone positive click's own cut and the click,
    kept per photo and click (:data:`_FIRST_CUTS`): every later click of a session reuses it."""
    key = f"{fingerprint(rgb)}:{x}:{y}"
    with _FIRST_CUTS_LOCK:
        found = _FIRST_CUTS.get(key)
    if found is not None:
        return found
    height, width = rgb.shape[:2]
    small, votes, _ = prompt_votes(rgb, points=[(x, y, True)], work_side=PROMPT_SIDE)
    rows, cols = np.nonzero(votes > 0.5)
    box = (x, y, x, y)
    if len(rows):
        sy, sx = small.shape[0] / height, small.shape[1] / width
        box = (
            min(x, cols.min() / sx),
            min(y, rows.min() / sy),
            max(x, (cols.max() + 1) / sx),
            max(y, (rows.max() + 1) / sy),
        )
    with _FIRST_CUTS_LOCK:
        _FIRST_CUTS.put(key, box)
    return box


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
        cuts = list(pool.map(lambda mask: grabcut(bgr, mask, PROMPT_ITERATIONS), priors))
    regions = [_keep_clicked(region, seeds, None) for region, _, _ in cuts]
    half = cv2.resize(bgr, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
    posterior = np.mean([colour_posterior(half, bgd, fgd) for _, bgd, fgd in cuts], axis=0)
    posterior = cv2.resize(posterior.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return small, np.mean(regions, axis=0).astype(np.float32), posterior


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
    near = np.zeros((h, w), np.uint8)
    for x, y, positive in clicks:
        if not positive:
            cv2.circle(near, (x, y), max(2, round(NEGATIVE_REACH * max(h, w))), 1, -1)
    mask[(near > 0) & (mask == cv2.GC_PR_FGD)] = cv2.GC_PR_BGD
    return label_clicks(mask, clicks)

"""The user's corrections of a phrase's matte (clicks and a box), and a box or clicks alone.

With a phrase, the box and positive clicks choose among the regions the predictor proposed
(:class:`clipmat.Candidate`; :func:`choose_candidates`), positive clicks on no candidate grow the
matte by a graph cut that starts from it (:func:`clipmat.interactive.correct_matte`), and
negative clicks take out the objects under them (:func:`clicked_away`); :func:`corrected` does
all of it in order. With no phrase, the box and clicks matte on their own, with no model
(:func:`prompt_result`).

These functions know a predictor only through a :data:`Matter`: a callable that gives one
phrase's result on one photo under some options (:meth:`clipmat.Predictor.predict` builds it
from the predictor's ``_predict``). The model-free matting they use is
:mod:`clipmat.interactive`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from clipmat import interactive
from clipmat.interactive import Box, Point, box_window, hit
from clipmat.predictors.results import MattingResult, Photo, PredictOptions
from clipmat.refine import refine_alpha

PROMPT_ONLY = "box and clicks (no model)"  # the predictor named in a result with no phrase
EMPTIED = 0.1  # negative clicks that leave less than this share of the matte's mass empty it
MOSTLY = 0.5  # negative clicks that leave less than this share took the matte's main object
INSIDE_BOX = 0.5  # a candidate is inside a box when at least this share of it is
REMOVE_REACH = 0.02  # an object clicked away takes this share of the long side around it

Matter = Callable[[PredictOptions], MattingResult]
"""One phrase's result on one photo under the given options (the photo's features cached)."""


def prompt_result(photo: Photo, options: PredictOptions) -> MattingResult:
    """The matte of ``options``' box and clicks alone (no phrase, no model).

    Returns:
        A result with alpha (H, W) float32 and trimap (H, W) uint8 at the photo's size, named
        :data:`PROMPT_ONLY`.

    Raises:
        ValueError: with neither a box nor a positive click.
    """
    alpha, trimap = interactive.prompt_matte(photo.rgb, box=options.box, points=options.points)
    return MattingResult(
        alpha=alpha,
        text="",
        setting="prompt",
        confidence=1.0,  # the user said where the object is
        trimap=trimap,
        predictor=PROMPT_ONLY,
        notes=["matted from the box and clicks alone (graph cut, then closed-form matting)"],
    )


def corrected(rgb: np.ndarray, matte: Matter, options: PredictOptions) -> MattingResult:
    """A phrase's matte after the user's clicks and box.

    A first pass gives the candidates (cheap: the photo's features are cached, no refinement);
    the box and positive clicks choose among them (:func:`choose_candidates`) and a second pass
    mattes the chosen ones. Then, in order: positive clicks on no candidate grow the matte by a
    graph cut that starts from it; positive clicks that all land on the predictor's own pick
    keep only the objects under them; negative clicks take out the objects under them
    (:func:`clicked_away`); the box clips the matte; what changed is re-matted at its edges
    when ``refine`` asks for it.

    Args:
        rgb: (H, W, 3) uint8 photo.
        matte: the phrase's result under some options (see :data:`Matter`).
        options: the checked options, with points and/or a box.

    Returns:
        The result, alpha (H, W) float32; confidence 0 when the corrections emptied it.
    """
    first = matte(dataclasses.replace(options, refine=False, points=(), box=None))
    masks = [c.mask for c in first.candidates]
    default = {i for i, c in enumerate(first.candidates) if c.chosen}
    if options.chosen is not None:
        default = set(options.chosen)
    size = rgb.shape[:2]
    chosen, stray = choose_candidates(masks, default, size, points=options.points, box=options.box)
    same = chosen == default and not options.refine
    result = first if same else matte(_made_of(options, chosen))
    alpha = result.alpha
    positives = [p for p in options.points if p[2]]
    on_pick = [p for p in positives if any(hit(masks[i], size, *p[:2]) for i in default)]
    if stray:
        alpha, result.trimap = interactive.correct_matte(rgb, alpha, box=options.box, points=stray)
        result.notes.append(f"{len(stray)} click(s) on no candidate: the matte was grown there")
    elif positives and len(on_pick) == len(positives):
        alpha = keep_clicked(rgb, alpha, positives)
        result.notes.append("the click(s) on the pick kept the object(s) under them")
    if len(positives) < len(options.points):
        alpha = clicked_away(rgb, matte, options, result, alpha, masks)
    if options.box is not None:
        alpha = alpha * box_window(size, options.box)
    if alpha is not result.alpha and options.refine and (alpha > 0.5).any():
        alpha, result.trimap = refine_alpha(rgb, alpha)
    result.alpha = alpha.astype(np.float32)
    if not (result.alpha > 0.5).any():
        result.confidence = 0.0
    return result


def clicked_away(
    rgb: np.ndarray,
    matte: Matter,
    options: PredictOptions,
    result: MattingResult,
    alpha: np.ndarray,
    masks: list[np.ndarray],
) -> np.ndarray:
    """``alpha`` without the objects under the negative clicks.

    When they take away most of it and no positive click says what to keep, the matte is what
    else the predictor saw: the best candidate that was neither the pick nor clicked
    (``result`` takes its candidates, trimap and confidence), else the rest of the picked
    regions (the click may have split a region that held two objects), cut and matted anew.

    Args:
        rgb: (H, W, 3) uint8 photo.
        matte: the phrase's result under some options (see :data:`Matter`).
        options: the checked options (their negative clicks are taken away).
        result: the result so far (its notes, and more, are updated).
        alpha: (H, W) float the matte so far.
        masks: each candidate's (h, w) bool grid mask.

    Returns:
        (H, W) float32 alpha.
    """
    negatives = [p for p in options.points if not p[2]]
    removed = clicked_objects(rgb, negatives)
    kept = (alpha * (1.0 - removed)).astype(np.float32)
    if kept.sum() > MOSTLY * alpha.sum() or len(negatives) < len(options.points):
        return kept if kept.sum() > EMPTIED * alpha.sum() else np.zeros_like(kept)
    size = rgb.shape[:2]
    clicked = {c for c, m in enumerate(masks) for x, y, _ in negatives if hit(m, size, x, y)}
    picked = {c for c, cand in enumerate(result.candidates) if cand.chosen}
    rest = [c for c in range(len(masks)) if c not in clicked | picked]
    if rest:
        fresh = matte(_made_of(options, {rest[0]}))
        result.candidates, result.trimap = fresh.candidates, fresh.trimap
        result.confidence = fresh.confidence
        result.notes.append("the pick was clicked away: the next best candidate instead")
        return fresh.alpha
    region = np.zeros(size, bool)
    for c in picked:
        region |= result.candidates[c].mask_at(size)
    region &= removed < 0.5
    if region.mean() < EMPTIED * (alpha > 0.5).mean():
        return np.zeros_like(kept)
    result.notes.append("the clicked object was taken out of the region, the rest re-cut")
    fresh_alpha, result.trimap = interactive.correct_matte(
        rgb, region.astype(np.float32), points=negatives
    )
    return fresh_alpha


def _made_of(options: PredictOptions, chosen: set[int]) -> PredictOptions:
    """The options of the phrase's matte made of the candidates ``chosen``, clicks and box
    spent."""
    return dataclasses.replace(options, points=(), box=None, chosen=frozenset(chosen))


def inside_share(mask: np.ndarray, size: tuple[int, int], box: Box) -> float:
    """The share of a grid ``mask``'s (h, w) cells whose centre lies inside ``box`` (photo
    pixels, on a photo of ``size`` = (H, W))."""
    height, width = size
    rows, cols = np.nonzero(mask)
    if not len(rows):
        return 0.0
    ys = (rows + 0.5) * height / mask.shape[0]
    xs = (cols + 0.5) * width / mask.shape[1]
    x0, y0, x1, y1 = box
    return float(((xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)).mean())


def choose_candidates(
    masks: Sequence[np.ndarray],
    default: set[int],
    size: tuple[int, int],
    *,
    points: Sequence[Point] = (),
    box: Box | None = None,
) -> tuple[set[int], list[Point]]:
    """Which candidates the matte is made of, by the user's box and positive clicks.

    A box keeps only the candidates mostly inside it. Positive clicks say what the user wants:
    with any, the choice starts empty and each adds the candidates under it; with none, it is
    ``default`` (the predictor's pick; within a box, its pick there, else all of the box's).
    Negative clicks are not about candidates: they take objects out of the matte
    (:func:`clicked_objects`).

    Args:
        masks: each candidate's (h, w) bool grid mask.
        default: indices chosen before the corrections.
        size: the photo's (H, W).
        points: [(x, y, positive), ...] in photo pixels.
        box: (x0, y0, x1, y1) in photo pixels, or None.

    Returns:
        (chosen indices, the positive clicks that fell on no candidate).
    """
    eligible = set(range(len(masks)))
    if box is not None:
        eligible = {i for i, m in enumerate(masks) if inside_share(m, size, box) >= INSIDE_BOX}
    positives = [(x, y, True) for x, y, positive in points if positive]
    if not positives:
        return (set(default) & eligible) or eligible, []
    chosen: set[int] = set()
    stray = []
    for x, y, _ in positives:
        under = {i for i, m in enumerate(masks) if hit(m, size, x, y)} & eligible
        chosen |= under
        if not under:
            stray.append((x, y, True))
    return chosen, stray


def clicked_objects(rgb: np.ndarray, clicks: Sequence[Point]) -> np.ndarray:
    """(H, W) float32 in [0, 1]: the objects under ``clicks`` on the (H, W, 3) uint8 photo,
    each found as a lone positive click finds it (:func:`clipmat.interactive.graph_cut`), matted
    and widened by ``REMOVE_REACH`` (a model's edge of it may lie a little farther out)."""
    height, width = rgb.shape[:2]
    radius = max(1, round(REMOVE_REACH * max(height, width)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    found = np.zeros((height, width), np.float32)
    for x, y, _ in clicks:
        region = interactive.graph_cut(rgb, points=[(x, y, True)])
        alpha, _ = interactive.matte_region(rgb, region)
        found = np.maximum(found, cv2.dilate(alpha, kernel))
    return found


def keep_clicked(rgb: np.ndarray, alpha: np.ndarray, positives: Sequence[Point]) -> np.ndarray:
    """(H, W) float32: ``alpha`` kept only on the objects under positive clicks (when a click
    lands on the predictor's own pick, the user means that object of it)."""
    return (alpha * clicked_objects(rgb, positives)).astype(np.float32)

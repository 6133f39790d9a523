"""A simulated user's clicks on a photo with a known alpha (:mod:`clipmat.evaluation.real`).

The first click is positive, at the object's most interior point (the maximum of the distance
transform of alpha > 0.5); each next one is at the most interior point of the largest wrong
region of the current matte (thresholded at 0.5): positive where foreground was missed,
negative where background leaked in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

OBJECT_LEVEL = 0.5  # alpha above this is the object
MAX_CLICKS = 5  # the simulated user gives up after this many clicks

Point = tuple[float, float, bool]
ClickMatte = Callable[[np.ndarray, Sequence[Point]], np.ndarray]


def _interior(region: np.ndarray) -> tuple[int, int]:
    """(x, y) of the point of ``region`` (H, W) bool farthest from its outside."""
    padded = np.pad(region.astype(np.uint8), 1)  # the photo's edge counts as outside
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y)


def first_click(gt: np.ndarray) -> Point:
    """A positive click at the most interior point of the object (``gt`` (H, W) > 0.5)."""
    x, y = _interior(gt > OBJECT_LEVEL)
    return float(x), float(y), True


def next_click(pred: np.ndarray, gt: np.ndarray) -> Point | None:
    """The click at the centre of the largest wrong region of ``pred`` (H, W) against ``gt``:
    positive on missed foreground, negative on leaked background; None when nothing is wrong."""
    truth, guess = gt > OBJECT_LEVEL, pred > OBJECT_LEVEL
    best: tuple[int, tuple[int, int], bool] | None = None
    for wrong, positive in ((truth & ~guess, True), (guess & ~truth, False)):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(wrong.astype(np.uint8), 8)
        if count <= 1:
            continue
        label = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        area = int(stats[label, cv2.CC_STAT_AREA])
        if best is None or area > best[0]:
            best = (area, _interior(labels == label), positive)
    if best is None:
        return None
    (x, y), positive = best[1], best[2]
    return float(x), float(y), positive


def click_session(
    image: np.ndarray, gt: np.ndarray, matte: ClickMatte, max_clicks: int = MAX_CLICKS
) -> list[tuple[list[Point], np.ndarray]]:
    """A simulated user's clicks and the matte after each.

    Returns:
        [(clicks so far, alpha (H, W) float32), ...], at most ``max_clicks`` long (shorter
        when a matte has no wrong pixel left).
    """
    clicks: list[Point] = [first_click(gt)]
    session = []
    while True:
        alpha = np.asarray(matte(image, list(clicks)), np.float32)
        session.append((list(clicks), alpha))
        click = next_click(alpha, gt) if len(clicks) < max_clicks else None
        if click is None:
            return session
        clicks.append(click)

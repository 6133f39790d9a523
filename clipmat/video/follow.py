"""Following the referred object from frame to frame: the candidates that continue it.

The phrase (with the first frame's clicks or box) picks the object once. In each later frame the
predictor proposes its candidates for the phrase (:class:`clipmat.Candidate`, regions on its
grid) and the follower predicts where the object is now: its region of the previous frame pulled
along the optical flow, or, while it is merged with another object or hidden, its last whole
region moved at its last speed. It keeps the candidates that lie mostly inside that prediction,
else the one that overlaps it best. A choice much larger than the object, or one that moves
unlike it while an overlap lasts, holds something more (a look-alike passing over it): its
matte is cut to the prediction and the object's last whole region is kept; so is it when the
choice is much smaller than the object (the predictor saw a part of it only). With no candidate
there, the object is lost (an empty matte); from the next frame on, what lies where it was
predicted, else the phrase's own pick, is taken back when its colours are the object's.

Everything here works on the predictor's grid (a few dozen cells a side), so it costs little
beside the predictor. Choices and their measurements: ``docs/video.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from clipmat.video.steady import FlowField

MIN_IOU = 0.15  # the best candidate continues the object only above this IoU with the prediction
INSIDE = 0.5  # a candidate is part of the object when this share of it lies in the prediction
WHOLE_IOU = 0.4  # a choice is the whole object again when its IoU with the prediction is this
MERGED = 1.3  # a choice this many times the prediction's (or the whole object's) area holds more
SHRUNK = 0.5  # a choice under this share of the prediction's area is a part of the object only
SLACK = 1  # grid cells the prediction is widened by when candidates are tested against it
SPEED_MEMORY = 0.5  # the share of the previous speed kept at each whole sighting
SPEED_TOLERANCE = 1.5  # grid cells per frame a sighting may move unlike the object (during a cut)
SAME_COLOURS = 0.6  # a lost object is found again by a sure pick whose colours match this much
SURELY_SAME = 0.9  # ... or by any pick whose colours match this much
COLOUR_MEMORY = 0.9  # the share of the known colours kept at each whole sighting
FULL_MEMORY = 0.95  # the share of the object's whole area remembered at each whole sighting
BINS = 4  # colour histogram bins per RGB channel


@dataclass
class Target:
    """What the follower knows of its object.

    Attributes:
        mask: (h, w) bool, its region on the grid when last seen whole.
        velocity: (2,) float32, its motion (dx, dy) in grid cells per frame.
        colours: (BINS**3,) float32, its colour histogram (sums to 1).
        since: frames since ``mask`` was seen (0 in the frame it was).
        lost: consecutive frames in which it was not found.
        full: its area (grid cells) when seen whole, slowly forgotten: one coming back into
            the frame grows up to it without looking merged with something else.
    """

    mask: np.ndarray
    velocity: np.ndarray
    colours: np.ndarray
    since: int = 0
    lost: int = 0
    full: float = 0.0


@dataclass
class Choice:
    """The follower's choice in one frame.

    Attributes:
        chosen: indices of the candidates the matte is made of.
        status: "followed" (the object, whole), "cut" (a choice cut to where the object is
            predicted), "lost", "found again" (the phrase's pick, after a loss), "searching"
            (the phrase found nothing yet) or "found" (its first sighting after that).
        window: (h, w) float32 in [0, 1] on the grid, the region the matte is cut to, or None.
    """

    chosen: set[int]
    status: str
    window: np.ndarray | None = None


def colour_histogram(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(BINS**3,) float32 histogram (sums to 1) of the (h, w, 3) uint8 colours under the (h, w)
    bool ``mask``; uniform when the mask is empty."""
    pixels = rgb[mask].astype(np.int32) * BINS // 256
    if not len(pixels):
        return np.full(BINS**3, 1.0 / BINS**3, np.float32)
    index = (pixels[:, 0] * BINS + pixels[:, 1]) * BINS + pixels[:, 2]
    hist = np.bincount(index, minlength=BINS**3).astype(np.float32)
    return hist / hist.sum()


def colour_match(p: np.ndarray, q: np.ndarray) -> float:
    """The Bhattacharyya coefficient of two histograms, in [0, 1] (1: the same colours)."""
    return float(np.sqrt(p * q).sum())


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def _shift(mask: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """(h, w) bool ``mask`` moved by ``offset`` = (dx, dy) grid cells; what leaves is lost."""
    matrix = np.float32([[1, 0, offset[0]], [0, 1, offset[1]]])
    height, width = mask.shape
    moved = cv2.warpAffine(mask.astype(np.uint8), matrix, (width, height), flags=cv2.INTER_NEAREST)
    return moved > 0


def _widen(mask: np.ndarray, cells: int) -> np.ndarray:
    kernel = np.ones((2 * cells + 1, 2 * cells + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


@dataclass
class Follower:
    """Chooses, frame after frame, the candidates that continue one object (see the module's
    docstring): :meth:`start` on the first frame's matte, then :meth:`choose` and
    :meth:`update` on each later frame."""

    target: Target | None = None
    _prediction: np.ndarray | None = field(default=None, repr=False)

    def start(self, region: np.ndarray, core: np.ndarray, rgb: np.ndarray) -> None:
        """Take the (h, w) bool grid ``region`` (the chosen candidates, or the matte) as the
        object, its colours read where the (h, w) bool ``core`` of its matte is, on the frame's
        (h, w, 3) uint8 ``rgb`` at grid size (nothing when the region is empty)."""
        if region.any():
            colours = colour_histogram(rgb, (core & region) if (core & region).any() else region)
            self.target = Target(region, np.zeros(2, np.float32), colours, full=region.sum())

    def predict(self, field: FlowField | None) -> np.ndarray:
        """(h, w) bool: where the object should be in this frame."""
        t = self.target
        if t.since == 1 and field is not None:  # seen whole in the previous frame
            return field.warp(t.mask.astype(np.float32)) > 0.5
        return _shift(t.mask, t.velocity * t.since)

    def choose(
        self,
        masks: list[np.ndarray],
        picked: set[int],
        rgb: np.ndarray,
        field: FlowField | None,
        sure: bool = True,
        core: np.ndarray | None = None,
    ) -> Choice:
        """The candidates that continue the object in this frame.

        Args:
            masks: each candidate's (h, w) bool region on the grid.
            picked: the candidates the phrase picks on its own (the predictor's choice).
            rgb: (h, w, 3) uint8, the frame at grid size.
            field: the flow from this frame back to the previous one, or None.
            sure: whether the predictor is sure of its pick.
            core: (h, w) bool, where the predictor's own matte is above 0.5 (colours are
                compared there), or None.
        """
        if self.target is None:
            return Choice(set(picked), "found" if picked else "searching")
        t = self.target
        t.since += 1
        prediction = self._prediction = self.predict(field)
        wide = _widen(prediction, SLACK)
        inside = {
            i for i, m in enumerate(masks) if m.any() and (m & wide).mean() >= INSIDE * m.mean()
        }
        if not inside and masks:
            best = max(range(len(masks)), key=lambda i: _iou(masks[i], prediction))
            inside = {best} if _iou(masks[best], prediction) >= MIN_IOU else set()
        if t.lost:
            return self._found_again(masks, inside or picked, rgb, sure, core)
        if not inside:
            t.lost = 1
            return Choice(set(), "lost")
        region = np.logical_or.reduce([masks[i] for i in inside])
        if self._whole(region, prediction, field):
            return Choice(inside, "followed")
        window = cv2.GaussianBlur(wide.astype(np.float32), (3, 3), 0)
        return Choice(inside, "cut", window)

    def _whole(self, region: np.ndarray, prediction: np.ndarray, field: FlowField | None) -> bool:
        """Whether ``region`` is the whole object alone: neither much larger nor much smaller
        than predicted (a look-alike merged in; a predictor that saw a part only), overlapping
        the prediction and, while a cut lasts, moving as the object did."""
        t = self.target
        area, expected = region.sum(), max(1, prediction.sum())
        if area > MERGED * max(expected, t.full) or area < SHRUNK * expected:
            return False
        if t.since > 1:
            if _iou(region, prediction) < WHOLE_IOU:
                return False
            if field is not None:
                gap = np.abs(field.motion(region) - t.velocity).max()
                return bool(gap <= max(SPEED_TOLERANCE, 0.75 * np.abs(t.velocity).max()))
        return True

    def _found_again(
        self,
        masks: list[np.ndarray],
        options: set[int],
        rgb: np.ndarray,
        sure: bool,
        core: np.ndarray | None,
    ) -> Choice:
        """The object was lost: ``options`` (what lies where it was predicted, else the
        phrase's pick) when their colours are the object's (``SURELY_SAME``, or
        ``SAME_COLOURS`` for a pick the predictor is sure of), else lost still."""
        t = self.target
        if options:
            region = np.logical_or.reduce([masks[i] for i in options])
            if core is not None and (core & region).any():
                region = core & region
            match = colour_match(colour_histogram(rgb, region), t.colours)
            if match >= SURELY_SAME or (sure and match >= SAME_COLOURS):
                return Choice(set(options), "found again")
        t.lost += 1
        return Choice(set(), "lost")

    def update(
        self,
        choice: Choice,
        masks: list[np.ndarray],
        core: np.ndarray,
        rgb: np.ndarray,
        field: FlowField | None,
    ) -> None:
        """Learn from the frame: the candidates' (h, w) bool ``masks``, the (h, w) bool ``core``
        of its final matte (alpha above 0.5) and the (h, w, 3) uint8 frame at grid size."""
        if choice.status in ("searching", "lost", "cut") or not choice.chosen:
            return
        region = np.logical_or.reduce([masks[i] for i in choice.chosen])
        if self.target is None:
            self.start(region, core, rgb)
            return
        t = self.target
        if choice.status == "followed" and t.since >= 1:
            moved = field.motion(region) if field is not None else np.zeros(2, np.float32)
            t.velocity = (SPEED_MEMORY * t.velocity + (1 - SPEED_MEMORY) * moved).astype(np.float32)
        if choice.status == "found again":
            t.velocity = np.zeros(2, np.float32)
        colours = colour_histogram(rgb, core & region)
        t.colours = COLOUR_MEMORY * t.colours + (1 - COLOUR_MEMORY) * colours
        t.mask, t.since, t.lost = region, 0, 0
        t.full = max(float(region.sum()), FULL_MEMORY * t.full)

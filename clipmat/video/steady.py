"""Motion between frames and a steady matte: OpenCV's DIS optical flow, the previous matte
warped along it, and a blend of the two where the frames agree.

The flow is computed once per frame on a small grey copy (``FLOW_SIDE`` pixels on the long
side) from the current frame back to the previous one, so that any array of the previous frame
(a matte, a region on the predictor's grid) can be pulled into the current one with
``cv2.remap`` (:meth:`FlowField.warp`). The follower uses it to predict where its object is
(:mod:`clipmat.video.follow`); :func:`steady_alpha` uses it to keep still edges still.
Choices and their measurements: ``docs/video.md``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np

FLOW_SIDE = 256  # long side of the grey frames the flow is computed on
AGREE_LEVELS = 12.0  # grey levels (of 255) at which two frames' pixels stop agreeing
STILL_LEVELS = 1.0  # a pixel is still when not moving explains it within this many grey levels
STEADY = 0.6  # the previous matte's weight where the frames agree and the mattes are close
GATE = 1.0  # an alpha change this large is a real change: the new matte is taken as it is


@dataclass
class FlowField:
    """The backward flow of one frame: for each pixel of the current frame, where it was in
    the previous one, and how well the two frames agree there.

    Attributes:
        flow: (h, w, 2) float32 displacement (dx, dy) in pixels of the flow grid: the pixel
            (x, y) of the current frame was at (x + dx, y + dy) in the previous one.
        agreement: (h, w) float32 in [0, 1], 1 where the previous frame, warped, matches the
            current one.
        still_flow: (h, w, 2) float32, the flow set to zero where the two frames match as well
            without motion (sensor noise, flat areas): the matte is held along it.
    """

    flow: np.ndarray
    agreement: np.ndarray
    still_flow: np.ndarray | None = None
    _sized: dict = field(default_factory=dict, repr=False)

    def _at(self, size: tuple[int, int], still: bool = False) -> np.ndarray:
        """The flow (``still``: :attr:`still_flow`) resized to ``size`` = (H, W), its vectors
        scaled to those pixels (computed once per size)."""
        source = self.still_flow if still and self.still_flow is not None else self.flow
        height, width = size
        h, w = source.shape[:2]
        if (height, width) == (h, w):
            return source
        key = (height, width, still)
        if key not in self._sized:
            flow = cv2.resize(source, (width, height), interpolation=cv2.INTER_LINEAR)
            self._sized[key] = flow * np.array([width / w, height / h], np.float32)
        return self._sized[key]

    def warp(self, image: np.ndarray, *, nearest: bool = False, still: bool = False) -> np.ndarray:
        """``image`` of the previous frame ((H, W) or (H, W, C), any size) pulled into the
        current frame, same shape and dtype; what comes from outside the frame is 0. With
        ``still``, pixels that match without motion do not move (:attr:`still_flow`)."""
        height, width = image.shape[:2]
        flow = self._at((height, width), still)
        xs, ys = _pixel_grid(height, width)
        mode = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        return cv2.remap(
            image, xs + flow[..., 0], ys + flow[..., 1], mode, borderMode=cv2.BORDER_CONSTANT
        )

    def agreement_at(self, size: tuple[int, int]) -> np.ndarray:
        """(H, W) float32 agreement resized to ``size``."""
        height, width = size
        return cv2.resize(self.agreement, (width, height), interpolation=cv2.INTER_LINEAR)

    def motion(self, mask: np.ndarray) -> np.ndarray:
        """The median motion (dx, dy) from the previous frame to this one of the pixels of
        ``mask`` ((h, w) bool, on any grid), in that grid's pixels; zeros for an empty mask."""
        if not mask.any():
            return np.zeros(2, np.float32)
        flow = self._at(mask.shape)
        return -np.median(flow[mask], axis=0).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) float32 x and y coordinates of every pixel (read-only, shared)."""
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys


class FlowEstimator:
    """DIS optical flow (``cv2.DISOpticalFlow``, ultrafast preset) between consecutive frames.

    Args:
        side: the long side, in pixels, of the grey copies the flow is computed on.
    """

    def __init__(self, side: int = FLOW_SIDE) -> None:
        self.side = side
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self._previous: np.ndarray | None = None

    def _grey(self, rgb: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        scale = min(1.0, self.side / max(height, width))
        size = (max(8, round(width * scale)), max(8, round(height * scale)))
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return cv2.resize(grey, size, interpolation=cv2.INTER_AREA) if scale < 1 else grey

    def __call__(self, rgb: np.ndarray) -> FlowField | None:
        """The flow from the (H, W, 3) uint8 frame ``rgb`` back to the previous one given
        (None for the first)."""
        grey = self._grey(rgb)
        previous, self._previous = self._previous, grey
        if previous is None or previous.shape != grey.shape:
            return None
        flow = self._dis.calc(grey, previous, None)
        field = FlowField(flow, np.ones(grey.shape, np.float32))
        now, before = grey.astype(np.float32), previous.astype(np.float32)
        moved = np.abs(now - field.warp(before))
        still = np.abs(now - before)
        stay = still <= moved + STILL_LEVELS  # no motion explains the pixel as well: none
        field.still_flow = np.where(stay[..., None], np.float32(0.0), flow)
        error = np.where(stay, still, moved) / AGREE_LEVELS
        field.agreement = np.exp(-(error**2)).astype(np.float32)
        return field


def steady_alpha(
    alpha: np.ndarray,
    previous: np.ndarray | None,
    field: FlowField | None,
    weight: float = STEADY,
) -> np.ndarray:
    """The frame's matte held steady by the previous frame's (steadied) matte.

    The previous matte is warped into this frame along the flow and blended in with
    ``weight`` where the frames agree and the two mattes are close; where either differs (the
    object moved in a way the flow missed, or truly changed: a change of at least ``GATE``),
    the new matte is taken as it is.

    Args:
        alpha: (H, W) float32 in [0, 1], this frame's matte.
        previous: (H, W) float32, the previous frame's output matte, or None.
        field: the flow from this frame back to the previous one, or None.
        weight: the previous matte's weight in [0, 1); 0 returns ``alpha``.

    Returns:
        (H, W) float32 in [0, 1].
    """
    if previous is None or field is None or weight <= 0 or previous.shape != alpha.shape:
        return alpha
    warped = field.warp(previous, still=True)
    close = np.clip(1.0 - np.abs(alpha - warped) / GATE, 0.0, 1.0)
    w = weight * field.agreement_at(alpha.shape) * close
    return (alpha + w * (warped - alpha)).astype(np.float32)

"""``predict_video``: a phrase through a clip, one result per frame, the object followed and
its matte held steady, frames streamed.

Frames are taken one at a time from any iterable and each result is yielded before the next
frame is taken, so memory holds a few frames whatever the clip's length: the frame, the previous
frame's grey copy and matte, and the predictor's cache of encoded photos. The phrase is read
once (:func:`text_encoded_once`); each frame is encoded and decoded as
:meth:`clipmat.Predictor.predict` does, then :class:`clipmat.video.follow.Follower` keeps the
candidates that continue the object and :func:`clipmat.video.steady.steady_alpha` keeps its
still edges still.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import cv2
import numpy as np
import torch

from clipmat.predictors.results import MattingResult, check_box, check_points
from clipmat.video.follow import Choice, Follower
from clipmat.video.steady import STEADY, FlowEstimator, steady_alpha

_MEMO_LOCK = threading.Lock()
_MEMO_ATTRIBUTE = "_clipmat_text_memo"
MEMO_SIZE = 8  # phrases' token rows kept by the text memo
_NOTHING = object()


@dataclasses.dataclass
class FrameResult(MattingResult):
    """One frame's result from :func:`predict_video`: a :class:`clipmat.MattingResult` (alpha
    (H, W) float32 at the frame's size) with the frame's place and how the object was found.

    Attributes:
        index: the frame's number, from 0.
        status: "chosen" (the first frame: the phrase, clicks and box chose), "followed", "cut",
            "lost", "found again", "searching" or "found" (see
            :class:`clipmat.video.follow.Choice`); "per frame" when following is off.
    """

    index: int = 0
    status: str = ""


class _TextMemo:
    """A memo of a model's ``encode_text`` while videos run on it (keyed by the tokens, the
    autocast state and the predictor's precision), shared by the videos that run at once."""

    def __init__(self, encode: Callable[..., Any], predictor: Any) -> None:
        self.encode, self.predictor = encode, predictor
        self.users, self.calls, self.hits = 0, 0, 0
        self.replaced: Any = _NOTHING  # what the model's own attribute was (restored after)
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple, Any] = OrderedDict()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key = (
            _key(args),
            _key(sorted(kwargs.items())),
            torch.is_autocast_enabled(),
            str(getattr(self.predictor, "precision", "")),
        )
        with self._lock:
            if key in self._cache:
                self.hits += 1
                self._cache.move_to_end(key)
                return self._cache[key]
        out = self.encode(*args, **kwargs)
        with self._lock:
            self.calls += 1
            self._cache[key] = out
            while len(self._cache) > MEMO_SIZE:
                self._cache.popitem(last=False)
        return out


def _key(value: Any) -> Any:
    """A hashable key of a call's argument: tensors by shape, dtype and content, dataclasses
    (a model's token batch) and sequences by their parts, anything else by its repr."""
    if isinstance(value, torch.Tensor):
        data = value.detach().cpu().contiguous()
        return ("tensor", tuple(data.shape), str(data.dtype), data.numpy().tobytes())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return tuple(_key(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, (list, tuple)):
        return tuple(_key(v) for v in value)
    return repr(value)


@contextlib.contextmanager
def text_encoded_once(predictor: Any) -> Iterator[_TextMemo | None]:
    """While it lasts, a predictor whose model encodes text on every call (CLIPMat's
    ``model.encode_text``) encodes each phrase once: later calls with the same tokens reuse
    the features. Yields the memo (``calls``, ``hits``), or None for a predictor that caches
    its text features itself (the zero-shot predictor) or has no such model."""
    model = getattr(predictor, "model", None)
    if model is None or not callable(getattr(model, "encode_text", None)):
        yield None
        return
    with _MEMO_LOCK:
        memo = model.__dict__.get(_MEMO_ATTRIBUTE)
        if memo is None:
            memo = _TextMemo(model.encode_text, predictor)
            memo.replaced = model.__dict__.get("encode_text", _NOTHING)
            model.__dict__[_MEMO_ATTRIBUTE] = memo
            model.__dict__["encode_text"] = memo
        memo.users += 1
    try:
        yield memo
    finally:
        with _MEMO_LOCK:
            memo.users -= 1
            if memo.users == 0:
                del model.__dict__[_MEMO_ATTRIBUTE]
                if memo.replaced is _NOTHING:
                    model.__dict__.pop("encode_text", None)
                else:
                    model.__dict__["encode_text"] = memo.replaced


def _check_frame(frame: Any, size: tuple[int, int] | None, index: int) -> np.ndarray:
    """A frame as an (H, W, 3) uint8 array of the clip's size.

    Raises:
        ValueError: for anything else, saying which frame.
    """
    rgb = np.asarray(frame)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(
            f"frame {index}: expected an HxWx3 uint8 array, got {rgb.dtype} {rgb.shape}"
        )
    if size is not None and rgb.shape[:2] != size:
        raise ValueError(
            f"frame {index} is {rgb.shape[1]}x{rgb.shape[0]}, "
            f"the clip's first is {size[1]}x{size[0]}"
        )
    return rgb


def _trimap(alpha: np.ndarray) -> np.ndarray:
    """(H, W) uint8 trimap of a matte: 0 background, 128 transition, 255 foreground."""
    trimap = np.full(alpha.shape, 128, np.uint8)
    trimap[alpha <= 0.02] = 0
    trimap[alpha >= 0.98] = 255
    return trimap


def _grid_of(result: MattingResult, alpha: np.ndarray) -> tuple[int, int]:
    """The predictor's grid (h, w): its candidates' masks, else about 64 cells a side."""
    if result.candidates:
        return result.candidates[0].mask.shape
    height, width = alpha.shape
    scale = 64 / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _at(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """``image`` resized to ``size`` = (h, w) (area, or nearest, when shrinking)."""
    mode = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    if image.shape[0] < size[0]:
        mode = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.resize(image, (size[1], size[0]), interpolation=mode)


def chosen_alpha(
    predictor: Any,
    rgb: np.ndarray,
    phrase: str,
    options: dict[str, Any],
    result: MattingResult,
    choice: Choice,
) -> np.ndarray:
    """(H, W) float32: the matte of the candidates ``choice`` keeps, cut to its window.

    Candidates of the predictor's own pick are cut out of ``result.alpha`` (their region
    widened by one grid cell); any other is matted by ``predictor.predict(..., candidate=k)``
    (its features cached: the frame is not encoded again).
    """
    size = rgb.shape[:2]
    own = {i for i, c in enumerate(result.candidates) if c.chosen}
    if choice.chosen == own:
        alpha = result.alpha
    else:
        alpha = np.zeros(size, np.float32)
        keep = choice.chosen & own
        if keep:
            region = np.logical_or.reduce([result.candidates[i].mask for i in keep])
            grown = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8))
            alpha = result.alpha * _at(grown.astype(np.float32), size)
        for k in sorted(choice.chosen - own):
            other = predictor.predict(rgb, phrase, candidate=k, **options)
            alpha = np.maximum(alpha, other.alpha)
    if choice.window is not None:
        alpha = alpha * _at(choice.window, size)
    return np.asarray(alpha, np.float32)


def _follow(
    follower: Follower,
    predictor: Any,
    rgb: np.ndarray,
    phrase: str,
    options: dict[str, Any],
    result: MattingResult,
    field: Any,
    index: int,
) -> tuple[np.ndarray, str]:
    """The frame's matte of the object followed, and how it was found."""
    grid = _grid_of(result, result.alpha)
    small = _at(rgb, grid)
    masks = [c.mask for c in result.candidates]
    picked = {i for i, c in enumerate(result.candidates) if c.chosen}
    core = _at(result.alpha, grid) > 0.5
    if index == 0:
        region = np.logical_or.reduce([masks[i] for i in picked]) if picked else core
        follower.start(region, core, small)
        return result.alpha, "chosen"
    choice = follower.choose(masks, picked, small, field, sure=not result.unsure, core=core)
    alpha = chosen_alpha(predictor, rgb, phrase, options, result, choice)
    follower.update(choice, masks, _at(alpha, grid) > 0.5, small, field)
    for i, c in enumerate(result.candidates):
        c.chosen = i in choice.chosen
    return alpha, choice.status


def _frame_result(
    result: MattingResult, alpha: np.ndarray, index: int, status: str, seconds: float
) -> FrameResult:
    """The yielded result: ``result`` with the video's matte, its trimap and the frame's place."""
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(MattingResult)}
    out = FrameResult(**fields, index=index, status=status)
    if alpha is not result.alpha:
        out.alpha, out.trimap = alpha, _trimap(alpha)
    if status in ("lost", "searching"):
        out.confidence = 0.0
        out.notes = [*out.notes, f"frame {index}: the object is not in this frame ({status})"]
    out.seconds = seconds
    return out


class LatestFrame:
    """The frames of a source, remembering the last one handed out (``frame``): what a writer
    pairs with the result :func:`predict_video` yields for it, as that reads frames lazily."""

    def __init__(self, frames: Iterable[np.ndarray]) -> None:
        self._frames: Iterable[np.ndarray] = frames
        self.frame: np.ndarray | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        for frame in self._frames:
            self.frame = frame
            yield frame


def predict_video(
    predictor: Any,
    frames: Iterable[Any],
    text: str,
    *,
    setting: str = "auto",
    refine: bool | None = None,
    points: Any = None,
    box: Any = None,
    follow: bool = True,
    steady: float = STEADY,
) -> Iterator[FrameResult]:
    """Matte the object a phrase names through a clip, one :class:`FrameResult` per frame.

    The phrase (and the first frame's clicks or box) picks the object on the first frame; each
    later frame keeps the candidates that continue it (:mod:`clipmat.video.follow`), and its
    matte is held steady where the frames agree (:mod:`clipmat.video.steady`). Frames are
    taken one at a time, each result is yielded before the next frame is read.

    Args:
        predictor: any :class:`clipmat.Predictor`.
        frames: an iterable of (H, W, 3) uint8 arrays, all of one size (a generator is fine).
        text: one phrase (not empty).
        setting, refine: as :meth:`clipmat.Predictor.predict`, for every frame.
        points, box: clicks and a box on the first frame, in its pixels (as ``predict``).
        follow: follow the object (False: each frame is the phrase's own pick).
        steady: the previous matte's weight where frames agree, in [0, 1) (0: off).

    Returns:
        A generator of results, alpha (H, W) float32 at the frames' size.

    Raises:
        ValueError: for an empty phrase, bad points, box or steady (now); for a frame that is
            not an (H, W, 3) uint8 array of the first frame's size (when it is reached).
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(
            "predict_video follows what a phrase names: give one phrase (a box or clicks on "
            "the first frame may say which of its objects)"
        )
    if not 0.0 <= float(steady) < 1.0:
        raise ValueError(f"steady is a weight in [0, 1), got {steady!r}")
    first = {"points": check_points(points), "box": check_box(box)}
    options = {"setting": setting, "refine": refine}
    return _stream(predictor, frames, text.strip(), options, first, follow, float(steady))


def _stream(
    predictor: Any,
    frames: Iterable[Any],
    phrase: str,
    options: dict[str, Any],
    first: dict[str, Any],
    follow: bool,
    steady: float,
) -> Iterator[FrameResult]:
    """The generator behind :func:`predict_video`."""
    follower, flows = Follower(), FlowEstimator()
    previous: np.ndarray | None = None
    size: tuple[int, int] | None = None
    with text_encoded_once(predictor):
        for index, frame in enumerate(frames):
            start = time.perf_counter()
            rgb = _check_frame(frame, size, index)
            size = rgb.shape[:2]
            field = flows(rgb) if follow or steady else None
            prompts = first if index == 0 else {}
            result = predictor.predict(rgb, phrase, **options, **prompts)
            alpha, status = result.alpha, "per frame"
            if follow:
                alpha, status = _follow(
                    follower, predictor, rgb, phrase, options, result, field, index
                )
            if status in ("lost", "found again", "found", "searching"):
                previous = None  # nothing to hold the matte to
            alpha = steady_alpha(alpha, previous, field, steady)
            previous = alpha
            yield _frame_result(result, alpha, index, status, time.perf_counter() - start)

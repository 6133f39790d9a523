"""The user's corrections of a matte: clicks, a box and a pick among the candidates.

They travel in the photo's own pixels (as uploaded, upright), so an API client gives the
coordinates it knows; the app mattes a photo scaled to at most MAX_SIDE, and
:meth:`Corrections.scaled` maps them there. Each value is checked twice with the same words: before
its job is queued (:mod:`clipmat_app.admission`, from the value alone) and after the photo is
read (against its size). Nothing here imports gradio.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

MAX_POINTS = 32  # clicks in one request
MAX_CANDIDATE = 63  # the highest candidate index accepted (the strip shows the first few)
MAX_JSON_CHARS = 4000  # points or a box sent as JSON text
POINTS_HINT = (
    f"points must be a list of at most {MAX_POINTS} clicks [x, y, positive] in the photo's pixels, "
    "positive true (add) or false (remove), e.g. [[120, 80, true], [300, 90, false]]"
)
BOX_HINT = (
    "box must be [x0, y0, x1, y1] in the photo's pixels with x0 < x1 and y0 < y1, "
    "e.g. [40, 30, 220, 200]"
)
CANDIDATE_HINT = (
    f"candidate must be a whole number from 0 to {MAX_CANDIDATE} (an index into the "
    "candidates of the last matte of this phrase), or empty"
)

Point = tuple[float, float, bool]
Box = tuple[float, float, float, float]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _decoded(value: Any) -> Any:
    """JSON text read as a value (API clients may send either); anything else as it is."""
    if isinstance(value, str):
        if not value.strip():
            return None
        if len(value) > MAX_JSON_CHARS:
            raise ValueError
        return json.loads(value)
    return value


def points_problem(value: Any) -> str | None:
    """Why ``value`` cannot be the clicks, or None (None, [] and "" mean no clicks)."""
    try:
        value = _decoded(value)
    except ValueError:
        return POINTS_HINT
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) > MAX_POINTS:
        return POINTS_HINT
    for point in value:
        if not isinstance(point, list | tuple) or len(point) != 3:
            return POINTS_HINT
        x, y, positive = point
        if not (_number(x) and _number(y) and x >= 0 and y >= 0):
            return POINTS_HINT
        if not (isinstance(positive, bool) or positive in (0, 1)):
            return POINTS_HINT
    return None


def box_problem(value: Any) -> str | None:
    """Why ``value`` cannot be the box, or None (None, [] and "" mean no box)."""
    try:
        value = _decoded(value)
    except ValueError:
        return BOX_HINT
    if value is None or (isinstance(value, list | tuple) and not value):
        return None
    if not isinstance(value, list | tuple) or len(value) != 4 or not all(map(_number, value)):
        return BOX_HINT
    x0, y0, x1, y1 = value
    if min(value) < 0 or x0 >= x1 or y0 >= y1:
        return BOX_HINT
    return None


def candidate_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a candidate index, or None (None means the automatic choice)."""
    if value is None:
        return None
    if not _number(value) or value != int(value) or not 0 <= value <= MAX_CANDIDATE:
        return CANDIDATE_HINT
    return None


@dataclass(frozen=True)
class Corrections:
    """Clicks, a box and a candidate, checked; coordinates in some photo's pixels.

    Attributes:
        points: ((x, y, positive), ...): a positive click adds what is under it, a negative
            click removes it.
        box: (x0, y0, x1, y1) or None: the object lies inside it.
        candidate: an index into the phrase's candidates, or None (the predictor's choice).
    """

    points: tuple[Point, ...] = ()
    box: Box | None = None
    candidate: int | None = None

    @classmethod
    def parse(cls, points: Any = None, box: Any = None, candidate: Any = None) -> Corrections:
        """Corrections from the API's values (see the hints above).

        Raises:
            ValueError: for a bad value, saying what is accepted.
        """
        for problem in (points_problem(points), box_problem(box), candidate_problem(candidate)):
            if problem:
                raise ValueError(problem)
        points, box = _decoded(points), _decoded(box)
        return cls(
            points=tuple((float(x), float(y), bool(p)) for x, y, p in points or ()),
            box=tuple(float(v) for v in box) if box else None,
            candidate=None if candidate is None else int(candidate),
        )

    @property
    def locate(self) -> bool:
        """Whether they say where an object is without a phrase: a box or a positive click."""
        return self.box is not None or any(p for _, _, p in self.points)

    @property
    def empty(self) -> bool:
        return not self.points and self.box is None and self.candidate is None

    def fitted(self, width: int, height: int) -> Corrections:
        """Checked against a photo of ``width`` x ``height``: every click on it, the box clipped
        to it (and not outside it).

        Raises:
            ValueError: for a click or a box outside the photo, saying its size.
        """
        for x, y, _ in self.points:
            if x >= width or y >= height:
                raise ValueError(
                    f"the click at ({x:g}, {y:g}) is outside the {width}x{height} photo; clicks "
                    f"are in the photo's pixels, x from 0 to {width - 1} and y from 0 to "
                    f"{height - 1}"
                )
        box = self.box
        if box is not None:
            x0, y0, x1, y1 = box
            if x0 >= width or y0 >= height:
                raise ValueError(
                    f"the box {list(map(_shown, box))} is outside the {width}x{height} photo; "
                    f"{BOX_HINT}"
                )
            box = (x0, y0, min(x1, float(width)), min(y1, float(height)))
        return Corrections(self.points, box, self.candidate)

    def scaled(self, sx: float, sy: float) -> Corrections:
        """The same corrections on the photo resized by ``sx`` across and ``sy`` down."""
        points = tuple((x * sx, y * sy, p) for x, y, p in self.points)
        box = None
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            box = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
        return Corrections(points, box, self.candidate)

    def as_json(self) -> dict[str, Any]:
        """The API's form: {"points": [[x, y, positive], ...], "box": [...] or None}."""
        return {
            "points": [[_shown(x), _shown(y), p] for x, y, p in self.points],
            "box": None if self.box is None else [_shown(v) for v in self.box],
        }

    def describe(self) -> str:
        """A few words for the status line: "2 clicks (1 remove), a box"."""
        parts = []
        if self.points:
            removes = sum(1 for _, _, p in self.points if not p)
            n = len(self.points)
            parts.append(f"{n} click{'s' * (n != 1)}" + (f" ({removes} remove)" if removes else ""))
        if self.box is not None:
            parts.append("a box")
        return ", ".join(parts)


def _shown(value: float) -> int | float:
    """A coordinate as JSON shows it: whole numbers without a fraction."""
    return int(value) if float(value).is_integer() else round(float(value), 2)

"""What predictors take and give: the photo, its encoding, the options, candidates, results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from clipmat.imageio import load_image
from clipmat.runtime import fingerprint

UNSURE_BELOW = 0.6  # confidence under which a grounding is reported as unsure
F = TypeVar("F")


@dataclass(frozen=True)
class Photo:
    """A photo with its content key, so that it is decoded and hashed once per request.

    Attributes:
        rgb: (H, W, 3) uint8 RGB, upright.
        key: a digest of its shape and every pixel (see :func:`clipmat.runtime.fingerprint`).
    """

    rgb: np.ndarray
    key: str

    @classmethod
    def load(cls, image: Any) -> Photo:
        """Any image :func:`clipmat.imageio.load_image` accepts (or a Photo, returned as is)."""
        if isinstance(image, Photo):
            return image
        rgb = load_image(image)
        return cls(rgb, fingerprint(rgb))


@dataclass(frozen=True)
class EncodedImage(Generic[F]):
    """A photo and its features, from :meth:`Predictor.set_image`; pass it to ``predict``
    instead of the photo to skip the lookup.

    Attributes:
        photo: the photo.
        features: what the predictor computed from it (predictor-specific).
        cached: True when the features came from the predictor's cache.
        predictor: name of the predictor that computed them.
        owner: the ``owner`` number of that predictor object (features are only valid there),
            unique in the process: unlike ``id()``, never reused by another predictor.
    """

    photo: Photo
    features: F
    cached: bool
    predictor: str
    owner: int = field(default=0, repr=False)


@dataclass
class Candidate:
    """A region of the photo that a phrase may refer to.

    Attributes:
        phrase: the phrase (a part of a union) it matches.
        score: in [0, 1], its share of the phrase among the candidates.
        box: (x0, y0, x1, y1) in photo pixels, end exclusive.
        mask: (h, w) bool at the predictor's working grid (see :meth:`mask_at`).
        area: its share of the photo, in [0, 1].
        chosen: True for the regions the matte is made of.
        similarity: the raw text-region similarity (or mean probability) the score comes from.
        in_matte: True when the predictor's own choice includes it.
    """

    phrase: str
    score: float
    box: tuple[int, int, int, int]
    mask: np.ndarray
    area: float
    chosen: bool
    similarity: float = 0.0
    in_matte: bool = False

    def mask_at(self, size: tuple[int, int]) -> np.ndarray:
        """The mask at ``size`` = (H, W) (nearest neighbour), bool."""
        import cv2

        height, width = size
        small = self.mask.astype(np.uint8)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST) > 0


def make_candidate(
    phrase: str,
    mask: np.ndarray,
    size: tuple[int, int],
    *,
    score: float,
    similarity: float,
    chosen: bool,
    in_matte: bool = False,
) -> Candidate:
    """A region on a predictor's grid as a :class:`Candidate`: its box in photo pixels and its
    area are read from the mask (every predictor builds its candidates here).

    Args:
        phrase: the phrase (a part of a union) it matches.
        mask: (h, w) bool, the region on the predictor's grid (not empty; copied).
        size: the photo's (H, W), for the box.
        score: in [0, 1], its share of the phrase among the candidates.
        similarity: the raw text-region similarity (or mean probability) the score comes from.
        chosen: True when the matte is made of it.
        in_matte: True when the predictor's own choice includes it.
    """
    ys, xs = np.nonzero(mask)
    sy, sx = size[0] / mask.shape[0], size[1] / mask.shape[1]
    box = (
        round(xs.min() * sx),
        round(ys.min() * sy),
        round((xs.max() + 1) * sx),
        round((ys.max() + 1) * sy),
    )
    return Candidate(
        phrase=phrase,
        score=float(score),
        box=box,
        mask=np.array(mask, bool),
        area=float(np.mean(mask)),
        chosen=bool(chosen),
        similarity=float(similarity),
        in_matte=bool(in_matte),
    )


def apply_choice(
    candidates: list[Candidate], chosen: frozenset[int] | None, phrase: str
) -> set[int]:
    """The indices of the candidates the matte is made of: the predictor's own choice (the
    ``chosen`` flags) when ``chosen`` is None, else ``chosen``, whose flags it sets.

    This is the one place where a candidate index is checked against the candidates (its type
    and sign are checked before the photo is encoded, see :meth:`Predictor.predict`).

    Raises:
        ValueError: for an index past the candidates, saying how many there are.
    """
    if chosen is None:
        return {i for i, c in enumerate(candidates) if c.chosen}
    bad = sorted(i for i in chosen if i >= len(candidates))
    if bad:
        count = len(candidates)
        there = f"{count} candidate{'' if count == 1 else 's'} (indices 0 to {count - 1})"
        raise ValueError(
            f"candidate {bad[0]} is out of range: {there if count else 'no candidates'} "
            f"for {phrase!r}"
        )
    for i, c in enumerate(candidates):
        c.chosen = i in chosen
    return set(chosen)


@dataclass
class MattingResult:
    """The matte of one phrase on one photo.

    Attributes:
        alpha: (H, W) float32 in [0, 1] at the input photo's resolution.
        text: the phrase (stripped of surrounding spaces).
        setting: "keyword" or "expression", how the phrase was read.
        confidence: in [0, 1]; how sure the predictor is of the region it picked (0 when empty).
        trimap: (H, W) uint8, 0 background, 128 transition, 255 foreground.
        predictor: name of the predictor that made it.
        image_cached: True when the photo's features were reused from an earlier call.
        seconds: wall time of the call that produced it (shared by a batch).
        candidates: the regions the phrase matches, when the predictor finds several.
        notes: what the user should know about how far to trust it.
        threshold: the confidence under which the result is ``unsure``.
        out_of_domain: the photo is far from what the weights were trained on.
        evidence: what the confidence was computed from (:mod:`clipmat.predictors.trust`; for
            calibration), None when the predictor does not say.
    """

    alpha: np.ndarray
    text: str
    setting: str
    confidence: float
    trimap: np.ndarray
    predictor: str
    image_cached: bool = False
    seconds: float = 0.0
    candidates: list[Candidate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    threshold: float = UNSURE_BELOW
    out_of_domain: bool = False
    evidence: np.ndarray | None = field(default=None, repr=False)

    @property
    def unsure(self) -> bool:
        """True when the grounding is doubtful: low confidence, an empty matte, or a photo
        unlike the images the weights were trained on (``out_of_domain``, see ``notes``)."""
        return self.confidence < self.threshold or self.out_of_domain


@dataclass(frozen=True)
class PredictOptions:
    """The keyword arguments of :meth:`Predictor.predict`, checked.

    ``chosen`` is set by the predictor's correction step: the candidates the matte is made of
    (``candidate`` is the user's single pick, and becomes ``chosen={candidate}``).
    """

    refine: bool | None = None
    candidate: int | None = None
    points: tuple[tuple[float, float, bool], ...] = ()
    box: tuple[float, float, float, float] | None = None
    chosen: frozenset[int] | None = None


def check_points(points: Any) -> tuple[tuple[float, float, bool], ...]:
    """[(x, y, positive), ...] -> a tuple of (float, float, bool); [] or None -> ().

    Raises:
        ValueError: for anything else, saying the accepted form.
    """
    if points is None or (isinstance(points, list | tuple) and not points):
        return ()
    if not isinstance(points, list | tuple | np.ndarray):
        raise ValueError(
            f"points must be a list of (x, y, positive) in photo pixels, got {points!r:.60}"
        )
    out = []
    for p in points:
        try:
            x, y, positive = p
            item = (float(x), float(y), bool(positive))
        except (TypeError, ValueError):
            raise ValueError(
                f"each point must be (x, y, positive) in photo pixels, got {p!r}"
            ) from None
        if not all(np.isfinite(item[:2])):
            raise ValueError(f"point coordinates must be finite numbers, got {p!r}")
        out.append(item)
    return tuple(out)


def check_box(box: Any) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) with x0 < x1 and y0 < y1 -> floats; None stays None.

    Raises:
        ValueError: for anything else, saying the accepted form.
    """
    if box is None:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"box must be (x0, y0, x1, y1) in photo pixels, got {box!r}") from None
    if not np.isfinite([x0, y0, x1, y1]).all() or x1 <= x0 or y1 <= y0:
        raise ValueError(f"box must have finite x0 < x1 and y0 < y1, got {box!r}")
    return x0, y0, x1, y1


def check_inside(options: PredictOptions, height: int, width: int) -> None:
    """The clicks lie on a photo of ``height`` x ``width`` pixels and the box overlaps it.

    Raises:
        ValueError: naming the click or box that misses the photo, and the photo's size.
    """
    for x, y, _ in options.points:
        if not (0 <= x <= width and 0 <= y <= height):
            raise ValueError(
                f"the click ({x:g}, {y:g}) is outside the photo ({width}x{height} pixels); "
                "clicks are in the photo's pixels, from (0, 0) at its top left"
            )
    if options.box is not None:
        x0, y0, x1, y1 = options.box
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            raise ValueError(
                f"the box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) does not overlap the photo "
                f"({width}x{height} pixels); boxes are in the photo's pixels"
            )

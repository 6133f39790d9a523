"""The one predictor interface: a photo of any size and phrases in, mattes at the photo's size out.

:class:`Predictor` owns what every predictor shares: loading the photo, one cache key per photo,
the cache of its features, batching of phrases, the keyword arguments every predictor takes and
their checks, timing, and the result type. A predictor (:class:`clipmat.CLIPMatPredictor`,
:class:`clipmat.ZeroShotPredictor`) implements only ``_encode`` (a photo's features, computed
once) and ``_predict`` (the mattes of some phrases from those features).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import torch

from clipmat.imageio import load_image
from clipmat.phrases import infer_setting
from clipmat.runtime import LRUCache, check_phrases, fingerprint, select_device

UNSURE_BELOW = 0.6  # confidence under which a grounding is reported as unsure
SETTINGS = ("auto", "keyword", "expression")
OPTIONS = ("refine", "candidate", "points", "box")  # what a predictor may or may not honour

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
        owner: ``id`` of that predictor object (features are only valid there).
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
        chosen: True for the region the matte is made of.
        similarity: the raw text-region similarity the score comes from.
    """

    phrase: str
    score: float
    box: tuple[int, int, int, int]
    mask: np.ndarray
    area: float
    chosen: bool
    similarity: float = 0.0

    def mask_at(self, size: tuple[int, int]) -> np.ndarray:
        """The mask at ``size`` = (H, W) (nearest neighbour), bool."""
        import cv2

        height, width = size
        small = self.mask.astype(np.uint8)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST) > 0


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

    @property
    def unsure(self) -> bool:
        """True when the grounding is doubtful (low confidence or an empty matte)."""
        return self.confidence < self.threshold


@dataclass(frozen=True)
class PredictOptions:
    """The keyword arguments of :meth:`Predictor.predict`, checked."""

    refine: bool | None = None
    candidate: int | None = None
    points: tuple[tuple[float, float, bool], ...] = ()
    box: tuple[float, float, float, float] | None = None


class Predictor(Generic[F]):
    """Base of every predictor: one interface, one image cache, one result type.

    Args:
        name: shown in results and in the app.
        licence: licence of the weights, shown to users.
        device: "auto", "cpu", "cuda", ...
        cache_size: how many photos' features to keep.
        domain: what the weights were trained on (e.g. "real photos").
    """

    honours: ClassVar[frozenset[str]] = frozenset({"refine"})  # options this predictor takes

    def __init__(
        self,
        *,
        name: str,
        licence: str = "",
        device: Any = "auto",
        cache_size: int = 4,
        domain: str = "",
    ) -> None:
        self.name = name
        self.licence = licence
        self.domain = domain
        self.device = select_device(device)
        self._cache: LRUCache[F] = LRUCache(cache_size)
        self.stats = {"image_encodes": 0, "cache_hits": 0}

    def _encode(self, photo: Photo) -> F:
        """The features of ``photo`` that every phrase on it reuses."""
        raise NotImplementedError

    def _predict(
        self,
        image: EncodedImage[F],
        phrases: list[str],
        settings: list[str],
        options: PredictOptions,
    ) -> list[MattingResult]:
        """One result per phrase (``seconds`` is filled in by :meth:`predict`)."""
        raise NotImplementedError

    @torch.inference_mode()
    def set_image(self, image: Any) -> EncodedImage[F]:
        """Load ``image`` and compute (or fetch from the cache) its features.

        Args:
            image: (H, W, 3) uint8 array, PIL image, path, bytes, a :class:`Photo` (its key is
                used as is) or an :class:`EncodedImage` of this predictor (returned as is).
        """
        if isinstance(image, EncodedImage):
            if image.owner == id(self):
                return dataclasses.replace(image, cached=True)  # computed by an earlier call
            image = image.photo
        photo = Photo.load(image)
        feats, hit = self._cache.get_or_put(photo.key, lambda: self._encode(photo))
        self.stats["cache_hits" if hit else "image_encodes"] += 1
        return EncodedImage(photo, feats, hit, self.name, id(self))

    def clear_cache(self) -> None:
        """Forget every cached photo's features."""
        self._cache.clear()

    @torch.inference_mode()
    def predict(
        self,
        image: Any,
        text: str | list[str],
        *,
        setting: str = "auto",
        refine: bool | None = None,
        candidate: int | None = None,
        points: Any = None,
        box: Any = None,
    ) -> MattingResult | list[MattingResult]:
        """Matte the entity that ``text`` refers to.

        Args:
            image: (H, W, 3) uint8 array, PIL image, path or bytes (RGBA, grayscale, 16-bit and
                EXIF-rotated inputs are converted, see :func:`clipmat.imageio.load_image`), a
                :class:`Photo` or an :class:`EncodedImage` from :meth:`set_image`.
            text: one phrase, or a list of phrases (batched; the photo is encoded once).
            setting: "keyword", "expression" or "auto" (a name, even of several words, is a
                keyword; see :func:`clipmat.phrases.infer_setting`).
            refine: re-matte the transition band in closed form at the photo's resolution; None
                takes the predictor's default.
            candidate: index into a previous result's ``candidates`` to matte instead of the
                automatic choice (one phrase, no union).
            points: [(x, y, positive), ...] clicks in photo pixels that fix a wrong pick.
            box: (x0, y0, x1, y1) in photo pixels: the object lies inside it.

        Returns:
            A :class:`MattingResult` per phrase (a list when ``text`` is a list).

        Raises:
            ValueError: for a bad phrase, setting or option, or an option this predictor
                cannot honour (the message says which and what it can do instead).
        """
        start = time.perf_counter()
        phrases = check_phrases(text)
        if setting not in SETTINGS:
            raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
        options = self._check_options(refine, candidate, points, box)
        settings = [infer_setting(p) if setting == "auto" else setting for p in phrases]
        encoded = self.set_image(image)
        if options.candidate is not None and len(phrases) > 1:
            raise ValueError("candidate= picks a region of one phrase; pass a single phrase")
        results = self._predict(encoded, phrases, settings, options)
        seconds = time.perf_counter() - start
        for r in results:
            r.seconds = seconds
        return results[0] if isinstance(text, str) else results

    def _check_options(self, refine: Any, candidate: Any, points: Any, box: Any) -> PredictOptions:
        given = {
            "refine": refine is not None,
            "candidate": candidate is not None,
            "points": bool(points),
            "box": box is not None,
        }
        refused = [k for k, v in given.items() if v and k not in self.honours]
        if refused:
            can = ", ".join(sorted(self.honours)) or "none"
            raise ValueError(
                f"the {self.name} predictor ({type(self).__name__}) cannot take "
                f"{', '.join(refused)}; the options it honours: {can}"
            )
        if candidate is not None and (not isinstance(candidate, int) or candidate < 0):
            raise ValueError(f"candidate must be a non-negative index, got {candidate!r}")
        return PredictOptions(
            refine=None if refine is None else bool(refine),
            candidate=candidate,
            points=check_points(points),
            box=check_box(box),
        )


def check_points(points: Any) -> tuple[tuple[float, float, bool], ...]:
    """[(x, y, positive), ...] -> a tuple of (float, float, bool); [] or None -> ().

    Raises:
        ValueError: for anything else, saying the accepted form.
    """
    if not points:
        return ()
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

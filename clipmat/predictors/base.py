"""The one predictor interface: a photo of any size and phrases in, mattes at the photo's size out.

:class:`Predictor` owns what every predictor shares: loading the photo, one cache key per photo,
the cache of its features, batching of phrases, the keyword arguments every predictor takes and
their checks (all of them before the photo is encoded), timing, the note on an empty matte, and
the result type. Clicks and a box (and a box or clicks with no phrase at all) are handed to
:mod:`clipmat.predictors.corrections`. A predictor (:class:`clipmat.CLIPMatPredictor`,
:class:`clipmat.ZeroShotPredictor`) implements only ``_encode`` (a photo's features, computed
once) and ``_predict`` (the mattes of some phrases from those features, made of the candidates
``options.chosen`` names when it is set; :func:`clipmat.predictors.results.apply_choice`).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Any, Generic

import numpy as np
import torch

from clipmat.phrases import infer_setting
from clipmat.predictors import corrections
from clipmat.predictors.results import (
    EncodedImage,
    F,
    MattingResult,
    Photo,
    PredictOptions,
    check_box,
    check_inside,
    check_points,
)
from clipmat.runtime import LRUCache, check_phrases, select_device

SETTINGS = ("auto", "keyword", "expression")
_OWNERS = itertools.count(1)  # predictors' owner numbers, never reused in a process
EMPTY_ALPHA = 0.05  # a matte whose highest alpha is below this is empty (a note says so)


class Predictor(Generic[F]):
    """Base of every predictor: one interface, one image cache, one result type.

    Args:
        name: shown in results and in the app.
        licence: licence of the weights, shown to users.
        device: "auto", "cpu", "cuda", ...
        cache_size: how many photos' features to keep.
        domain: what the weights were trained on (e.g. "real photos").
    """

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
        self.owner = next(_OWNERS)  # marks the EncodedImages this predictor computed
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
        """One result per phrase, with its candidates (``seconds`` is filled in by
        :meth:`predict`); when ``options.chosen`` is set, the matte is made of those
        (:func:`clipmat.predictors.results.apply_choice` checks them and sets the flags)."""
        raise NotImplementedError

    @torch.inference_mode()
    def set_image(self, image: Any) -> EncodedImage[F]:
        """Load ``image`` and compute (or fetch from the cache) its features.

        Args:
            image: (H, W, 3) uint8 array, PIL image, path, bytes, a :class:`Photo` (its key is
                used as is) or an :class:`EncodedImage` of this predictor (returned as is).
        """
        if isinstance(image, EncodedImage):
            if image.owner == self.owner:
                return dataclasses.replace(image, cached=True)  # computed by an earlier call
            image = image.photo
        photo = Photo.load(image)
        feats, hit = self._cache.get_or_put(photo.key, lambda: self._encode(photo))
        self.stats["cache_hits" if hit else "image_encodes"] += 1
        return EncodedImage(photo, feats, hit, self.name, self.owner)

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

        Every argument is checked before the photo is encoded: a refused call costs nothing.

        Args:
            image: (H, W, 3) uint8 array, PIL image, path or bytes (RGBA, grayscale, 16-bit and
                EXIF-rotated inputs are converted, see :func:`clipmat.imageio.load_image`), a
                :class:`Photo` or an :class:`EncodedImage` from :meth:`set_image`.
            text: one phrase, or a list of phrases (batched; the photo is encoded once). An
                empty phrase with a box or clicks mattes what they show with no model
                (:func:`clipmat.predictors.corrections.prompt_result`).
            setting: "keyword", "expression" or "auto" (a name, even of several words, is a
                keyword; see :func:`clipmat.phrases.infer_setting`).
            refine: re-matte the transition band in closed form at the photo's resolution; None
                takes the predictor's default.
            candidate: index into a previous result's ``candidates`` to matte instead of the
                automatic choice (one phrase, no union).
            points: [(x, y, positive), ...] clicks in photo pixels: positive clicks pick the
                candidates under them (or, on none, the object grown from the click) instead of
                the automatic choice; a negative click removes what is under it, and when that
                was the whole choice, the next best candidate takes its place
                (:func:`clipmat.predictors.corrections.corrected`).
            box: (x0, y0, x1, y1) in photo pixels: the object lies inside it.

        Returns:
            A :class:`MattingResult` per phrase (a list when ``text`` is a list), alpha and
            trimap (H, W) at the photo's size.

        Raises:
            ValueError: for a bad phrase, setting or option (the message says which), or a
                candidate past the phrase's candidates (it says how many there are).
        """
        start = time.perf_counter()
        options = check_options(setting, refine, candidate, points, box)
        prompted = bool(options.points) or options.box is not None
        alone = prompted and isinstance(text, str) and not text.strip()  # no phrase: no model
        phrases = [] if alone else check_phrases(text)
        if options.candidate is not None and len(phrases) > 1:
            raise ValueError("candidate= picks a region of one phrase; pass a single phrase")
        settings = [infer_setting(p) if setting == "auto" else setting for p in phrases]
        if prompted:  # the photo is read (not encoded) to check the clicks and box on it
            image = image if isinstance(image, EncodedImage) else Photo.load(image)
            photo = image.photo if isinstance(image, EncodedImage) else image
            check_inside(options, *photo.rgb.shape[:2])
        if alone:
            result = corrections.prompt_result(photo, options)
            result.seconds = time.perf_counter() - start
            return result
        encoded = self.set_image(image)
        if prompted:
            results = [
                corrections.corrected(encoded.photo.rgb, self._matter(encoded, p, s), options)
                for p, s in zip(phrases, settings, strict=True)
            ]
        else:
            results = self._predict(encoded, phrases, settings, options)
        _finish(results, time.perf_counter() - start)
        return results[0] if isinstance(text, str) else results

    def predict_video(self, frames: Any, text: str, **options: Any) -> Any:
        """Matte the object ``text`` names through a clip: a generator of one result per frame
        (alpha (H, W) float32 at the frames' size), the object followed and its matte held
        steady; frames (an iterable of (H, W, 3) uint8 arrays) are read one at a time.

        The options (``setting``, ``refine``, ``points`` and ``box`` on the first frame,
        ``follow``, ``steady``) are those of :func:`clipmat.video.predict_video`.
        """
        from clipmat.video.stream import predict_video

        return predict_video(self, frames, text, **options)

    def _matter(self, image: EncodedImage[F], phrase: str, setting: str) -> corrections.Matter:
        """One phrase's result on ``image`` under some options, for the corrections."""
        return lambda options: self._predict(image, [phrase], [setting], options)[0]


def _finish(results: list[MattingResult], seconds: float) -> None:
    """Give each result the call's wall time, and a note when its matte is empty."""
    for r in results:
        r.seconds = seconds
        if float(r.alpha.max(initial=0.0)) < EMPTY_ALPHA:
            r.notes.append(
                f"nothing in the photo matched {r.text!r}, so the matte is empty; try other "
                "words, a click on the object or a box around it"
            )


def check_options(
    setting: str, refine: Any, candidate: Any, points: Any, box: Any
) -> PredictOptions:
    """The keyword arguments of :meth:`Predictor.predict` that need no photo, checked.

    Raises:
        ValueError: for a setting not in ``SETTINGS``, a candidate that is not a non-negative
            integer, or badly formed points or box (:func:`check_points`, :func:`check_box`).
    """
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
    if candidate is not None:
        integer = isinstance(candidate, (int, np.integer)) and not isinstance(candidate, bool)
        if not integer or candidate < 0:
            raise ValueError(f"candidate must be a non-negative index, got {candidate!r}")
        candidate = int(candidate)
    return PredictOptions(
        refine=None if refine is None else bool(refine),
        candidate=candidate,
        points=check_points(points),
        box=check_box(box),
        chosen=None if candidate is None else frozenset({candidate}),
    )

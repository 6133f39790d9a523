"""The one predictor interface: a photo of any size and phrases in, mattes at the photo's size out.

:class:`Predictor` owns what every predictor shares: loading the photo, one cache key per photo,
the cache of its features, batching of phrases, the keyword arguments every predictor takes and
their checks, the user's corrections (a candidate, clicks, a box; and a box or clicks with no
phrase at all), timing, and the result type. A predictor (:class:`clipmat.CLIPMatPredictor`,
:class:`clipmat.ZeroShotPredictor`) implements only ``_encode`` (a photo's features, computed
once) and ``_predict`` (the mattes of some phrases from those features, made of the candidates
``options.chosen`` names when it is set).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, ClassVar, Generic

import numpy as np
import torch

from clipmat import interactive
from clipmat.phrases import infer_setting
from clipmat.refine import refine_alpha
from clipmat.results import (  # noqa: F401  (re-exported: the interface's types)
    UNSURE_BELOW,
    Candidate,
    EncodedImage,
    F,
    MattingResult,
    Photo,
    PredictOptions,
    check_box,
    check_points,
)
from clipmat.runtime import LRUCache, check_phrases, select_device

SETTINGS = ("auto", "keyword", "expression")
OPTIONS = ("refine", "candidate", "points", "box")  # what a predictor may or may not honour
PROMPT_ONLY = "box and clicks (no model)"  # the predictor named in a result with no phrase


class Predictor(Generic[F]):
    """Base of every predictor: one interface, one image cache, one result type.

    Args:
        name: shown in results and in the app.
        licence: licence of the weights, shown to users.
        device: "auto", "cpu", "cuda", ...
        cache_size: how many photos' features to keep.
        domain: what the weights were trained on (e.g. "real photos").
    """

    honours: ClassVar[frozenset[str]] = frozenset(OPTIONS)  # options this predictor takes

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
        """One result per phrase, with its candidates (``seconds`` is filled in by
        :meth:`predict`); when ``options.chosen`` is set, the matte is made of those."""
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
            text: one phrase, or a list of phrases (batched; the photo is encoded once). An
                empty phrase with a box or clicks mattes what they show with no model
                (:func:`clipmat.interactive.prompt_matte`).
            setting: "keyword", "expression" or "auto" (a name, even of several words, is a
                keyword; see :func:`clipmat.phrases.infer_setting`).
            refine: re-matte the transition band in closed form at the photo's resolution; None
                takes the predictor's default.
            candidate: index into a previous result's ``candidates`` to matte instead of the
                automatic choice (one phrase, no union).
            points: [(x, y, positive), ...] clicks in photo pixels: a positive click adds the
                candidate under it (or, on none, the object grown from it), a negative click
                removes what is under it.
            box: (x0, y0, x1, y1) in photo pixels: the object lies inside it.

        Returns:
            A :class:`MattingResult` per phrase (a list when ``text`` is a list).

        Raises:
            ValueError: for a bad phrase, setting or option, or an option this predictor
                cannot honour (the message says which and what it can do instead).
        """
        start = time.perf_counter()
        if setting not in SETTINGS:
            raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
        prompt_only = isinstance(text, str) and not text.strip()
        options = self._check_options(refine, candidate, points, box, model=not prompt_only)
        if prompt_only and (options.box is not None or options.points):
            result = self._prompt_result(image, options)
            result.seconds = time.perf_counter() - start
            return result
        phrases = check_phrases(text)
        settings = [infer_setting(p) if setting == "auto" else setting for p in phrases]
        encoded = self.set_image(image)
        if options.candidate is not None and len(phrases) > 1:
            raise ValueError("candidate= picks a region of one phrase; pass a single phrase")
        if options.points or options.box is not None:
            results = [self._corrected(encoded, p, s, options) for p, s in zip(phrases, settings)]
        else:
            results = self._predict(encoded, phrases, settings, options)
        seconds = time.perf_counter() - start
        for r in results:
            r.seconds = seconds
        return results[0] if isinstance(text, str) else results

    def _check_options(
        self, refine: Any, candidate: Any, points: Any, box: Any, *, model: bool = True
    ) -> PredictOptions:
        given = {
            "refine": refine is not None,
            "candidate": candidate is not None,
            "points": bool(points),
            "box": box is not None,
        }
        refused = [k for k, v in given.items() if v and model and k not in self.honours]
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
            chosen=None if candidate is None else frozenset({candidate}),
        )

    def _prompt_result(self, image: Any, options: PredictOptions) -> MattingResult:
        """The matte of a box and clicks alone (no phrase, no model)."""
        photo = image.photo if isinstance(image, EncodedImage) else Photo.load(image)
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

    def _corrected(
        self, image: EncodedImage[F], phrase: str, setting: str, options: PredictOptions
    ) -> MattingResult:
        """A phrase's matte after the user's clicks and box.

        A first pass gives the candidates (cheap: the photo's features are cached, no
        refinement); the clicks and box choose among them (:func:`interactive.choose_candidates`);
        a second pass mattes the chosen ones. Clicks on no candidate then correct that matte
        with a graph cut that starts from it, and the box clips it.
        """
        plain = dataclasses.replace(options, refine=False, points=(), box=None)
        first = self._predict(image, [phrase], [setting], plain)[0]
        masks = [c.mask for c in first.candidates]
        default = {i for i, c in enumerate(first.candidates) if c.chosen}
        if options.chosen is not None:
            default = set(options.chosen)
        size = image.photo.rgb.shape[:2]
        chosen, stray = interactive.choose_candidates(
            masks, default, size, points=options.points, box=options.box
        )
        final = dataclasses.replace(options, points=(), box=None, chosen=frozenset(chosen))
        result = self._predict(image, [phrase], [setting], final)[0]
        if stray:
            result.alpha, result.trimap = interactive.correct_matte(
                image.photo.rgb, result.alpha, box=options.box, points=stray
            )
            result.notes.append(f"{len(stray)} click(s) on no candidate: corrected by a graph cut")
        elif options.box is not None:
            clipped = result.alpha * interactive.box_window(size, options.box)
            if options.refine:
                clipped, result.trimap = refine_alpha(image.photo.rgb, clipped)
            result.alpha = clipped.astype(np.float32)
        return result

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
from clipmat.predictors.results import (  # noqa: F401  (re-exported: the interface's types)
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
from clipmat.refine import refine_alpha
from clipmat.runtime import LRUCache, check_phrases, select_device

SETTINGS = ("auto", "keyword", "expression")
OPTIONS = ("refine", "candidate", "points", "box")  # what a predictor may or may not honour
PROMPT_ONLY = "box and clicks (no model)"  # the predictor named in a result with no phrase
EMPTIED = 0.1  # negative clicks that leave less than this share of the matte's mass empty it
MOSTLY = 0.5  # negative clicks that leave less than this share took the matte's main object
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
            points: [(x, y, positive), ...] clicks in photo pixels: positive clicks pick the
                candidates under them (or, on none, the object grown from the click) instead of
                the automatic choice; a negative click removes what is under it, and when that
                was the whole choice, the next best candidate takes its place
                (:func:`clipmat.interactive.choose_candidates`).
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
            if float(r.alpha.max(initial=0.0)) < EMPTY_ALPHA:
                r.notes.append(
                    f"nothing in the photo matched {r.text!r}, so the matte is empty; try other "
                    "words, a click on the object or a box around it"
                )
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
        refinement); the box and positive clicks choose among them
        (:func:`interactive.choose_candidates`) and a second pass mattes the chosen ones. Then,
        in order: positive clicks on no candidate grow the matte by a graph cut that starts
        from it; positive clicks that all land on the predictor's own pick keep only the
        objects under them; negative clicks take out the objects under them
        (:meth:`_clicked_away`); the box clips the matte; what changed is re-matted at its
        edges when ``refine`` asks for it.
        """
        plain = dataclasses.replace(options, refine=False, points=(), box=None)
        first = self._predict(image, [phrase], [setting], plain)[0]
        masks = [c.mask for c in first.candidates]
        default = {i for i, c in enumerate(first.candidates) if c.chosen}
        if options.chosen is not None:
            default = set(options.chosen)
        rgb = image.photo.rgb
        size = rgb.shape[:2]
        chosen, stray = interactive.choose_candidates(
            masks, default, size, points=options.points, box=options.box
        )
        same = chosen == default and not options.refine
        result = first if same else self._matte_of(image, phrase, setting, options, chosen)
        alpha = result.alpha
        positives = [p for p in options.points if p[2]]
        on_pick = [
            p for p in positives if any(interactive.hit(masks[i], size, *p[:2]) for i in default)
        ]
        if stray:
            alpha, result.trimap = interactive.correct_matte(
                rgb, alpha, box=options.box, points=stray
            )
            result.notes.append(f"{len(stray)} click(s) on no candidate: the matte was grown there")
        elif positives and len(on_pick) == len(positives):
            alpha = interactive.keep_clicked(rgb, alpha, positives)
            result.notes.append("the click(s) on the pick kept the object(s) under them")
        if len(positives) < len(options.points):
            alpha = self._clicked_away(image, phrase, setting, options, result, alpha, masks)
        if options.box is not None:
            alpha = alpha * interactive.box_window(size, options.box)
        if alpha is not result.alpha and options.refine and (alpha > 0.5).any():
            alpha, result.trimap = refine_alpha(rgb, alpha)
        result.alpha = alpha.astype(np.float32)
        if not (result.alpha > 0.5).any():
            result.confidence = 0.0
        return result

    def _clicked_away(
        self,
        image: EncodedImage[F],
        phrase: str,
        setting: str,
        options: PredictOptions,
        result: MattingResult,
        alpha: np.ndarray,
        masks: list[np.ndarray],
    ) -> np.ndarray:
        """``alpha`` without the objects under the negative clicks.

        When they take away most of it and no positive click says what to keep, the matte
        is what else the predictor saw: the best candidate that was neither the pick nor
        clicked (``result`` takes its candidates, trimap and confidence), else the rest of the
        picked regions (the click may have split a region that held two objects), cut and
        matted anew.
        """
        rgb = image.photo.rgb
        negatives = [p for p in options.points if not p[2]]
        removed = interactive.clicked_objects(rgb, negatives)
        kept = (alpha * (1.0 - removed)).astype(np.float32)
        if kept.sum() > MOSTLY * alpha.sum() or len(negatives) < len(options.points):
            return kept if kept.sum() > EMPTIED * alpha.sum() else np.zeros_like(kept)
        size = rgb.shape[:2]
        clicked = {
            c
            for c, m in enumerate(masks)
            for x, y, _ in negatives
            if interactive.hit(m, size, x, y)
        }
        picked = {c for c, cand in enumerate(result.candidates) if cand.chosen}
        rest = [c for c in range(len(masks)) if c not in clicked | picked]
        if rest:
            fresh = self._matte_of(image, phrase, setting, options, {rest[0]})
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

    def _matte_of(
        self,
        image: EncodedImage[F],
        phrase: str,
        setting: str,
        options: PredictOptions,
        chosen: set[int],
    ) -> MattingResult:
        """The phrase's result made of the candidates ``chosen``."""
        final = dataclasses.replace(options, points=(), box=None, chosen=frozenset(chosen))
        return self._predict(image, [phrase], [setting], final)[0]

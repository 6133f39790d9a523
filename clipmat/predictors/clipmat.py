"""CLIPMatPredictor: the paper's model behind the common predictor interface.

Image features are computed once per photo and reused for every phrase on it: the CLIP image
tower, the details extractor and the details decoder take no text, so a new phrase costs only the
text tower, the pop-up and the semantic decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from clipmat import refine
from clipmat.model.clipmat import CLIPMat, CLIPMatOutput, ImageFeatures
from clipmat.model.decoders import BACKGROUND
from clipmat.precision import apply_precision, check_device, precision_of
from clipmat.predictors.base import Predictor
from clipmat.predictors.results import (
    Candidate,
    EncodedImage,
    MattingResult,
    Photo,
    PredictOptions,
    apply_choice,
    make_candidate,
)
from clipmat.predictors.trust import Trust, confidence_features, image_features
from clipmat.refine import refine_alpha
from clipmat.runtime import autocast
from clipmat.transforms import labels_to_input_size, model_input_size, to_input_size, to_model_input

_TRIMAP_LEVELS = np.array([0, 128, 255], np.uint8)  # background, transition, foreground
CANDIDATE_LEVEL = 0.25  # regions with foreground probability above this are candidates
MIN_CANDIDATE_SHARE = 0.002  # smaller regions (share of the map) are not offered
MATTING_SIDE = 768  # long side at which a candidate the model left out is matted


@dataclass
class _Encoded:
    model: ImageFeatures  # what the model computed from the photo
    in_world: float | None  # the domain check's probability that the photo is in its world


class CLIPMatPredictor(Predictor[_Encoded]):
    """Wraps any CLIPMat model, random or trained.

    Honours ``refine`` (default False: the model's own alpha).

    Args:
        model: the network.
        name: shown in results and in the app.
        licence: licence of the weights, shown to users.
        device: "auto", "cpu", "cuda", ...; the model is moved there.
        cache_size: how many photos' features to keep.
        domain: what the weights were trained on.
        trust: the weights' calibrated confidence and domain check (:mod:`clipmat.predictors.trust`);
            without it the confidence is the mean foreground probability of the chosen region
            and the unsure threshold 0.6.
        precision: "fp32", or a faster CPU path for the CLIP towers, "bf16", "int8" or "onnx"
            (:func:`clipmat.precision.apply_precision`; the model itself is not changed). A
            model converted beforehand keeps its precision (a bf16 one gets its autocast).
    """

    def __init__(
        self,
        model: CLIPMat,
        *,
        name: str = "custom",
        licence: str = "",
        device: Any = "auto",
        cache_size: int = 4,
        domain: str = "",
        trust: Trust | None = None,
        precision: str = "fp32",
    ) -> None:
        super().__init__(
            name=name, licence=licence, device=device, cache_size=cache_size, domain=domain
        )
        check_device(precision, self.device)
        self.model = apply_precision(model.to(self.device).eval(), precision)
        self.precision = precision_of(self.model)  # also for a model converted beforehand
        self.trust = trust

    def set_precision(self, precision: str) -> None:
        """Convert this predictor's fp32 towers to ``precision`` in place (no copy of the model:
        for a predictor that was loaded at fp32); cached photos are forgotten."""
        check_device(precision, self.device)
        self.model = apply_precision(self.model, precision, inplace=True)
        self.precision = precision_of(self.model)
        self.clear_cache()

    def _encode(self, photo: Photo) -> _Encoded:
        cfg = self.model.cfg
        rgb = photo.rgb
        size = model_input_size(*rgb.shape[:2], short_side=cfg.image_size, multiple=cfg.patch_size)
        images = to_model_input(rgb, size).to(self.device)
        backbone = self.model.backbone
        with autocast(self.device, self.precision):
            if self.trust is None or self.trust.domain is None:
                return _Encoded(self.model.encode_image(images), None)
            x = backbone.normalize(images)
            levels = backbone.encode_image_levels(x)  # one pass for the model and the check
            feats = self.model.encode_image(images, levels=levels)
            in_world = float(self.trust.domain(image_features(backbone, x, levels)))
        return _Encoded(feats, in_world)

    def _predict(
        self,
        image: EncodedImage[ImageFeatures],
        phrases: list[str],
        settings: list[str],
        options: PredictOptions,
    ) -> list[MattingResult]:
        out = self._decode(image.features.model, phrases, settings)
        prob = out.semantic_logits.float().softmax(dim=1).cpu().numpy()  # (B, 3, h, w)
        alpha = out.alpha.float()[:, 0].cpu().numpy()  # (B, h, w)
        return [
            self._result(image, phrase, settings[i], prob[i], alpha[i], options)
            for i, phrase in enumerate(phrases)
        ]

    def _result(
        self,
        image: EncodedImage[ImageFeatures],
        phrase: str,
        setting: str,
        prob: np.ndarray,
        alpha: np.ndarray,
        options: PredictOptions,
    ) -> MattingResult:
        """One phrase's result from its semantic probabilities (3, h, w) and alpha (h, w) at
        model resolution: the candidates, the matte of the chosen ones, the confidence."""
        rgb = image.photo.rgb
        size = rgb.shape[:2]
        labels = prob.argmax(axis=0)
        candidates = semantic_candidates(1.0 - prob[BACKGROUND], labels != BACKGROUND, phrase, size)
        chosen = apply_choice(candidates, options.chosen, phrase)
        full_alpha, region = self._chosen_alpha(rgb, prob, alpha, candidates, chosen)
        trimap = labels_to_input_size(_TRIMAP_LEVELS[np.where(region, labels, BACKGROUND)], size)
        if options.refine:
            full_alpha, trimap = refine_alpha(rgb, full_alpha)
        result = MattingResult(
            alpha=full_alpha,
            text=phrase,
            setting=setting,
            confidence=0.0,
            trimap=trimap,
            predictor=self.name,
            image_cached=image.cached,
            candidates=candidates,
        )
        self._judge(result, prob, region, image.features.in_world)
        return result

    def _judge(
        self, result: MattingResult, prob: np.ndarray, region: np.ndarray, in_world: float | None
    ) -> None:
        """Fill ``result``'s evidence, confidence, threshold and domain verdict from the
        semantic map (3, h, w) over the chosen ``region`` (h, w) and the photo's domain score."""
        chosen = sum(c.score for c in result.candidates if c.chosen)
        result.evidence = confidence_features(prob, region, chosen, len(result.candidates))
        if self.trust is None or self.trust.confidence is None:
            result.confidence = float(result.evidence[0])  # mean foreground probability
        elif region.any():
            result.confidence = float(self.trust.confidence(result.evidence))
            result.threshold = self.trust.threshold
        if in_world is not None and in_world < self.trust.domain_threshold:
            result.out_of_domain = True
            result.notes.append(
                f"{self.trust.domain_note} (in-world score {in_world:.3f}, threshold "
                f"{self.trust.domain_threshold:.3f})"
            )

    def _chosen_alpha(
        self,
        rgb: np.ndarray,
        prob: np.ndarray,
        alpha: np.ndarray,
        candidates: list[Candidate],
        chosen: set[int],
    ) -> tuple[np.ndarray, np.ndarray]:
        """(alpha at the photo's size, the chosen region (h, w) at model resolution).

        The model's alpha where its own region was chosen; a chosen candidate it left out
        (foreground probability between ``CANDIDATE_LEVEL`` and 0.5) is matted from that
        probability in closed form, as the zero-shot predictor mattes its regions.
        """
        size = rgb.shape[:2]
        if chosen == {i for i, c in enumerate(candidates) if c.in_matte}:
            region = prob.argmax(axis=0) != BACKGROUND
            return to_input_size(alpha, size), region
        keep = np.zeros(alpha.shape, bool)
        extra = np.zeros(alpha.shape, np.float32)
        for i in chosen:
            c = candidates[i]
            keep |= c.mask if c.in_matte else False
            if not c.in_matte:
                extra = np.maximum(extra, np.where(c.mask, 1.0 - prob[BACKGROUND], 0.0))
        grown = cv2.dilate(keep.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        full = to_input_size(np.where(grown, alpha, 0.0), size)
        if extra.any():
            work = refine.working_size(*size, MATTING_SIDE)
            level = CANDIDATE_LEVEL + (0.5 - CANDIDATE_LEVEL) / 2
            trimap = refine.trimap_from_probability(extra, work, band=4, threshold=level)
            full = np.maximum(full, refine.matte_from_trimap(rgb, trimap))
        return full, keep | (extra > 0)

    def _decode(
        self, feats: ImageFeatures, phrases: list[str], settings: list[str]
    ) -> CLIPMatOutput:
        """The model's output at model resolution for B phrases on one image.

        A keyword is read through every pre-embedding template at once: the token features of
        all its templates form one key/value set for the pop-up's cross-attention, a prompt
        ensemble that costs a single pop-up and decoder pass.
        """
        templates = self.model.prompt.templates
        rows, settings_rows, template_ids, owners = [], [], [], []
        for i, (phrase, setting) in enumerate(zip(phrases, settings)):
            n = len(templates) if setting == "keyword" else 1
            rows += [phrase] * n
            settings_rows += [setting] * n
            template_ids += list(range(n))
            owners += [i] * n
        tokens = self.model.tokenize(rows, settings_rows, template_ids)
        with autocast(self.device, self.precision):
            text, padding = self.model.encode_text(tokens)  # (R, L, Dt), (R, L)
            merged, merged_pad = _merge_rows(text, padding, owners, len(phrases))
            return self.model.decode_text(feats, merged, merged_pad)


def _merge_rows(
    text: torch.Tensor, padding: torch.Tensor, owners: list[int], count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate the token rows of each phrase: (R, L, D), (R, L) -> (B, n*L, D), (B, n*L)."""
    width = max(owners.count(i) for i in range(count)) * text.shape[1]
    merged = text.new_zeros(count, width, text.shape[2])
    merged_pad = padding.new_ones(count, width)
    fill = [0] * count
    for row, owner in enumerate(owners):
        start, stop = fill[owner], fill[owner] + text.shape[1]
        merged[owner, start:stop] = text[row]
        merged_pad[owner, start:stop] = padding[row]
        fill[owner] = stop
    return merged, merged_pad


def semantic_candidates(
    fg: np.ndarray, in_matte: np.ndarray, phrase: str, size: tuple[int, int]
) -> list[Candidate]:
    """The regions of CLIPMat's semantic map a phrase may refer to, best first.

    Each 8-connected region where the foreground probability (foreground plus transition) is
    above ``CANDIDATE_LEVEL`` is a candidate; it is ``chosen`` (and ``in_matte``) when it holds
    pixels the model labelled as not background, i.e. when the model's matte includes it.

    Args:
        fg: (h, w) float foreground probability at model resolution.
        in_matte: (h, w) bool, the model's own region.
        phrase: the phrase, recorded in each candidate.
        size: the photo's (H, W), for the boxes.

    Returns:
        Candidates sorted by their share of the foreground mass (the score; they sum to 1).
    """
    count, labels = cv2.connectedComponents((fg > CANDIDATE_LEVEL).astype(np.uint8), 8)
    masks = [labels == k for k in range(1, count)]
    masks = [m for m in masks if m.mean() >= MIN_CANDIDATE_SHARE] or masks
    total = sum(float(fg[m].sum()) for m in masks) or 1.0
    out = []
    for m in masks:
        matte = bool((m & in_matte).any())
        score, similarity = float(fg[m].sum()) / total, float(fg[m].mean())
        out.append(
            make_candidate(
                phrase, m, size, score=score, similarity=similarity, chosen=matte, in_matte=matte
            )
        )
    return sorted(out, key=lambda c: -c.score)

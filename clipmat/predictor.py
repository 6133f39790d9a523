"""CLIPMatPredictor: a photo of any size and a phrase in, an alpha matte at the photo's size out.

Image features are computed once per image and reused for every phrase on it: the CLIP image
tower, the details extractor and the details decoder take no text, so a new phrase costs only the
text tower, the pop-up and the semantic decoder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from clipmat.imageio import load_image
from clipmat.model.clipmat import CLIPMat, CLIPMatOutput, ImageFeatures
from clipmat.model.decoders import BACKGROUND, semantic_labels
from clipmat.refine import refine_alpha
from clipmat.runtime import LRUCache, autocast, check_phrases, fingerprint, select_device
from clipmat.transforms import labels_to_input_size, model_input_size, to_input_size, to_model_input

_ARTICLES = {"the", "a", "an"}
UNSURE_BELOW = 0.6  # confidence under which a grounding is reported as unsure


@dataclass
class MattingResult:
    """The matte of one phrase on one photo.

    Attributes:
        alpha: (H, W) float32 in [0, 1] at the input photo's resolution.
        text: the phrase (stripped of surrounding spaces).
        setting: "keyword" or "expression", how the phrase was read.
        confidence: in [0, 1]; how sure the model is of the region it picked (0 when empty).
        trimap: (H, W) uint8, 0 background, 128 transition, 255 foreground (semantic branch).
        predictor: name of the predictor that made it.
        image_cached: True when the image features were reused from an earlier call.
        seconds: wall time of the call that produced it (shared by a batch).
        candidates: other regions that match the phrase, when the predictor finds several.
    """

    alpha: np.ndarray
    text: str
    setting: str
    confidence: float
    trimap: np.ndarray
    predictor: str
    image_cached: bool = False
    seconds: float = 0.0
    candidates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def unsure(self) -> bool:
        """True when the grounding is doubtful (low confidence or an empty matte)."""
        return self.confidence < UNSURE_BELOW


def infer_setting(text: str) -> str:
    """Read a phrase as a keyword (one word after articles, e.g. "the cat") or an expression."""
    words = [w for w in text.lower().split() if w not in _ARTICLES]
    return "keyword" if len(words) <= 1 else "expression"


class CLIPMatPredictor:
    """Wraps any CLIPMat model, random or trained.

    Args:
        model: the network.
        name: shown in results and in the app.
        licence: licence of the weights, shown to users.
        device: "auto", "cpu", "cuda", ...; the model is moved there.
        cache_size: how many images' features to keep.
    """

    def __init__(
        self,
        model: CLIPMat,
        *,
        name: str = "custom",
        licence: str = "",
        device: Any = "auto",
        cache_size: int = 4,
    ) -> None:
        self.device = select_device(device)
        self.model = model.to(self.device).eval()
        self.name = name
        self.licence = licence
        self._cache: LRUCache[ImageFeatures] = LRUCache(cache_size)
        self.stats = {"image_encodes": 0, "cache_hits": 0}

    @torch.inference_mode()
    def set_image(self, image: Any) -> tuple[np.ndarray, ImageFeatures, bool]:
        """Load ``image`` and compute (or fetch from the cache) its features.

        Returns:
            (the RGB uint8 photo, its features, whether they came from the cache).
        """
        photo = load_image(image)
        feats, hit = self._cache.get_or_put(fingerprint(photo), lambda: self._encode(photo))
        self.stats["cache_hits" if hit else "image_encodes"] += 1
        return photo, feats, hit

    def _encode(self, photo: np.ndarray) -> ImageFeatures:
        cfg = self.model.cfg
        size = model_input_size(
            *photo.shape[:2], short_side=cfg.image_size, multiple=cfg.patch_size
        )
        with autocast(self.device):
            return self.model.encode_image(to_model_input(photo, size).to(self.device))

    def clear_cache(self) -> None:
        self._cache.clear()

    @torch.inference_mode()
    def predict(
        self, image: Any, text: str | list[str], *, setting: str = "auto", refine: bool = False
    ) -> MattingResult | list[MattingResult]:
        """Matte the entity that ``text`` refers to.

        Args:
            image: (H, W, 3) uint8 array, PIL image, path or bytes; RGBA, grayscale, 16-bit and
                EXIF-rotated inputs are converted (see :func:`clipmat.imageio.load_image`).
            text: one phrase, or a list of phrases (batched; the image is encoded once).
            setting: "keyword", "expression" or "auto" (see :func:`infer_setting`).
            refine: re-matte the transition region in closed form at the photo's resolution
                (see :func:`clipmat.refine.refine_alpha`); slower, sharper hair and fur.

        Returns:
            A :class:`MattingResult` per phrase (a list when ``text`` is a list).
        """
        start = time.perf_counter()
        phrases = check_phrases(text)
        settings = [infer_setting(p) if setting == "auto" else setting for p in phrases]
        photo, feats, cached = self.set_image(image)
        out = self._decode(feats, phrases, settings)
        logits = out.semantic_logits.float()
        prob = logits.softmax(dim=1)  # (B, 3, h, w)
        alpha = out.alpha.float()[:, 0]  # (B, h, w)
        labels = semantic_labels(logits)  # (B, h, w)
        size = photo.shape[:2]
        results = []
        for i, phrase in enumerate(phrases):
            region = labels[i] != BACKGROUND
            conf = float((1 - prob[i, BACKGROUND])[region].mean()) if region.any() else 0.0
            trimap_small = np.array([0, 128, 255], np.uint8)[labels[i].cpu().numpy()]
            full_alpha = to_input_size(alpha[i], size)
            trimap = labels_to_input_size(trimap_small, size)
            if refine:
                full_alpha, trimap = refine_alpha(photo, full_alpha)
            results.append(
                MattingResult(
                    alpha=full_alpha,
                    text=phrase,
                    setting=settings[i],
                    confidence=conf,
                    trimap=trimap,
                    predictor=self.name,
                    image_cached=cached,
                )
            )
        seconds = time.perf_counter() - start
        for r in results:
            r.seconds = seconds
        return results[0] if isinstance(text, str) else results

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
        with autocast(self.device):
            text, padding = self.model.encode_text(tokens)  # (R, L, Dt), (R, L)
            width = max(owners.count(i) for i in range(len(phrases))) * text.shape[1]
            merged = text.new_zeros(len(phrases), width, text.shape[2])
            merged_pad = padding.new_ones(len(phrases), width)
            fill = [0] * len(phrases)
            for row, owner in enumerate(owners):
                start, stop = fill[owner], fill[owner] + text.shape[1]
                merged[owner, start:stop] = text[row]
                merged_pad[owner, start:stop] = padding[row]
                fill[owner] = stop
            return self.model.decode_text(feats, merged, merged_pad)

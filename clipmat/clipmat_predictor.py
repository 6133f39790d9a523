"""CLIPMatPredictor: the paper's model behind the common predictor interface.

Image features are computed once per photo and reused for every phrase on it: the CLIP image
tower, the details extractor and the details decoder take no text, so a new phrase costs only the
text tower, the pop-up and the semantic decoder.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from clipmat.model.clipmat import CLIPMat, CLIPMatOutput, ImageFeatures
from clipmat.model.decoders import BACKGROUND, semantic_labels
from clipmat.predictor import EncodedImage, MattingResult, Photo, PredictOptions, Predictor
from clipmat.refine import refine_alpha
from clipmat.runtime import autocast
from clipmat.transforms import labels_to_input_size, model_input_size, to_input_size, to_model_input

_TRIMAP_LEVELS = np.array([0, 128, 255], np.uint8)  # background, transition, foreground


class CLIPMatPredictor(Predictor[ImageFeatures]):
    """Wraps any CLIPMat model, random or trained.

    Honours ``refine`` (default False: the model's own alpha).

    Args:
        model: the network.
        name: shown in results and in the app.
        licence: licence of the weights, shown to users.
        device: "auto", "cpu", "cuda", ...; the model is moved there.
        cache_size: how many photos' features to keep.
        domain: what the weights were trained on.
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
    ) -> None:
        super().__init__(
            name=name, licence=licence, device=device, cache_size=cache_size, domain=domain
        )
        self.model = model.to(self.device).eval()

    def _encode(self, photo: Photo) -> ImageFeatures:
        cfg = self.model.cfg
        rgb = photo.rgb
        size = model_input_size(*rgb.shape[:2], short_side=cfg.image_size, multiple=cfg.patch_size)
        with autocast(self.device):
            return self.model.encode_image(to_model_input(rgb, size).to(self.device))

    def _predict(
        self,
        image: EncodedImage[ImageFeatures],
        phrases: list[str],
        settings: list[str],
        options: PredictOptions,
    ) -> list[MattingResult]:
        out = self._decode(image.features, phrases, settings)
        logits = out.semantic_logits.float()
        prob = logits.softmax(dim=1)  # (B, 3, h, w)
        alpha = out.alpha.float()[:, 0]  # (B, h, w)
        labels = semantic_labels(logits)  # (B, h, w)
        rgb = image.photo.rgb
        size = rgb.shape[:2]
        results = []
        for i, phrase in enumerate(phrases):
            region = labels[i] != BACKGROUND
            conf = float((1 - prob[i, BACKGROUND])[region].mean()) if region.any() else 0.0
            full_alpha = to_input_size(alpha[i], size)
            trimap = labels_to_input_size(_TRIMAP_LEVELS[labels[i].cpu().numpy()], size)
            if options.refine:
                full_alpha, trimap = refine_alpha(rgb, full_alpha)
            results.append(
                MattingResult(
                    alpha=full_alpha,
                    text=phrase,
                    setting=settings[i],
                    confidence=conf,
                    trimap=trimap,
                    predictor=self.name,
                    image_cached=image.cached,
                )
            )
        return results

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

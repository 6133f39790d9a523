"""How far to trust a result: a calibrated confidence and a check that the photo is from the
weights' world.

Both are small logistic models fitted on held-out data by ``python -m clipmat.evaluation.calibrate`` and
stored beside the weights as ``<weights stem>.trust.safetensors``:

- the confidence is the predicted probability that the matte is right (IoU > 0.5 with the
  truth) from statistics of CLIPMat's semantic map over the chosen region
  (:func:`confidence_features`), with the "unsure" threshold chosen on a validation split;
- the domain check is the predicted probability that the photo looks like the images the
  weights were trained on, from the CLIP image tower's pooled embedding and the mean and spread
  of its tokens at each level (:func:`image_features`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clipmat.model.backbone import CLIPBackbone
from clipmat.model.decoders import BACKGROUND, FOREGROUND
from clipmat.pretrained.weights_io import load_state_dict, save_state_dict

TRUST_SUFFIX = ".trust.safetensors"
CONFIDENCE_FEATURES = (
    "mean foreground probability",
    "solid share",
    "chosen share of the mass",
    "log candidates",
    "log area",
    "peak foreground probability",
    "sure share",
)


@dataclass
class Logistic:
    """p = sigmoid(((x - mean) / scale) . weights + bias), for (N, F) or (F,) features."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, *, l2: float = 1.0, steps: int = 4000) -> Logistic:
        """Standardise ``x`` (N, F), then minimise the mean log loss of labels ``y`` (N,) plus
        ``l2 / N`` times the squared weights, by gradient descent (the loss is convex)."""
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        z = (x - mean) / scale
        w, b = np.zeros(z.shape[1]), 0.0
        for _ in range(steps):
            p = 1.0 / (1.0 + np.exp(-(z @ w + b)))
            w -= 0.3 * (z.T @ (p - y) + l2 * w) / len(y)
            b -= 0.3 * float((p - y).mean())
        return cls(mean, scale, w, b)


@dataclass
class Trust:
    """A set of weights' calibrated confidence and domain check.

    Attributes:
        confidence: P(matte right | features of :func:`confidence_features`), or None.
        threshold: results with a confidence below it are unsure.
        domain: P(photo in the weights' world | :func:`image_features`), or None.
        domain_threshold: photos scoring below it are out of the world.
        domain_note: what to tell the user about such a photo.
        report: how the two were fitted and measured (shown in docs, not used).
    """

    confidence: Logistic | None
    threshold: float
    domain: Logistic | None = None
    domain_threshold: float = 0.0
    domain_note: str = ""
    report: dict | None = None

    def save(self, path: str | Path) -> Path:
        tensors, meta = {}, {"threshold": str(self.threshold)}
        for name, model in (("confidence", self.confidence), ("domain", self.domain)):
            if model is not None:
                for part in ("mean", "scale", "weights"):
                    tensors[f"{name}.{part}"] = torch.from_numpy(getattr(model, part))
                tensors[f"{name}.bias"] = torch.tensor([model.bias], dtype=torch.float64)
        meta.update(
            domain_threshold=str(self.domain_threshold),
            domain_note=self.domain_note,
            report=json.dumps(self.report or {}),
        )
        return save_state_dict(tensors, path, metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> Trust:
        state, meta = load_state_dict(path)

        def logistic(name: str) -> Logistic | None:
            if f"{name}.weights" not in state:
                return None
            parts = {p: state[f"{name}.{p}"].numpy() for p in ("mean", "scale", "weights")}
            return Logistic(**parts, bias=float(state[f"{name}.bias"][0]))

        return cls(
            confidence=logistic("confidence"),
            threshold=float(meta["threshold"]),
            domain=logistic("domain"),
            domain_threshold=float(meta.get("domain_threshold", 0.0)),
            domain_note=meta.get("domain_note", ""),
            report=json.loads(meta.get("report", "{}")),
        )


def trust_path(weights: str | Path) -> Path:
    """Where the trust file of a weights file lives: beside it, ``<stem>.trust.safetensors``."""
    weights = Path(weights)
    return weights.with_name(weights.name.removesuffix(".safetensors") + TRUST_SUFFIX)


def confidence_features(
    prob: np.ndarray, region: np.ndarray, chosen_share: float, candidates: int
) -> np.ndarray:
    """Statistics of a semantic map over the chosen region, the inputs of the confidence.

    Args:
        prob: (3, h, w) background / transition / foreground probabilities.
        region: (h, w) bool, the region the matte is made of.
        chosen_share: the chosen candidates' share of the foreground mass, in [0, 1].
        candidates: how many candidates the phrase had.

    Returns:
        (len(CONFIDENCE_FEATURES),) float64; all zero for an empty region.
    """
    if not region.any():
        return np.zeros(len(CONFIDENCE_FEATURES))
    fg = 1.0 - prob[BACKGROUND][region]
    solid = prob[FOREGROUND][region] / np.maximum(fg, 1e-6)
    return np.array(
        [
            fg.mean(),
            solid.mean(),
            chosen_share,
            np.log1p(candidates),
            np.log(region.mean()),
            fg.max(),
            (fg > 0.9).mean(),
        ]
    )


@torch.inference_mode()
def image_features(
    backbone: CLIPBackbone, images: torch.Tensor, levels: list[torch.Tensor] | None = None
) -> np.ndarray:
    """The inputs of the domain check: the pooled embedding, then the mean and the standard
    deviation over tokens of every level's visual tokens.

    Args:
        backbone: the CLIP towers.
        images: (1, 3, H, W) CLIP-normalised, H and W multiples of the patch size.
        levels: ``backbone.encode_image_levels(images)`` when the caller has them already.

    Returns:
        (E + 2 * L * Dv,) float64.
    """
    parts = [backbone.encode_pooled(images)[0]]
    if levels is None:
        levels = backbone.encode_image_levels(images)
    for level in levels:
        tokens = level[0, 1:].float()
        parts += [tokens.mean(dim=0), tokens.std(dim=0)]
    return torch.cat([p.float() for p in parts]).double().cpu().numpy()

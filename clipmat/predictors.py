"""The predictors the product offers, which of them can run here, and ``load_predictor``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clipmat import hub
from clipmat.factory import load_model
from clipmat.predictor import CLIPMatPredictor

if TYPE_CHECKING:
    from clipmat.zeroshot import ZeroShotPredictor


@dataclass(frozen=True)
class PredictorSpec:
    """A named predictor: which weights it needs and what it is for."""

    name: str
    weights: str  # name in the weights registry (clipmat.hub)
    kind: str  # "clipmat" (a trained CLIPMat checkpoint) or "zeroshot" (public CLIP weights)
    description: str


PREDICTORS: dict[str, PredictorSpec] = {
    s.name: s
    for s in (
        PredictorSpec(
            "clipmat-vitl14", "clipmat-vitl14", "clipmat", "CLIPMat, ViT-L/14 at 448 px (paper)"
        ),
        PredictorSpec(
            "clipmat-vitb16", "clipmat-vitb16", "clipmat", "CLIPMat, ViT-B/16 at 512 px (paper)"
        ),
        PredictorSpec(
            "zeroshot-vitb16",
            "clip-vitb16-openai",
            "zeroshot",
            "training-free: dense CLIP text-patch similarity, trimap, closed-form matting",
        ),
        PredictorSpec(
            "mini-world",
            "mini-world",
            "clipmat",
            "tiny CLIPMat trained on the synthetic mini world; offline, for demos and tests",
        ),
    )
}
AUTO_ORDER = ("clipmat-vitl14", "clipmat-vitb16", "zeroshot-vitb16", "mini-world")


@dataclass(frozen=True)
class PredictorStatus:
    """Whether a predictor can be loaded here without a download, and why not."""

    name: str
    available: bool
    licence: str
    description: str
    reason: str  # empty when available


def _implemented(spec: PredictorSpec) -> bool:
    return spec.kind in ("clipmat", "zeroshot")


def _status(spec: PredictorSpec) -> PredictorStatus:
    weights = hub.get_weight_spec(spec.weights)
    reason = ""
    if not _implemented(spec):
        reason = f"the {spec.kind} predictor is not part of this version yet"
    else:
        try:
            hub.resolve_weights(spec.weights, allow_download=False)
        except (FileNotFoundError, ValueError) as err:
            reason = str(err).splitlines()[0]
    return PredictorStatus(spec.name, not reason, weights.licence, spec.description, reason)


def list_predictors() -> list[PredictorStatus]:
    """Every predictor with whether its weights are present on this machine (no download)."""
    return [_status(spec) for spec in PREDICTORS.values()]


def load_predictor(
    name: str = "auto", *, device: Any = "auto", allow_download: bool | None = None
) -> CLIPMatPredictor | ZeroShotPredictor:
    """Load a predictor by name.

    Args:
        name: one of :data:`PREDICTORS` or "auto" (the best one whose weights are present:
            trained CLIPMat, then zero-shot, then mini-world).
        device: "auto" picks CUDA when available.
        allow_download: fetch missing weights with huggingface_hub (None: unless offline).

    Raises:
        ValueError: for an unknown name. clipmat.hub.WeightsNotFoundError: missing weights,
            with the paths tried and how to get them.
    """
    if name == "auto":
        for candidate in AUTO_ORDER:
            if _status(PREDICTORS[candidate]).available:
                return load_predictor(candidate, device=device)
        lines = "\n".join(f"  {s.name}: {s.reason}" for s in list_predictors())
        raise FileNotFoundError(f"no predictor has its weights on this machine:\n{lines}")
    if name not in PREDICTORS:
        raise ValueError(f"unknown predictor {name!r}; available: {['auto', *PREDICTORS]}")
    spec = PREDICTORS[name]
    if not _implemented(spec):
        raise NotImplementedError(f"predictor {name!r}: {_status(spec).reason}")
    if spec.kind == "zeroshot":
        from clipmat.zeroshot import load_zeroshot_predictor

        return load_zeroshot_predictor(
            spec.weights, name=name, device=device, allow_download=allow_download
        )
    weights = hub.get_weight_spec(spec.weights)
    model = load_model(spec.weights, allow_download=allow_download)
    return CLIPMatPredictor(model, name=name, licence=weights.licence, device=device)

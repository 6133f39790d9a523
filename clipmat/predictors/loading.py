"""The predictors users pick by name, which of them can run here, and the one "auto" policy.

``load_predictor`` and the web app choose alike (:func:`auto_choice`): a trained CLIPMat whose
weights are here, else the zero-shot predictor (its CLIP downloaded once when downloads are
allowed and the hub answers a short probe), else the bundled mini-world model, with a warning
that it knows only synthetic scenes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipmat.factory import load_model_and_metadata
from clipmat.predictors.base import Predictor
from clipmat.predictors.clipmat import CLIPMatPredictor
from clipmat.predictors.trust import Trust, trust_path
from clipmat.pretrained import hub, registry, remote

MINIWORLD_WARNING = (
    "the mini-world predictor knows only synthetic scenes (procedural shapes on textures); on "
    "real photos its mattes are not to be trusted. With network access, "
    "load_predictor('zeroshot-vitb16') works on real photos with no training."
)


class MiniWorldOnlyWarning(UserWarning):
    """ "auto" could only get the mini-world predictor."""


@dataclass(frozen=True)
class PredictorStatus:
    """Whether a predictor can be loaded here without a download, and why not."""

    name: str
    available: bool
    licence: str
    description: str
    reason: str  # empty when available


def predictor_status(name: str) -> PredictorStatus:
    """The status of the registered predictor ``name`` (no download, no hashing).

    Raises:
        ValueError: when no registered predictor is called ``name``.
    """
    weights = _predictor_weights(name)
    reason = ""
    try:
        hub.resolve_weights(weights.name, allow_download=False)
    except (FileNotFoundError, ValueError) as err:
        reason = str(err).splitlines()[0]
    return PredictorStatus(name, not reason, weights.licence, weights.predictor_description, reason)


def list_predictors() -> list[PredictorStatus]:
    """Every registered predictor with whether its weights are on this machine (no download)."""
    return [predictor_status(name) for name in registry.predictor_names()]


def auto_choice(allow_download: bool | None = None) -> str:
    """The predictor "auto" means here: the first in the registry's "auto" order
    (:func:`clipmat.pretrained.registry.auto_order`) whose weights are present, except that the
    zero-shot predictor comes before the mini world when its CLIP can be downloaded (downloads
    allowed and the hub answers a 3-second probe).

    Raises:
        FileNotFoundError: when no predictor can run, listing why each cannot.
    """
    available = {s.name for s in list_predictors() if s.available}
    for name in registry.auto_order():
        if name in available:
            return name
        can_fetch = _predictor_weights(name).zero_shot and hub.downloads_allowed(allow_download)
        if can_fetch and remote.hub_reachable():
            return name
    lines = "\n".join(f"  {s.name}: {s.reason}" for s in list_predictors())
    raise FileNotFoundError(f"no predictor has its weights on this machine:\n{lines}")


def load_predictor(
    name: str = "auto",
    *,
    device: Any = "auto",
    allow_download: bool | None = None,
    precision: str = "fp32",
) -> Predictor:
    """Load a predictor by name.

    Args:
        name: a registered predictor (:func:`list_predictors`), "auto" (see :func:`auto_choice`;
            a :class:`MiniWorldOnlyWarning` when that is the mini world), ``hf-hub:owner/repo``
            (a trained CLIPMat published with ``clipmat push``) or a checkpoint file.
        device: "auto" picks CUDA when available.
        allow_download: fetch missing weights with huggingface_hub (None: unless offline).
        precision: "fp32", or a faster CPU path of a CLIPMat's towers, "bf16", "int8", "onnx"
            (:mod:`clipmat.precision`).

    Raises:
        ValueError: for an unknown name. clipmat.pretrained.hub.WeightsNotFoundError: missing weights,
            with the paths tried and how to get them.
    """
    if name == "auto":
        name = auto_choice(allow_download)
        if _predictor_weights(name).domain != registry.REAL_PHOTOS:
            warnings.warn(MINIWORLD_WARNING, MiniWorldOnlyWarning, stacklevel=2)
    if registry.predictor_weights(name) is not None:
        weights = registry.get_weight_spec(name)  # with its hub repository from the environment
        if weights.zero_shot:
            from clipmat.zeroshot import load_zeroshot_predictor

            if precision != "fp32":
                raise ValueError(f"precision={precision!r} applies to CLIPMat predictors only")

            return load_zeroshot_predictor(
                weights.name, name=name, device=device, allow_download=allow_download
            )
        path = hub.resolve_weights(weights.name, allow_download=allow_download)
        return _load_checkpoint(path, name, device, precision, weights.licence, weights.domain)
    if name.startswith(registry.HF_HUB_PREFIX):
        path = hub.resolve_weights(name, allow_download=allow_download)
        return _load_checkpoint(path, name, device, precision)
    if Path(name).is_file():
        return _load_checkpoint(Path(name), Path(name).stem, device, precision)
    hub_name = f"{registry.HF_HUB_PREFIX}owner/repo"
    known = ["auto", *registry.predictor_names(), hub_name, "a checkpoint file"]
    raise ValueError(f"unknown predictor {name!r}; available: {', '.join(known)}")


def _predictor_weights(name: str) -> registry.WeightSpec:
    """The weights of the registered predictor ``name``.

    Raises:
        ValueError: when no registered predictor is called ``name``.
    """
    weights = registry.predictor_weights(name)
    if weights is None:
        known = ", ".join(registry.predictor_names())
        raise ValueError(f"unknown predictor {name!r}; registered: {known}")
    return weights


def _load_checkpoint(
    path: Path,
    name: str,
    device: Any,
    precision: str,
    licence: str | None = None,
    domain: str | None = None,
) -> CLIPMatPredictor:
    """A CLIPMat checkpoint's predictor, with the trust file beside it when there is one
    (:func:`clipmat.predictors.trust.trust_path`); licence and domain from the registry, else from the
    checkpoint's header."""
    model, meta = load_model_and_metadata(path)
    trust = trust_path(path)
    return CLIPMatPredictor(
        model,
        name=name,
        licence=licence or meta.get("licence", "set by the checkpoint's owner"),
        device=device,
        domain=domain or meta.get("domain", registry.REAL_PHOTOS),
        trust=Trust.load(trust) if trust.is_file() else None,
        precision=precision,
    )

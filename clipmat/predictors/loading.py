"""The predictors users pick by name, which of them can run here, and the one "auto" policy.

``load_predictor`` and the web app choose alike (:func:`auto_choice`): a trained CLIPMat whose
weights are here, else the zero-shot predictor (its CLIP downloaded once when downloads are
allowed and the hub answers a short probe), else the bundled mini-world model, with a warning
that it knows only synthetic scenes.

``load_predictor(name, pretrained=False)`` builds a predictor's architecture with seeded random
weights and no file or network (as timm's ``create_model(pretrained=False)``), for timing and
tests: every registered name, every CLIPMat model config ("clipmat-tiny") and the ``random-``
names ("random-tiny", "random-vitb16": a CLIPMat config's architecture, always random).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from clipmat.factory import create_model, get_model_config, list_models, load_model_and_metadata
from clipmat.precision import check_device
from clipmat.predictors.base import Predictor
from clipmat.predictors.clipmat import CLIPMatPredictor
from clipmat.predictors.trust import Trust, trust_path
from clipmat.pretrained import hub, registry, remote

MINIWORLD_WARNING = (
    "the mini-world predictor knows only synthetic scenes (procedural shapes on textures); on "
    "real photos its mattes are not to be trusted. With network access, "
    "load_predictor('zeroshot-vitb16') works on real photos with no training."
)


RANDOM_PREFIX = "random-"  # "random-tiny": the clipmat-tiny architecture, random weights
ZEROSHOT_PREFIX = "zeroshot-"  # "zeroshot-tiny": the zero-shot predictor on clipmat-tiny's CLIP
RANDOM_SEED = 24  # the default seed of random weights (the app's random-tiny, whose matte
# varies over the photo)
RANDOM_LICENCE = "none needed: random weights, for timing and tests only"
RANDOM_DOMAIN = "nothing: random weights"


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
    pretrained: bool = True,
    seed: int = RANDOM_SEED,
) -> Predictor:
    """Load a predictor by name.

    Args:
        name: a registered predictor (:func:`list_predictors`), "auto" (see :func:`auto_choice`;
            a :class:`MiniWorldOnlyWarning` when that is the mini world), ``hf-hub:owner/repo``
            (a trained CLIPMat published with ``clipmat push``), a checkpoint file, or (random
            weights) a CLIPMat model config or a ``random-`` name (see ``pretrained``).
        device: "auto" picks CUDA when available.
        allow_download: fetch missing weights with huggingface_hub (None: unless offline).
        precision: "fp32", or a faster CPU path of the CLIP towers, "bf16", "int8", and for
            CLIPMat predictors "onnx" (:mod:`clipmat.precision`).
        pretrained: False: the predictor's architecture with random weights seeded by ``seed``
            (:func:`random_predictor`), no file read and nothing downloaded.
        seed: the random weights' seed (``pretrained=False`` and ``random-`` names).

    Raises:
        ValueError: for an unknown name or a precision that cannot run on ``device``.
            clipmat.pretrained.hub.WeightsNotFoundError: missing weights, with the paths tried
            and how to get them.
    """
    if not pretrained or name.startswith(RANDOM_PREFIX):
        return random_predictor(name, device=device, precision=precision, seed=seed)
    if name == "auto":
        name = auto_choice(allow_download)
        if _predictor_weights(name).domain != registry.REAL_PHOTOS:
            warnings.warn(MINIWORLD_WARNING, MiniWorldOnlyWarning, stacklevel=2)
    if registry.predictor_weights(name) is not None:
        weights = registry.get_weight_spec(name)  # with its hub repository from the environment
        if weights.zero_shot:
            from clipmat.zeroshot import load_zeroshot_predictor

            return load_zeroshot_predictor(
                weights.name,
                name=name,
                device=device,
                allow_download=allow_download,
                precision=precision,
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
    raise ValueError(
        f"unknown predictor {name!r}; available: {', '.join(known)}; with pretrained=False "
        f"(random weights): {', '.join(random_architectures())}"
    )


def random_architectures() -> list[str]:
    """The names :func:`random_predictor` builds: the registered predictors, the CLIPMat model
    configs, ``random-`` + a config's name without ``clipmat-`` ("random-tiny": a CLIPMat) and
    ``zeroshot-`` + the same ("zeroshot-tiny": the zero-shot predictor on its CLIP towers)."""
    configs = list_models()
    short = [c.removeprefix("clipmat-") for c in configs]
    names = [*registry.predictor_names(), *configs]
    names += [RANDOM_PREFIX + c for c in short] + [ZEROSHOT_PREFIX + c for c in short]
    return list(dict.fromkeys(names))


def random_predictor(
    name: str, *, device: Any = "auto", precision: str = "fp32", seed: int = RANDOM_SEED
) -> Predictor:
    """The predictor ``name``'s architecture with random weights, seeded: the same weights for
    the same seed in every process, without touching the global random state.

    A registered CLIPMat predictor gets its model config ("mini-world": clipmat-mini), the
    registered zero-shot predictor its open_clip towers with its windows and methods, a model
    config ("clipmat-tiny") or a ``random-`` name ("random-vitb16": clipmat-vitb16) a CLIPMat,
    a ``zeroshot-`` name ("zeroshot-tiny") the zero-shot predictor on that config's CLIP towers
    with the default :class:`~clipmat.zeroshot.ZeroShotConfig` (windows at the towers' own
    size). The predictor is named ``name`` (with " (random weights)" after a registered or
    config name), and its licence and domain say that its weights are random: its mattes mean
    nothing; it is for timing and tests.

    Raises:
        ValueError: for a name that has no architecture here (the message lists them).
    """
    from clipmat.zeroshot import loading as zeroshot

    arch, kind = _random_arch(name)
    if kind == "clipmat":
        check_device(precision, device)
    else:
        zeroshot.check_precision(precision, device)  # "onnx" refused before the build
    label = name if name.startswith(RANDOM_PREFIX) else f"{name} (random weights)"
    options = {"name": label, "licence": RANDOM_LICENCE, "device": device, "domain": RANDOM_DOMAIN}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "clipmat":
            model = create_model(arch)
        else:
            towers = zeroshot.clip_towers(arch) if kind == "clip" else get_model_config(arch).clip
            backbone = zeroshot.create_backbone(towers)
    if kind == "clipmat":
        predictor: Predictor = CLIPMatPredictor(model, **options)
    else:
        config = zeroshot.registry_config() if kind == "clip" else None
        predictor = zeroshot.ZeroShotPredictor(backbone, config=config, **options)
    if precision != "fp32":
        predictor.set_precision(precision)  # in place: no copy of the model
    return predictor


def _random_arch(name: str) -> tuple[str, str]:
    """(architecture, kind) of ``name``: kind "clipmat" (a CLIPMat model config), "clip" (an
    open_clip architecture: the registered zero-shot predictor's) or "towers" (a zero-shot
    predictor on a CLIPMat model config's CLIP towers)."""
    weights = registry.predictor_weights(name)
    if weights is not None:
        return weights.arch, "clip" if weights.zero_shot else "clipmat"
    for prefix, kind in ((RANDOM_PREFIX, "clipmat"), (ZEROSHOT_PREFIX, "towers")):
        config = "clipmat-" + name.removeprefix(prefix)
        if name.startswith(prefix) and config in list_models():
            return config, kind
    if name in list_models():
        return name, "clipmat"
    raise ValueError(
        f"no architecture called {name!r} to fill with random weights; known: "
        f"{', '.join(random_architectures())}"
    )


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
    checkpoint's header. A precision that cannot run on ``device`` is refused before the
    checkpoint is read."""
    check_device(precision, device)
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

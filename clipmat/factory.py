"""Model factory: named configs from ``model_configs/``, ``create_model``, checkpoint I/O."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from clipmat.config import CLIPMatConfig
from clipmat.model.backbone import load_clip_state_dict
from clipmat.model.clipmat import CLIPMat
from clipmat.pretrained import hub, registry, weights_io

_CONFIG_DIR = Path(__file__).parent / "model_configs"
CHECKPOINT_FORMAT = "clipmat-v1"


def _scan_configs() -> dict[str, Path]:
    return {p.stem: p for p in sorted(_CONFIG_DIR.glob("*.json"))}


def list_models() -> list[str]:
    """Names of the built-in model configs (e.g. "clipmat-vitb16", "clipmat-tiny")."""
    return list(_scan_configs())


def get_model_config(name: str) -> CLIPMatConfig:
    """The built-in config called ``name``.

    Raises:
        ValueError: for an unknown name, listing the available ones.
    """
    configs = _scan_configs()
    if name not in configs:
        raise ValueError(f"Model config {name!r} not found. Available: {list(configs)}")
    return CLIPMatConfig.from_json(configs[name])


def create_model(
    name_or_config: str | CLIPMatConfig | dict[str, Any],
    *,
    pretrained: str | Path | None = None,
    device: str | torch.device = "cpu",
    **overrides: Any,
) -> CLIPMat:
    """Build a CLIPMat model, randomly initialised unless ``pretrained`` is given.

    Args:
        name_or_config: a built-in config name, a :class:`CLIPMatConfig`, or its dict.
        pretrained: None for random init; else a tag of this architecture's weights
            (``create_model("clipmat-mini", pretrained="miniworld")``), a weights name from
            :mod:`clipmat.pretrained.registry`, or a checkpoint path, of a trained CLIPMat.
        device: where to put the model.
        **overrides: config fields to change, e.g. ``popup=False`` for an ablation.

    Returns:
        The model in eval mode.
    """
    if isinstance(name_or_config, str):
        cfg = get_model_config(name_or_config)
    elif isinstance(name_or_config, dict):
        cfg = CLIPMatConfig.from_dict(name_or_config)
    else:
        cfg = name_or_config
    if overrides:
        cfg = CLIPMatConfig.from_dict({**cfg.to_dict(), **overrides})
    if pretrained is not None:
        tagged = f"{cfg.name}.{pretrained}"
        model = load_model(tagged if tagged in registry.PRETRAINED else pretrained)
        if overrides and model.cfg != cfg:
            raise ValueError("config overrides cannot be combined with a trained checkpoint")
        return model.to(device).eval()
    return CLIPMat(cfg).to(device).eval()


def save_model(model: CLIPMat, path: str | Path, *, half: bool = False, **metadata: str) -> Path:
    """Write ``model`` (weights and config) to a safetensors checkpoint.

    Args:
        half: store floating tensors as fp16 (halves the file; inference upcasts).
        **metadata: extra strings stored in the file header (e.g. licence, command).
    """
    meta = {"format": CHECKPOINT_FORMAT, "config": model.cfg.to_json(), **metadata}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    path = Path(path)
    weights_io.save_state_dict(state, path, metadata=meta)
    return path


def load_model(name_or_path: str | Path, *, allow_download: bool | None = None) -> CLIPMat:
    """Load a trained CLIPMat from a checkpoint path or a weights name (:mod:`clipmat.pretrained.registry`).

    Raises:
        clipmat.pretrained.hub.WeightsNotFoundError: when the file cannot be found (the message says how
            to get it).
        ValueError: when the file is not a CLIPMat checkpoint or its tensors do not fit.
    """
    return load_model_and_metadata(name_or_path, allow_download=allow_download)[0]


def load_model_and_metadata(
    name_or_path: str | Path, *, allow_download: bool | None = None
) -> tuple[CLIPMat, dict[str, str]]:
    """Like :func:`load_model`, also returning the checkpoint's header (licence, command, ...)."""
    path = Path(name_or_path)
    if not path.exists():
        path = hub.resolve_weights(str(name_or_path), allow_download=allow_download)
    state, meta = weights_io.load_state_dict(path)
    if meta.get("format") != CHECKPOINT_FORMAT or "config" not in meta:
        raise ValueError(
            f"{path} is not a CLIPMat checkpoint (no '{CHECKPOINT_FORMAT}' config in its header); "
            "CLIP tower weights are loaded with clipmat.load_clip_pretrained instead"
        )
    cfg = CLIPMatConfig.from_dict(json.loads(meta["config"]))
    model = CLIPMat(cfg)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {path} does not fit config {cfg.name!r}: {len(missing)} missing keys "
            f"{missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}"
        )
    state = {k: v.to(own[k].dtype) for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    return model.eval(), meta


def load_clip_pretrained(
    model: CLIPMat, name_or_path: str | Path | None = None, *, allow_download: bool | None = None
) -> CLIPMat:
    """Load public CLIP weights into the model's towers (the start of CLIPMat training).

    The image tower's positional embedding is interpolated from the checkpoint's 224 px grid.

    Args:
        model: a CLIPMat whose config names its CLIP weights (``cfg.clip.pretrained``).
        name_or_path: override: a weights-registry name or a file path.
    """
    source = name_or_path or model.cfg.clip.pretrained
    if source is None:
        raise ValueError(
            f"config {model.cfg.name!r} names no CLIP weights (clip.pretrained is null); "
            "pass a weights name or path"
        )
    path = Path(source)
    if not path.exists():
        path = hub.resolve_weights(str(source), allow_download=allow_download)
    state, _ = weights_io.load_state_dict(path)
    load_clip_state_dict(model.backbone, state)
    model.apply_freezing()
    return model

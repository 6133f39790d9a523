"""Building a zero-shot predictor from CLIP weights: OpenAI's (hub) or a local file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clipmat.config import CLIPMatConfig, CLIPTowersConfig
from clipmat.model.backbone import CLIPBackbone, load_clip_state_dict
from clipmat.pretrained import hub, registry, weights_io
from clipmat.zeroshot.config import ZeroShotConfig, check_precision
from clipmat.zeroshot.predictor import ZeroShotPredictor
from clipmat.zeroshot.windows import CLEARCLIP

_CLIPMAT_PREFIX = "backbone.clip."


def registry_config() -> ZeroShotConfig:
    """The config of the registry's zero-shot predictor: ClearCLIP's evaluation protocol for
    ViT-B/16 (short side 448, windows of 448 every 224 pixels, logit scale 50)."""
    return ZeroShotConfig.from_protocol(CLEARCLIP, method="clearclip")


def clip_towers(arch: str, *, quick_gelu: bool = True) -> CLIPTowersConfig:
    """The towers of open_clip's architecture ``arch`` (e.g. "ViT-B-16") at its own resolution.

    ``quick_gelu`` is True for OpenAI's weights (open_clip's pretrained config says so).

    Raises:
        ValueError: for an architecture open_clip does not know.
    """
    import open_clip

    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise ValueError(f"open_clip knows no architecture {arch!r}")
    return CLIPTowersConfig(
        embed_dim=int(cfg["embed_dim"]),
        vision=dict(cfg["vision_cfg"]),
        text=dict(cfg["text_cfg"]),
        quick_gelu=quick_gelu,
    )


def create_backbone(towers: CLIPTowersConfig) -> CLIPBackbone:
    """A randomly initialised :class:`CLIPBackbone` for ``towers`` (load weights separately)."""
    return CLIPBackbone(towers, feature_layers=(int(towers.vision["layers"]),))


def load_clip_backbone(
    path: str | Path, towers: CLIPTowersConfig | None = None
) -> tuple[CLIPBackbone, dict[str, str]]:
    """A CLIPBackbone with the CLIP weights of a local file.

    Accepts an open_clip CLIP state dict (as written by ``python -m clipmat.training.clip_pretrain``, whose
    header holds the towers' config under "clip"), or a CLIPMat checkpoint (its CLIP towers are
    used). Other files need ``towers``.

    Returns:
        (backbone in eval mode, the file's header metadata).

    Raises:
        ValueError: when the towers' config is unknown or the weights do not fit it.
    """
    state, meta = weights_io.load_state_dict(path)
    if towers is None and "clip" in meta:
        towers = CLIPTowersConfig(**json.loads(meta["clip"]))
    if any(k.startswith(_CLIPMAT_PREFIX) for k in state):
        state = {
            k[len(_CLIPMAT_PREFIX) :]: v for k, v in state.items() if k.startswith(_CLIPMAT_PREFIX)
        }
        if towers is None and "config" in meta:
            towers = CLIPMatConfig.from_dict(json.loads(meta["config"])).clip
    if towers is None:
        raise ValueError(
            f"{path} does not say which CLIP architecture it holds (no 'clip' or 'config' in its "
            "header); pass towers=CLIPTowersConfig(...) or get_model_config(NAME).clip"
        )
    backbone = create_backbone(towers)
    load_clip_state_dict(backbone, state)
    return backbone.eval(), meta


def load_zeroshot_predictor(
    weights: str = "ViT-B-16.openai",
    *,
    name: str = "zeroshot-vitb16",
    config: ZeroShotConfig | None = None,
    device: Any = "auto",
    allow_download: bool | None = None,
    precision: str = "fp32",
) -> ZeroShotPredictor:
    """The zero-shot predictor on public CLIP weights from the registry (or a local file).

    Args:
        weights: a CLIP weights name of :mod:`clipmat.pretrained.registry` (e.g.
            "ViT-B-16.openai") or a file path (a CLIP saved by
            ``clipmat.training.clip_pretrain`` or a CLIPMat checkpoint).
        name: the predictor's name in results.
        config: dense method, windows, logit scale, prompts, resolutions. Default for
            registry weights: :func:`registry_config`; for a file: the default
            :class:`ZeroShotConfig` (windows at the CLIP's own resolution).
        device: "auto" picks CUDA when available.
        allow_download: fetch missing weights (None: unless HF_HUB_OFFLINE is set).
        precision: "fp32", or both towers on a CPU path, "int8" or "bf16" (where the CPU
            computes bf16 natively), converted in place after loading (no second copy).

    Raises:
        ValueError: a precision that cannot run here (checked before any weights are read).
        clipmat.pretrained.hub.WeightsNotFoundError: weights neither on disk nor downloadable;
            the message says where it looked and how to get them.
    """
    check_precision(precision, device)
    if Path(weights).is_file():
        backbone, _ = load_clip_backbone(weights)
        predictor = ZeroShotPredictor(backbone, config=config, name=name, device=device)
    else:
        spec = registry.get_weight_spec(weights)
        if not spec.zero_shot:
            raise ValueError(
                f"{weights!r} are not CLIP weights; the zero-shot predictor needs CLIP"
            )
        path = hub.resolve_weights(spec.name, allow_download=allow_download)
        backbone, _ = load_clip_backbone(path, clip_towers(spec.arch))
        predictor = ZeroShotPredictor(
            backbone,
            config=config or registry_config(),
            name=name,
            licence=spec.licence,
            device=device,
            domain=spec.domain,
        )
    if precision != "fp32":
        predictor.set_precision(precision)
    return predictor

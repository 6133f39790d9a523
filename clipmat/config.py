"""Model configuration as data: dataclasses mirrored by the JSON files in ``model_configs/``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_TEMPLATES = (
    "{}",
    "the foreground of the {}",
    "the mask of the {}",
    "to extract the {}",
)


@dataclass
class CLIPTowersConfig:
    """The CLIP image and text towers, in open_clip's own terms."""

    embed_dim: int  # joint embedding width (used by CLIP pretraining and the zero-shot predictor)
    vision: dict[str, Any]  # open_clip CLIPVisionCfg fields (layers, width, patch_size, ...)
    text: dict[str, Any]  # open_clip CLIPTextCfg fields (layers, width, heads, context_length, ...)
    quick_gelu: bool = False  # True for OpenAI's original weights
    pretrained: str | None = None  # weights registry name of matching CLIP weights, if any


@dataclass
class CLIPMatConfig:
    """Everything that sets a shape or switches a module of CLIPMat (docs/decisions.md)."""

    name: str
    clip: CLIPTowersConfig
    image_size: int = 512  # short side the predictor resizes to; square side in training
    feature_layers: tuple[int, ...] = (3, 6, 9, 12)  # 1-based blocks feeding T1..T4
    # Context-embedded prompt (CP)
    pre_context: bool = True  # hand-written templates around keywords
    post_context: bool = True  # learnable context vectors after the text tokens
    context_length: int = 8  # number of learnable context vectors per setting
    keyword_budget: int = 14  # SOT + keyword tokens (with template) + EOT
    expression_budget: int = 69  # SOT + expression tokens + EOT
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    # Text-driven semantic pop-up (TSP)
    popup: bool = True  # False: visual tokens are only scaled by the pooled text feature
    popup_dim: int = 512  # D
    popup_heads: int = 8
    popup_out: int = 256  # D'
    popup_dropout: float = 0.1
    # Multi-level details extractor (MDE)
    details: bool = True  # False: the details decoder sees only the last visual tokens
    details_visual: tuple[int, int, int, int] = (32, 64, 128, 256)  # channels of V_1..V_4
    details_image: tuple[int, int, int, int] = (16, 32, 32, 64)  # channels of M_1..M_4
    details_out: tuple[int, int, int, int] = (32, 64, 128, 256)  # D_1..D_4
    # Channels of F_0, an image-only level at full resolution that the details decoder reads
    # after C1; 0 leaves it out (the figure's layout: the finest level is at stride 2).
    details_full_res: int = 0
    # Decoders
    semantic_channels: tuple[int, int] = (128, 64)  # C2, C1
    detail_channels: tuple[int, int, int, int] = (128, 64, 32, 32)  # C4, C3, C2, C1
    fusion: str = "argmax"  # "argmax" (the paper's) or "soft": p_fg + p_transition * detail
    # What training may update
    train_image_tower: bool = True  # False freezes the CLIP image tower
    train_text_tower: bool = False  # True fine-tunes the text tower too (the paper freezes it)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes (provenance, licence)

    def __post_init__(self) -> None:
        if isinstance(self.clip, dict):
            self.clip = CLIPTowersConfig(**self.clip)
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                setattr(self, f.name, tuple(value))
        if len(self.feature_layers) != 4:
            raise ValueError(f"feature_layers needs 4 block indices, got {self.feature_layers}")
        n_layers = int(self.clip.vision["layers"])
        if not all(1 <= i <= n_layers for i in self.feature_layers):
            raise ValueError(
                f"feature_layers {self.feature_layers} must lie in 1..{n_layers} "
                f"(the image tower has {n_layers} blocks)"
            )
        if self.fusion not in ("argmax", "soft"):
            raise ValueError(f"fusion must be 'argmax' or 'soft', got {self.fusion!r}")
        if self.expression_budget + self.context_length > int(
            self.clip.text.get("context_length", 77)
        ):
            raise ValueError("expression_budget + context_length exceeds the text context length")

    @property
    def patch_size(self) -> int:
        return int(self.clip.vision["patch_size"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CLIPMatConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown CLIPMat config fields {unknown}; known fields: {sorted(known)}"
            )
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | Path) -> CLIPMatConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))

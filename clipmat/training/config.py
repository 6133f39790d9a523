"""Training configuration: a dataclass, read from a JSON or TOML file plus ``key=value`` overrides."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

SETTINGS = ("keyword", "expression", "mixed")
DATA_KINDS = ("miniworld", "refmatte")
AMP_MODES = ("auto", "bf16", "fp16", "off")


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.json`` beside its checkpoints."""

    # model
    model: str = "clipmat-mini"  # built-in config name or path to a model config JSON
    model_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {"popup": false}
    clip_init: str | None = None  # CLIP tower weights (path or registry name) to start from
    init: str | None = None  # a CLIPMat checkpoint to start from (fine-tuning)
    # data
    data: str = "miniworld"  # "miniworld" (on the fly) or "refmatte" (a RefMatte-layout folder)
    data_root: str | None = None  # folder for "refmatte"
    split: str = "train"
    world_seed: int = 0  # mini world seed
    image_size: int | None = None  # training side; the model config's image_size when None
    setting: str = "mixed"  # "keyword", "expression" or "mixed" (per-sample draw)
    expression_prob: float = 0.5  # for "mixed": the chance a sample uses an expression
    flip: bool = True  # horizontal flips; expressions get left/right swapped
    shuffle_text: bool = False  # control run: phrases permuted within each batch
    # optimisation
    steps: int = 1000
    batch_size: int = 32  # per process
    lr: float = 1e-4  # new modules (TSP, MDE, decoders, prompt context)
    lr_image: float = 1e-5  # CLIP image tower
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05  # cosine floor, as a fraction of the peak lr
    grad_clip: float = 1.0
    amp: str = "auto"  # "auto" (bf16 or fp16 on CUDA, off on CPU), "bf16", "fp16", "off"
    # losses
    loss_sem: float = 1.0
    loss_detail: float = 2.0
    loss_fusion: float = 3.0
    loss_dice: float = 1.0
    trimap_kernel: tuple[int, int] = (15, 30)  # at 512 px; scaled to image_size
    # running
    out_dir: str = "runs/clipmat"
    resume: bool = True  # continue from out_dir/last.safetensors when it exists
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # torch intra-op threads per process; 0 keeps the default
    workers: int = 0  # data worker processes per training process
    log_every: int = 10
    ckpt_every: int = 200  # steps
    ckpt_minutes: float = 5.0  # also checkpoint after this much wall time
    max_minutes: float = 0.0  # stop (with a checkpoint) after this wall time; 0 = no limit
    stop_step: int = 0  # stop (with a checkpoint) after this step; 0 = run to ``steps``
    progress: bool = True  # tqdm bar on rank 0

    def __post_init__(self) -> None:
        if isinstance(self.trimap_kernel, list):
            self.trimap_kernel = tuple(self.trimap_kernel)
        if self.setting not in SETTINGS:
            raise ValueError(f"setting must be one of {SETTINGS}, got {self.setting!r}")
        if self.data not in DATA_KINDS:
            raise ValueError(f"data must be one of {DATA_KINDS}, got {self.data!r}")
        if self.data == "refmatte" and not self.data_root:
            raise ValueError("data 'refmatte' needs data_root, the RefMatte-layout folder")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(
                f"steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}"
            )
        if not 0.0 <= self.expression_prob <= 1.0:
            raise ValueError(f"expression_prob must lie in [0, 1], got {self.expression_prob}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config keys {unknown}; known keys: {sorted(known)}")
        return cls(**data)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a training config file (``.json`` or ``.toml``) into a dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training config file {path} does not exist")
    text = path.read_text()
    if path.suffix == ".toml":
        return tomllib.loads(text)
    if path.suffix == ".json":
        return json.loads(text)
    raise ValueError(f"config file must end in .json or .toml, got {path.name!r}")


def parse_override(item: str) -> tuple[str, Any]:
    """``"key=value"`` -> (key, value); the value is read as JSON when it parses, else a string.

    A dotted key ``model_overrides.popup=false`` sets one entry of a dict field.
    """
    if "=" not in item:
        raise ValueError(f"override {item!r} must look like key=value (e.g. steps=500)")
    key, raw = item.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip().replace("-", "_"), value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """A :class:`TrainConfig` from an optional file and ``key=value`` overrides (applied last)."""
    data = read_config_file(path) if path is not None else {}
    for item in overrides or []:
        key, value = parse_override(item)
        if "." in key:
            outer, inner = key.split(".", 1)
            data.setdefault(outer, {})
            if not isinstance(data[outer], dict):
                raise ValueError(f"override {item!r}: {outer!r} is not a table of settings")
            data[outer][inner] = value
        else:
            data[key] = value
    return TrainConfig.from_dict(data)

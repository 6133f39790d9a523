"""Training checkpoints in safetensors: the model (a normal CLIPMat checkpoint) and the optimizer.

``<dir>/last.safetensors`` loads with :func:`clipmat.load_model`; ``<dir>/last.optim.safetensors``
holds the AdamW moments, with the step and the param-group settings in its header.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from clipmat.factory import save_model
from clipmat.model.clipmat import CLIPMat

MODEL_FILE = "last.safetensors"
OPTIM_FILE = "last.optim.safetensors"


def _replace(tmp: Path, final: Path) -> None:
    os.replace(tmp, final)


def save_checkpoint(
    out_dir: str | Path,
    model: CLIPMat,
    optimizer: torch.optim.Optimizer,
    step: int,
    train_config: dict,
) -> Path:
    """Write model and optimizer state after ``step`` completed steps; returns the model file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg_json = json.dumps(train_config)
    tmp = out / (MODEL_FILE + ".tmp")
    save_model(model, tmp, step=str(step), train_config=cfg_json)
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, slot in state["state"].items():
        for name, value in slot.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"state.{idx}.{name}"] = t.detach().cpu().contiguous()
    meta = {"step": str(step), "param_groups": json.dumps(state["param_groups"])}
    otmp = out / (OPTIM_FILE + ".tmp")
    save_file(tensors, str(otmp), metadata=meta)
    _replace(otmp, out / OPTIM_FILE)
    _replace(tmp, out / MODEL_FILE)
    return out / MODEL_FILE


def load_optimizer_state(path: str | Path, optimizer: torch.optim.Optimizer) -> int:
    """Restore optimizer state from ``path``; returns the step it was saved at."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    tensors = load_file(str(path))
    groups = json.loads(meta["param_groups"])
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    current = optimizer.state_dict()["param_groups"]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in current]:
        raise ValueError(f"optimizer state in {path} does not fit this model's parameter groups")
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    return int(meta["step"])

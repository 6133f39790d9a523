"""Faster CPU paths for CLIP towers: ``apply_precision(model, "bf16"|"int8"|"onnx")``.

``model`` is a CLIPMat or a bare :class:`~clipmat.model.backbone.CLIPBackbone` (what the
zero-shot predictor holds): both get their towers from the one conversion,
:func:`convert_towers`. A backbone takes "bf16" and "int8"; "onnx" exports the blocks a CLIPMat
reads, up to its last feature level, so it is refused for a backbone whose dense and pooled
readings need every block.

- "fp32": the model as it is (the default).
- "bf16": on a CPU with native bf16 arithmetic (AVX512-BF16 or AMX, see :func:`native_bf16`),
  both towers' attention rewritten as for "int8" below, every linear layer of both towers with
  bf16 weights (:class:`Bf16Linear`: bf16 products, fp32 accumulation) and OpenAI CLIP's
  QuickGELU folded into one SiLU (:func:`fold_quick_gelu`); the residual stream and the layer
  norms stay in fp32. A predictor at "bf16" also runs the rest of the model (details branch,
  pop-up, decoders) under CPU autocast to bf16 (:func:`clipmat.runtime.autocast`). Without
  native bf16 the CPU emulates it, slower than fp32, so it is refused there.
- "int8": both towers' attention rewritten with ``nn.Linear`` projections and PyTorch's fused
  ``scaled_dot_product_attention`` (open_clip's ``nn.MultiheadAttention`` keeps its input
  projection as a bare parameter, so dynamic quantization never reaches it, and its CPU fast
  path computes attention with two batched products and a separate softmax), then every linear
  layer of both towers quantized dynamically to int8 (``torch.ao.quantization.quantize_dynamic``:
  int8 weights, activations quantized per call).
- "onnx": the image tower's blocks (up to the last feature level) exported to ONNX with a
  dynamic token count and run in ONNX Runtime with int8 weights (its dynamic quantization); the
  patch embedding, the positional embedding (resized to each photo's grid) and the text tower
  stay in PyTorch in fp32. Needs ``pip install onnx onnxruntime``; the export takes seconds
  (about 15 s for ViT-B/16 on 2 cores), or none with ``cache_dir``.

Everything else (the prompt, the pop-up, the details branch, the decoders) computes what it
did, laid out channels-last (faster convolutions and resizing on oneDNN), under autocast for a
bf16 predictor. The paths run on the CPU and are for inference only: a model at another
precision cannot be trained or saved. ``bench/cpu_paths.py`` measures their speed and their
parity with fp32.
"""

from __future__ import annotations

import copy
import importlib.util
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clipmat.model.backbone import CLIPBackbone
from clipmat.model.clipmat import CLIPMat
from clipmat.precision.layers import (
    Bf16Linear,
    SelfAttention,
    fold_quick_gelu,
    native_bf16,
    replace_attention,
    replace_linear_bf16,
)
from clipmat.precision.onnx_tower import OnnxImageTower, export_image_tower

PRECISIONS = ("fp32", "bf16", "int8", "onnx")
CPU_PRECISIONS = ("bf16", "int8")  # what "auto" tries on a CPU, fastest first
_ONNX_PACKAGES = ("onnx", "onnxruntime")


def check_precision(precision: str) -> None:
    """Raise a ValueError for an unknown precision or one whose packages are missing."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and not native_bf16():
        raise ValueError(
            "precision 'bf16' needs a CPU with native bf16 arithmetic (AVX512-BF16 or AMX); "
            "this one emulates it, slower than fp32: use 'int8'"
        )
    if precision == "int8" and set(torch.backends.quantized.supported_engines) <= {"none"}:
        raise ValueError("precision 'int8' needs a PyTorch build with quantized CPU kernels")
    if precision == "onnx":
        missing = [p for p in _ONNX_PACKAGES if importlib.util.find_spec(p) is None]
        if missing:
            raise ValueError(
                f"precision 'onnx' needs {' and '.join(missing)}: pip install onnx onnxruntime"
            )


def auto_precision(device: str) -> str:
    """What precision "auto" means on ``device``: the first of :data:`CPU_PRECISIONS` that this
    machine runs (bf16 needs native bf16 arithmetic, int8 PyTorch's quantized kernels), fp32 on a
    GPU (the CPU paths refuse other devices) or where none runs. ``device`` "auto" is the GPU
    when CUDA is present."""
    if device != "cpu" and (device != "auto" or torch.cuda.is_available()):
        return "fp32"
    for candidate in CPU_PRECISIONS:
        try:
            check_precision(candidate)
        except ValueError:
            continue
        return candidate
    return "fp32"


def check_device(precision: str, device: Any) -> None:
    """Raise a ValueError when ``precision`` cannot run on ``device`` (only fp32 leaves the CPU).

    ``device`` is a ``torch.device`` or its name; "auto" counts as the CPU only without CUDA.
    """
    check_precision(precision)
    if precision == "fp32":
        return
    name = str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if torch.device(name).type != "cpu":
        raise ValueError(
            f"precision {precision!r} runs on the CPU only; use device='cpu' or precision='fp32' "
            f"(got device {str(device)!r})"
        )


Convertible = CLIPMat | CLIPBackbone


def apply_precision(
    model: Convertible,
    precision: str = "fp32",
    *,
    inplace: bool = False,
    cache_dir: str | Path | None = None,
    threads: int | None = None,
) -> Convertible:
    """``model`` with its CLIP towers at ``precision`` (see the module's docstring).

    Args:
        model: a CLIPMat (e.g. from :func:`clipmat.create_model`) or a CLIPBackbone (the
            zero-shot predictor's), on the CPU.
        precision: one of ``PRECISIONS``; "fp32" returns ``model`` itself.
        inplace: change ``model`` itself instead of a copy (saves the copy's memory).
        cache_dir: "onnx" only: keep the exported, quantized tower here (named by a hash of its
            weights) and reuse it next time instead of exporting again.
        threads: "onnx" only: ONNX Runtime's intra-op threads (default: torch's thread count).

    Returns:
        A model in eval mode, its towers converted as the module's docstring says.

    Raises:
        ValueError: an unknown precision, a missing package (saying what to install), a model
            that is not on the CPU or whose towers were converted already, "onnx" for a
            backbone.
    """
    check_precision(precision)
    if precision == "fp32":
        return model
    backbone = _backbone(model)
    device = next(backbone.clip.parameters()).device
    if device.type != "cpu":
        raise ValueError(f"precision {precision!r} runs on the CPU only; the model is on {device}")
    if precision == "onnx" and not isinstance(model, CLIPMat):
        raise ValueError(
            "precision 'onnx' exports a CLIPMat's image blocks up to its last feature level; "
            "the zero-shot predictor's dense and pooled readings need every block: use 'int8' "
            "or 'bf16'"
        )
    if precision_of(model) != "fp32" or any(
        isinstance(m, SelfAttention) for m in backbone.clip.modules()
    ):
        raise ValueError("the model's towers were converted already; start from the fp32 model")
    if not inplace:
        model = copy.deepcopy(model)
        backbone = _backbone(model)
    model.eval().requires_grad_(False)
    if isinstance(model, CLIPMat):
        _channels_last(model)
    if precision in ("bf16", "int8"):
        convert_towers(backbone, precision, dense=not isinstance(model, CLIPMat))
    else:
        backbone.clip.visual.transformer = export_image_tower(
            model, cache_dir=cache_dir, threads=threads or torch.get_num_threads()
        )
    return model


def convert_towers(backbone: CLIPBackbone, precision: str, *, dense: bool = False) -> None:
    """Both towers of ``backbone`` at "bf16" or "int8", in place: every attention rewritten
    as :class:`SelfAttention`, then (bf16) QuickGELU folded and every linear layer in bf16, or
    (int8) every linear layer quantized dynamically. The one conversion of CLIPMat's and the
    zero-shot predictor's towers; the caller checks the precision and the device.

    ``dense``: the backbone is read densely (the zero-shot predictor), so at "int8" the image
    tower's last attention keeps its fp32 projections: the dense methods read that attention
    alone, without the residual that averages int8's error away elsewhere (per-patch cosine to
    fp32 on tiny towers 0.9989 with it quantized, 0.9999 without), for about 1/36 of the image
    tower's products.
    """
    if precision not in ("bf16", "int8"):
        raise ValueError(f"convert_towers converts to 'bf16' or 'int8', not {precision!r}")
    clip = backbone.clip
    for tower in (clip.visual.transformer, clip.transformer):
        replace_attention(tower)
        if precision == "bf16":
            fold_quick_gelu(tower)
            replace_linear_bf16(tower)
        elif dense and tower is clip.visual.transformer:
            last = tower.resblocks[-1]
            attention, last.attn = last.attn, nn.Identity()  # out of quantize_dynamic's reach
            _quantize_linear(tower)
            last.attn = attention
        else:
            _quantize_linear(tower)


def _backbone(model: Convertible) -> CLIPBackbone:
    """The CLIP towers' holder: a CLIPMat's backbone, or the backbone itself."""
    if isinstance(model, CLIPMat):
        return model.backbone
    if isinstance(model, CLIPBackbone):
        return model
    raise TypeError(f"expected a CLIPMat or a CLIPBackbone, got {type(model).__name__}")


def _channels_last(model: CLIPMat) -> None:
    """The details branch and decoders channels-last, in place: their convolutions, and the
    image they read (``CLIPMat.image_layout``); the same numbers, laid out as oneDNN prefers."""
    for name, child in model.named_children():
        if name != "backbone":
            child.to(memory_format=torch.channels_last)
    model.image_layout = torch.channels_last


def precision_of(model: Convertible) -> str:
    """The precision :func:`apply_precision` gave ``model``'s towers ("fp32" if none); ``model``
    is a CLIPMat or a CLIPBackbone."""
    clip = _backbone(model).clip
    if isinstance(clip.visual.transformer, OnnxImageTower):
        return "onnx"
    for m in clip.modules():
        if isinstance(m, Bf16Linear):
            return "bf16"
        if isinstance(m, torch.ao.nn.quantized.dynamic.Linear):
            return "int8"
    return "fp32"


def _quantize_linear(module: nn.Module) -> None:
    """Every ``nn.Linear`` under ``module`` to a dynamically quantized int8 one, in place."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8, inplace=True)

"""Faster CPU paths for CLIPMat's CLIP towers: ``apply_precision(model, "bf16"|"int8"|"onnx")``.

- "fp32": the model as it is (the default).
- "bf16": on a CPU with native bf16 arithmetic (AVX512-BF16 or AMX, see :func:`native_bf16`),
  both towers' attention rewritten as for "int8" below, and every linear layer of both towers
  keeping its weights in bf16 (:class:`Bf16Linear`: bf16 products, fp32 accumulation), and
  OpenAI CLIP's QuickGELU folded into one SiLU (:func:`fold_quick_gelu`); the residual stream
  and the layer norms stay in fp32. A predictor at "bf16" also runs the rest
  of the model (details branch, pop-up, decoders) under CPU autocast to bf16
  (:func:`clipmat.runtime.autocast`). Without native bf16 the CPU emulates it, slower than
  fp32, so it is refused there.
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
bf16 predictor. The paths run on the CPU and are for inference only: a model at another precision cannot be trained
or saved. ``bench/cpu_paths.py`` measures their speed and their parity with fp32.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clipmat.model.clipmat import CLIPMat

PRECISIONS = ("fp32", "bf16", "int8", "onnx")
ONNX_OPSET = 17
QUICK_GELU_SCALE = 1.702  # open_clip's QuickGELU: x * sigmoid(1.702 x)
_ONNX_PACKAGES = ("onnx", "onnxruntime")


class SelfAttention(nn.Module):
    """``nn.MultiheadAttention`` self-attention with ``nn.Linear`` projections and fused SDPA.

    Takes the same call as open_clip's blocks make (``attn(x, x, x, need_weights=False,
    attn_mask=mask)``) and returns ``(output, None)``; the same weights give the same result
    up to float rounding.

    Args:
        mha: the module to replace; its weights are copied.
    """

    def __init__(self, mha: nn.MultiheadAttention) -> None:
        super().__init__()
        if not mha._qkv_same_embed_dim or mha.in_proj_bias is None or mha.bias_k is not None:
            raise ValueError("only self-attention with one biased input projection is supported")
        d = mha.embed_dim
        self.num_heads = mha.num_heads
        self.batch_first = mha.batch_first
        self.in_proj = nn.Linear(d, 3 * d)
        self.out_proj = nn.Linear(d, d)
        with torch.no_grad():
            self.in_proj.weight.copy_(mha.in_proj_weight)
            self.in_proj.bias.copy_(mha.in_proj_bias)
            self.out_proj.weight.copy_(mha.out_proj.weight)
            self.out_proj.bias.copy_(mha.out_proj.bias)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        need_weights: bool = False,
        attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, None]:
        """Self-attention of ``query``: (B, N, D) (or (N, B, D) when not batch-first).

        ``key`` and ``value`` must be ``query`` itself (or None). ``attn_mask``: (N, N) or
        (B * heads, N, N), added to the scores when float, True = not allowed when bool (the
        conventions of ``nn.MultiheadAttention``).
        """
        if need_weights:
            raise NotImplementedError("SelfAttention does not return attention weights")
        if (key is not None and key is not query) or (value is not None and value is not query):
            raise NotImplementedError("SelfAttention computes self-attention only")
        x = query if self.batch_first else query.transpose(0, 1)
        b, n, d = x.shape
        qkv = self.in_proj(x).view(b, n, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # 3 x (B, heads, N, d / heads)
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:
                attn_mask = ~attn_mask  # SDPA: True = allowed
            if attn_mask.dim() == 3:
                attn_mask = attn_mask.view(b, self.num_heads, n, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = self.out_proj(out.transpose(1, 2).reshape(b, n, d))
        return (out if self.batch_first else out.transpose(0, 1)), None


def replace_attention(module: nn.Module) -> int:
    """Replace every ``nn.MultiheadAttention`` under ``module`` by :class:`SelfAttention`.

    Returns:
        How many were replaced.
    """
    count = 0
    for name, child in module.named_children():
        if isinstance(child, nn.MultiheadAttention):
            setattr(module, name, SelfAttention(child))
            count += 1
        else:
            count += replace_attention(child)
    return count


class Bf16Linear(nn.Module):
    """``nn.Linear`` with bf16 weights: (..., in) of any float dtype -> (..., out) in bf16.

    The input is rounded to bf16 and the product accumulates in fp32 (oneDNN), so a CPU with
    native bf16 computes it several times faster than fp32. A caller that adds the output to an
    fp32 tensor (a residual) gets fp32 back by type promotion. Where PyTorch has oneDNN, the
    weight is kept pre-packed in oneDNN's blocked layout (the packing its compiler uses when it
    freezes a model) instead of being reordered on every call; elsewhere, a plain bf16 matrix.

    Args:
        linear: the layer to replace; its weights are copied in bf16.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().to(torch.bfloat16)
        bias = linear.bias
        self.bias = None if bias is None else nn.Parameter(bias.detach().to(torch.bfloat16), False)
        self.packed = _pack_bf16(weight)  # an opaque oneDNN tensor, or None
        self.weight = None if self.packed is not None else nn.Parameter(weight, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.bfloat16)
        if self.packed is None:
            return F.linear(x, self.weight, self.bias)
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")


def _pack_bf16(weight: torch.Tensor) -> torch.Tensor | None:
    """(out, in) bf16 -> the weight in oneDNN's layout for products with ~1000 rows, or None
    where this PyTorch has no oneDNN packing."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(weight, 1024)
    except (AttributeError, RuntimeError):
        return None


def fold_quick_gelu(module: nn.Module) -> int:
    """Rewrite every MLP under ``module`` whose activation is open_clip's ``QuickGELU`` with one
    fused ``SiLU``, in place; how many. QuickGELU(y) = y * sigmoid(1.702 y) = SiLU(1.702 y) /
    1.702, so ``c_fc``'s weight and bias are scaled by 1.702 and ``c_proj``'s weight divided by
    it: the same function, one elementwise pass instead of three."""
    from open_clip.transformer import QuickGELU

    count = 0
    for child in module.modules():
        parts = [getattr(child, n, None) for n in ("c_fc", "gelu", "c_proj")]
        if isinstance(parts[1], QuickGELU) and all(isinstance(p, nn.Linear) for p in parts[::2]):
            with torch.no_grad():
                parts[0].weight.mul_(QUICK_GELU_SCALE)
                if parts[0].bias is not None:
                    parts[0].bias.mul_(QUICK_GELU_SCALE)
                parts[2].weight.div_(QUICK_GELU_SCALE)
            child.gelu = nn.SiLU()
            count += 1
    return count


def replace_linear_bf16(module: nn.Module) -> int:
    """Replace every ``nn.Linear`` under ``module`` by :class:`Bf16Linear`; how many."""
    count = 0
    for name, child in module.named_children():
        if type(child) is nn.Linear:
            setattr(module, name, Bf16Linear(child))
            count += 1
        else:
            count += replace_linear_bf16(child)
    return count


def native_bf16() -> bool:
    """Whether this CPU computes bf16 products natively (AVX512-BF16 or AMX tiles)."""
    cpu = torch.cpu
    return any(
        bool(getattr(cpu, probe, lambda: False)())
        for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )


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


def apply_precision(
    model: CLIPMat,
    precision: str = "fp32",
    *,
    inplace: bool = False,
    cache_dir: str | Path | None = None,
    threads: int | None = None,
) -> CLIPMat:
    """``model`` with its CLIP towers at ``precision`` (see the module's docstring).

    Args:
        model: a CLIPMat on the CPU, e.g. from :func:`clipmat.create_model`.
        precision: one of ``PRECISIONS``; "fp32" returns ``model`` itself.
        inplace: change ``model`` itself instead of a copy (saves the copy's memory).
        cache_dir: "onnx" only: keep the exported, quantized tower here (named by a hash of its
            weights) and reuse it next time instead of exporting again.
        threads: "onnx" only: ONNX Runtime's intra-op threads (default: torch's thread count).

    Returns:
        A model in eval mode, its towers converted as the module's docstring says.

    Raises:
        ValueError: an unknown precision, a missing package (saying what to install), a model
            that is not on the CPU or whose towers were converted already.
    """
    check_precision(precision)
    if precision == "fp32":
        return model
    if model.device.type != "cpu":
        raise ValueError(
            f"precision {precision!r} runs on the CPU only; the model is on {model.device}"
        )
    if precision_of(model) != "fp32" or any(
        isinstance(m, SelfAttention) for m in model.backbone.clip.modules()
    ):
        raise ValueError("the model's towers were converted already; start from the fp32 model")
    if not inplace:
        model = copy.deepcopy(model)
    model.eval().requires_grad_(False)
    clip = model.backbone.clip
    _channels_last(model)
    if precision in ("bf16", "int8"):
        for tower in (clip.visual.transformer, clip.transformer):
            replace_attention(tower)
            if precision == "bf16":
                fold_quick_gelu(tower)
                replace_linear_bf16(tower)
            else:
                _quantize_linear(tower)
    else:
        clip.visual.transformer = export_image_tower(
            model, cache_dir=cache_dir, threads=threads or torch.get_num_threads()
        )
    return model


def _channels_last(model: CLIPMat) -> None:
    """The details branch and decoders channels-last, in place: their convolutions, and the
    image they read (``CLIPMat.image_layout``); the same numbers, laid out as oneDNN prefers."""
    for name, child in model.named_children():
        if name != "backbone":
            child.to(memory_format=torch.channels_last)
    model.image_layout = torch.channels_last


def precision_of(model: CLIPMat) -> str:
    """The precision :func:`apply_precision` gave ``model``'s towers ("fp32" if none)."""
    clip = model.backbone.clip
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


class _Blocks(nn.Module):
    """The image tower's blocks up to the last feature level, for the export: (B, N, D) tokens
    -> the outputs of the blocks at ``indices`` (0-based), each (B, N, D)."""

    def __init__(self, blocks: nn.ModuleList, indices: list[int]) -> None:
        super().__init__()
        self.blocks = blocks
        self.indices = indices

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.indices:
                out.append(x)
        return tuple(out)


class OnnxImageTower(nn.Module):
    """Stands in for open_clip's image ``Transformer``: runs its blocks in ONNX Runtime.

    Only :meth:`forward_intermediates` with the exported levels is offered (what
    :meth:`clipmat.model.backbone.CLIPBackbone.encode_image_levels` calls).

    Args:
        session: an ``onnxruntime.InferenceSession`` of :class:`_Blocks`.
        indices: the 0-based block indices whose outputs the session returns.
    """

    batch_first = True
    grad_checkpointing = False

    def __init__(self, session: Any, indices: list[int]) -> None:
        super().__init__()
        self.session = session
        self.indices = list(indices)
        self.resblocks = nn.ModuleList()  # its parameters live in the session

    def forward_intermediates(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        indices: int | list[int] | None = None,
        stop_early: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, N, D) tokens -> (the last level, [the levels at ``indices``, each (B, N, D)])."""
        wanted = [indices] if isinstance(indices, int) else list(indices or [])
        if attn_mask is not None or wanted != self.indices:
            raise ValueError(
                f"this ONNX image tower returns the levels {self.indices} without a mask only"
            )
        feed = {"tokens": x.detach().float().contiguous().numpy()}
        levels = [torch.from_numpy(out) for out in self.session.run(None, feed)]
        return levels[-1], levels

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError(
            "the ONNX image tower runs only the blocks up to the last feature level; "
            "use precision 'fp32' for pooled or dense CLIP embeddings"
        )


def export_image_tower(
    model: CLIPMat, *, cache_dir: str | Path | None = None, threads: int = 1
) -> OnnxImageTower:
    """The model's image blocks (up to the last of ``feature_layers``) in ONNX Runtime, int8.

    Args:
        model: a CLIPMat on the CPU (its tower is read, not changed).
        cache_dir: reuse (or keep) the quantized file there, named by a hash of the weights.
        threads: ONNX Runtime's intra-op threads.
    """
    import onnxruntime as ort

    backbone = model.backbone
    indices = [i - 1 for i in backbone.feature_layers]
    blocks = copy.deepcopy(backbone.clip.visual.transformer.resblocks[: max(indices) + 1])
    replace_attention(blocks)
    module = _Blocks(blocks, indices).eval()
    with tempfile.TemporaryDirectory(prefix="clipmat-onnx-") as tmp:
        target = Path(tmp) / "tower.int8.onnx"
        if cache_dir is not None:
            target = Path(cache_dir) / f"tower-{_weights_key(module, ort.__version__)}.int8.onnx"
        if not target.is_file():
            _export_quantized(module, backbone.vision_width, target)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])
    return OnnxImageTower(session, indices)


def _export_quantized(module: _Blocks, width: int, target: Path) -> None:
    """Export ``module`` with dynamic batch and token axes, quantize its weights to int8 (ONNX
    Runtime's dynamic quantization) and write the result to ``target`` atomically."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="clipmat-onnx-export-") as tmp:
        plain = Path(tmp) / "tower.onnx"
        names = [f"level{i}" for i in range(len(module.indices))]
        axes = {name: {0: "batch", 1: "tokens"} for name in ["tokens", *names]}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (torch.zeros(1, 17, width),),
                str(plain),
                input_names=["tokens"],
                output_names=names,
                dynamic_axes=axes,
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with _quiet_root_logger():
                quantize_dynamic(str(plain), str(partial), weight_type=QuantType.QInt8)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """Silence the root logger for a moment (ONNX Runtime's quantizer logs a hint there with
    ``logging.warning``, which would also install a stderr handler on an unconfigured root)."""
    root = logging.getLogger()
    handler, level = logging.NullHandler(), root.level
    root.addHandler(handler)
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _weights_key(module: nn.Module, version: str) -> str:
    """A short hash of ``module``'s weights, its structure and the runtime's version."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{version}:{ONNX_OPSET}:{module.indices}".encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(tensor.detach().float().numpy()).tobytes())
    return digest.hexdigest()

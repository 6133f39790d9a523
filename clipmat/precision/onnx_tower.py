"""The "onnx" CPU path of clipmat.precision: CLIPMat's image blocks exported to ONNX, their
weights quantized to int8 by ONNX Runtime, run in an ``InferenceSession`` in the tower's place."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from clipmat.model.clipmat import CLIPMat
from clipmat.precision.layers import replace_attention

ONNX_OPSET = 17


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

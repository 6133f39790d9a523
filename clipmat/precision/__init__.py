"""The CPU paths: CLIP towers in bf16, int8 or ONNX Runtime (``apply_precision``), a
CLIPMat's or a bare CLIPBackbone's (the zero-shot predictor's).

``paths`` chooses and checks a precision and converts a model; ``layers`` holds the layers the
paths put in (fused self-attention, bf16 linear layers, the QuickGELU fold); ``onnx_tower`` runs
the image tower's blocks in ONNX Runtime.
"""

from clipmat.precision.layers import Bf16Linear, SelfAttention, native_bf16
from clipmat.precision.onnx_tower import OnnxImageTower
from clipmat.precision.paths import (
    CPU_PRECISIONS,
    PRECISIONS,
    apply_precision,
    auto_precision,
    check_device,
    check_precision,
    convert_towers,
    precision_of,
)

__all__ = [
    "CPU_PRECISIONS",
    "PRECISIONS",
    "Bf16Linear",
    "OnnxImageTower",
    "SelfAttention",
    "apply_precision",
    "auto_precision",
    "check_device",
    "check_precision",
    "convert_towers",
    "native_bf16",
    "precision_of",
]

"""The layers of clipmat.precision's CPU paths: fused self-attention, bf16 linear layers,
QuickGELU folded into SiLU, and the test for native bf16 arithmetic."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

QUICK_GELU_SCALE = 1.702  # open_clip's QuickGELU: x * sigmoid(1.702 x)


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


def replace_modules(
    module: nn.Module, match: Callable[[nn.Module], bool], make: Callable[[nn.Module], nn.Module]
) -> int:
    """Replace every submodule of ``module`` that ``match`` accepts by ``make(submodule)``, in
    place (a replaced module is not searched further); how many were replaced."""
    count = 0
    for name, child in module.named_children():
        if match(child):
            setattr(module, name, make(child))
            count += 1
        else:
            count += replace_modules(child, match, make)
    return count


def replace_attention(module: nn.Module) -> int:
    """Replace every ``nn.MultiheadAttention`` under ``module`` by :class:`SelfAttention`.

    Returns:
        How many were replaced.
    """
    return replace_modules(module, lambda m: isinstance(m, nn.MultiheadAttention), SelfAttention)


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
    return replace_modules(module, lambda m: type(m) is nn.Linear, Bf16Linear)


def native_bf16() -> bool:
    """Whether this CPU computes bf16 products natively (AVX512-BF16 or AMX tiles)."""
    cpu = torch.cpu
    return any(
        bool(getattr(cpu, probe, lambda: False)())
        for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )

"""Text-driven semantic pop-up (TSP): visual tokens attend to the text, then to each other."""

from __future__ import annotations

import torch
from torch import nn

from clipmat.model.layers import tokens_to_grid


class SemanticPopUp(nn.Module):
    """Cross-attention of visual tokens to text tokens, self-attention, then LN + MLP (docs/decisions.md#pop-up).

    Our choice: the cross-attention output is added to the projected visual tokens (a residual the figure
    does not draw), so visual content is not replaced by a mixture of text values.

    Args:
        visual_width: Dv. text_width: Dt. dim: D. heads: attention heads. out_dim: D'.
    """

    def __init__(
        self,
        *,
        visual_width: int,
        text_width: int,
        dim: int,
        heads: int,
        out_dim: int,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.visual_in = nn.Sequential(nn.LayerNorm(visual_width), nn.Linear(visual_width, dim))
        self.text_in = nn.Sequential(nn.LayerNorm(text_width), nn.Linear(text_width, dim))
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.self_norm = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.out = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, out_dim)
        )

    def forward(
        self,
        visual: torch.Tensor,
        text: torch.Tensor,
        text_padding: torch.Tensor,
        grid: tuple[int, int],
    ) -> torch.Tensor:
        """
        Args:
            visual: (B, 1 + h*w, Dv) final visual tokens (CLS first).
            text: (B, L, Dt) text token features.
            text_padding: (B, L) bool, True for padding positions to ignore.
            grid: (h, w).

        Returns:
            (B, D', h, w) text-conditioned semantic features.
        """
        v = self.visual_in(visual)  # (B, N+1, D)
        t = self.text_in(text)  # (B, L, D)
        f = v + self.cross_attn(v, t, t, key_padding_mask=text_padding, need_weights=False)[0]
        g = self.self_norm(f)
        f = f + self.self_attn(g, g, g, need_weights=False)[0]  # (B, N+1, D)
        return tokens_to_grid(self.out(f), grid)  # (B, D', h, w)


class TextScaling(nn.Module):
    """The ablation baseline without TSP: visual tokens scaled by the pooled text feature.

    Output shape matches :class:`SemanticPopUp`.
    """

    def __init__(self, *, visual_width: int, text_width: int, dim: int, out_dim: int) -> None:
        super().__init__()
        self.visual_in = nn.Sequential(nn.LayerNorm(visual_width), nn.Linear(visual_width, dim))
        self.text_in = nn.Sequential(nn.LayerNorm(text_width), nn.Linear(text_width, dim))
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, out_dim))

    def forward(
        self,
        visual: torch.Tensor,
        text: torch.Tensor,
        text_padding: torch.Tensor,
        grid: tuple[int, int],
    ) -> torch.Tensor:
        keep = (~text_padding).unsqueeze(-1).to(text.dtype)  # (B, L, 1)
        pooled = (self.text_in(text) * keep).sum(1) / keep.sum(1).clamp(min=1)  # (B, D)
        f = self.visual_in(visual) * pooled.unsqueeze(1)  # (B, N+1, D)
        return tokens_to_grid(self.out(f), grid)

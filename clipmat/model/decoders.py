"""Matting semantic decoder (3-class trimap), matting details decoder, and their fusion."""

from __future__ import annotations

import torch
from torch import nn

from clipmat.model.layers import ConvBNReLU, DecoderBlock, resize

BACKGROUND, TRANSITION, FOREGROUND = 0, 1, 2


class SemanticDecoder(nn.Module):
    """C2, C1 then a 1x1 head to 3 classes (background, transition, foreground)."""

    def __init__(self, *, in_ch: int, channels: tuple[int, int]) -> None:
        super().__init__()
        self.c2 = DecoderBlock(in_ch, channels[0])
        self.c1 = DecoderBlock(channels[0], channels[1], upsample=False)
        self.head = nn.Conv2d(channels[1], 3, 1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(B, D', h, w) -> logits (B, 3, H, W)."""
        return resize(self.head(self.c1(self.c2(x))), size)


class DetailsDecoder(nn.Module):
    """U-Net style C4 -> C1 over the MDE features; sigmoid alpha for the transition region.

    Levels whose feature is ``None`` (the ablation without MDE) are skipped connections. With
    ``full_res_ch`` > 0, a C0 block reads C1's output upsampled to full size beside F_0 and adds
    a correction to the alpha logit there; its head starts at zero, so a model trained without
    it predicts the same alpha until the correction learns.
    """

    def __init__(
        self,
        *,
        in_ch: tuple[int, ...],
        channels: tuple[int, ...],
        skips: bool,
        full_res_ch: int = 0,
    ) -> None:
        super().__init__()
        skip = [c if skips else 0 for c in in_ch]
        self.c4 = DecoderBlock(in_ch[3], channels[0])
        self.c3 = DecoderBlock(channels[0] + skip[2], channels[1])
        self.c2 = DecoderBlock(channels[1] + skip[1], channels[2])
        self.c1 = DecoderBlock(channels[2] + skip[0], channels[3], upsample=False)
        self.head = nn.Conv2d(channels[3], 1, 1)
        self.c0 = self.head0 = None
        if full_res_ch > 0:
            self.c0 = ConvBNReLU(channels[3] + full_res_ch, full_res_ch)
            self.head0 = nn.Conv2d(full_res_ch, 1, 1)
            nn.init.zeros_(self.head0.weight)
            nn.init.zeros_(self.head0.bias)

    def forward(self, feats: list[torch.Tensor | None], size: tuple[int, int]) -> torch.Tensor:
        """F_0..F_4 (strides 1..16; F_0 may be None) -> (B, 1, H, W) alpha in [0, 1]."""
        x = self.c4(feats[4])
        for block, skip in ((self.c3, feats[3]), (self.c2, feats[2]), (self.c1, feats[1])):
            if skip is not None:
                x = torch.cat([resize(x, skip.shape[-2:]), skip], dim=1)
            x = block(x)
        logit = resize(self.head(x), size)  # (B, 1, H, W) from stride 2
        if self.c0 is not None and feats[0] is not None:
            x = self.c0(torch.cat([resize(x, size), feats[0]], dim=1))
            logit = logit + self.head0(x)
        return torch.sigmoid(logit)


def fuse_alpha(semantic_logits: torch.Tensor, detail: torch.Tensor, mode: str) -> torch.Tensor:
    """Collaborative matting: foreground from the semantic map, transition from the details.

    Args:
        semantic_logits: (B, 3, H, W). detail: (B, 1, H, W) in [0, 1].
        mode: "argmax" (alpha = detail * [class == transition] + [class == foreground], docs/decisions.md#fusion)
            or "soft" (alpha = p_fg + p_transition * detail).

    Returns:
        (B, 1, H, W) alpha in [0, 1].
    """
    if mode == "soft":
        prob = semantic_logits.softmax(dim=1)
        return prob[:, FOREGROUND : FOREGROUND + 1] + prob[:, TRANSITION : TRANSITION + 1] * detail
    labels = semantic_labels(semantic_logits).unsqueeze(1)
    return detail * (labels == TRANSITION).to(detail.dtype) + (labels == FOREGROUND).to(
        detail.dtype
    )


def semantic_labels(semantic_logits: torch.Tensor) -> torch.Tensor:
    """Class index per pixel, (B, 3, H, W) -> (B, H, W) int64; equal to ``argmax(dim=1)``
    (ties go to the lower class), written with comparisons because a channel argmax is slow on
    the CPU."""
    bg, tr, fg = semantic_logits.unbind(dim=1)
    is_fg = (fg > bg) & (fg > tr)
    is_tr = (tr > bg) & (tr >= fg)
    return is_fg.long() * FOREGROUND + is_tr.long() * TRANSITION

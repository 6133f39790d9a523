"""Small building blocks shared by the CLIPMat modules."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class DecoderBlock(nn.Module):
    """A decoder "C" block: (Conv3x3-BN-ReLU) x 2, then x2 bilinear upsampling.

    A last block may leave the upsampling out (``upsample=False``) so that its 1x1 head runs
    before it: bilinear resizing and a 1x1 convolution commute, and resizing one channel instead
    of many is what makes the full-resolution output cheap.
    """

    def __init__(self, in_ch: int, out_ch: int, *, upsample: bool = True) -> None:
        super().__init__()
        self.convs = nn.Sequential(ConvBNReLU(in_ch, out_ch), ConvBNReLU(out_ch, out_ch))
        self.upsample = upsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_ch, h, w) -> (B, out_ch, 2h, 2w), or (B, out_ch, h, w) without upsampling."""
        x = self.convs(x)
        if not self.upsample:
            return x
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def tokens_to_grid(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Drop CLS and fold patch tokens: (B, 1 + h*w, C) -> (B, C, h, w)."""
    b, _, c = tokens.shape
    return tokens[:, 1:].transpose(1, 2).reshape(b, c, grid[0], grid[1])


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, C, h, w) to ``size``; a no-op when the size already matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

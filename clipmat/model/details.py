"""Multi-level details extractor (MDE): four visual levels fused with the raw image
(docs/decisions.md#details-extractor)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clipmat.model.layers import ConvBNReLU, resize, tokens_to_grid


class DetailLevel(nn.Module):
    """One level i: V_i (visual tokens, reduced and resized) + M_i (max-pooled image) -> F_i."""

    def __init__(
        self, *, level: int, visual_width: int, visual_ch: int, image_ch: int, out_ch: int
    ) -> None:
        super().__init__()
        self.stride = 2**level
        self.visual = nn.Sequential(
            nn.Conv2d(visual_width, visual_ch, 1, bias=False), nn.BatchNorm2d(visual_ch)
        )
        self.image = nn.Sequential(
            nn.Conv2d(3, image_ch, 3, padding=1, bias=False), nn.BatchNorm2d(image_ch)
        )
        self.fuse = ConvBNReLU(visual_ch + image_ch, out_ch)

    def forward(
        self, tokens: torch.Tensor, image: torch.Tensor, grid: tuple[int, int]
    ) -> torch.Tensor:
        """tokens (B, 1+h*w, Dv), image (B, 3, H, W) normalised -> (B, out_ch, H/2^i, W/2^i)."""
        size = (image.shape[-2] // self.stride, image.shape[-1] // self.stride)
        v = resize(self.visual(tokens_to_grid(tokens, grid)), size)  # (B, Cv, H/2^i, W/2^i)
        m = self.image(F.max_pool2d(image, self.stride))  # (B, Cm, H/2^i, W/2^i)
        return self.fuse(torch.cat([v, m], dim=1))


class FullResLevel(nn.Module):
    """F_0: the image alone at full resolution, (Conv3x3-BN-ReLU) x 2 (our addition, see the
    README). The visual tokens are left out: at stride 1 they would only be a blurred copy of
    what F_1 already holds."""

    def __init__(self, out_ch: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(ConvBNReLU(3, out_ch), ConvBNReLU(out_ch, out_ch))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, 3, H, W) normalised -> (B, out_ch, H, W)."""
        return self.convs(image)


class DetailsExtractor(nn.Module):
    """MDE: returns [F_0, F_1, ..., F_4], F_i at stride 2^i of the input; F_0 (full
    resolution, image only) is None unless ``full_res_ch`` > 0."""

    def __init__(
        self,
        *,
        visual_width: int,
        visual_ch: tuple[int, ...],
        image_ch: tuple[int, ...],
        out_ch: tuple[int, ...],
        full_res_ch: int = 0,
    ) -> None:
        super().__init__()
        self.full_res = FullResLevel(full_res_ch) if full_res_ch > 0 else None
        self.levels = nn.ModuleList(
            DetailLevel(
                level=i + 1,
                visual_width=visual_width,
                visual_ch=visual_ch[i],
                image_ch=image_ch[i],
                out_ch=out_ch[i],
            )
            for i in range(4)
        )

    def forward(
        self, levels: list[torch.Tensor], image: torch.Tensor, grid: tuple[int, int]
    ) -> list[torch.Tensor | None]:
        """4 x (B, 1+h*w, Dv) tokens and the normalised image (B, 3, H, W) -> F_0..F_4."""
        f0 = self.full_res(image) if self.full_res is not None else None
        return [f0, *(layer(tokens, image, grid) for layer, tokens in zip(self.levels, levels))]


class LastTokensOnly(nn.Module):
    """The ablation without MDE: only the final visual tokens, reduced, at stride 16, no skips
    (F_0..F_3 are None)."""

    def __init__(self, *, visual_width: int, out_ch: int) -> None:
        super().__init__()
        self.reduce = ConvBNReLU(visual_width, out_ch, kernel=1)

    def forward(
        self, levels: list[torch.Tensor], image: torch.Tensor, grid: tuple[int, int]
    ) -> list[torch.Tensor | None]:
        size = (image.shape[-2] // 16, image.shape[-1] // 16)
        return [None] * 4 + [resize(self.reduce(tokens_to_grid(levels[-1], grid)), size)]

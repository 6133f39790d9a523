"""CLIPMat: composes the CLIP towers, the prompt, TSP, MDE and the two decoders (the paper's
figure; what it leaves open is in docs/decisions.md)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from clipmat.config import CLIPMatConfig
from clipmat.model.backbone import CLIPBackbone
from clipmat.model.decoders import DetailsDecoder, SemanticDecoder, fuse_alpha
from clipmat.model.details import DetailsExtractor, LastTokensOnly
from clipmat.model.popup import SemanticPopUp, TextScaling
from clipmat.model.prompt import ContextPrompt, TextTokens


@dataclass
class ImageFeatures:
    """What CLIPMat computes from the image alone; reused for every phrase on that image.

    Attributes:
        tokens: (B, 1 + h*w, Dv) final visual tokens (T4 output).
        detail: (B, 1, H, W) details decoder output in [0, 1] (the details branch takes no text).
        grid: (h, w) token grid.
    """

    tokens: torch.Tensor
    detail: torch.Tensor
    grid: tuple[int, int]

    @property
    def size(self) -> tuple[int, int]:
        return int(self.detail.shape[-2]), int(self.detail.shape[-1])


@dataclass
class CLIPMatOutput:
    """Predictions of one forward pass.

    Attributes:
        alpha: (B, 1, H, W) fused alpha in [0, 1].
        semantic_logits: (B, 3, H, W) background / transition / foreground logits.
        detail: (B, 1, H, W) details decoder alpha in [0, 1].
    """

    alpha: torch.Tensor
    semantic_logits: torch.Tensor
    detail: torch.Tensor


class CLIPMat(nn.Module):
    """Referring image matting model. Build it with :func:`clipmat.create_model`.

    Args:
        cfg: the model configuration; every module switch and width comes from it.
    """

    def __init__(self, cfg: CLIPMatConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = CLIPBackbone(cfg.clip, feature_layers=cfg.feature_layers)
        dv, dt = self.backbone.vision_width, self.backbone.text_width
        self.prompt = ContextPrompt(cfg, text_width=dt)
        if cfg.popup:
            self.popup = SemanticPopUp(
                visual_width=dv,
                text_width=dt,
                dim=cfg.popup_dim,
                heads=cfg.popup_heads,
                out_dim=cfg.popup_out,
                dropout=cfg.popup_dropout,
            )
        else:
            self.popup = TextScaling(
                visual_width=dv, text_width=dt, dim=cfg.popup_dim, out_dim=cfg.popup_out
            )
        if cfg.details:
            self.details = DetailsExtractor(
                visual_width=dv,
                visual_ch=cfg.details_visual,
                image_ch=cfg.details_image,
                out_ch=cfg.details_out,
                full_res_ch=cfg.details_full_res,
            )
        else:
            self.details = LastTokensOnly(visual_width=dv, out_ch=cfg.details_out[3])
        self.semantic_decoder = SemanticDecoder(in_ch=cfg.popup_out, channels=cfg.semantic_channels)
        self.details_decoder = DetailsDecoder(
            in_ch=cfg.details_out,
            channels=cfg.detail_channels,
            skips=cfg.details,
            full_res_ch=cfg.details_full_res if cfg.details else 0,
        )
        # The image's layout for the details branch: channels-last where its convolutions
        # are channels-last too (clipmat.precision's CPU paths), faster on oneDNN.
        self.image_layout = torch.contiguous_format
        self.apply_freezing()

    def apply_freezing(self) -> None:
        """Freeze what the config says training must not update: the text tower (unless
        ``train_text_tower``; the context vectors always learn), the image tower when
        ``train_image_tower`` is False, and CLIP parameters CLIPMat never uses."""
        for p in self.backbone.text_parameters():
            p.requires_grad_(self.cfg.train_text_tower)
        if not self.cfg.train_image_tower:
            for p in self.backbone.clip.visual.parameters():
                p.requires_grad_(False)
        for p in self.backbone.unused_parameters():
            p.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self.backbone.mean.device

    def tokenize(
        self, texts: list[str], settings: list[str], template_ids: list[int] | None = None
    ) -> TextTokens:
        """Phrases -> :class:`TextTokens` on the model's device (see ``ContextPrompt.tokenize``)."""
        return self.prompt.tokenize(texts, settings, template_ids).to(self.device)

    def encode_image(
        self, images: torch.Tensor, levels: list[torch.Tensor] | None = None
    ) -> ImageFeatures:
        """Text-independent part: CLIP image tower, MDE and the details decoder.

        Args:
            images: (B, 3, H, W) RGB floats in [0, 1], H and W multiples of the patch size.
            levels: the image tower's levels of these images
                (``backbone.encode_image_levels(backbone.normalize(images))``) when the caller
                has them already; computed here when None.
        """
        x = self.backbone.normalize(images)
        if levels is None:
            levels = self.backbone.encode_image_levels(x)  # 4 x (B, 1 + h*w, Dv)
        p = self.backbone.patch_size
        grid = (images.shape[-2] // p, images.shape[-1] // p)
        feats = self.details(levels, x.contiguous(memory_format=self.image_layout), grid)
        detail = self.details_decoder(feats, images.shape[-2:])
        return ImageFeatures(tokens=levels[-1], detail=detail, grid=grid)

    def encode_text(self, tokens: TextTokens) -> tuple[torch.Tensor, torch.Tensor]:
        """Phrases -> ((B, L, Dt) token features, (B, L) bool padding mask)."""
        return self.prompt(self.backbone, tokens), tokens.padding_mask

    def decode(self, features: ImageFeatures, tokens: TextTokens) -> CLIPMatOutput:
        """Text-dependent part: prompt, TSP, semantic decoder and fusion.

        A single image's features are shared by all phrases of ``tokens``.
        """
        return self.decode_text(features, *self.encode_text(tokens))

    def decode_text(
        self, features: ImageFeatures, text: torch.Tensor, padding: torch.Tensor
    ) -> CLIPMatOutput:
        """TSP, semantic decoder and fusion from text features (B, L, Dt) and padding (B, L)."""
        n = text.shape[0]
        visual, detail = features.tokens, features.detail
        if visual.shape[0] == 1 and n > 1:
            visual = visual.expand(n, -1, -1)
            detail = detail.expand(n, -1, -1, -1)
        if visual.shape[0] != n:
            raise ValueError(f"{visual.shape[0]} images but {n} phrases")
        semantic = self.popup(visual, text, padding, features.grid)
        logits = self.semantic_decoder(semantic, features.size)
        alpha = fuse_alpha(logits, detail, self.cfg.fusion)
        return CLIPMatOutput(alpha=alpha, semantic_logits=logits, detail=detail)

    def forward(self, images: torch.Tensor, tokens: TextTokens) -> CLIPMatOutput:
        """(B, 3, H, W) images in [0, 1] and B phrases -> :class:`CLIPMatOutput`."""
        return self.decode(self.encode_image(images), tokens)

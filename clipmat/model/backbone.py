"""CLIP image and text towers (open_clip), exposing multi-level visual tokens and per-token text
features. This is the only module of the project that imports open_clip."""

from __future__ import annotations

import math

import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from torch import nn

from clipmat.config import CLIPTowersConfig

# OpenAI CLIP's normalisation constants.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Training-free dense readings of the last image block; see CLIPBackbone.encode_dense.
DENSE_METHODS = (
    "clearclip",
    "sclip",
    "maskclip",
    "plain",
    "csa-noresidual",
    "value-noresidual",
)
# method -> (attention of the last block, whether its residual and feed-forward are kept)
_DENSE_LAST_BLOCK = {
    "clearclip": ("qq", False),
    "sclip": ("csa", True),
    "maskclip": ("value", True),
    "csa-noresidual": ("csa", False),
    "value-noresidual": ("value", False),
}
# Methods whose official code resizes the positional embedding with scale_factor=(g' + 0.1) / g
# (ClearCLIP's and SCLIP's interpolate_pos_encoding); the others match the grids by size.
_REFERENCE_SAMPLING = ("clearclip", "sclip")

_TOKENIZER: open_clip.tokenizer.SimpleTokenizer | None = None


def _tokenizer() -> open_clip.tokenizer.SimpleTokenizer:
    global _TOKENIZER
    if _TOKENIZER is None:
        _TOKENIZER = open_clip.tokenizer.SimpleTokenizer()
    return _TOKENIZER


def bpe_encode(text: str) -> list[int]:
    """CLIP's byte-pair encoding of ``text`` (lower-cased, cleaned), without SOT/EOT."""
    return _tokenizer().encode(text)


def special_token_ids() -> tuple[int, int]:
    """(start-of-text, end-of-text) token ids of CLIP's tokenizer."""
    tok = _tokenizer()
    return tok.sot_token_id, tok.eot_token_id


def create_clip(cfg: CLIPTowersConfig) -> CLIP:
    """Build the open_clip CLIP model described by ``cfg``, randomly initialised, offline."""
    return CLIP(
        embed_dim=cfg.embed_dim,
        vision_cfg=dict(cfg.vision),
        text_cfg=dict(cfg.text),
        quick_gelu=cfg.quick_gelu,
    )


def _resize_grid_embedding(
    pos: torch.Tensor, grid: tuple[int, int], *, reference_sampling: bool = False
) -> torch.Tensor:
    """Bicubically resize a square positional embedding (1 + g*g, C) to (1 + gh*gw, C); CLS kept.

    Returned unchanged when the grid is already (g, g). By default the two grids are matched by
    size (open_clip's and MaskCLIP's resize). With ``reference_sampling`` the step between
    samples is g / (g' + 0.1), as in ClearCLIP's and SCLIP's ``interpolate_pos_encoding``, which
    pass ``scale_factor=(g' + 0.1) / g`` to the interpolation instead of the size.
    """
    cls_pos, patch_pos = pos[:1], pos[1:]
    old = int(math.isqrt(patch_pos.shape[0]))
    if (old, old) == tuple(grid):
        return pos
    patch_pos = patch_pos.reshape(1, old, old, -1).permute(0, 3, 1, 2).float()  # (1, C, g, g)
    if reference_sampling:
        factor = ((grid[0] + 0.1) / old, (grid[1] + 0.1) / old)
        patch_pos = F.interpolate(patch_pos, scale_factor=factor, mode="bicubic")
        patch_pos = patch_pos[:, :, : grid[0], : grid[1]]
    else:
        patch_pos = F.interpolate(patch_pos, size=grid, mode="bicubic", align_corners=False)
    if tuple(patch_pos.shape[-2:]) != tuple(grid):
        raise RuntimeError(f"resized grid {tuple(patch_pos.shape[-2:])}, expected {grid}")
    patch_pos = patch_pos.to(pos.dtype).permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1)
    return torch.cat([cls_pos, patch_pos], dim=0)


class CLIPBackbone(nn.Module):
    """Wraps an open_clip ``CLIP``: multi-level image tokens and per-token text features.

    Args:
        cfg: the towers' configuration.
        feature_layers: 1-based indices of the image blocks whose outputs are T1..T4.
    """

    def __init__(self, cfg: CLIPTowersConfig, *, feature_layers: tuple[int, ...]) -> None:
        super().__init__()
        self.cfg = cfg
        self.clip = create_clip(cfg)
        self.feature_layers = tuple(feature_layers)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        # Set by load_clip_state_dict when it resized the checkpoint's positional embedding: the
        # checkpoint's own (1 + g*g, Dv) and the resized one it wrote into the tower.
        self.register_buffer("checkpoint_pos", None, persistent=False)
        self.register_buffer("loaded_pos", None, persistent=False)

    @property
    def patch_size(self) -> int:
        return int(self.cfg.vision["patch_size"])

    @property
    def vision_width(self) -> int:
        return int(self.cfg.vision["width"])

    @property
    def text_width(self) -> int:
        return int(self.cfg.text["width"])

    @property
    def text_context_length(self) -> int:
        return int(self.clip.context_length)

    def unused_parameters(self) -> list[nn.Parameter]:
        """CLIP parameters that CLIPMat never uses (projections, pooling norm, later blocks)."""
        visual = self.clip.visual
        unused = [visual.proj, self.clip.logit_scale]
        unused += list(visual.ln_post.parameters())
        if self.clip.text_projection is not None:
            unused.append(self.clip.text_projection)
        for block in visual.transformer.resblocks[max(self.feature_layers) :]:
            unused += list(block.parameters())
        return [p for p in unused if isinstance(p, nn.Parameter)]

    def text_parameters(self) -> list[nn.Parameter]:
        """The parameters of the text tower (token and position embeddings, blocks, final norm)."""
        clip = self.clip
        params = [clip.token_embedding.weight, clip.positional_embedding]
        params += list(clip.transformer.parameters()) + list(clip.ln_final.parameters())
        return params

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) floats in [0, 1] -> CLIP-normalised."""
        return (images - self.mean) / self.std

    def grid_positional_embedding(
        self,
        grid: tuple[int, int],
        *,
        from_checkpoint: bool = False,
        reference_sampling: bool = False,
    ) -> torch.Tensor:
        """The image tower's positional embedding for a patch grid, interpolated at most once.

        Args:
            grid: (h, w) patches.
            from_checkpoint: interpolate from the checkpoint's own grid (e.g. 14x14 for a CLIP
                pretrained at 224 px) when the tower still holds what
                :func:`load_clip_state_dict` resized from it, rather than from the resized one
                (which would interpolate twice). No gradient reaches the tower's embedding then.
            reference_sampling: see :func:`_resize_grid_embedding`.

        Returns:
            (1 + h*w, Dv); the tower's own embedding, unchanged, at its own grid.
        """
        pos = self.clip.visual.positional_embedding
        source = self.checkpoint_pos
        if (
            from_checkpoint
            and source is not None
            and self.loaded_pos is not None
            and torch.equal(pos.detach(), self.loaded_pos.to(pos.dtype))
        ):
            pos = source.to(pos.dtype)
        return _resize_grid_embedding(pos, grid, reference_sampling=reference_sampling)

    def _embed_patches(
        self,
        images: torch.Tensor,
        *,
        from_checkpoint: bool = False,
        reference_sampling: bool = False,
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        """Patch embedding, CLS, positional embedding (resized to the grid) and ``ln_pre``.

        Args:
            images: (B, 3, H, W) CLIP-normalised, H and W multiples of the patch size.
            from_checkpoint, reference_sampling: see :meth:`grid_positional_embedding`.

        Returns:
            ((B, 1 + h*w, Dv) tokens ready for the first block, (h, w)).
        """
        visual = self.clip.visual
        p = self.patch_size
        b, _, height, width = images.shape
        if height % p or width % p:
            raise ValueError(f"image size {height}x{width} is not a multiple of the patch size {p}")
        grid = (height // p, width // p)
        x = visual.conv1(images.to(visual.conv1.weight.dtype))  # (B, Dv, h, w)
        x = x.flatten(2).transpose(1, 2)  # (B, h*w, Dv)
        cls = visual.class_embedding.to(x.dtype).expand(b, 1, -1)
        x = torch.cat([cls, x], dim=1)  # (B, 1 + h*w, Dv)
        pos = self.grid_positional_embedding(
            grid, from_checkpoint=from_checkpoint, reference_sampling=reference_sampling
        )
        x = x + pos.to(x.dtype)
        return visual.ln_pre(visual.patch_dropout(x)), grid

    def encode_image_levels(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Multi-level visual tokens.

        Args:
            images: (B, 3, H, W) CLIP-normalised, H and W multiples of the patch size.

        Returns:
            Four tensors (B, 1 + h*w, Dv), the outputs of the blocks in ``feature_layers``,
            with h = H / P and w = W / P; token 0 is CLS.
        """
        x, _ = self._embed_patches(images)
        visual = self.clip.visual
        indices = [i - 1 for i in self.feature_layers]
        _, levels = visual.transformer.forward_intermediates(x, indices=indices, stop_early=True)
        return levels

    def encode_pooled(self, images: torch.Tensor) -> torch.Tensor:
        """The pooled image embedding (B, E) at any multiple of the patch size.

        The same as open_clip's ``encode_image`` (class token or patch-token average,
        ``ln_post``, projection), with the positional embedding resized to the image's grid, so
        that a CLIP configured for 512 px can score crops at its pretraining size (from the
        checkpoint's own grid when it was resized at load: at that grid, not resized at all).

        Args:
            images: (B, 3, H, W) CLIP-normalised, H and W multiples of the patch size.
        """
        visual = self.clip.visual
        if getattr(visual, "attn_pool", None) is not None:
            raise NotImplementedError("attention-pooled image towers are not supported")
        x, _ = self._embed_patches(images, from_checkpoint=True)
        x = visual.transformer(x)

        def pool(t: torch.Tensor) -> torch.Tensor:
            return t[:, 1:].mean(dim=1) if getattr(visual, "pool_type", "tok") == "avg" else t[:, 0]

        if getattr(visual, "final_ln_after_pool", False):
            pooled = visual.ln_post(pool(x))
        else:
            pooled = pool(visual.ln_post(x))
        return pooled @ visual.proj if visual.proj is not None else pooled

    def encode_dense(self, images: torch.Tensor, *, method: str = "clearclip") -> torch.Tensor:
        """Per-patch image embeddings in the joint text-image space, without training.

        The last image block is replaced by a training-free variant, then ``ln_post`` and the
        projection map every patch token into the space of the text embeddings. With x the
        tokens entering the last block, a = attention(ln_1 x) through the block's own q, k, v
        projections (per head, scaled by 1/sqrt(head width)) and ``out_proj``:

        - "clearclip" (ClearCLIP): a with softmax(q q^T) attention; no residual, no feed-forward.
        - "sclip" (SCLIP): a with correlative attention softmax(q q^T) + softmax(k k^T); the
          block keeps its residual and feed-forward: y = x + a, then y + mlp(ln_2 y).
        - "maskclip" (MaskCLIP): a = out_proj(v), each token its own value; residual and
          feed-forward kept as for "sclip".
        - "plain": the last block unchanged (the naive baseline; in a CLIP that pools by
          averaging its patch tokens these average exactly to the image embedding).
        - "csa-noresidual", "value-noresidual": SCLIP's and MaskCLIP's attention without the
          residual and feed-forward, as in ClearCLIP's ablations. This project called them
          "sclip" and "maskclip" before; they are kept so that the numbers measured with them
          (the README's mini-world rows) can be reproduced.

        The positional embedding is interpolated once from the checkpoint's grid: for "clearclip"
        and "sclip" sampled as their official code does (see :func:`_resize_grid_embedding`),
        for the others matched by size (as MaskCLIP, open_clip and this project before did).

        Args:
            images: (B, 3, H, W) CLIP-normalised, H and W multiples of the patch size.
            method: one of ``DENSE_METHODS``.

        Returns:
            (B, H / P, W / P, E) float patch embeddings, not normalised (E = ``embed_dim``).
        """
        if method not in DENSE_METHODS:
            raise ValueError(f"method must be one of {DENSE_METHODS}, got {method!r}")
        visual = self.clip.visual
        blocks = visual.transformer.resblocks
        reference = method in _REFERENCE_SAMPLING
        x, grid = self._embed_patches(images, from_checkpoint=True, reference_sampling=reference)
        if len(blocks) > 1:
            _, (x,) = visual.transformer.forward_intermediates(
                x, indices=[len(blocks) - 2], stop_early=True
            )
        last = blocks[-1]
        if method == "plain":
            out = last(x)
        else:
            attention, keep_residual = _DENSE_LAST_BLOCK[method]
            out = _last_block_attention(last, last.ln_1(x), attention)
            if keep_residual:
                out = x + last.ls_1(out)
                out = out + last.ls_2(last.mlp(last.ln_2(out)))
        out = visual.ln_post(out[:, 1:].to(x.dtype))  # bf16 towers: the norm in fp32
        if visual.proj is not None:
            out = out @ visual.proj
        return out.reshape(images.shape[0], grid[0], grid[1], -1)

    def encode_text_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Run the text transformer on token embeddings.

        Args:
            embeddings: (B, L, Dt) token embeddings, L <= the context length.

        Returns:
            (B, L, Dt) features of every token after ``ln_final`` (causal attention kept).
        """
        clip = self.clip
        length = embeddings.shape[1]
        x = embeddings + clip.positional_embedding[:length].to(embeddings.dtype)
        mask = clip.attn_mask[:length, :length] if clip.attn_mask is not None else None
        x = clip.transformer(x, attn_mask=mask)
        return clip.ln_final(x)

    def token_embedding(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> (B, L, Dt) embeddings."""
        return self.clip.token_embedding(ids)


def _last_block_attention(block: nn.Module, x: torch.Tensor, attention: str) -> torch.Tensor:
    """The attention branch of a block with training-free attention, ``out_proj`` included.

    Args:
        block: an open_clip ``ResidualAttentionBlock``; its ``attn`` an ``nn.MultiheadAttention``
            or what :mod:`clipmat.precision` puts in its place (``in_proj`` and ``out_proj``
            modules: fp32, bf16 or int8 linear layers).
        x: (B, N, D) tokens after ``ln_1``.
        attention: "qq" softmax(q q^T / sqrt(d)) v; "csa" (softmax(q q^T / sqrt(d)) +
            softmax(k k^T / sqrt(d))) v; "value" v (every token attends only to itself).

    Returns:
        (B, N, D), in the dtype of the projections' output (bf16 for bf16 towers).
    """
    attn = block.attn
    if isinstance(getattr(attn, "in_proj", None), nn.Module):  # a converted attention
        qkv = attn.in_proj(x)
    else:
        qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.chunk(3, dim=-1)
    if attention == "value":
        return attn.out_proj(v)
    q, k, v = (t.unflatten(-1, (attn.num_heads, -1)).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, q, v)  # (B, heads, N, d), scale 1/sqrt(d)
    if attention == "csa":
        out = out + F.scaled_dot_product_attention(k, k, v)
    return attn.out_proj(out.transpose(1, 2).flatten(2))


def load_clip_state_dict(backbone: CLIPBackbone, state_dict: dict[str, torch.Tensor]) -> None:
    """Load CLIP weights (open_clip key names) into ``backbone``, resizing positional embeddings.

    The image tower's positional embedding is bicubically interpolated from the checkpoint's grid
    (e.g. 14x14 at 224 px) to the model's; the text one is cut or checked against the context.
    The checkpoint's own image embedding is kept on the backbone (``checkpoint_pos``), so that
    the zero-shot encoders interpolate once from it to any other grid (see
    :meth:`CLIPBackbone.grid_positional_embedding`).

    Raises:
        ValueError: when keys are missing or unexpected, listing the first few of each.
    """
    state = {k.removeprefix("module."): v for k, v in state_dict.items()}
    model_state = backbone.clip.state_dict()
    key = "visual.positional_embedding"
    source = None
    if key in state and state[key].shape != model_state[key].shape:
        source = state[key].detach().clone()
        grid = int(math.isqrt(model_state[key].shape[0] - 1))
        state[key] = _resize_grid_embedding(state[key], (grid, grid))
    key = "positional_embedding"
    if key in state and state[key].shape[0] > model_state[key].shape[0]:
        state[key] = state[key][: model_state[key].shape[0]]
    missing = sorted(set(model_state) - set(state))
    unexpected = sorted(set(state) - set(model_state))
    if missing or unexpected:
        raise ValueError(
            "CLIP weights do not fit the configured towers: "
            f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys "
            f"{unexpected[:5]}. Check that the weights match the config's CLIP architecture."
        )
    mismatched = [k for k in model_state if state[k].shape != model_state[k].shape]
    if mismatched:
        k = mismatched[0]
        raise ValueError(
            f"CLIP weight {k} has shape {tuple(state[k].shape)}, the model expects "
            f"{tuple(model_state[k].shape)} ({len(mismatched)} tensors differ)"
        )
    backbone.clip.load_state_dict(state, strict=True)
    loaded = backbone.clip.visual.positional_embedding.detach()
    device = loaded.device
    backbone.checkpoint_pos = None if source is None else source.to(device)
    backbone.loaded_pos = None if source is None else loaded.clone()

"""Training losses of CLIPMat (docs/decisions.md#losses) and the on-the-fly ground-truth trimap.

``L = w_sem * L_sem + w_detail * L_detail + w_fusion * L_fusion_alpha + w_dice * L_dice`` with the
spec's weights 1, 2, 3 and an added Dice term on the foreground-plus-transition probability, which
keeps spatial phrases from collapsing to an empty matte. The composition loss is dropped: released
RefMatte has no separate foreground and background.

This module is training code: inference modules never import it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from clipmat.model.decoders import BACKGROUND, FOREGROUND, TRANSITION

EPS = 1e-12
ALPHA_EPS = 1e-3  # alpha above this is "nonzero", above 1 - this is "opaque"
TRIMAP_REFERENCE_SIZE = 512  # the kernel range [15, 30] is meant at this image side
PYRAMID_LEVELS = 5


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (the paper's 1, 2, 3; Dice is the project's addition)."""

    sem: float = 1.0
    detail: float = 2.0
    fusion: float = 3.0
    dice: float = 1.0


def _ellipse_kernel(size: int, device: torch.device) -> torch.Tensor:
    """(1, 1, size, size) float32 disk of ones, as cv2's elliptical structuring element."""
    r = (size - 1) / 2.0
    yy, xx = torch.meshgrid(
        torch.arange(size, device=device, dtype=torch.float32),
        torch.arange(size, device=device, dtype=torch.float32),
        indexing="ij",
    )
    disk = ((yy - r) / max(r, 0.5)) ** 2 + ((xx - r) / max(r, 0.5)) ** 2 <= 1.0 + 1e-6
    return disk.float().view(1, 1, size, size)


def _morph(mask: torch.Tensor, kernel: torch.Tensor, erode: bool) -> torch.Tensor:
    """Binary dilation (or erosion) of (B, 1, H, W) float {0, 1} masks; borders do not erode."""
    k = kernel.shape[-1]
    pad = (k // 2, k - 1 - k // 2, k // 2, k - 1 - k // 2)
    x = F.pad(mask, pad, mode="replicate")
    hits = F.conv2d(x, kernel)
    if erode:
        return (hits >= kernel.sum() - 0.5).float()
    return (hits > 0.5).float()


def trimap_kernel_size(
    image_side: int, rng: np.random.Generator, reference_range: tuple[int, int] = (15, 30)
) -> int:
    """Draw the trimap kernel side: uniform in ``reference_range`` at 512 px, scaled to the image.

    Args:
        image_side: side (short side) of the training images in pixels.
        rng: the source of randomness.
        reference_range: inclusive (low, high) kernel side at 512 px (P3M's [15, 30]).

    Returns:
        An odd kernel side, at least 3.
    """
    lo, hi = reference_range
    if not 1 <= lo <= hi:
        raise ValueError(
            f"trimap kernel range must satisfy 1 <= low <= high, got {reference_range}"
        )
    k = int(rng.integers(lo, hi + 1)) * image_side / TRIMAP_REFERENCE_SIZE
    k = max(3, int(round(k)))
    return k if k % 2 else k + 1


def make_trimap(alpha: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Ground-truth trimap from alpha: dilate the nonzero region, erode the opaque region.

    Args:
        alpha: (B, 1, H, W) float in [0, 1].
        kernel_size: side of the elliptical structuring element in pixels.

    Returns:
        (B, H, W) int64 labels: 0 background, 1 transition, 2 foreground.
    """
    if alpha.dim() != 4 or alpha.shape[1] != 1:
        raise ValueError(f"alpha must be (B, 1, H, W), got {tuple(alpha.shape)}")
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
    kernel = _ellipse_kernel(int(kernel_size), alpha.device)
    a = alpha.detach().float()
    nonzero = _morph((a > ALPHA_EPS).float(), kernel, erode=False)
    opaque = _morph((a >= 1.0 - ALPHA_EPS).float(), kernel, erode=True)
    labels = torch.full_like(a, BACKGROUND, dtype=torch.long)
    labels[nonzero > 0] = TRANSITION
    labels[opaque > 0] = FOREGROUND
    return labels[:, 0]


def _gauss5(device: torch.device, channels: int) -> torch.Tensor:
    g = torch.tensor([math.exp(-((i - 2) ** 2) / 2.0) for i in range(5)], device=device)
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, 5, 5).contiguous()


def laplacian_pyramid(x: torch.Tensor, levels: int = PYRAMID_LEVELS) -> list[torch.Tensor]:
    """Laplacian pyramid with a 5x5 Gaussian (sigma 1).

    Args:
        x: (B, C, H, W) float.
        levels: number of band-pass levels; the last entry is the low-pass residual.

    Returns:
        ``levels`` tensors, full resolution first.
    """
    kernel = _gauss5(x.device, x.shape[1]).to(x.dtype)
    bands = []
    current = x
    for _ in range(levels - 1):
        if min(current.shape[-2:]) < 4:
            break
        blurred = F.conv2d(F.pad(current, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])
        down = blurred[..., ::2, ::2]
        up = F.interpolate(down, size=current.shape[-2:], mode="bilinear", align_corners=False)
        bands.append(current - up)
        current = down
    bands.append(current)
    return bands


def laplacian_loss(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Sum over pyramid levels of the mean L1 difference (P3M's Laplacian loss).

    Args:
        pred, gt: (B, 1, H, W) alpha in [0, 1].
        mask: optional (B, 1, H, W) {0, 1}; both mattes are multiplied by it first.
    """
    if mask is not None:
        pred, gt = pred * mask, gt * mask
    return sum(
        F.l1_loss(p, g) for p, g in zip(laplacian_pyramid(pred), laplacian_pyramid(gt), strict=True)
    )


def alpha_loss(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Charbonnier alpha loss ``sqrt((p - g)^2 + 1e-12)``, summed over ``mask`` / (count + 1).

    Without a mask, the mean over every pixel.
    """
    err = torch.sqrt((pred - gt) ** 2 + EPS)
    if mask is None:
        return err.mean()
    return (err * mask).sum() / (mask.sum() + 1.0)


def dice_loss(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice per sample, averaged. prob, target: (B, 1, H, W) in [0, 1]."""
    p, t = prob.flatten(1), target.flatten(1)
    inter = (p * t).sum(1)
    return (1.0 - (2.0 * inter + 1.0) / (p.sum(1) + t.sum(1) + 1.0)).mean()


def soft_fusion(semantic_logits: torch.Tensor, detail: torch.Tensor) -> torch.Tensor:
    """Differentiable collaborative matting: ``p_fg + p_transition * detail`` (B, 1, H, W)."""
    prob = semantic_logits.float().softmax(dim=1)
    return (
        prob[:, FOREGROUND : FOREGROUND + 1] + prob[:, TRANSITION : TRANSITION + 1] * detail.float()
    )


def clipmat_loss(
    semantic_logits: torch.Tensor,
    detail: torch.Tensor,
    alpha_gt: torch.Tensor,
    trimap: torch.Tensor,
    weights: LossWeights = LossWeights(),
) -> dict[str, torch.Tensor]:
    """All loss terms for one batch.

    The fusion term is computed on the soft fusion (:func:`soft_fusion`), so that its gradient
    reaches the semantic branch too; the argmax fusion (docs/decisions.md#fusion) has no gradient there.

    Args:
        semantic_logits: (B, 3, H, W) logits.
        detail: (B, 1, H, W) details decoder alpha in [0, 1].
        alpha_gt: (B, 1, H, W) ground truth in [0, 1].
        trimap: (B, H, W) int64 labels from :func:`make_trimap`.
        weights: term weights.

    Returns:
        {"loss", "sem", "detail", "fusion", "dice"} scalar tensors ("loss" is the weighted sum).
    """
    if semantic_logits.shape[-2:] != alpha_gt.shape[-2:] or detail.shape != alpha_gt.shape:
        raise ValueError(
            f"shape mismatch: logits {tuple(semantic_logits.shape)}, detail "
            f"{tuple(detail.shape)}, alpha {tuple(alpha_gt.shape)}"
        )
    logits = semantic_logits.float()
    detail = detail.float()
    gt = alpha_gt.float()
    sem = F.cross_entropy(logits, trimap)
    unknown = (trimap == TRANSITION).unsqueeze(1).float()
    l_detail = alpha_loss(detail, gt, unknown) + laplacian_loss(detail, gt, unknown)
    fused = soft_fusion(logits, detail)
    l_fusion = alpha_loss(fused, gt) + laplacian_loss(fused, gt)
    prob = logits.softmax(dim=1)
    region = prob[:, TRANSITION : TRANSITION + 1] + prob[:, FOREGROUND : FOREGROUND + 1]
    l_dice = dice_loss(region, (trimap != BACKGROUND).unsqueeze(1).float())
    total = (
        weights.sem * sem
        + weights.detail * l_detail
        + weights.fusion * l_fusion
        + weights.dice * l_dice
    )
    return {"loss": total, "sem": sem, "detail": l_detail, "fusion": l_fusion, "dice": l_dice}

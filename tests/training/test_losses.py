"""CLIPMat's losses: trimap from alpha, Laplacian pyramid, the weighted total."""

import pytest
import torch

from clipmat.training.losses import (
    LossWeights,
    clipmat_loss,
    dice_loss,
    laplacian_loss,
    laplacian_pyramid,
    make_trimap,
    trimap_kernel_size,
)


def _disk_alpha(size: int = 48) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    r = torch.sqrt((yy - size / 2.0) ** 2 + (xx - size / 2.0) ** 2)
    return (12.0 - r).clamp(0, 1).float().view(1, 1, size, size)  # soft one-pixel edge


def test_trimap_bands():
    alpha = _disk_alpha()
    tri = make_trimap(alpha, 5)[0]
    assert tri.shape == (48, 48) and tri.dtype == torch.long
    assert tri[24, 24] == 2 and tri[0, 0] == 0
    # the band is wider than the soft edge on both sides
    assert tri[24, 24 + 9] == 2 and tri[24, 24 + 10] == 1 and tri[24, 24 + 13] == 1
    assert tri[24, 24 + 14] == 0
    wider = make_trimap(alpha, 9)[0]
    assert (wider == 1).sum() > (tri == 1).sum()


def test_trimap_keeps_fully_opaque_image_foreground():
    tri = make_trimap(torch.ones(1, 1, 16, 16), 5)
    assert bool((tri == 2).all())


def test_trimap_rejects_bad_shape():
    with pytest.raises(ValueError, match="B, 1, H, W"):
        make_trimap(torch.zeros(16, 16), 5)


def test_kernel_size_scales_with_image(rng):
    small = [trimap_kernel_size(96, rng) for _ in range(50)]
    big = [trimap_kernel_size(512, rng) for _ in range(50)]
    assert all(k % 2 == 1 and 3 <= k <= 7 for k in small)
    assert all(15 <= k <= 31 for k in big)
    with pytest.raises(ValueError, match="low <= high"):
        trimap_kernel_size(96, rng, (30, 15))


def test_laplacian_pyramid_reconstructs_shapes():
    x = torch.rand(2, 1, 40, 40)
    bands = laplacian_pyramid(x)
    assert len(bands) == 5 and bands[0].shape == x.shape and bands[-1].shape[-1] == 3
    assert float(laplacian_loss(x, x)) == 0.0
    assert float(laplacian_loss(x, 1 - x)) > 0.1


def test_dice_perfect_and_empty():
    t = _disk_alpha().gt(0).float()
    assert float(dice_loss(t, t)) < 1e-3
    assert float(dice_loss(torch.zeros_like(t), t)) > 0.99


def _logits_for(tri: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    return torch.nn.functional.one_hot(tri, 3).permute(0, 3, 1, 2).float() * scale


def test_total_loss_prefers_the_truth():
    alpha = _disk_alpha().repeat(2, 1, 1, 1)
    tri = make_trimap(alpha, 5)
    good = clipmat_loss(_logits_for(tri), alpha, alpha, tri)
    empty = clipmat_loss(_logits_for(torch.zeros_like(tri)), torch.zeros_like(alpha), alpha, tri)
    assert set(good) == {"loss", "sem", "detail", "fusion", "dice"}
    assert float(good["loss"]) < 0.1 < float(empty["loss"])
    assert float(empty["dice"]) > 0.9
    w = LossWeights(sem=1, detail=2, fusion=3, dice=0.5)
    parts = clipmat_loss(_logits_for(torch.zeros_like(tri)), alpha * 0.5, alpha, tri, w)
    expected = parts["sem"] + 2 * parts["detail"] + 3 * parts["fusion"] + 0.5 * parts["dice"]
    assert torch.allclose(parts["loss"], expected)


def test_loss_gradient_reaches_both_branches():
    alpha = _disk_alpha()
    tri = make_trimap(alpha, 5)
    logits = torch.zeros(1, 3, 48, 48, requires_grad=True)
    detail = torch.full((1, 1, 48, 48), 0.5, requires_grad=True)
    clipmat_loss(logits, detail, alpha, tri)["loss"].backward()
    assert logits.grad.abs().sum() > 0 and detail.grad.abs().sum() > 0


def test_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape mismatch"):
        clipmat_loss(
            torch.zeros(1, 3, 8, 8),
            torch.zeros(1, 1, 9, 9),
            torch.zeros(1, 1, 9, 9),
            torch.zeros(1, 9, 9, dtype=torch.long),
        )

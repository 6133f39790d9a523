"""Sliding-window dense inference: window placement, the average on a canvas, the resize of a
photo, and the positional embedding interpolated once per window."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from clipmat.config import CLIPTowersConfig
from clipmat.model.backbone import CLIPBackbone, load_clip_state_dict
from clipmat.zeroshot import windows
from clipmat.zeroshot.loading import create_backbone

# ----------------------------------------------------------------------------- pure functions


def test_boxes_cover_the_image_and_the_last_window_ends_at_the_border():
    # ClearCLIP's protocol on a 448 x 600 photo: one row, the second window moved back.
    assert windows.window_boxes(448, 600, 448, 224) == [(0, 0, 448, 448), (0, 152, 448, 600)]
    # SCLIP's protocol on 336 x 500: rows start at 0 and 112, columns at 0, 112, 224, 276.
    boxes = windows.window_boxes(336, 500, 224, 112)
    assert sorted({(b[0], b[2]) for b in boxes}) == [(0, 224), (112, 336)]
    assert sorted({(b[1], b[3]) for b in boxes}) == [(0, 224), (112, 336), (224, 448), (276, 500)]
    assert len(boxes) == 8 and boxes[0] == (0, 0, 224, 224) and boxes[-1] == (112, 276, 336, 500)
    # Exactly one stride past the window: no extra window.
    assert windows.window_boxes(224, 336, 224, 112) == [(0, 0, 224, 224), (0, 112, 224, 336)]


def test_boxes_on_images_smaller_than_the_window():
    assert windows.window_boxes(50, 60, 224, 112) == [(0, 0, 50, 60)]
    assert windows.window_boxes(100, 300, 224, 112) == [(0, 0, 100, 224), (0, 76, 100, 300)]
    assert windows.window_boxes(1, 1, 224, 112) == [(0, 0, 1, 1)]
    assert windows.window_boxes(10, 20, (4, 8), (4, 6)) == [
        (y0, x0, y0 + 4, x0 + 8) for y0 in (0, 4, 6) for x0 in (0, 6, 12)
    ]
    with pytest.raises(ValueError, match="positive"):
        windows.window_boxes(0, 10, 4, 2)
    with pytest.raises(ValueError, match="stride"):
        windows.window_boxes(10, 10, 4, 0)


def test_resized_size_follows_the_reference_rescale():
    assert windows.resized_size(375, 500, 448) == (448, 597)  # 500 * 448 / 375 = 597.33
    assert windows.resized_size(500, 375, 336) == (448, 336)
    assert windows.resized_size(100, 100, 448) == (448, 448)  # small photos are enlarged
    assert windows.resized_size(10, 5000, 448) == (4, 2048)  # the long side is capped first
    assert windows.resized_size(1, 100000, 448) == (1, 2048)  # never below one pixel
    with pytest.raises(ValueError):
        windows.resized_size(0, 5, 448)


def test_patch_padding_is_centred():
    assert windows.patch_padding(16, 24, 8) == (0, 0, 0, 0)
    assert windows.patch_padding(13, 21, 8) == (1, 2, 1, 2)  # odd pixel right and bottom
    assert windows.patch_padding(1, 7, 8) == (0, 1, 3, 4)


def test_combine_averages_overlaps_by_hand():
    # Two windows on a 4 x 9 canvas overlapping on columns 3..5; constant maps 1 and 3.
    boxes = [(0, 0, 4, 6), (0, 3, 4, 9)]
    maps = [torch.full((1, 1, 1), 1.0), torch.full((1, 1, 1), 3.0)]
    out = windows.combine_windows(maps, boxes, (4, 9))
    expected = torch.tensor([1.0] * 3 + [2.0] * 3 + [3.0] * 3).expand(4, 9)
    torch.testing.assert_close(out[0], expected)
    # A 1 x 2 map [a, b] upsampled to 4 columns with half-pixel centres samples the positions
    # -0.25, 0.25, 0.75, 1.25: a, (3a + b) / 4, (a + 3b) / 4, b (the ends clamped).
    a, b = 2.0, 6.0
    ramp = torch.tensor([[[a, b]]])
    out = windows.combine_windows(
        [ramp, torch.full((1, 1, 1), 10.0)], [(0, 0, 1, 4), (0, 2, 1, 4)], (1, 4)
    )
    by_hand = [a, (3 * a + b) / 4, ((a + 3 * b) / 4 + 10.0) / 2, (b + 10.0) / 2]
    torch.testing.assert_close(out[0, 0], torch.tensor(by_hand))


def test_combine_cuts_the_padding_and_checks_coverage():
    # A window of 2 x 3 pixels padded to 4 x 4 (left 0, right 1, top 1, bottom 1): the map's
    # rows 1..2 and columns 0..2 land on the box.
    rows = torch.arange(4.0).view(1, 4, 1).expand(1, 4, 4)
    out = windows.combine_windows([rows], [(0, 0, 2, 3)], (2, 3), [(0, 1, 1, 1)])
    torch.testing.assert_close(out[0], torch.tensor([[1.0] * 3, [2.0] * 3]))
    with pytest.raises(ValueError, match="cover"):
        windows.combine_windows([rows], [(0, 0, 2, 3)], (3, 3), [(0, 1, 1, 1)])
    with pytest.raises(ValueError):
        windows.combine_windows([rows], [], (2, 3))


def _padded_maps(height: int, width: int, window: int, stride: int, patch: int, seed: int):
    torch.manual_seed(seed)
    boxes = windows.window_boxes(height, width, window, stride)
    pads = [windows.patch_padding(y1 - y0, x1 - x0, patch) for y0, x0, y1, x1 in boxes]
    maps = [
        torch.randn(3, (y1 - y0 + t + b) // patch, (x1 - x0 + le + r) // patch)
        for (y0, x0, y1, x1), (le, r, t, b) in zip(boxes, pads, strict=True)
    ]
    return maps, boxes, pads


def test_grid_at_pixel_resolution_is_the_reference_average():
    # Windows moved back from the border, padded to the patch: every pixel centre agrees.
    maps, boxes, pads = _padded_maps(37, 50, 32, 16, 8, seed=0)
    reference = windows.combine_windows(maps, boxes, (37, 50), pads)
    on_grid = windows.combine_on_grid(maps, boxes, (37, 50), (37, 50), pads)
    torch.testing.assert_close(on_grid, reference, rtol=0, atol=1e-6)


def test_grid_reads_windows_on_its_cells_exactly():
    # One window over a 48 x 56 image: its 6 x 7 map comes back as it is.
    m = torch.randn(4, 6, 7)
    out = windows.combine_on_grid([m], [(0, 0, 48, 56)], (48, 56), (6, 7))
    assert torch.equal(out, m)
    # Two windows at multiples of the cell: the overlap is the mean of the two maps' cells.
    a, b = torch.randn(2, 4, 4), torch.randn(2, 4, 4)
    out = windows.combine_on_grid([a, b], [(0, 0, 32, 32), (0, 16, 32, 48)], (32, 48), (4, 6))
    torch.testing.assert_close(out[:, :, :2], a[:, :, :2])
    torch.testing.assert_close(out[:, :, 2:4], (a[:, :, 2:] + b[:, :, :2]) / 2)
    torch.testing.assert_close(out[:, :, 4:], b[:, :, 2:])
    # Cells of 3 pixels have a pixel at their centre: there the grid reads the reference's
    # canvas, whatever the windows' offsets (moved back from the border) and padding.
    maps, boxes, pads = _padded_maps(42, 60, 28, 12, 8, seed=1)
    assert any(b[1] % 3 for b in boxes) and any(any(p) for p in pads)
    reference = windows.combine_windows(maps, boxes, (42, 60), pads)
    on_grid = windows.combine_on_grid(maps, boxes, (42, 60), (14, 20), pads)
    torch.testing.assert_close(on_grid, reference[:, 1::3, 1::3], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="cover"):
        windows.combine_on_grid([m], [(0, 0, 48, 56)], (48, 64), (6, 8))


def test_grid_size_and_resize():
    assert windows.grid_size(448, 597, 16) == (28, 37)
    assert windows.grid_size(9, 2048, 16) == (1, 128)
    assert windows.grid_size(1, 1, 16) == (1, 1)
    rgb = torch.randint(0, 256, (5, 7, 3), dtype=torch.uint8).numpy()
    same = windows.resize_photo(rgb, (5, 7))
    torch.testing.assert_close(same[0].permute(1, 2, 0) * 255, torch.from_numpy(rgb).float())
    assert windows.resize_photo(rgb, (10, 14)).shape == (1, 3, 10, 14)


# ------------------------------------------------------------------------- on a tiny CLIP

PATCH = 8


def _towers(side: int) -> CLIPTowersConfig:
    return CLIPTowersConfig(
        embed_dim=32,
        vision={"image_size": side, "layers": 2, "width": 64, "head_width": 16, "patch_size": 8},
        text={"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    )


@pytest.fixture(scope="module")
def pretrained() -> CLIPBackbone:
    """A random CLIP "pretrained" at 32 px (a 4 x 4 grid)."""
    torch.manual_seed(0)
    bb = create_backbone(_towers(32)).eval()
    with torch.no_grad():
        for p in bb.clip.visual.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return bb


@pytest.fixture(scope="module")
def at_64(pretrained) -> CLIPBackbone:
    """The same weights loaded into towers configured for 64 px (its grid resized to 8 x 8)."""
    bb = create_backbone(_towers(64)).eval()
    load_clip_state_dict(bb, pretrained.clip.state_dict())
    return bb


def test_one_window_over_the_whole_image_is_the_global_pass(pretrained):
    torch.manual_seed(1)
    image = torch.randn(1, 3, 40, 56)
    classes = torch.randn(3, 32)
    with torch.no_grad():
        got = windows.sliding_window_cosine(pretrained, image, classes, window=64, stride=32)
        feats = F.normalize(pretrained.encode_dense(image)[0], dim=-1)  # (5, 7, E)
    cos = torch.einsum("hwe,ke->khw", feats, F.normalize(classes, dim=-1))
    expected = F.interpolate(cos[None], size=(40, 56), mode="bilinear", align_corners=False)[0]
    assert got.shape == (3, 40, 56)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_windows_are_read_alone_and_padded(pretrained):
    torch.manual_seed(2)
    image = torch.randn(1, 3, 37, 50)  # not multiples of the patch
    boxes = windows.window_boxes(37, 50, 32, 16)
    with torch.no_grad():
        feats, pads = windows.encode_windows(pretrained, image, boxes)
        y0, x0, y1, x1 = boxes[-1]
        alone = pretrained.encode_dense(image[:, :, y0:y1, x0:x1])[0]
        small = windows.encode_windows(pretrained, image[:, :, :13, :21], [(0, 0, 13, 21)])
    assert len(feats) == len(boxes) == 6 and all(p == (0, 0, 0, 0) for p in pads)
    torch.testing.assert_close(feats[-1], alone, rtol=1e-4, atol=1e-5)
    (feat,), (pad,) = small
    assert pad == (1, 2, 1, 2) and feat.shape == (2, 3, 32)  # 16 x 24 pixels after padding


def _bicubic_matrix(n_in: int, n_out: int, step: float) -> torch.Tensor:
    """(n_out, n_in) weights of PyTorch's bicubic resampling (Keys kernel, a = -0.75, edges
    clamped) sampling the input at (i + 0.5) * step - 0.5."""
    a = -0.75

    def kernel(t: float) -> float:
        t = abs(t)
        if t <= 1:
            return (a + 2) * t**3 - (a + 3) * t**2 + 1
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a if t < 2 else 0.0

    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        src = (i + 0.5) * step - 0.5
        base = math.floor(src)
        for j in range(-1, 3):
            m[i, min(max(base + j, 0), n_in - 1)] += kernel(src - (base + j))
    return m


def _resample_by_hand(pos: torch.Tensor, grid: tuple[int, int], step_of) -> torch.Tensor:
    g = math.isqrt(pos.shape[0] - 1)
    patches = pos[1:].double().reshape(g, g, -1).permute(2, 0, 1)  # (C, g, g)
    rows = _bicubic_matrix(g, grid[0], step_of(grid[0], g))
    cols = _bicubic_matrix(g, grid[1], step_of(grid[1], g))
    out = (rows @ patches @ cols.T).permute(1, 2, 0).reshape(grid[0] * grid[1], -1)
    return torch.cat([pos[:1].double(), out]).float()


def test_positional_embedding_is_interpolated_once_from_the_checkpoint(pretrained, at_64):
    source = pretrained.clip.visual.positional_embedding.detach()
    # At the checkpoint's own grid: the checkpoint's embedding itself, not resized twice.
    same = at_64.grid_positional_embedding((4, 4), from_checkpoint=True)
    torch.testing.assert_close(same, source, rtol=0, atol=0)
    # Elsewhere: one bicubic resize of the checkpoint's grid; ClearCLIP's and SCLIP's sampling
    # step is g / (g' + 0.1), the size-matched one g / g'.
    for reference, step in ((True, lambda n, g: g / (n + 0.1)), (False, lambda n, g: g / n)):
        got = at_64.grid_positional_embedding(
            (6, 5), from_checkpoint=True, reference_sampling=reference
        )
        torch.testing.assert_close(got, _resample_by_hand(source, (6, 5), step), atol=1e-5, rtol=0)
    twice = at_64.grid_positional_embedding((6, 5), reference_sampling=True)
    assert not torch.allclose(twice, at_64.grid_positional_embedding((6, 5), from_checkpoint=True))


def test_windows_at_the_checkpoint_size_need_no_resize(pretrained, at_64):
    torch.manual_seed(3)
    image = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for method in ("clearclip", "sclip", "maskclip"):
            torch.testing.assert_close(
                at_64.encode_dense(image, method=method),
                pretrained.encode_dense(image, method=method),
                rtol=1e-5,
                atol=1e-6,
            )
            assert at_64.encode_pooled(image).shape == (1, 32)


def test_a_trained_embedding_is_not_replaced_by_the_checkpoint(pretrained):
    bb = create_backbone(_towers(64)).eval()
    load_clip_state_dict(bb, pretrained.clip.state_dict())
    with torch.no_grad():
        bb.clip.visual.positional_embedding.add_(1.0)  # as a training step would
    own = bb.clip.visual.positional_embedding.detach()
    got = bb.grid_positional_embedding((8, 8), from_checkpoint=True)
    torch.testing.assert_close(got, own, rtol=0, atol=0)
    small = bb.grid_positional_embedding((4, 4), from_checkpoint=True)
    assert not torch.allclose(small, pretrained.clip.visual.positional_embedding)

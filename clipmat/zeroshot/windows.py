"""Sliding-window dense inference, placed and averaged as ClearCLIP's and SCLIP's evaluation does.

Both reference segmentors (mc-lan/ClearCLIP ``clearclip_segmentor.py`` and wangf3014/SCLIP
``clip_segmentor.py``, method ``forward_slide``, after mmsegmentation's slide inference) resize
the photo so that its short side is a set length (long side at most 2048), cut the result into
square windows at a stride, the last window of each row and column moved back to end at the
border, read each window through the dense CLIP (the positional embedding interpolated to the
window's grid), upsample each window's cosine logits bilinearly to the window's pixels, sum them
on a canvas and divide by the number of windows covering each pixel. The logit scale and the
softmax over classes come after, at the photo's size. ClearCLIP pads a window whose sides are
not multiples of the patch (centred, zeros after normalisation) and cuts the padding off its
logits; SCLIP does not pad. Here windows are padded as ClearCLIP does.

The functions but :func:`encode_windows` and :func:`sliding_window_cosine` are pure.
:func:`combine_on_grid` reads the same average at the centres of a coarser grid (the zero-shot
predictor's patch grid).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from clipmat.model.backbone import CLIPBackbone

Box = tuple[int, int, int, int]  # (y0, x0, y1, x1), end exclusive, in pixels
Pad = tuple[int, int, int, int]  # (left, right, top, bottom) pixels added around a window

MAX_LONG_SIDE = 2048  # the references' Resize(scale=(2048, short), keep_ratio=True)


@dataclass(frozen=True)
class SlidingProtocol:
    """A reference's evaluation settings for ViT-B/16 (short side, window, stride, logit scale)."""

    short_side: int
    window: int
    stride: int
    logit_scale: float


# mc-lan/ClearCLIP: clearclip_segmentor.py defaults (slide_crop=448, slide_stride=224,
# logit_scale=50); configs/cfg_*.py Resize(scale=(2048, 448)) (Cityscapes: slide_crop=224).
CLEARCLIP = SlidingProtocol(short_side=448, window=448, stride=224, logit_scale=50.0)
# wangf3014/SCLIP: clip_segmentor.py defaults (slide_crop=224, slide_stride=112,
# logit_scale=40); configs/cfg_*.py Resize(scale=(2048, 336)) for most datasets (COCO-Stuff164k
# 448, Cityscapes 560; VOC21 logit_scale=65, Context60 and COCO-Object 50).
SCLIP = SlidingProtocol(short_side=336, window=224, stride=112, logit_scale=40.0)


def resized_size(
    height: int, width: int, short_side: int, max_long_side: int = MAX_LONG_SIDE
) -> tuple[int, int]:
    """The size the references resize a photo to: mmcv's ``imrescale`` with keep_ratio.

    The scale is min(max_long_side / long side, short_side / short side), so the short side
    becomes ``short_side`` unless the long side would pass ``max_long_side``; each side is
    rounded half up (small photos are enlarged). Sides are at least 1 pixel here.

    Returns:
        (h, w) in pixels.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    long_cap, short_cap = max(max_long_side, short_side), min(max_long_side, short_side)
    scale = min(long_cap / max(height, width), short_cap / min(height, width))
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def resize_photo(rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """A photo resized as the references' pipeline resizes it (mmcv's bilinear ``imresize``,
    i.e. OpenCV's ``INTER_LINEAR``, before normalisation).

    Args:
        rgb: (H, W, 3) uint8.
        size: (h, w), e.g. from :func:`resized_size`.

    Returns:
        (1, 3, h, w) float32 in [0, 1].
    """
    height, width = size
    if rgb.shape[:2] != (height, width):
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().div(255.0)


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or (h, w), got {value!r}")
    return int(pair[0]), int(pair[1])


def window_boxes(
    height: int, width: int, window: int | tuple[int, int], stride: int | tuple[int, int]
) -> list[Box]:
    """Windows over an image, placed as mmsegmentation's slide inference places them.

    Along each axis there are max(size - window + stride - 1, 0) // stride + 1 windows starting
    every ``stride`` pixels; a window that would pass the border ends at it instead (moved
    back, so it overlaps its neighbour more), and one larger than the image is the whole
    image along that axis (smaller than ``window``).

    Args:
        height, width: image size in pixels.
        window, stride: pixels, one int for both axes or (h, w).

    Returns:
        (y0, x0, y1, x1) boxes, row by row.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    (wh, ww), (sh, sw) = _pair(window, "window"), _pair(stride, "stride")

    def spans(size: int, win: int, step: int) -> list[tuple[int, int]]:
        out = []
        for i in range(max(size - win + step - 1, 0) // step + 1):
            end = min(i * step + win, size)
            out.append((max(end - win, 0), end))
        return out

    return [(y0, x0, y1, x1) for y0, y1 in spans(height, wh, sh) for x0, x1 in spans(width, ww, sw)]


def patch_padding(height: int, width: int, patch: int) -> Pad:
    """Padding that brings a window to multiples of the patch, centred (ClearCLIP's
    ``compute_padsize``): the odd pixel goes right and bottom.

    Returns:
        (left, right, top, bottom) pixels.
    """
    extra_w, extra_h = -width % patch, -height % patch
    return extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2


def combine_windows(
    maps: list[torch.Tensor],
    boxes: list[Box],
    size: tuple[int, int],
    pads: list[Pad] | None = None,
) -> torch.Tensor:
    """Average per-window maps on one canvas, as the references do.

    Each map is upsampled bilinearly (half-pixel centres, ``align_corners=False``) to its
    window's padded pixel size, its padding is cut off, it is added at its box, and the sum is
    divided by the number of windows covering each pixel. The average is linear in the maps:
    cosine maps combined here equal the dot products of unit text embeddings with unit patch
    embeddings combined here (not normalised again).

    Args:
        maps: per window, (K, h_i, w_i) float (e.g. cosine logits on the window's patch grid).
        boxes: per window, (y0, x0, y1, x1) on the canvas.
        size: (H, W) of the canvas (the resized image).
        pads: per window, (left, right, top, bottom) padding the map includes; None: none.

    Returns:
        (K, H, W) float32.

    Raises:
        ValueError: when the lists differ in length or some pixel is in no window.
    """
    pads = pads if pads is not None else [(0, 0, 0, 0)] * len(boxes)
    if not maps or len(maps) != len(boxes) or len(pads) != len(boxes):
        raise ValueError(f"{len(maps)} maps, {len(boxes)} boxes and {len(pads)} pads")
    height, width = size
    total = maps[0].new_zeros((maps[0].shape[0], height, width), dtype=torch.float32)
    count = total.new_zeros((height, width))
    for m, (y0, x0, y1, x1), (left, right, top, bottom) in zip(maps, boxes, pads, strict=True):
        full = (y1 - y0 + top + bottom, x1 - x0 + left + right)
        up = F.interpolate(m[None].float(), size=full, mode="bilinear", align_corners=False)[0]
        total[:, y0:y1, x0:x1] += up[:, top : top + y1 - y0, left : left + x1 - x0]
        count[y0:y1, x0:x1] += 1
    if (count == 0).any():
        raise ValueError("the windows do not cover the whole canvas")
    return total / count


def encode_windows(
    backbone: CLIPBackbone, images: torch.Tensor, boxes: list[Box], *, method: str = "clearclip"
) -> tuple[list[torch.Tensor], list[Pad]]:
    """Dense patch embeddings of each window, read alone (windows of one size in one batch).

    A window whose sides are not multiples of the patch is padded with zeros (after CLIP
    normalisation), centred, as ClearCLIP does. The positional embedding is interpolated once,
    from the checkpoint's grid to the window's (not at all when they agree), by
    :meth:`CLIPBackbone.encode_dense`.

    Args:
        backbone: the CLIP.
        images: (1, 3, H, W) CLIP-normalised.
        boxes: windows as from :func:`window_boxes`.
        method: a dense method of :meth:`CLIPBackbone.encode_dense`.

    Returns:
        (per window (h_i, w_i, E) patch embeddings of the padded window, not normalised;
        per window its (left, right, top, bottom) padding).
    """
    if images.ndim != 4 or images.shape[0] != 1:
        raise ValueError(f"expected one image (1, 3, H, W), got {tuple(images.shape)}")
    patch = backbone.patch_size
    pads = [patch_padding(y1 - y0, x1 - x0, patch) for y0, x0, y1, x1 in boxes]
    crops = [
        F.pad(images[:, :, y0:y1, x0:x1], pad)
        for (y0, x0, y1, x1), pad in zip(boxes, pads, strict=True)
    ]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, crop in enumerate(crops):
        groups.setdefault(tuple(crop.shape[-2:]), []).append(i)
    feats: list[torch.Tensor | None] = [None] * len(boxes)
    for members in groups.values():
        batch = torch.cat([crops[i] for i in members])
        for i, f in zip(members, backbone.encode_dense(batch, method=method), strict=True):
            feats[i] = f
    return feats, pads


def sliding_window_cosine(
    backbone: CLIPBackbone,
    images: torch.Tensor,
    classes: torch.Tensor,
    *,
    window: int | tuple[int, int],
    stride: int | tuple[int, int],
    method: str = "clearclip",
) -> torch.Tensor:
    """Cosine logits of every class at every pixel of the (resized) image, window by window.

    Args:
        backbone: the CLIP.
        images: (1, 3, H, W) CLIP-normalised, the photo already resized (see
            :func:`resized_size`).
        classes: (K, E) text embeddings (normalised here).
        window, stride: pixels (see :func:`window_boxes`).
        method: a dense method of :meth:`CLIPBackbone.encode_dense`.

    Returns:
        (K, H, W) float32 cosine similarities averaged over the windows; scale by the logit
        scale and take the softmax over K (after resizing to the photo, as the references do).
    """
    height, width = images.shape[-2:]
    boxes = window_boxes(height, width, window, stride)
    feats, pads = encode_windows(backbone, images, boxes, method=method)
    text = F.normalize(classes.float(), dim=-1)
    maps = [torch.einsum("hwe,ke->khw", F.normalize(f.float(), dim=-1), text) for f in feats]
    return combine_windows(maps, boxes, (height, width), pads)


def grid_size(height: int, width: int, patch: int) -> tuple[int, int]:
    """The patch grid of an image of any size: ``round(side / patch)`` cells per side, at least
    one, spread evenly over the image (exactly the patches when the sides are multiples).

    Returns:
        (h, w) cells.
    """
    if height <= 0 or width <= 0 or patch <= 0:
        raise ValueError(f"size and patch must be positive, got {height}x{width}, {patch}")
    return max(1, round(height / patch)), max(1, round(width / patch))


def _axis_weights(
    cells: int, size: int, span: tuple[int, int], pad: int, length: int, full: int
) -> torch.Tensor:
    """(cells, length) weights that sample a window's map along one axis at the cell centres.

    Cell c of ``cells`` over ``size`` pixels has its centre at t = (c + 0.5) size / cells. A
    window spanning pixels [start, end), with ``pad`` pixels of padding before it, holds a map
    of ``length`` values over ``full`` padded pixels; it is read at t as PyTorch's bilinear
    upsampling (half-pixel centres, the ends clamped) reads it at a pixel centre:
    source = (t - start + pad) length / full - 0.5. Rows of cells outside [start, end) are zero.
    """
    start, end = span
    centres = (torch.arange(cells, dtype=torch.float64) * 2 + 1) * size / (2 * cells)
    inside = (centres >= start) & (centres < end)
    source = ((centres - start + pad) * length / full - 0.5).clamp(0, length - 1)
    low = source.floor().long()
    high = (low + 1).clamp(max=length - 1)
    frac = source - low
    weights = torch.zeros(cells, length, dtype=torch.float64)
    rows = torch.arange(cells)
    weights.index_put_((rows, low), 1 - frac, accumulate=True)
    weights.index_put_((rows, high), frac, accumulate=True)
    return weights * inside[:, None]


def combine_on_grid(
    maps: list[torch.Tensor],
    boxes: list[Box],
    size: tuple[int, int],
    grid: tuple[int, int],
    pads: list[Pad] | None = None,
) -> torch.Tensor:
    """The references' window average (:func:`combine_windows`) read at the centres of a grid.

    Each window's map is read bilinearly at the centre of every grid cell inside its box (as
    the upsampling of :func:`combine_windows` reads it at a pixel centre), and each cell
    averages the windows that cover its centre. With ``grid`` equal to ``size`` this is
    :func:`combine_windows` itself; at a coarser grid it is that average sampled at the cells'
    centres, without making the canvas at full resolution. A window whose patches fall on the
    grid's cells (its box at multiples of the cell size, no padding) is read exactly, with no
    interpolation: one window over an image whose sides are multiples of the patch gives back
    its own patch map. Linear in the maps, so embeddings may be combined instead of cosines.

    Args:
        maps: per window, (C, h_i, w_i) float.
        boxes: per window, (y0, x0, y1, x1) on the canvas.
        size: (H, W) of the canvas in pixels.
        grid: (gh, gw) cells.
        pads: per window, (left, right, top, bottom) padding the map includes; None: none.

    Returns:
        (C, gh, gw) float32.

    Raises:
        ValueError: when the lists differ in length or some cell centre is in no window.
    """
    pads = pads if pads is not None else [(0, 0, 0, 0)] * len(boxes)
    if not maps or len(maps) != len(boxes) or len(pads) != len(boxes):
        raise ValueError(f"{len(maps)} maps, {len(boxes)} boxes and {len(pads)} pads")
    (height, width), (gh, gw) = size, grid
    total = maps[0].new_zeros((maps[0].shape[0], gh, gw), dtype=torch.float64)
    count = total.new_zeros((gh, gw))
    for m, (y0, x0, y1, x1), (left, right, top, bottom) in zip(maps, boxes, pads, strict=True):
        full_h, full_w = y1 - y0 + top + bottom, x1 - x0 + left + right
        rows = _axis_weights(gh, height, (y0, y1), top, m.shape[1], full_h).to(total.device)
        cols = _axis_weights(gw, width, (x0, x1), left, m.shape[2], full_w).to(total.device)
        total += torch.einsum("yi,cij,xj->cyx", rows, m.double(), cols)
        count += torch.outer(rows.sum(1) > 0, cols.sum(1) > 0).double()
    if (count == 0).any():
        raise ValueError("the windows do not cover the centre of every grid cell")
    return (total / count).float()

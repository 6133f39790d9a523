"""From a coarse map to a real alpha matte: trimaps, closed-form matting, guided upsampling.

The pipeline shared by the zero-shot predictor and CLIPMat's optional refiner:

1. a trimap at a working resolution (from a probability map, or from a coarse alpha);
2. closed-form matting (Levin, Lischinski and Weiss, 2008; pymatting's solver) of the unknown
   band only, cropped to the band's bounding box so the time stays bounded;
3. edge-aware upsampling of the working-resolution alpha to the photo's resolution with a fast
   guided filter (He and Sun, 2015) guided by the full-resolution colours.

Trimaps are uint8 with 0 background, 128 unknown and 255 foreground.
"""

from __future__ import annotations

import contextlib
import io

import cv2
import numpy as np

TRIMAP_BG, TRIMAP_UNKNOWN, TRIMAP_FG = 0, 128, 255
CF_EPSILON = 1e-7  # regulariser of the matting Laplacian (Levin et al.)
CF_RTOL = 1e-6  # relative tolerance of the conjugate-gradient solve
CF_MAXITER = 2000
CF_MARGIN = 4  # pixels of known context kept around the unknown band's bounding box
GUIDE_RADIUS = 2  # guided-filter window radius, in working-resolution pixels
GUIDE_EPS = 1e-4  # guided-filter regulariser, for colours in [0, 1]
STRIP_ROWS = 512  # full-resolution rows upsampled at a time (bounds memory on large photos)
ALPHA_LOW, ALPHA_HIGH = 0.05, 0.95  # a coarse alpha in between is "transition"


def _check_map(values: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty (H, W) array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_:
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    return arr.astype(np.float32)


def _check_image(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(
            f"image must be an (H, W, 3) uint8 RGB array, got shape {arr.shape} dtype {arr.dtype}"
        )
    return arr


def _check_trimap(trimap: np.ndarray) -> np.ndarray:
    arr = np.asarray(trimap)
    if arr.ndim != 2 or arr.dtype != np.uint8:
        raise ValueError(
            f"trimap must be an (H, W) uint8 array, got shape {arr.shape} dtype {arr.dtype}"
        )
    bad = set(np.unique(arr).tolist()) - {TRIMAP_BG, TRIMAP_UNKNOWN, TRIMAP_FG}
    if bad:
        raise ValueError(f"trimap values must be 0, 128 or 255, found {sorted(bad)[:5]}")
    return arr


def working_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(h, w) with the long side at most ``max_side``, aspect ratio kept, never enlarged."""
    if max_side < 8:
        raise ValueError(f"max_side must be at least 8 pixels, got {max_side}")
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def trimap_from_probability(
    prob: np.ndarray,
    size: tuple[int, int] | None = None,
    *,
    band: int = 8,
    threshold: float = 0.5,
) -> np.ndarray:
    """A trimap around the ``threshold`` contour of a (coarse) probability map.

    The map is upsampled bilinearly to ``size``; pixels farther than ``band`` pixels inside the
    contour are foreground, farther than ``band`` outside are background, the band between is
    unknown. A region thinner than the band keeps its innermost half as foreground.

    Args:
        prob: (h, w) float in [0, 1], e.g. a patch-level grounding probability.
        size: (H, W) of the trimap; None keeps the map's size.
        band: half width of the unknown band, in output pixels (>= 1).
        threshold: the contour level.

    Returns:
        (H, W) uint8 trimap (0, 128, 255).
    """
    p = _check_map(prob, "prob")
    if band < 1:
        raise ValueError(f"band must be at least 1 pixel, got {band}")
    if size is not None and tuple(size) != p.shape:
        p = cv2.resize(p, (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)
    inside = (p > threshold).astype(np.uint8)
    trimap = np.full(p.shape, TRIMAP_UNKNOWN, np.uint8)
    if not inside.any():
        trimap[:] = TRIMAP_BG
        return trimap
    dist_in = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    dist_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5) if not inside.all() else None
    core = min(float(band), 0.5 * float(dist_in.max()))
    trimap[dist_in > core] = TRIMAP_FG
    if dist_out is not None:
        trimap[dist_out > band] = TRIMAP_BG
    return trimap


def trimap_from_alpha(
    alpha: np.ndarray,
    *,
    band: int = 4,
    low: float = ALPHA_LOW,
    high: float = ALPHA_HIGH,
    reach: int | None = None,
) -> np.ndarray:
    """A trimap whose unknown region is a coarse alpha's transition, widened by ``band`` pixels.

    Args:
        alpha: (H, W) float in [0, 1].
        band: pixels the transition region (``low < alpha < high``) and the 0.5 contour are
            dilated by.
        low, high: alpha levels below/above which a pixel is sure background/foreground.
        reach: when given, soft pixels count as unknown only within this many pixels of the
            object (``alpha > 0.5``); farther ones are low-level noise of the coarse matte and
            become background, so the solver cannot spread the matte onto other objects.

    Returns:
        (H, W) uint8 trimap (0, 128, 255).
    """
    a = _check_map(alpha, "alpha")
    if band < 0:
        raise ValueError(f"band must be >= 0 pixels, got {band}")
    fg = a >= high
    bg = a <= low
    soft = ~(fg | bg)
    # The 0.5 contour gets a band even where the coarse alpha jumps straight from 0 to 1.
    edge = cv2.morphologyEx((a > 0.5).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3)))
    if reach is not None:
        size = 2 * max(reach, 0) + 1
        near = cv2.dilate(
            (a > 0.5).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        )
        soft &= near > 0
    unknown = (soft | (edge > 0)).astype(np.uint8)
    if band:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
        unknown = cv2.dilate(unknown, kernel)
    trimap = np.where(fg, TRIMAP_FG, TRIMAP_BG).astype(np.uint8)
    trimap[unknown > 0] = TRIMAP_UNKNOWN
    return trimap


def closed_form_alpha(
    image: np.ndarray,
    trimap: np.ndarray,
    *,
    epsilon: float = CF_EPSILON,
    maxiter: int = CF_MAXITER,
) -> np.ndarray:
    """Closed-form matting of the trimap's unknown pixels (pymatting's solver).

    Only the bounding box of the unknown region (plus a margin of known pixels) is solved, so
    the cost follows the unknown band, not the photo.

    Args:
        image: (H, W, 3) uint8 RGB.
        trimap: (H, W) uint8 (0, 128, 255).
        epsilon: Laplacian regulariser.
        maxiter: conjugate-gradient iteration cap.

    Returns:
        (H, W) float32 alpha in [0, 1]; exactly 0 and 1 on the known pixels.
    """
    image, trimap = _check_image(image), _check_trimap(trimap)
    if image.shape[:2] != trimap.shape:
        raise ValueError(f"image {image.shape[:2]} and trimap {trimap.shape} sizes differ")
    alpha = (trimap == TRIMAP_FG).astype(np.float32)
    unknown = trimap == TRIMAP_UNKNOWN
    if not unknown.any():
        return alpha
    if not (trimap == TRIMAP_FG).any() or not (trimap == TRIMAP_BG).any():
        # Nothing to contrast with: the unknown pixels take the one known label.
        alpha[unknown] = float((trimap == TRIMAP_FG).any())
        return alpha
    rows, cols = np.nonzero(unknown)
    y0, y1 = max(0, rows.min() - CF_MARGIN), min(trimap.shape[0], rows.max() + 1 + CF_MARGIN)
    x0, x1 = max(0, cols.min() - CF_MARGIN), min(trimap.shape[1], cols.max() + 1 + CF_MARGIN)
    crop_tri = trimap[y0:y1, x0:x1]
    has_fg, has_bg = (crop_tri == TRIMAP_FG).any(), (crop_tri == TRIMAP_BG).any()
    if not (has_fg and has_bg):  # the crop lost one label: solve on the whole image
        y0, y1, x0, x1 = 0, trimap.shape[0], 0, trimap.shape[1]
        crop_tri = trimap
    from pymatting import estimate_alpha_cf  # first import compiles with numba (slow, once)

    crop_img = image[y0:y1, x0:x1].astype(np.float64) / 255.0
    # The incomplete-Cholesky preconditioner prints a warning when it has to retry with a
    # larger shift; the solve is still right, so that output is kept off stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        solved = estimate_alpha_cf(
            crop_img,
            crop_tri.astype(np.float64) / 255.0,
            laplacian_kwargs={"epsilon": epsilon},
            cg_kwargs={"maxiter": maxiter, "rtol": CF_RTOL},
        )
    alpha[y0:y1, x0:x1] = solved.astype(np.float32)
    return np.clip(alpha, 0.0, 1.0)


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    size = (2 * radius + 1, 2 * radius + 1)
    return cv2.boxFilter(x, cv2.CV_32F, size, borderType=cv2.BORDER_REFLECT)


def guided_coefficients(
    guide: np.ndarray, src: np.ndarray, radius: int = GUIDE_RADIUS, eps: float = GUIDE_EPS
) -> tuple[np.ndarray, np.ndarray]:
    """Colour guided-filter coefficients: ``src ~ sum_c a_c * guide_c + b`` in every window.

    Args:
        guide: (h, w, 3) float32 colours in [0, 1].
        src: (h, w) float32, the map to filter.
        radius: window radius in pixels.
        eps: regulariser; larger smooths more.

    Returns:
        (a, b): (h, w, 3) and (h, w) float32, already averaged over the windows.
    """
    mean_i = _box(guide, radius)  # (h, w, 3)
    mean_p = _box(src, radius)
    cov_ip = _box(guide * src[..., None], radius) - mean_i * mean_p[..., None]
    var = np.empty(guide.shape[:2] + (3, 3), np.float32)
    for i in range(3):
        for j in range(i, 3):
            v = _box(guide[..., i] * guide[..., j], radius) - mean_i[..., i] * mean_i[..., j]
            var[..., i, j] = var[..., j, i] = v
    var += eps * np.eye(3, dtype=np.float32)
    a = np.linalg.solve(var, cov_ip[..., None])[..., 0]  # (h, w, 3)
    b = mean_p - (a * mean_i).sum(axis=-1)
    return _box(a, radius), _box(b, radius)


def guided_upsample(
    alpha: np.ndarray,
    image: np.ndarray,
    *,
    radius: int = GUIDE_RADIUS,
    eps: float = GUIDE_EPS,
) -> np.ndarray:
    """Upsample a low-resolution alpha to the photo's size, following the photo's edges.

    Fast guided filter: the coefficients are fitted at the alpha's resolution against the
    downsampled photo, upsampled bilinearly, and applied to the full-resolution colours (in
    strips of rows, so a 12-megapixel photo needs little extra memory).

    Args:
        alpha: (h, w) float in [0, 1].
        image: (H, W, 3) uint8 RGB, H >= h and W >= w.
        radius: window radius in low-resolution pixels.
        eps: regulariser (colours in [0, 1]).

    Returns:
        (H, W) float32 alpha in [0, 1].
    """
    low = _check_map(alpha, "alpha")
    image = _check_image(image)
    height, width = image.shape[:2]
    h, w = low.shape
    if (h, w) == (height, width):
        guide = image.astype(np.float32) / 255.0
        a, b = guided_coefficients(guide, low, radius, eps)
        return np.clip((a * guide).sum(axis=-1) + b, 0.0, 1.0)
    if h > height or w > width:
        raise ValueError(f"alpha {low.shape} is larger than the image {(height, width)}")
    small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    a, b = guided_coefficients(small, low, radius, eps)
    coeffs = np.dstack([a, b[..., None]])  # (h, w, 4)
    out = np.empty((height, width), np.float32)
    sy = h / height
    for top in range(0, height, STRIP_ROWS):
        bottom = min(height, top + STRIP_ROWS)
        # Bilinear sampling of the coefficients at the strip's pixel centres (as cv2.resize).
        ys = (np.arange(top, bottom, dtype=np.float32) + 0.5) * sy - 0.5
        xs = (np.arange(width, dtype=np.float32) + 0.5) * (w / width) - 0.5
        map_x = np.broadcast_to(xs[None, :], (bottom - top, width))
        map_y = np.broadcast_to(ys[:, None], (bottom - top, width))
        up = cv2.remap(
            coeffs,
            np.ascontiguousarray(map_x),
            np.ascontiguousarray(map_y),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        guide = image[top:bottom].astype(np.float32) / 255.0
        out[top:bottom] = (up[..., :3] * guide).sum(axis=-1) + up[..., 3]
    return np.clip(out, 0.0, 1.0, out=out)


def matte_from_trimap(image: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """Alpha at the photo's resolution from a trimap at a (smaller) working resolution.

    Args:
        image: (H, W, 3) uint8 RGB photo.
        trimap: (h, w) uint8 trimap, h <= H and w <= W.

    Returns:
        (H, W) float32 alpha in [0, 1]: closed-form at (h, w), then guided upsampling.
    """
    image, trimap = _check_image(image), _check_trimap(trimap)
    h, w = trimap.shape
    small = image
    if (h, w) != image.shape[:2]:
        small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    alpha = closed_form_alpha(small, trimap)
    if (h, w) == image.shape[:2]:
        return alpha
    return guided_upsample(alpha, image)


def refine_alpha(
    image: np.ndarray,
    alpha: np.ndarray,
    *,
    max_side: int = 1024,
    band: int = 4,
    reach: float = 0.06,
) -> tuple[np.ndarray, np.ndarray]:
    """Refine the transition region of a coarse alpha (CLIPMat's optional refiner).

    A trimap is made from the coarse alpha at a working resolution (long side at most
    ``max_side``), the transition band is re-matted in closed form, upsampled with the guided
    filter, and pasted over the coarse alpha where the trimap was unknown. Only transition
    regions that touch sure foreground (alpha >= 0.95) are re-matted: without such an anchor
    the solver would have nothing to match but background and would erase the object, so a
    matte that is soft all over is returned as it was there.

    Args:
        image: (H, W, 3) uint8 RGB photo.
        alpha: (H, W) float in [0, 1], the coarse matte at the photo's size.
        max_side: long side of the working resolution.
        band: unknown-band dilation in working pixels.
        reach: how far from the object (``alpha > 0.5``) soft pixels are re-matted, as a share
            of the working long side; softness farther out is treated as background.

    Returns:
        (refined alpha (H, W) float32 in [0, 1], trimap (H, W) uint8 at the photo's size).
    """
    image = _check_image(image)
    coarse = np.clip(_check_map(alpha, "alpha"), 0.0, 1.0)
    if coarse.shape != image.shape[:2]:
        raise ValueError(f"alpha {coarse.shape} and image {image.shape[:2]} sizes differ")
    height, width = coarse.shape
    h, w = working_size(height, width, max_side)
    small_alpha = coarse
    if (h, w) != (height, width):
        small_alpha = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_AREA)
    trimap_small = trimap_from_alpha(small_alpha, band=band, reach=round(reach * max(h, w)))
    trimap = cv2.resize(trimap_small, (width, height), interpolation=cv2.INTER_NEAREST)
    anchored = _anchored_unknown(trimap_small)  # a subset of the unknown pixels
    if not anchored.any():
        return coarse, trimap
    solve = np.where(anchored | (trimap_small != TRIMAP_UNKNOWN), trimap_small, TRIMAP_BG)
    refined = matte_from_trimap(image, solve.astype(np.uint8))
    if anchored.shape != (height, width):  # resized like the trimap, so it stays inside it
        anchored = cv2.resize(
            anchored.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST
        ).astype(bool)
    return np.where(anchored, refined, coarse).astype(np.float32), trimap


def _anchored_unknown(trimap: np.ndarray) -> np.ndarray:
    """(H, W) bool: unknown pixels whose region (unknown and foreground, 8-connected) holds
    some sure foreground."""
    _, labels = cv2.connectedComponents((trimap != TRIMAP_BG).astype(np.uint8), connectivity=8)
    anchors = np.unique(labels[trimap == TRIMAP_FG])
    return (trimap == TRIMAP_UNKNOWN) & np.isin(labels, anchors[anchors > 0])

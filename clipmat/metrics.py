"""Matting metrics as in the paper: SAD, MSE, MAD, Grad, Conn, plus IoU and grounding hits.

Conventions (the paper's, whole image by default):
- SAD, Grad and Conn are sums divided by 1000 ("in thousands").
- MSE and MAD are means per pixel.
- Grad and Conn follow the Deep Image Matting benchmark: Gaussian-derivative gradients with
  sigma 1.4; connectivity over thresholds 0, 0.1, ..., 1 with theta 0.15 and the largest
  4-connected component.

Every function takes `pred` and `gt` alpha mattes of the same shape (H, W) (or (H, W, 1)):
float in [0, 1], or uint8 in 0..255 (divided by 255). An optional `mask` (bool (H, W)) restricts
the sums to a region (e.g. a trimap's unknown area); MSE and MAD then divide by its pixel count.
Pure numpy/scipy; computed in float64.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

THOUSAND = 1000.0
GRAD_SIGMA = 1.4
GRAD_KERNEL_EPS = 1e-2  # kernel half-size: where the Gaussian falls below this (DIM benchmark)
CONN_STEP = 0.1
CONN_THETA = 0.15
RANGE_TOLERANCE = 1e-6  # float inputs may stray this far outside [0, 1] (then clipped)
BINARY_THRESHOLD = 0.5
HIT_IOU = 0.5

_FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


def _as_alpha(x: np.ndarray, name: str) -> np.ndarray:
    """Validate one matte and return it as float64 (H, W) in [0, 1]."""
    a = np.asarray(x)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty (H, W) alpha matte; got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if a.dtype == np.bool_:
        return a.astype(np.float64)
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name} has dtype {a.dtype}; expected float in [0, 1] or uint8 in 0..255")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    low, high = float(a.min()), float(a.max())
    if low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
        raise ValueError(
            f"{name} must lie in [0, 1]; got values in [{low:g}, {high:g}] "
            "(pass uint8 for 0..255 mattes)"
        )
    return np.clip(a, 0.0, 1.0)


def _prepare(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    p, g = _as_alpha(pred, "pred"), _as_alpha(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt differ in shape: {p.shape} vs {g.shape}")
    if mask is None:
        return p, g, None
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[..., 0]
    if m.shape != p.shape:
        raise ValueError(f"mask must have the mattes' shape {p.shape}; got {m.shape}")
    if m.dtype != np.bool_:
        if not np.isin(m, (0, 1)).all():
            raise ValueError("mask must be boolean (or hold only 0 and 1)")
        m = m.astype(bool)
    if not m.any():
        raise ValueError("mask selects no pixel")
    return p, g, m


def _region_sum(values: np.ndarray, mask: np.ndarray | None) -> float:
    return float(values.sum() if mask is None else values[mask].sum())


def _region_mean(values: np.ndarray, mask: np.ndarray | None) -> float:
    return float(values.mean() if mask is None else values[mask].mean())


def sad(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Sum of absolute differences, in thousands: sum |pred - gt| / 1000."""
    p, g, m = _prepare(pred, gt, mask)
    return _region_sum(np.abs(p - g), m) / THOUSAND


def mse(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared error per pixel (of the mask's pixels when a mask is given)."""
    p, g, m = _prepare(pred, gt, mask)
    return _region_mean((p - g) ** 2, m)


def mad(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute difference per pixel (of the mask's pixels when a mask is given)."""
    p, g, m = _prepare(pred, gt, mask)
    return _region_mean(np.abs(p - g), m)


def gaussian_derivative_kernel(sigma: float = GRAD_SIGMA) -> np.ndarray:
    """The x-derivative-of-Gaussian filter of the DIM benchmark, unit L2 norm.

    Returns:
        (K, K) float64 kernel, K = 2 * ceil(sigma * sqrt(-2 ln(sqrt(2 pi) sigma eps))) + 1 with
        eps = 0.01 (K = 9 for sigma 1.4); entry [i, j] = G(i - c) * G'(j - c), so it varies
        along columns (x). Its transpose differentiates along rows (y).
    """
    half = int(
        np.ceil(sigma * np.sqrt(-2.0 * np.log(np.sqrt(2.0 * np.pi) * sigma * GRAD_KERNEL_EPS)))
    )
    u = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-(u**2) / (2.0 * sigma**2)) / (sigma * np.sqrt(2.0 * np.pi))
    dgauss = -u * gauss / sigma**2
    kernel = np.outer(gauss, dgauss)
    return kernel / np.sqrt((kernel**2).sum())


def gradient_magnitude(alpha: np.ndarray, sigma: float = GRAD_SIGMA) -> np.ndarray:
    """|grad alpha| from Gaussian-derivative filters, borders replicated.

    Args:
        alpha: (H, W) float64 matte in [0, 1].

    Returns:
        (H, W) float64 gradient magnitude.
    """
    kx = gaussian_derivative_kernel(sigma)
    gx = ndimage.convolve(alpha, kx, mode="nearest")
    gy = ndimage.convolve(alpha, kx.T, mode="nearest")
    return np.hypot(gx, gy)


def grad(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Gradient error, in thousands: sum (|grad pred| - |grad gt|)^2 / 1000, sigma 1.4.

    Gradients are taken over the whole image; the mask only restricts the sum.
    """
    p, g, m = _prepare(pred, gt, mask)
    diff = (gradient_magnitude(p) - gradient_magnitude(g)) ** 2
    return _region_sum(diff, m) / THOUSAND


def _largest_component(binary: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of a bool map (ties: the first in row-major order)."""
    labels, count = ndimage.label(binary, structure=_FOUR_CONNECTED)
    if count == 0:
        return np.zeros_like(binary)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == int(np.argmax(sizes)) + 1


def connectivity_levels(p: np.ndarray, g: np.ndarray, step: float = CONN_STEP) -> np.ndarray:
    """Per pixel, the last threshold up to which it stays in the largest common component.

    For thresholds t_k = k * step, a pixel belongs at level k when it lies in the largest
    4-connected component of {pred >= t_k and gt >= t_k}. The result is t_{k-1} for the first k
    at which it drops out, and 1 if it never drops out.

    Args:
        p, g: (H, W) float64 mattes in [0, 1].

    Returns:
        (H, W) float64 levels in [0, 1].
    """
    n_steps = int(round(1.0 / step))
    thresholds = np.arange(n_steps + 1) / n_steps  # exact k/10, not k * 0.1
    level = np.full(p.shape, -1.0)
    for k in range(1, n_steps + 1):
        inside = _largest_component((p >= thresholds[k]) & (g >= thresholds[k]))
        level[(level == -1.0) & ~inside] = thresholds[k - 1]
    level[level == -1.0] = 1.0
    return level


def conn(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Connectivity error, in thousands: sum |phi(pred) - phi(gt)| / 1000.

    phi(a) = 1 - d where d = a - level >= theta (0.15), else 1; `level` comes from
    `connectivity_levels` (threshold step 0.1).
    """
    p, g, m = _prepare(pred, gt, mask)
    level = connectivity_levels(p, g)
    dp, dg = p - level, g - level
    phi_p = 1.0 - dp * (dp >= CONN_THETA)
    phi_g = 1.0 - dg * (dg >= CONN_THETA)
    return _region_sum(np.abs(phi_p - phi_g), m) / THOUSAND


def iou(pred: np.ndarray, gt: np.ndarray, threshold: float = BINARY_THRESHOLD) -> float:
    """Intersection over union of {pred > threshold} and {gt > threshold}, whole image.

    Two empty masks count as a perfect match (1.0).
    """
    p, g, _ = _prepare(pred, gt, None)
    pb, gb = p > threshold, g > threshold
    union = np.logical_or(pb, gb).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(pb, gb).sum() / union)


def grounding_hit(pred: np.ndarray, gt: np.ndarray) -> bool:
    """Whether the prediction found the referred object: IoU at 0.5 above 0.5.

    The mean of this over a test set is the grounding accuracy.
    """
    return iou(pred, gt, BINARY_THRESHOLD) > HIT_IOU


def compute_all(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None
) -> dict[str, float]:
    """All metrics for one prediction.

    Returns:
        {"sad", "mse", "mad", "grad", "conn"} (restricted to `mask` when given) and
        {"iou", "grounding_hit"} (whole image; the hit as 1.0 or 0.0 so it averages), all float.
    """
    p, g, m = _prepare(pred, gt, mask)
    return {
        "sad": sad(p, g, m),
        "mse": mse(p, g, m),
        "mad": mad(p, g, m),
        "grad": grad(p, g, m),
        "conn": conn(p, g, m),
        "iou": iou(p, g),
        "grounding_hit": float(grounding_hit(p, g)),
    }

"""GrabCut's colour models as a foreground posterior, and a trimap whose unknown band follows
where they are unsure (:func:`clipmat.interactive.prompts.prompt_matte`).

The band is narrow on a hard edge, where object and background colours part cleanly, and wide
where they interleave (hair, fur, nets, see-through things): there the posterior of the cuts'
final colour models, smoothed, lies between :data:`UNSURE`'s levels near the cut's edge.
"""

from __future__ import annotations

import cv2
import numpy as np

from clipmat import refine

PROMPT_BAND = 0.003  # half width of the unknown band on the cuts' edge (share of working side)
UNSURE_BAND = 0.03  # the band reaches this far where the colour models are unsure
UNSURE = (0.2, 0.8)  # a pixel whose (smoothed) foreground posterior lies between is unsure
UNSURE_SMOOTH = 0.004  # sigma of the posterior's smoothing, as a share of the working side
GMM_COMPONENTS = 5  # OpenCV's GrabCut colour models: 5 Gaussians, stored as (1, 65) float64


def _gmm_density(model: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """The density of OpenCV's GrabCut colour model ((1, 65): 5 weights, 5 means, 5 3x3
    covariances) at ``pixels`` (N, 3) float64; returns (N,) float64."""
    k = GMM_COMPONENTS
    flat = model.ravel()
    weights, means = flat[:k], flat[k : 4 * k].reshape(k, 3)
    covariances = flat[4 * k : 13 * k].reshape(k, 3, 3)
    density = np.zeros(len(pixels))
    for weight, mean, cov in zip(weights, means, covariances, strict=True):
        if weight <= 0:
            continue
        diff = pixels - mean
        inverse, det = np.linalg.inv(cov), max(float(np.linalg.det(cov)), 1e-12)
        power = np.einsum("ni,ij,nj->n", diff, inverse, diff)
        density += weight * np.exp(-0.5 * power) / np.sqrt((2 * np.pi) ** 3 * det)
    return density


def colour_posterior(bgr: np.ndarray, bgd: np.ndarray, fgd: np.ndarray) -> np.ndarray:
    """P(foreground | colour) under a GrabCut's final colour models.

    Args:
        bgr: (h, w, 3) uint8 photo in the colour order the cut was given (BGR).
        bgd, fgd: (1, 65) float64 background and foreground models from ``cv2.grabCut``.

    Returns:
        (h, w) float32 in [0, 1] (0.5 where neither model explains the colour).
    """
    pixels = bgr.reshape(-1, 3).astype(np.float64)
    fg, bg = _gmm_density(fgd, pixels), _gmm_density(bgd, pixels)
    total = fg + bg
    posterior = np.where(total > 0, fg / np.maximum(total, 1e-300), 0.5)
    return posterior.reshape(bgr.shape[:2]).astype(np.float32)


def unsure_trimap(
    votes: np.ndarray,
    posterior: np.ndarray | None,
    *,
    band: float = PROMPT_BAND,
    reach: float = UNSURE_BAND,
) -> np.ndarray:
    """A trimap around the cuts' majority: an unknown band of half width ``band`` on its edge,
    widened up to ``reach`` (shares of the long side) where the colour models are unsure (the
    posterior, smoothed over :data:`UNSURE_SMOOTH`, between :data:`UNSURE`'s levels): narrow on
    a hard edge, wide where object and background colours interleave (hair, fur, nets).

    Args:
        votes: (h, w) float in [0, 1], the share of cuts holding each pixel.
        posterior: (h, w) float foreground posterior, or None (the narrow band only).

    Returns:
        (h, w) uint8 trimap (0, 128, 255).
    """
    side = max(votes.shape)
    majority = (votes > 0.5).astype(np.uint8)
    if not majority.any():
        majority = (votes >= votes.max()).astype(np.uint8)
    edge = cv2.morphologyEx(majority, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    unknown = cv2.dilate(edge, _disk(max(1, round(band * side)))) > 0
    if posterior is not None and reach > band:
        smooth = cv2.GaussianBlur(posterior, (0, 0), max(0.5, UNSURE_SMOOTH * side))
        unsure = (smooth > UNSURE[0]) & (smooth < UNSURE[1])
        unknown |= unsure & (cv2.dilate(edge, _disk(max(1, round(reach * side)))) > 0)
    trimap = np.where(majority > 0, refine.TRIMAP_FG, refine.TRIMAP_BG).astype(np.uint8)
    trimap[unknown] = refine.TRIMAP_UNKNOWN
    if not (trimap == refine.TRIMAP_FG).any():  # thinner than the band: keep its centre line
        dist = cv2.distanceTransform(majority, cv2.DIST_L2, 3)
        trimap[dist >= max(1.0, 0.5 * float(dist.max()))] = refine.TRIMAP_FG
    return trimap


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))

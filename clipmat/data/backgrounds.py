"""Backgrounds of the mini world: procedural patterns and scikit-image's bundled photos."""

from __future__ import annotations

import cv2
import numpy as np

from clipmat.data.shapes import value_noise

PHOTO_SIDE = 256  # photos are kept with this short side; crops are taken from there
GRAY_MIX = 0.45  # procedural colours are pulled this far towards mid-gray


def _colour(rng: np.random.Generator) -> np.ndarray:
    c = rng.uniform(0, 255, 3).astype(np.float32)
    return (1 - GRAY_MIX) * c + GRAY_MIX * 128.0


def procedural_background(kind: str, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """One procedural background.

    Args:
        kind: "gradient", "blobs", "stripes" (train) or "plaid", "radial", "cells" (test).
        size: (H, W).
        rng: the only source of randomness.

    Returns:
        (H, W, 3) uint8.
    """
    h, w = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = x / w, y / h
    ang = rng.uniform(0, np.pi)
    u = x * np.cos(ang) + y * np.sin(ang)
    a, b = _colour(rng), _colour(rng)
    if kind == "gradient":
        t = np.clip(u, 0, 1)
    elif kind == "blobs":
        grid = np.stack([_colour(rng) for _ in range(16)]).reshape(4, 4, 3)
        img = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        return np.clip(img, 0, 255).astype(np.uint8)
    elif kind == "stripes":
        t = 0.5 + 0.5 * np.tanh(4.0 * np.sin(2 * np.pi * rng.uniform(2, 6) * u))
    elif kind == "plaid":
        v = -x * np.sin(ang) + y * np.cos(ang)
        f = rng.uniform(2, 5)
        t = 0.25 * (2 + np.sin(2 * np.pi * f * u) + np.sin(2 * np.pi * f * v))
    elif kind == "radial":
        cx, cy = rng.uniform(0.2, 0.8, 2)
        t = np.clip(np.hypot(x - cx, y - cy) * rng.uniform(1.2, 2.5), 0, 1)
    elif kind == "cells":
        pts = rng.random((12, 2)).astype(np.float32)
        cols = np.stack([_colour(rng) for _ in range(12)])
        d = (x[..., None] - pts[:, 0]) ** 2 + (y[..., None] - pts[:, 1]) ** 2
        img = cv2.GaussianBlur(cols[d.argmin(axis=2)], (0, 0), 0.01 * max(h, w) + 0.5)
        return np.clip(img, 0, 255).astype(np.uint8)
    else:
        raise ValueError(f"unknown background kind {kind!r}")
    t = t + 0.15 * (value_noise((h, w), 5, rng) - 0.5)
    img = a * (1 - t[..., None]) + b * t[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def load_photo(name: str) -> np.ndarray:
    """A scikit-image bundled photo as RGB uint8 with short side PHOTO_SIDE (no network).

    Raises:
        ValueError: for a name that is not a bundled scikit-image photo.
    """
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if loader is None:
        raise ValueError(f"skimage.data has no image {name!r}")
    img = loader()
    if isinstance(img, tuple):  # stereo pairs: take the left view
        img = img[0]
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3].astype(np.uint8)
    scale = PHOTO_SIDE / min(img.shape[:2])
    new = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
    return cv2.resize(img, new, interpolation=cv2.INTER_AREA)


def photo_crop(photo: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Random crop (40-100% of the short side, random flip) resized to (H, W) uint8."""
    ph, pw = photo.shape[:2]
    h, w = size
    side = rng.uniform(0.4, 1.0) * min(ph / h, pw / w)
    ch, cw = max(2, int(h * side)), max(2, int(w * side))
    y0 = int(rng.integers(0, ph - ch + 1))
    x0 = int(rng.integers(0, pw - cw + 1))
    crop = photo[y0 : y0 + ch, x0 : x0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=cv2.INTER_AREA)


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sometimes blur (p = 0.2) or gray (p = 0.1) a background, as RefMatte does."""
    h, w = image.shape[:2]
    if rng.random() < 0.2:
        k = max(3, int(round(rng.uniform(20, 60) * max(h, w) / 1500)) | 1)
        image = cv2.blur(image, (k, k))
    if rng.random() < 0.1:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        image = np.repeat(gray[..., None], 3, axis=2)
    return image

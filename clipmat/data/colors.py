"""Named colours computed from foreground pixels: k-means in Lab, nearest named colour."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np
from PIL import ImageColor

KMEANS_K = 3
KMEANS_ITERS = 8
MAX_COLOUR_PIXELS = 400
OPAQUE_ALPHA = 0.9
# Spellings that duplicate another CSS name with the same value; the kept one is listed second.
_CSS_DUPLICATES = {"aqua": "cyan", "fuchsia": "magenta"}


def css_palette() -> dict[str, list[tuple[int, int, int]]]:
    """The CSS/X11 named colours, one sRGB value per name.

    The "grey" spellings are dropped in favour of "gray" (as in RefMatte's "dimgray"), and
    aqua/fuchsia in favour of cyan/magenta.

    Returns:
        Mapping name -> [(r, g, b)] with uint8-range integers.
    """
    out: dict[str, list[tuple[int, int, int]]] = {}
    for name in sorted(ImageColor.colormap):
        if "grey" in name or name in _CSS_DUPLICATES:
            continue
        rgb = ImageColor.getrgb(name)
        out[name] = [(int(rgb[0]), int(rgb[1]), int(rgb[2]))]
    return out


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Convert sRGB colours to CIE Lab (D65).

    Args:
        rgb: (..., 3) uint8 in [0, 255] or float in [0, 1].

    Returns:
        (..., 3) float32 Lab, L in [0, 100].
    """
    arr = np.asarray(rgb)
    arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
    flat = np.clip(arr.reshape(-1, 1, 3), 0.0, 1.0)
    lab = cv2.cvtColor(flat, cv2.COLOR_RGB2Lab)
    return lab.reshape(arr.shape)


class ColourNamer:
    """Names the dominant colour of a foreground with the nearest palette entry in Lab.

    Args:
        palette: name -> list of sRGB prototypes (each (r, g, b) in [0, 255]); several
            prototypes per name let a small vocabulary cover a wide range of shades.
    """

    def __init__(self, palette: Mapping[str, Sequence[Sequence[int]]]) -> None:
        if not palette:
            raise ValueError("palette is empty; pass a mapping name -> list of (r, g, b)")
        names: list[str] = []
        values: list[Sequence[int]] = []
        for name, protos in palette.items():
            for proto in protos:
                if len(proto) != 3:
                    raise ValueError(f"colour {name!r} has prototype {proto!r}; expected (r, g, b)")
                names.append(name)
                values.append(proto)
        self.names = names
        self.lab = rgb_to_lab(np.asarray(values, dtype=np.uint8))  # (P, 3)

    def nearest(self, rgb: Sequence[float] | np.ndarray) -> str:
        """Name of the palette colour nearest to one sRGB value (uint8 range)."""
        lab = rgb_to_lab(np.clip(np.asarray(rgb, dtype=np.float32) / 255.0, 0, 1).reshape(1, 3))
        return self.names[int(np.argmin(((self.lab - lab) ** 2).sum(axis=1)))]

    def __call__(self, rgb: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> str:
        """Name the colour of the largest k-means cluster among the opaque pixels.

        Args:
            rgb: (H, W, 3) uint8 foreground colours.
            alpha: (H, W) float32 in [0, 1].
            rng: source of the pixel subsample and k-means initialisation.

        Returns:
            A palette name.
        """
        return self.nearest(dominant_colour(rgb, alpha, rng))


def dominant_colour(rgb: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mean sRGB of the largest k-means (k = 3, Lab space) cluster of the opaque pixels.

    Pixels with alpha > 0.9 are used; a foreground with none (smoke, glass) uses its most
    opaque 30% instead.

    Args:
        rgb: (H, W, 3) uint8.
        alpha: (H, W) float in [0, 1].
        rng: generator for the subsample and the initial centres.

    Returns:
        (3,) float32 sRGB in [0, 255].
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or alpha.shape != rgb.shape[:2]:
        raise ValueError(
            f"expected rgb (H, W, 3) and alpha (H, W); got {rgb.shape} and {alpha.shape}"
        )
    mask = alpha > OPAQUE_ALPHA
    if mask.sum() < KMEANS_K:
        positive = alpha[alpha > 0]
        if positive.size == 0:
            raise ValueError("alpha is empty: the foreground has no visible pixel")
        mask = alpha >= np.quantile(positive, 0.7)
    pixels = rgb[mask].astype(np.float32)  # (N, 3)
    if len(pixels) > MAX_COLOUR_PIXELS:
        pixels = pixels[rng.choice(len(pixels), MAX_COLOUR_PIXELS, replace=False)]
    lab = rgb_to_lab(pixels / 255.0)
    labels = _kmeans(lab, min(KMEANS_K, len(lab)), rng)
    largest = np.bincount(labels).argmax()
    return pixels[labels == largest].mean(axis=0)


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Plain Lloyd k-means; returns (N,) int cluster labels."""
    centres = points[rng.choice(len(points), k, replace=False)]
    labels = np.zeros(len(points), dtype=np.int64)
    for _ in range(KMEANS_ITERS):
        dist = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)  # (N, k)
        new = dist.argmin(axis=1)
        if _ > 0 and np.array_equal(new, labels):
            break
        labels = new
        for c in range(k):
            members = points[labels == c]
            if len(members):
                centres[c] = members.mean(axis=0)
    return labels

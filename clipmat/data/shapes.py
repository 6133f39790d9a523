"""Procedural entities of the mini world: shapes with hard, soft, furry and see-through edges.

Each renderer draws one entity in a (s, s) box and returns its alpha; colours come from a base
colour modulated by a texture. Fine structure (strands, threads, smoke) is drawn at a higher
resolution and area-averaged, so the mattes have real fractional values, not binary shapes.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

SUPERSAMPLE = 4
TEXTURE_AMPLITUDE = 0.13


def _grid(s: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1]: (s, s) x and y."""
    c = (np.arange(s, dtype=np.float32) + 0.5) / s
    return np.meshgrid(c, c)


def _disk(s: int, cx: float, cy: float, r: float, sy: float = 1.0) -> np.ndarray:
    """Antialiased ellipse alpha (s, s) float32, radius r (unit coords), y scaled by 1/sy."""
    x, y = _grid(s)
    d = np.sqrt((x - cx) ** 2 + ((y - cy) / sy) ** 2)
    return np.clip((r - d) * s + 0.5, 0.0, 1.0)


def _poly(s: int, pts: np.ndarray) -> np.ndarray:
    """Antialiased polygon alpha (s, s) from (N, 2) unit-coordinate points."""
    big = np.zeros((s * SUPERSAMPLE, s * SUPERSAMPLE), np.uint8)
    cv2.fillPoly(big, [np.round(pts * s * SUPERSAMPLE).astype(np.int32)], 255)
    return _down(big, s)


def _down(big: np.ndarray, s: int) -> np.ndarray:
    return cv2.resize(big, (s, s), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _rotate(pts: np.ndarray, angle: float, centre: float = 0.5) -> np.ndarray:
    c, sn = np.cos(angle), np.sin(angle)
    p = pts - centre
    return np.stack([p[:, 0] * c - p[:, 1] * sn, p[:, 0] * sn + p[:, 1] * c], axis=1) + centre


def value_noise(shape: tuple[int, int], cells: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth noise in [0, 1]: a (cells+1)^2 random grid upsampled bicubically to (h, w)."""
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    return np.clip(cv2.resize(grid, shape[::-1], interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def _star(s: int, rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(5, 8))
    inner = rng.uniform(0.38, 0.55)
    ang = np.arange(2 * n) * np.pi / n + rng.uniform(0, np.pi)
    rad = np.where(np.arange(2 * n) % 2 == 0, 0.48, 0.48 * inner)
    return _poly(s, np.stack([0.5 + rad * np.cos(ang), 0.5 + rad * np.sin(ang)], axis=1))


def _heart(s: int, rng: np.random.Generator) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 80, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    pts = np.stack([x / 36 * rng.uniform(0.85, 1.05), y / 36], axis=1) + 0.5
    return _poly(s, _rotate(pts, rng.uniform(-0.35, 0.35)))


def _ring(s: int, rng: np.random.Generator) -> np.ndarray:
    sy = rng.uniform(0.75, 1.0)
    outer = _disk(s, 0.5, 0.5, 0.47, sy)
    return outer * (1.0 - _disk(s, 0.5, 0.5, rng.uniform(0.2, 0.32), sy))


def _cross(s: int, rng: np.random.Generator) -> np.ndarray:
    w = rng.uniform(0.11, 0.17)
    arm = np.array([[0.5 - w, 0.03], [0.5 + w, 0.03], [0.5 + w, 0.97], [0.5 - w, 0.97]])
    ang = rng.uniform(-0.4, 0.4)
    a = _poly(s, _rotate(arm, ang))
    b = _poly(s, _rotate(arm[:, ::-1], ang))
    return np.maximum(a, b)


def _crescent(s: int, rng: np.random.Generator) -> np.ndarray:
    ang = rng.uniform(0, 2 * np.pi)
    off = rng.uniform(0.16, 0.28)
    cut = _disk(s, 0.5 + off * np.cos(ang), 0.5 + off * np.sin(ang), rng.uniform(0.36, 0.42))
    return _disk(s, 0.5, 0.5, 0.47) * (1.0 - cut)


def _triangle(s: int, rng: np.random.Generator) -> np.ndarray:
    ang = np.array([0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(0, 2 * np.pi)
    ang = ang + rng.uniform(-0.25, 0.25, 3)
    return _poly(s, np.stack([0.5 + 0.48 * np.cos(ang), 0.5 + 0.48 * np.sin(ang)], axis=1))


def _ball(s: int, rng: np.random.Generator) -> np.ndarray:
    return cv2.GaussianBlur(_disk(s, 0.5, 0.5, 0.45), (0, 0), max(0.6, 0.012 * s))


def _cloud(s: int, rng: np.random.Generator) -> np.ndarray:
    alpha = np.zeros((s, s), np.float32)
    for _ in range(int(rng.integers(5, 9))):
        cx, cy = rng.uniform(0.28, 0.72), rng.uniform(0.38, 0.62)
        alpha = np.maximum(alpha, _disk(s, cx, cy, rng.uniform(0.13, 0.22)))
    return cv2.GaussianBlur(alpha, (0, 0), 0.035 * s)


def _strands(s: int, rng: np.random.Generator, n: int, r0: float, r1: tuple, curl: float):
    big = np.zeros((s * SUPERSAMPLE, s * SUPERSAMPLE), np.uint8)
    k = s * SUPERSAMPLE
    for _ in range(n):
        a = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(*r1)
        bend = rng.uniform(-curl, curl)
        rads = np.linspace(r0, r0 + length, 4)
        angs = a + bend * np.linspace(0, 1, 4) ** 2
        pts = np.stack([0.5 + rads * np.cos(angs), 0.5 + rads * np.sin(angs)], axis=1)
        cv2.polylines(big, [np.round(pts * k).astype(np.int32)], False, 255, 2, cv2.LINE_AA)
    return big


def _furball(s: int, rng: np.random.Generator) -> np.ndarray:
    core = rng.uniform(0.24, 0.3)
    big = _strands(s, rng, int(rng.integers(220, 360)), core - 0.05, (0.1, 0.22), 0.5)
    return np.maximum(_down(big, s), _disk(s, 0.5, 0.5, core))


def _dandelion(s: int, rng: np.random.Generator) -> np.ndarray:
    big = _strands(s, rng, int(rng.integers(70, 130)), 0.06, (0.3, 0.4), 0.08)
    k = s * SUPERSAMPLE
    for _ in range(40):
        a, r = rng.uniform(0, 2 * np.pi), rng.uniform(0.36, 0.46)
        c = (int(k * (0.5 + r * np.cos(a))), int(k * (0.5 + r * np.sin(a))))
        cv2.circle(big, c, max(2, k // 80), 255, -1, cv2.LINE_AA)
    return np.maximum(_down(big, s), _disk(s, 0.5, 0.5, rng.uniform(0.08, 0.11)))


def _smoke(s: int, rng: np.random.Generator) -> np.ndarray:
    noise = 0.6 * value_noise((s, s), 4, rng) + 0.4 * value_noise((s, s), 9, rng)
    x, y = _grid(s)
    fall = np.clip(1.0 - np.sqrt(((x - 0.5) / 0.46) ** 2 + ((y - 0.5) / 0.4) ** 2), 0, 1)
    return np.clip(noise * np.sqrt(fall) * rng.uniform(1.3, 1.7), 0.0, 0.9)


def _bubble(s: int, rng: np.random.Generator) -> np.ndarray:
    disk = _disk(s, 0.5, 0.5, 0.46)
    rim = disk * (1.0 - _disk(s, 0.5, 0.5, 0.4))
    spot = _disk(s, 0.36, 0.34, 0.07)
    return np.clip(disk * rng.uniform(0.15, 0.3) + rim + spot, 0.0, 1.0)


def _net(s: int, rng: np.random.Generator) -> np.ndarray:
    k = s * SUPERSAMPLE
    big = np.zeros((k, k), np.uint8)
    step = rng.uniform(0.08, 0.13)
    ang = rng.uniform(0, np.pi / 2)
    for t in np.arange(-1.0, 1.0, step):
        for a in (ang, ang + np.pi / 2):
            d = np.array([np.cos(a), np.sin(a)])
            n = np.array([-d[1], d[0]])
            p0, p1 = 0.5 + n * t - d * 1.0, 0.5 + n * t + d * 1.0
            cv2.line(
                big,
                tuple(np.round(p0 * k).astype(int)),
                tuple(np.round(p1 * k).astype(int)),
                255,
                3,
                cv2.LINE_AA,
            )
    region = _disk(s, 0.5, 0.5, 0.46, rng.uniform(0.7, 1.0))
    frame = region * (1.0 - _disk(s, 0.5, 0.5, 0.43, 1.0))
    return np.maximum(_down(big, s) * region, np.clip(frame * 1.5, 0, 1))


def _leaf(s: int, rng: np.random.Generator) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    width = rng.uniform(0.2, 0.3)
    serr = 1.0 + rng.uniform(0.0, 0.06) * np.sin(t * int(rng.integers(10, 18)))
    x = 0.46 * np.cos(t)
    y = width * np.sin(t) * np.abs(np.sin(t)) ** 0.3 * serr
    pts = _rotate(np.stack([x, y], axis=1) + 0.5, rng.uniform(0, np.pi))
    return _poly(s, pts)


def _flower(s: int, rng: np.random.Generator) -> np.ndarray:
    k = s * SUPERSAMPLE
    big = np.zeros((k, k), np.uint8)
    n = int(rng.integers(5, 9))
    phase = rng.uniform(0, 2 * np.pi)
    length, width = rng.uniform(0.18, 0.24), rng.uniform(0.07, 0.11)
    for j in range(n):
        a = phase + 2 * np.pi * j / n
        c = (0.5 + length * np.cos(a), 0.5 + length * np.sin(a))
        cv2.ellipse(
            big,
            (int(c[0] * k), int(c[1] * k)),
            (int(length * k), int(width * k)),
            np.degrees(a),
            0,
            360,
            255,
            -1,
            cv2.LINE_AA,
        )
    return np.maximum(_down(big, s), _disk(s, 0.5, 0.5, 0.12))


def _bag(s: int, rng: np.random.Generator) -> np.ndarray:
    body = _poly(s, np.array([[0.12, 0.3], [0.88, 0.3], [0.92, 0.95], [0.08, 0.95]]))
    handles = np.zeros((s, s), np.float32)
    for cx in (0.32, 0.68):
        handles = np.maximum(handles, _disk(s, cx, 0.3, 0.16) * (1 - _disk(s, cx, 0.3, 0.1)))
    x, y = _grid(s)
    handles *= y < 0.31
    wrinkle = 0.75 + 0.25 * value_noise((s, s), 6, rng)
    return np.clip(np.maximum(body * rng.uniform(0.45, 0.65) * wrinkle, handles * 0.8), 0, 1)


RENDERERS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "star": _star,
    "heart": _heart,
    "ring": _ring,
    "cross": _cross,
    "crescent": _crescent,
    "triangle": _triangle,
    "ball": _ball,
    "cloud": _cloud,
    "furball": _furball,
    "dandelion": _dandelion,
    "smoke": _smoke,
    "bubble": _bubble,
    "net": _net,
    "leaf": _leaf,
    "flower": _flower,
    "bag": _bag,
}


def texture(name: str, s: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative luminance pattern (s, s) float32 around 1 (+-13%)."""
    x, y = _grid(s)
    f = rng.uniform(3.0, 7.0)
    ang = rng.uniform(0, np.pi)
    u = x * np.cos(ang) + y * np.sin(ang)
    if name == "flat":
        m = np.zeros((s, s), np.float32)
    elif name == "stripes":
        m = np.sign(np.sin(2 * np.pi * f * u))
    elif name == "dots":
        m = -2.0 * (np.hypot((x * f) % 1 - 0.5, (y * f) % 1 - 0.5) < 0.22) + 1.0
    elif name == "gradient":
        m = 2.0 * u - 1.0
    elif name == "checker":
        m = 2.0 * ((np.floor(x * f) + np.floor(y * f)) % 2) - 1.0
    elif name == "waves":
        m = np.sin(2 * np.pi * f * x + 2.0 * np.sin(2 * np.pi * f * y))
    elif name == "speckle":
        m = 2.0 * cv2.GaussianBlur(rng.random((s, s)).astype(np.float32), (0, 0), 0.8) - 1.0
        m = np.clip(m * 3.0, -1.0, 1.0)
    else:
        raise ValueError(f"unknown texture {name!r}")
    return (1.0 + TEXTURE_AMPLITUDE * m).astype(np.float32)


def render_entity(
    renderer: str, size: int, colour: np.ndarray, texture_name: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one procedural entity.

    Args:
        renderer: a key of RENDERERS.
        size: side of the square drawing box in pixels.
        colour: (3,) base sRGB in [0, 255].
        texture_name: "flat", "stripes", "dots", "gradient", "checker", "waves" or "speckle".
        rng: source of the shape parameters and texture phase.

    Returns:
        rgb (s, s, 3) uint8 and alpha (s, s) float32 in [0, 1] (not cropped).
    """
    if renderer not in RENDERERS:
        raise ValueError(f"unknown renderer {renderer!r}; expected one of {sorted(RENDERERS)}")
    alpha = RENDERERS[renderer](size, rng).astype(np.float32)
    m = texture(texture_name, size, rng)[..., None]
    base = np.asarray(colour, np.float32)[None, None, :]
    rgb = base * m + (m - 1.0) * 80.0
    if renderer == "ball":  # a soft highlight makes it read as a sphere
        rgb = rgb + 50.0 * _disk(size, 0.36, 0.34, 0.16)[..., None] ** 2
    return np.clip(rgb, 0, 255).astype(np.uint8), np.clip(alpha, 0.0, 1.0)

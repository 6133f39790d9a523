"""Mini-world clips: entities that move, pass one another and leave, with the alpha of each in
every frame (for text-driven video matting: its tests and ``bench/video.py``).

A clip is drawn once from a seed (its entities, background, paths and phrase) and each frame is
rendered on demand, so a clip of any length costs a few frames of memory. Frame ``t`` depends
only on (kind, seed, size, length, noise, t). Entities move in straight lines at a constant
speed (positions rounded to whole pixels); they are composited back to front as the generation
engine does (:func:`clipmat.data.composition.composite_layers`), and the alpha of each is its
placed alpha times the transparency of every entity in front of it
(:func:`clipmat.data.composition.occluded_alphas`). A little sensor noise, drawn anew in each
frame, makes a still picture differ from frame to frame as a camera's does.

Kinds (``KINDS``), each with a referred entity (the "target") named by its colour and category,
unique in the first frame:

- ``"pass"``: the target crosses the picture; a look-alike (same category and colour, drawn
  anew) enters from the far side after the first frame and passes it, overlapping it on the way;
  a third entity of another category drifts out through the top or the bottom.
- ``"leave"``: the target walks out of the picture and comes back in; another entity stays.
- ``"static"``: a static camera and still entities: only the sensor noise changes from frame to
  frame, so the true alpha does not change at all (for steadiness: a matte that changes
  flickers).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from clipmat.data.composition import composite_layers, crop_to_alpha, occluded_alphas
from clipmat.data.miniworld import MiniWorld

KINDS = ("pass", "leave", "static")
ROLES = ("target", "look-alike", "other")
ENTITY_SIDE = 0.34  # an entity's long side, as a share of the canvas side
NOISE = 2.0  # standard deviation of the sensor noise, in 8-bit levels


@dataclass(frozen=True)
class Mover:
    """One entity of a clip and its straight path.

    Attributes:
        rgb: (h, w, 3) uint8 straight colours of the entity.
        alpha: (h, w) float32 in [0, 1].
        category: its mini-world category (the keyword).
        colour: its colour name.
        start: (x, y) of its top-left corner in frame 0, in pixels (may lie outside the frame).
        velocity: (vx, vy) in pixels per frame.
        depth: drawing order, 0 is drawn first (furthest back).
        role: "target", "look-alike" or "other".
        turn: the frame at which it turns back along its path, or None (straight on).
    """

    rgb: np.ndarray
    alpha: np.ndarray
    category: str
    colour: str
    start: tuple[float, float]
    velocity: tuple[float, float]
    depth: int
    role: str
    turn: int | None = None

    def corner(self, t: int) -> tuple[int, int]:
        """Its top-left corner (x, y) in frame ``t``, rounded to whole pixels."""
        if self.turn is not None and t > self.turn:
            t = 2 * self.turn - t
        return (
            round(self.start[0] + self.velocity[0] * t),
            round(self.start[1] + self.velocity[1] * t),
        )


@dataclass
class Frame:
    """One rendered frame of a clip.

    Attributes:
        image: (H, W, 3) uint8 composite, sensor noise included.
        alphas: (K, H, W) float32, the visible alpha of each mover (the clip's order).
        target: (H, W) float32, the visible alpha of the referred entity.
    """

    image: np.ndarray
    alphas: np.ndarray
    target: np.ndarray


@dataclass
class Clip:
    """A mini-world clip: its background, movers and phrase; frames rendered on demand.

    Attributes:
        kind: one of ``KINDS``.
        seed: the seed it was drawn from.
        size: (H, W) of its frames.
        length: number of frames.
        fps: frames per second (for writing it as a video).
        background: (H, W, 3) uint8, the static background.
        movers: the entities; ``movers[target]`` is the referred one.
        phrase: the referred entity's colour and category ("the red star"), unique in frame 0.
        target: index of the referred entity in ``movers``.
        noise: standard deviation of the sensor noise in 8-bit levels.
    """

    kind: str
    seed: int
    size: tuple[int, int]
    length: int
    fps: float
    background: np.ndarray
    movers: list[Mover]
    phrase: str
    target: int
    noise: float = NOISE
    _drawing: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._drawing = sorted(range(len(self.movers)), key=lambda k: self.movers[k].depth)

    def __len__(self) -> int:
        return self.length

    def frame(self, t: int) -> Frame:
        """Frame ``t`` (0 <= t < length) with the visible alpha of every mover."""
        if not 0 <= t < self.length:
            raise IndexError(f"frame {t} is outside the clip (0 to {self.length - 1})")
        layers = [_place(self.movers[k], t, self.size) for k in self._drawing]
        visible = occluded_alphas([alpha for _, alpha in layers])
        image = composite_layers(self.background, layers)
        if self.noise > 0:
            rng = np.random.default_rng([self.seed, KINDS.index(self.kind), 7, t])
            noisy = image + rng.normal(0.0, self.noise, image.shape)
            image = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        alphas = np.zeros((len(self.movers), *self.size), np.float32)
        for k, alpha in zip(self._drawing, visible, strict=True):
            alphas[k] = alpha
        return Frame(image, alphas, alphas[self.target])

    def __iter__(self) -> Iterator[Frame]:
        return (self.frame(t) for t in range(self.length))

    def images(self) -> Iterator[np.ndarray]:
        """The frames' (H, W, 3) uint8 images, one at a time."""
        return (f.image for f in self)


def _place(mover: Mover, t: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The mover in frame ``t`` on an empty canvas of ``size`` = (H, W): (H, W, 3) float32
    colours and (H, W) float32 alpha, cut at the frame's edges."""
    height, width = size
    rgb = np.zeros((height, width, 3), np.float32)
    alpha = np.zeros((height, width), np.float32)
    x0, y0 = mover.corner(t)
    h, w = mover.alpha.shape
    xs, ys, xe, ye = max(0, x0), max(0, y0), min(width, x0 + w), min(height, y0 + h)
    if xe > xs and ye > ys:
        rgb[ys:ye, xs:xe] = mover.rgb[ys - y0 : ye - y0, xs - x0 : xe - x0]
        alpha[ys:ye, xs:xe] = mover.alpha[ys - y0 : ye - y0, xs - x0 : xe - x0]
    return rgb, alpha


def _draw(
    world: MiniWorld, category: dict, colour: str, rng: np.random.Generator, side: int
) -> tuple[np.ndarray, np.ndarray]:
    """One entity of ``category`` in ``colour``, its long side ``side`` pixels: (h, w, 3) uint8
    and (h, w) float32 alpha."""
    fg = world.entity(category, colour, rng)
    scale = side / max(fg.alpha.shape)
    size = (max(2, round(fg.alpha.shape[1] * scale)), max(2, round(fg.alpha.shape[0] * scale)))
    rgb = cv2.resize(fg.rgb, size, interpolation=cv2.INTER_AREA)
    alpha = np.clip(cv2.resize(fg.alpha, size, interpolation=cv2.INTER_AREA), 0.0, 1.0)
    rgb, alpha = crop_to_alpha(rgb, alpha)
    return np.ascontiguousarray(rgb), np.ascontiguousarray(alpha, np.float32)


def _paths(
    kind: str, n: int, side: int, length: int, rng: np.random.Generator
) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """(start, velocity) of the target, the second and the third mover of a clip ``kind`` on a
    square canvas of ``side`` pixels whose entities are at most ``n`` pixels across."""
    span = max(1, length - 1)
    mid = (side - n) / 2
    if kind == "pass":  # the look-alike comes in from the right and crosses the target
        target = ((0.02 * side, mid - 0.25 * n), (0.45 * side / span, 0.0))
        twin = ((side + 0.05 * side, mid + 0.25 * n), (-(side + 0.1 * side) / span, 0.0))
        up = rng.random() < 0.5
        y0 = 0.02 * side if up else side - n - 0.02 * side
        third = ((0.6 * side, y0), (0.0, (-1.0 if up else 1.0) * 1.2 * n / span))
        return [target, twin, third]
    if kind == "leave":  # out through the left edge by mid-clip, back in by the end
        speed = (0.05 * side + 1.1 * n) / (length // 2)
        target = ((0.05 * side, mid), (-speed, 0.0))
        return [target, ((side - n - 0.02 * side, 0.02 * side), (0.0, 0.0))]
    return [((0.08 * side, mid), (0.0, 0.0)), ((side - n - 0.06 * side, mid), (0.0, 0.0))]


def make_clip(
    kind: str = "pass",
    seed: int = 0,
    *,
    size: int = 128,
    length: int = 24,
    fps: float = 12.0,
    noise: float = NOISE,
) -> Clip:
    """Draw a mini-world clip (test split: held-out textures, backgrounds and colours).

    Args:
        kind: "pass", "leave" or "static" (see the module's docstring).
        seed: the clip depends only on its arguments.
        size: the side of its square frames in pixels (at least 48).
        length: number of frames (at least 4).
        fps: frames per second, recorded for writing it as a video.
        noise: standard deviation of the per-frame sensor noise in 8-bit levels.

    Returns:
        The :class:`Clip`; render its frames with ``clip.frame(t)`` or iterate over it.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if size < 48 or length < 4:
        raise ValueError(f"a clip is at least 48 pixels and 4 frames, got {size} and {length}")
    world = MiniWorld("test", size=size, seed=seed)
    rng = np.random.default_rng([seed, KINDS.index(kind), 1])
    movers = _movers(kind, world, rng, length)
    background, _ = world.background(rng)
    phrase = f"the {movers[0].colour} {movers[0].category}"
    return Clip(kind, seed, (size, size), length, fps, background, movers, phrase, 0, noise)


def _movers(kind: str, world: MiniWorld, rng: np.random.Generator, length: int) -> list[Mover]:
    """The target (first), the look-alike of a "pass" clip and another entity, on their paths."""
    cats = rng.choice(len(world.categories), size=2, replace=False)
    first, second = world.categories[int(cats[0])], world.categories[int(cats[1])]
    colour = str(rng.choice(world.allowed_colours(first["keyword"])))
    other_colours = [c for c in world.allowed_colours(second["keyword"]) if c != colour]
    side = round(ENTITY_SIDE * world.size)
    looks = [(first, colour, "target")]
    if kind == "pass":
        looks.append((first, colour, "look-alike"))
    looks.append((second, str(rng.choice(other_colours)), "other"))
    drawn = [_draw(world, cat, col, rng, side) for cat, col, _ in looks]
    paths = _paths(kind, side, world.size, length, rng)
    depths = [int(d) for d in rng.permutation(len(looks))]
    movers = [
        Mover(rgb, alpha, cat["keyword"], col, start, velocity, depth, role)
        for (rgb, alpha), (cat, col, role), (start, velocity), depth in zip(
            drawn, looks, paths, depths, strict=True
        )
    ]
    if kind == "leave":
        movers[0] = dataclasses.replace(movers[0], turn=length // 2)
    return movers

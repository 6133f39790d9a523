"""Generation engine, geometry part: place 1 to 3 foregrounds on a background and merge alphas.

Relations (docs/decisions.md#generation-engine): "left/right" and "top/bottom" put the entities in non-overlapping
slots along one axis; "front/behind" overlaps two entities so that the front one covers 20-60%
of the back one's box, and the back entity's ground truth is cut by the front alpha.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

RELATIONS = ("left/right", "top/bottom", "front/behind")
SINGLE = "single"
SCALE_RANGE = (0.4, 0.8)  # entity box side / canvas side along the free axis
SLOT_FILL = 0.92  # an entity uses at most this fraction of its slot along the relation axis
COVER_RANGE = (0.2, 0.6)  # front/behind: fraction of the back box covered by the front box
MIN_VISIBLE = 0.3  # an entity must keep this fraction of its alpha mass
PLACEMENT_TRIES = 40
TRANSPARENT_BAND = (0.05, 0.95)
TRANSPARENT_FRACTION = 0.2


@dataclass
class Foreground:
    """One matting foreground.

    Attributes:
        rgb: (h, w, 3) uint8 foreground colours (ideally estimated, not raw composite pixels).
        alpha: (h, w) float32 in [0, 1].
        category: canonical category name, used as the keyword.
        name: identifier of the source (file name or procedural id).
        attributes: optional labels: "colour" (overrides the computed one), "salient" (bool),
            "transparent" (bool, overrides the alpha rule), "gender", "clothing".
    """

    rgb: np.ndarray
    alpha: np.ndarray
    category: str
    name: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rgb.dtype != np.uint8 or self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise ValueError(
                f"foreground {self.name!r}: rgb must be (h, w, 3) uint8, got "
                f"{self.rgb.shape} {self.rgb.dtype}"
            )
        if self.alpha.shape != self.rgb.shape[:2]:
            raise ValueError(
                f"foreground {self.name!r}: alpha {self.alpha.shape} does not match rgb "
                f"{self.rgb.shape[:2]}"
            )
        if not np.any(self.alpha > 0):
            raise ValueError(f"foreground {self.name!r}: alpha is empty")


@dataclass
class SceneEntity:
    """One entity of a composed scene.

    Attributes:
        alpha: (H, W) float32 in [0, 1], the ground truth: the placed alpha times the
            transparency of every entity in front of it.
        layer_alpha: (H, W) float32, the placed alpha before occlusion.
        layer_rgb: (H, W, 3) float32 in [0, 255], the placed foreground colours.
        box: (x0, y0, x1, y1) int pixel box of the placed alpha (exclusive end).
        depth: compositing order, 0 = drawn first (furthest back).
        attributes: "colour", "salient", "transparent" and any source labels.
        keyword, expressions: filled by the expression writer.
        phrases: one record per expression (its type, and the position or relation it uses),
            filled by the expression writer.
    """

    category: str
    name: str
    alpha: np.ndarray
    layer_alpha: np.ndarray
    layer_rgb: np.ndarray
    box: tuple[int, int, int, int]
    depth: int
    attributes: dict[str, Any]
    keyword: str = ""
    expressions: list[str] = field(default_factory=list)
    phrases: list[dict[str, Any]] = field(default_factory=list)

    @property
    def centre(self) -> tuple[float, float]:
        """Box centre (x, y) in pixels."""
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2.0, (y0 + y1) / 2.0


@dataclass
class Scene:
    """A composed image with its entities (in the order they are annotated, k = 0, 1, ...).

    Attributes:
        image: (H, W, 3) uint8 composite.
        background: (H, W, 3) uint8 background before compositing.
        relation: one of RELATIONS, or "single" for one entity.
        image_name: file stem used when writing the RefMatte layout.
    """

    image: np.ndarray
    background: np.ndarray
    entities: list[SceneEntity]
    relation: str
    image_name: str = ""
    background_name: str = ""


def is_transparent(alpha: np.ndarray) -> bool:
    """Spec rule: more than 20% of the box has alpha strictly inside (0.05, 0.95).

    Args:
        alpha: (h, w) float in [0, 1].
    """
    ys, xs = np.nonzero(alpha > 0)
    crop = alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    lo, hi = TRANSPARENT_BAND
    return float(((crop > lo) & (crop < hi)).mean()) > TRANSPARENT_FRACTION


def crop_to_alpha(rgb: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop (h, w, 3) rgb and (h, w) alpha to the box of alpha > 0."""
    ys, xs = np.nonzero(alpha > 0)
    sl = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    return rgb[sl], alpha[sl]


def composite_layers(
    background: np.ndarray, layers: Sequence[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """Blend layers back to front: I <- a * F + (1 - a) * I.

    Args:
        background: (H, W, 3) uint8.
        layers: (rgb (H, W, 3) float in [0, 255], alpha (H, W) float in [0, 1]) pairs, the
            first drawn first.

    Returns:
        (H, W, 3) uint8 composite (rounded).
    """
    out = background.astype(np.float32)
    for rgb, alpha in layers:
        a = alpha[..., None]
        out = a * rgb + (1.0 - a) * out
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def occluded_alphas(layer_alphas: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Ground truth per layer: alpha_i times prod over later layers j of (1 - alpha_j).

    Args:
        layer_alphas: (H, W) float32 alphas in drawing order (back first).

    Returns:
        One (H, W) float32 visible alpha per layer, same order.
    """
    out: list[np.ndarray] = []
    cover = np.ones_like(layer_alphas[0])
    for alpha in reversed(layer_alphas):
        out.append(alpha * cover)
        cover = cover * (1.0 - alpha)
    return out[::-1]


def fit_background(
    background: np.ndarray, canvas_hw: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """Random crop with the canvas aspect, resized to the canvas (uint8 (H, W, 3) out)."""
    if background.ndim == 2:
        background = np.repeat(background[..., None], 3, axis=2)
    bh, bw = background.shape[:2]
    h, w = canvas_hw
    scale = min(bh / h, bw / w)
    ch, cw = max(1, int(h * scale)), max(1, int(w * scale))
    y0 = int(rng.integers(0, bh - ch + 1))
    x0 = int(rng.integers(0, bw - cw + 1))
    crop = background[y0 : y0 + ch, x0 : x0 + cw, :3]
    interp = cv2.INTER_AREA if ch > h else cv2.INTER_LINEAR
    return cv2.resize(crop, (w, h), interpolation=interp)


def _resize_fg(fg: Foreground, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The foreground scaled by ``scale``: float32 rgb in [0, 255] and alpha in [0, 1]."""
    h, w = fg.alpha.shape
    nh, nw = max(2, round(h * scale)), max(2, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    rgb = cv2.resize(fg.rgb, (nw, nh), interpolation=interp).astype(np.float32)
    alpha = np.clip(cv2.resize(fg.alpha.astype(np.float32), (nw, nh), interpolation=interp), 0, 1)
    return rgb, alpha


def _paste(
    rgb: np.ndarray, alpha: np.ndarray, x0: int, y0: int, canvas_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """Put a small layer on an empty canvas; returns (H, W, 3) rgb, (H, W) alpha and its box."""
    h, w = canvas_hw
    out_rgb = np.zeros((h, w, 3), np.float32)
    out_a = np.zeros((h, w), np.float32)
    lh, lw = alpha.shape
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(h, y0 + lh), min(w, x0 + lw)
    out_rgb[ys:ye, xs:xe] = rgb[ys - y0 : ye - y0, xs - x0 : xe - x0]
    out_a[ys:ye, xs:xe] = alpha[ys - y0 : ye - y0, xs - x0 : xe - x0]
    return out_rgb, out_a, (xs, ys, xe, ye)


def _slot_layout(
    fgs: Sequence[Foreground], canvas_hw: tuple[int, int], axis: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray, int, int]]:
    """Side-by-side (axis 1, x) or stacked (axis 0, y) slots, no overlap of boxes."""
    h, w = canvas_hw
    side = (h, w)
    k = len(fgs)
    slot = side[axis] / k
    placed = []
    for i, fg in enumerate(fgs):
        fh, fw = fg.alpha.shape
        free_len, axis_len = (fw, fh) if axis == 0 else (fh, fw)  # free axis is the other one
        target = rng.uniform(*SCALE_RANGE) * side[1 - axis]
        scale = min(
            target / free_len, SLOT_FILL * slot / axis_len, 0.95 * side[1 - axis] / free_len
        )
        rgb, alpha = _resize_fg(fg, scale)
        size = alpha.shape  # (lh, lw)
        room_axis = slot - size[axis]
        start = i * slot + rng.uniform(0, max(room_axis, 0.0))
        free_start = rng.uniform(0, max(side[1 - axis] - size[1 - axis], 0))
        y0, x0 = (start, free_start) if axis == 0 else (free_start, start)
        placed.append((rgb, alpha, int(x0), int(y0)))
    return placed


def _depth_layout(
    fgs: Sequence[Foreground], canvas_hw: tuple[int, int], rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray, int, int]]:
    """Front/behind: the back entity larger and central, the front one overlapping it."""
    if len(fgs) != 2:
        raise ValueError(f"front/behind scenes have exactly 2 entities, got {len(fgs)}")
    h, w = canvas_hw
    back, front = fgs
    s_back = rng.uniform(0.6, 0.8) * min(h, w) / max(back.alpha.shape)
    b_rgb, b_a = _resize_fg(back, s_back)
    bh, bw = b_a.shape
    bx = int((w - bw) / 2 + rng.uniform(-0.1, 0.1) * w)
    by = int((h - bh) / 2 + rng.uniform(-0.1, 0.1) * h)
    bx, by = int(np.clip(bx, 0, w - bw)), int(np.clip(by, 0, h - bh))
    s_front = rng.uniform(0.4, 0.6) * min(h, w) / max(front.alpha.shape)
    f_rgb, f_a = _resize_fg(front, s_front)
    fh, fw = f_a.shape
    back_mass = float(b_a.sum())
    best, best_err = (0, 0), np.inf
    for _ in range(PLACEMENT_TRIES):
        fx = int(rng.integers(0, max(1, w - fw + 1)))
        fy = int(rng.integers(0, max(1, h - fh + 1)))
        ix = max(0, min(bx + bw, fx + fw) - max(bx, fx))
        iy = max(0, min(by + bh, fy + fh) - max(by, fy))
        cover = ix * iy / float(bw * bh)
        # visible fraction of the back alpha under the front alpha
        ox0, oy0 = max(bx, fx), max(by, fy)
        occl = f_a[oy0 - fy : oy0 - fy + iy, ox0 - fx : ox0 - fx + ix]
        under = b_a[oy0 - by : oy0 - by + iy, ox0 - bx : ox0 - bx + ix]
        visible = 1.0 - float((under * occl).sum()) / back_mass
        lo, hi = COVER_RANGE
        err = max(0.0, lo - cover) + max(0.0, cover - hi) + max(0.0, MIN_VISIBLE + 0.1 - visible)
        if err < best_err:
            best, best_err = (fx, fy), err
        if err == 0.0:
            break
    return [(b_rgb, b_a, bx, by), (f_rgb, f_a, best[0], best[1])]


def _check_inputs(n: int, relation: str, background: np.ndarray) -> None:
    """Refuse a relation with the wrong number of foregrounds, or a background not in uint8."""
    if relation == SINGLE:
        if n != 1:
            raise ValueError(f"relation 'single' takes 1 foreground, got {n}")
    elif relation in RELATIONS:
        if n not in (2, 3):
            raise ValueError(f"relation {relation!r} takes 2 or 3 foregrounds, got {n}")
    else:
        raise ValueError(f"unknown relation {relation!r}; expected one of {RELATIONS + (SINGLE,)}")
    if background.dtype != np.uint8:
        raise ValueError(f"background must be uint8, got {background.dtype}")


def _single_layout(
    fg: Foreground, canvas_hw: tuple[int, int], rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray, int, int]]:
    """One entity at a random size (half to 0.85 of the canvas side) and position."""
    scale = rng.uniform(0.5, 0.85) * min(canvas_hw) / max(fg.alpha.shape)
    rgb, alpha = _resize_fg(fg, scale)
    x0 = int(rng.integers(0, max(1, canvas_hw[1] - alpha.shape[1] + 1)))
    y0 = int(rng.integers(0, max(1, canvas_hw[0] - alpha.shape[0] + 1)))
    return [(rgb, alpha, x0, y0)]


def _layout(
    foregrounds: Sequence[Foreground],
    relation: str,
    canvas_hw: tuple[int, int],
    rng: np.random.Generator,
) -> list[tuple[np.ndarray, np.ndarray, int, int]]:
    """Resized (rgb, alpha) and top-left (x0, y0) of each foreground, in input order."""
    if relation == "left/right":
        return _slot_layout(foregrounds, canvas_hw, axis=1, rng=rng)
    if relation == "top/bottom":
        return _slot_layout(foregrounds, canvas_hw, axis=0, rng=rng)
    if relation == "front/behind":
        return _depth_layout(foregrounds, canvas_hw, rng)
    return _single_layout(foregrounds[0], canvas_hw, rng)


def _scene_entity(
    fg: Foreground,
    layer: tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]],
    alpha: np.ndarray,
    depth: int,
    rng: np.random.Generator,
    colour_namer: Any,
) -> SceneEntity:
    """The annotated entity of a placed foreground: its layer, visible alpha and attributes
    ("colour" named from the pixels unless the source gives one, "salient", "transparent")."""
    attrs = dict(fg.attributes)
    if "colour" not in attrs and colour_namer is not None:
        attrs["colour"] = colour_namer(fg.rgb, fg.alpha, rng)
    attrs.setdefault("salient", True)
    attrs.setdefault("transparent", is_transparent(fg.alpha))
    rgb, layer_alpha, box = layer
    return SceneEntity(
        category=fg.category,
        name=fg.name,
        alpha=alpha,
        layer_alpha=layer_alpha,
        layer_rgb=rgb,
        box=box,
        depth=depth,
        attributes=attrs,
    )


def compose_scene(
    foregrounds: Sequence[Foreground],
    background: np.ndarray,
    relation: str,
    rng: np.random.Generator,
    *,
    canvas_hw: tuple[int, int] | None = None,
    colour_namer: Any = None,
) -> Scene:
    """Compose 1 to 3 foregrounds in one relation; the expressions are written separately.

    Args:
        foregrounds: 2 or 3 entities ("front/behind": 2, back first; "single": 1), in slot
            order for the slot relations (left to right, top to bottom).
        background: (h, w, 3) or (h, w) uint8, cropped and resized to the canvas.
        relation: "left/right", "top/bottom", "front/behind" or "single".
        rng: the only source of randomness.
        canvas_hw: output (H, W); the background's size when None.
        colour_namer: callable (rgb, alpha, rng) -> colour name (e.g. colors.ColourNamer);
            entities keep a "colour" attribute given by their source instead.

    Returns:
        The Scene, entities in input order, with per-entity ground-truth alpha.
    """
    n = len(foregrounds)
    _check_inputs(n, relation, background)
    canvas_hw = canvas_hw or tuple(background.shape[:2])
    bg = fit_background(background, canvas_hw, rng)
    placed = _layout(foregrounds, relation, canvas_hw, rng)
    # drawing order: front/behind is back first; slot relations in a random depth order
    order = list(range(n)) if relation == "front/behind" else list(rng.permutation(n))
    layers = [_paste(*placed[i], canvas_hw=canvas_hw) for i in range(n)]
    visible = occluded_alphas([layers[i][1] for i in order])
    gt = {idx: vis for idx, vis in zip(order, visible, strict=True)}
    image = composite_layers(bg, [(layers[i][0], layers[i][1]) for i in order])
    entities = [
        _scene_entity(fg, layers[i], gt[i], order.index(i), rng, colour_namer)
        for i, fg in enumerate(foregrounds)
    ]
    return Scene(image=image, background=bg, entities=entities, relation=relation)

"""Tests of the editing layer on exact constructions: known F, B and a soft hair matte."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from synthetic import make_hair_matte

import editing
from editing.foreground import ForegroundCache


def smooth_field(rng: np.random.Generator, h: int, w: int, lo: float, hi: float) -> np.ndarray:
    """A smooth random colour field (H, W, 3) float32 with values in [lo, hi]."""
    coarse = rng.uniform(lo, hi, size=(4, 5, 3)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC), lo, hi)


@pytest.fixture
def scene(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Photo = alpha F + (1 - alpha) B with warm F, cool B, a hair matte; odd size."""
    h, w = 181, 243
    alpha = make_hair_matte(h, w, rng, strands=120)
    fg = smooth_field(rng, h, w, 0.0, 1.0) * np.array([0.9, 0.55, 0.3], np.float32) + 0.08
    bg = smooth_field(rng, h, w, 0.0, 1.0) * np.array([0.2, 0.5, 0.9], np.float32)
    new_bg = smooth_field(rng, h, w, 0.0, 1.0) * np.array([0.3, 0.9, 0.3], np.float32)
    a = alpha[..., None]
    image = np.round((a * fg + (1 - a) * bg) * 255).astype(np.uint8)
    return {
        "image": image,
        "alpha": alpha,
        "fg": fg,
        "new_bg": np.round(new_bg * 255).astype(np.uint8),
    }


def test_replace_background_matches_true_composite(scene: dict[str, np.ndarray]) -> None:
    image, alpha, new_bg = scene["image"], scene["alpha"], scene["new_bg"]
    cache = ForegroundCache()
    out = editing.replace_background(image, alpha, new_bg, cache=cache).astype(np.float32)
    a = alpha[..., None]
    truth = a * scene["fg"] * 255 + (1 - a) * new_bg
    raw = a * image + (1 - a) * new_bg  # blending the photo's own pixels
    soft = (alpha > 0.05) & (alpha < 0.95)
    assert soft.mean() > 0.05  # the matte really has a wide transition region
    err_est = np.abs(out - truth)[soft].mean()
    err_raw = np.abs(raw - truth)[soft].mean()
    assert err_raw > 8.0  # the old background visibly leaks into the raw blend
    assert err_est < 0.5 * err_raw, (err_est, err_raw)
    assert err_est < 6.0


def test_solid_pixels_keep_foreground_and_take_background(scene: dict[str, np.ndarray]) -> None:
    image, alpha = scene["image"], scene["alpha"].copy()
    alpha[:20] = 0.0
    alpha[90:100, 100:140] = 1.0
    cache = ForegroundCache()
    out = editing.replace_background(image, alpha, scene["new_bg"], cache=cache)
    np.testing.assert_array_equal(out[:20], scene["new_bg"][:20])
    np.testing.assert_array_equal(out[90:100, 100:140], image[90:100, 100:140])
    filled = editing.fill_color(image, alpha, "#ff8000", cache=cache)
    assert (filled[:20] == np.array([255, 128, 0], np.uint8)).all()
    np.testing.assert_array_equal(filled[90:100, 100:140], image[90:100, 100:140])
    assert cache.misses == 1 and cache.hits == 1


def test_highlight_strength_zero_changes_nothing(scene: dict[str, np.ndarray]) -> None:
    image, alpha = scene["image"], scene["alpha"]
    for effect in editing.EFFECTS:
        out = editing.highlight(image, alpha, effect=effect, strength=0.0)
        np.testing.assert_array_equal(out, image)
    # A tiny strength stays within a level or two of the photo: no jump at zero.
    out = editing.highlight(image, alpha, effect="dim", strength=1e-3, cache=ForegroundCache())
    assert np.abs(out.astype(int) - image).max() <= 2


def test_highlight_dims_only_the_background(scene: dict[str, np.ndarray]) -> None:
    image, alpha = scene["image"], scene["alpha"]
    out = editing.highlight(image, alpha, effect="dim", strength=0.5, cache=ForegroundCache())
    inside, outside = alpha >= 1.0, alpha <= 0.0
    np.testing.assert_array_equal(out[inside], image[inside])
    expected = image[outside].astype(np.float32) * 0.5
    assert np.abs(out[outside] - expected).max() <= 1.0
    # Soft pixels sit between the photo and the fully dimmed value.
    soft = (alpha > 0.2) & (alpha < 0.8)
    o, i = out[soft].astype(int).sum(-1), image[soft].astype(int).sum(-1)
    assert (o <= i + 3).all() and (o.mean() > 0.5 * i.mean())


@pytest.mark.parametrize("effect", ["desaturate", "tint", "blur", "dim+blur", ["blur", "tint"]])
def test_highlight_effects_keep_object_and_change_rest(
    scene: dict[str, np.ndarray], effect: str | list[str]
) -> None:
    # Fine texture on the photo, so that a blur visibly changes it.
    rng = np.random.default_rng(1)
    noise = rng.integers(-40, 41, size=scene["image"].shape)
    image, alpha = np.clip(scene["image"] + noise, 0, 255).astype(np.uint8), scene["alpha"]
    out = editing.highlight(image, alpha, effect=effect, strength=0.8, tint_color=(0, 0, 255))
    assert out.dtype == np.uint8 and out.shape == image.shape
    inside, outside = alpha >= 1.0, alpha <= 0.0
    np.testing.assert_array_equal(out[inside], image[inside])
    assert np.abs(out[outside].astype(int) - image[outside]).mean() > 2.0


def test_desaturate_makes_gray_and_tint_moves_to_colour(scene: dict[str, np.ndarray]) -> None:
    image, alpha = scene["image"], scene["alpha"]
    gray = editing.highlight(image, alpha, effect="desaturate", strength=1.0)
    outside = alpha <= 0.0
    spread = gray[outside].max(-1).astype(int) - gray[outside].min(-1)
    assert spread.max() <= 2
    tinted = editing.highlight(image, alpha, effect="tint", strength=1.0, tint_color="red")
    assert (tinted[outside] == np.array([255, 0, 0], np.uint8)).all()


def test_outline_and_glow_are_drawn_around_the_object() -> None:
    h, w = 120, 160
    yy, xx = np.mgrid[:h, :w]
    alpha = np.clip(30.5 - np.hypot(yy - 60, xx - 80), 0, 1).astype(np.float32)  # disc r=30
    image = np.full((h, w, 3), 100, np.uint8)
    out = editing.highlight(
        image, alpha, strength=0.0, outline="#ff0000", outline_width=4, cache=ForegroundCache()
    )
    ring = out[60, 80 + 31]  # just outside the disc edge
    assert tuple(ring) == (255, 0, 0)
    assert tuple(out[60, 80 + 40]) == (100, 100, 100)  # far outside: untouched
    assert tuple(out[60, 80]) == (100, 100, 100)  # the object covers the ring's inner side
    glow = editing.highlight(image, alpha, strength=0.0, glow="white", glow_radius=6)
    near, far = glow[60, 80 + 33].astype(int), glow[60, 80 + 55].astype(int)
    assert near.min() > 150 and far.max() <= 102


def test_blurred_background_keeps_object_colour_out() -> None:
    h, w = 100, 140
    yy, xx = np.mgrid[:h, :w]
    alpha = np.clip(20.5 - np.hypot(yy - 50, xx - 70), 0, 1).astype(np.float32)
    a = alpha[..., None]
    red, blue = np.array([230, 20, 20]), np.array([20, 40, 220])
    image = np.round(a * red + (1 - a) * blue).astype(np.uint8)  # red disc on blue
    out = editing.replace_background(image, alpha, "blur", blur=0.05, cache=ForegroundCache())
    ring = (alpha == 0) & (np.hypot(yy - 50, xx - 70) < 26)
    assert np.abs(out[ring].astype(int) - (20, 40, 220)).max() <= 3


def test_light_wrap_only_touches_object_edges(scene: dict[str, np.ndarray]) -> None:
    image, alpha, new_bg = scene["image"], scene["alpha"], scene["new_bg"]
    cache = ForegroundCache()
    plain = editing.replace_background(image, alpha, new_bg, cache=cache)
    wrapped = editing.replace_background(image, alpha, new_bg, light_wrap=0.7, cache=cache)
    outside = alpha <= 0.0
    np.testing.assert_array_equal(plain[outside], wrapped[outside])
    assert np.abs(plain.astype(int) - wrapped)[alpha > 0.3].mean() > 1.0


def test_cutout_is_rgba_with_the_matte(scene: dict[str, np.ndarray]) -> None:
    image, alpha = scene["image"], scene["alpha"]
    rgba = editing.cutout(image, alpha)
    assert rgba.dtype == np.uint8 and rgba.shape == (*alpha.shape, 4)
    np.testing.assert_array_equal(rgba[..., 3], np.round(alpha * 255).astype(np.uint8))
    inside = alpha >= 1.0
    np.testing.assert_array_equal(rgba[..., :3][inside], image[inside])
    # Premultiplied cutout colour is closer to the true alpha F than the photo is.
    a, soft = alpha[..., None], (alpha > 0.05) & (alpha < 0.95)
    truth = a * scene["fg"] * 255
    err_est = np.abs(a * rgba[..., :3] - truth)[soft].mean()
    err_raw = np.abs(a * image - truth)[soft].mean()
    assert err_est < 0.5 * err_raw


def test_matte_edit_estimates_once(scene: dict[str, np.ndarray]) -> None:
    edit = editing.MatteEdit(scene["image"], scene["alpha"])
    first = edit.foreground
    a = edit.fill_color("black")
    b = edit.replace_background("white", light_wrap=0.2)
    c = edit.highlight(effect="dim", strength=0.3, outline="yellow")
    assert edit.foreground is first
    for out in (a, b, c):
        assert out.shape == scene["image"].shape and out.dtype == np.uint8
    np.testing.assert_array_equal(edit.cutout(), editing.cutout(scene["image"], scene["alpha"]))


def test_cache_hits_misses_and_eviction(scene: dict[str, np.ndarray]) -> None:
    image, alpha = scene["image"], scene["alpha"]
    cache = ForegroundCache(maxsize=2)
    editing.fill_color(image, alpha, "red", cache=cache)
    editing.highlight(image, alpha, strength=0.4, cache=cache)
    assert (cache.misses, cache.hits) == (1, 1)
    other = alpha.copy()
    other[0, 0] = 0.5  # one pixel of the matte changed: a new estimate
    editing.cutout(image, other, cache=cache)
    editing.cutout(image, (alpha * 255).round().astype(np.uint8), cache=cache)
    assert cache.misses == 3 and len(cache) == 2
    editing.cutout(image, alpha, cache=cache)  # the first entry was evicted
    assert cache.misses == 4

"""Tests of the editing layer's input contracts, colour parsing, layouts and PNG export."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from PIL import Image

import editing
from editing.foreground import ForegroundCache
from editing.validate import as_alpha, as_rgb


@pytest.fixture
def pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A noisy odd-sized photo and a radial soft matte."""
    h, w = 37, 53
    image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:h, :w]
    alpha = np.clip((16.0 - np.hypot(yy - 18, xx - 26)) / 6.0, 0, 1).astype(np.float32)
    return image, alpha


def test_image_forms_are_coerced_to_rgb_uint8(pair: tuple[np.ndarray, np.ndarray]) -> None:
    image, _ = pair
    gray = image[..., 0]
    for form in (gray, gray[..., None]):
        out = as_rgb(form)
        assert out.shape == (*gray.shape, 3) and out.dtype == np.uint8
        np.testing.assert_array_equal(out[..., 2], gray)
    rgba = np.dstack([image, np.full(gray.shape, 7, np.uint8)])
    np.testing.assert_array_equal(as_rgb(rgba), image)
    np.testing.assert_array_equal(as_rgb(image.astype(np.uint16) * 257), image)
    np.testing.assert_array_equal(as_rgb(image / 255.0), image)
    np.testing.assert_array_equal(as_rgb((image / 255.0).astype(np.float32)), image)
    np.testing.assert_array_equal(as_rgb(Image.fromarray(image)), image)
    assert as_rgb(image) is image  # no copy for the native form


def test_alpha_forms_are_coerced_to_float32(pair: tuple[np.ndarray, np.ndarray]) -> None:
    _, alpha = pair
    a8 = np.round(alpha * 255).astype(np.uint8)
    for form in (a8, a8[..., None], Image.fromarray(a8)):
        out = as_alpha(form)
        assert out.dtype == np.float32 and out.shape == alpha.shape
        assert np.abs(out - alpha).max() <= 0.5 / 255 + 1e-6
    np.testing.assert_array_equal(as_alpha(alpha.astype(np.float64)), alpha)
    assert as_alpha(np.ones((2, 3), bool)).min() == 1.0
    np.testing.assert_allclose(as_alpha(alpha * (1 + 5e-4)), np.clip(alpha * (1 + 5e-4), 0, 1))


@pytest.mark.parametrize(
    "form",
    [
        lambda im: im[..., 0],
        lambda im: im[..., :1],
        lambda im: np.dstack([im, np.full(im.shape[:2], 255, np.uint8)]),
        lambda im: im.astype(np.uint16) * 257,
        lambda im: im.astype(np.float32) / 255.0,
    ],
    ids=["HxW", "HxWx1", "HxWx4", "uint16", "float"],
)
def test_every_edit_accepts_every_image_form(pair: tuple[np.ndarray, np.ndarray], form) -> None:
    image, alpha = pair
    cache = ForegroundCache()
    x, a8 = form(image), np.round(alpha * 255).astype(np.uint8)[..., None]
    for out in (
        editing.highlight(x, a8, effect="blur+dim", outline="white", glow="gold", cache=cache),
        editing.replace_background(x, a8, image[::-1], light_wrap=0.3, cache=cache),
        editing.replace_background(x, a8, "blur", cache=cache),
        editing.fill_color(x, a8, (0, 255, 0), cache=cache),
    ):
        assert out.dtype == np.uint8 and out.shape == (*alpha.shape, 3)
    rgba = editing.cutout(x, a8, cache=cache)
    assert rgba.dtype == np.uint8 and rgba.shape == (*alpha.shape, 4)
    assert cache.misses == 1


@pytest.mark.parametrize(
    ("image", "alpha", "error", "match"),
    [
        (np.zeros((10, 12, 3), np.uint8), np.zeros((10, 13), np.float32), ValueError, "10x12"),
        (np.zeros((10, 12, 3), np.int64), np.zeros((10, 12)), TypeError, "uint8"),
        (np.zeros((10, 12, 2), np.uint8), np.zeros((10, 12)), ValueError, "HxWx3"),
        (np.zeros((10, 12, 3), np.uint8), np.full((10, 12), 1.5), ValueError, "outside"),
        (np.zeros((10, 12, 3), np.uint8), np.full((10, 12), np.nan), ValueError, "NaN"),
        (np.zeros((10, 12, 3), np.uint8), np.zeros((10, 12), np.int32), TypeError, "float"),
        (np.zeros((10, 12, 3), np.uint8), np.zeros((10, 12, 3)), ValueError, "HxW or HxWx1"),
        (np.full((10, 12, 3), 2.0), np.zeros((10, 12)), ValueError, r"\[0, 1\]"),
        ([[1, 2]], np.zeros((10, 12)), TypeError, "PIL.Image"),
        (np.zeros((0, 12, 3), np.uint8), np.zeros((0, 12)), ValueError, "empty"),
    ],
)
def test_bad_inputs_say_what_is_expected(image, alpha, error, match) -> None:
    for call in (
        lambda: editing.fill_color(image, alpha, "red"),
        lambda: editing.cutout(image, alpha),
        lambda: editing.MatteEdit(image, alpha),
    ):
        with pytest.raises(error, match=match):
            call()


def test_bad_options_fail_with_the_accepted_values(pair: tuple[np.ndarray, np.ndarray]) -> None:
    image, alpha = pair
    with pytest.raises(ValueError, match="hex") as info:
        editing.fill_color(image, alpha, "greeen")
    assert "green" in str(info.value)  # a close match is suggested
    with pytest.raises(ValueError, match="dim, desaturate, blur, tint"):
        editing.highlight(image, alpha, effect="sepia")
    with pytest.raises(ValueError, match="strength"):
        editing.highlight(image, alpha, strength=1.5)
    with pytest.raises(ValueError, match="cover, contain, stretch, place"):
        editing.replace_background(image, alpha, image, fit="zoom")
    with pytest.raises(ValueError, match="CSS colour name"):
        editing.replace_background(image, alpha, "blurry")
    with pytest.raises(TypeError, match="'blur'"):
        editing.replace_background(image, alpha, 3.5)
    with pytest.raises(ValueError, match="light_wrap"):
        editing.replace_background(image, alpha, "white", light_wrap=2)
    with pytest.raises(ValueError, match="0..255"):
        editing.fill_color(image, alpha, (0, 300, 0))


def test_bad_options_fail_before_any_estimation(
    pair: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad option fails while the options are checked, before the foreground is estimated,
    through the module functions and MatteEdit alike; a highlight of strength 0 (no outline,
    no glow) gives back the image without an estimate."""
    image, alpha = pair

    def estimate(*args: object, **kwargs: object) -> None:
        raise AssertionError("estimated before the options were checked")

    monkeypatch.setattr(editing.operations, "estimate_foreground_arrays", estimate)
    monkeypatch.setattr(editing.foreground, "estimate_foreground_arrays", estimate)
    edit = editing.MatteEdit(image, alpha)
    bad = [
        ("highlight", (), {"glow_strength": 2}),
        ("highlight", (), {"outline": "red", "outline_width": -1}),
        ("replace_background", (3.5,), {}),
        ("replace_background", ("white",), {"light_wrap_radius": 0}),
        ("replace_background", ("white",), {"blur": 2}),
        ("fill_color", ("greeen",), {}),
    ]
    for name, args, kwargs in bad:
        with pytest.raises((ValueError, TypeError)):
            getattr(editing, name)(image, alpha, *args, cache=ForegroundCache(), **kwargs)
        with pytest.raises((ValueError, TypeError)):
            getattr(edit, name)(*args, **kwargs)
    np.testing.assert_array_equal(edit.highlight(strength=0.0), image)
    np.testing.assert_array_equal(editing.highlight(image, alpha, strength=0), image)


def test_matte_edit_gives_the_module_functions_results(
    pair: tuple[np.ndarray, np.ndarray],
) -> None:
    """MatteEdit's methods and the module functions run the same edits: equal, bit for bit."""
    image, alpha = pair
    edit, cache = editing.MatteEdit(image, alpha), ForegroundCache()
    calls = [
        ("highlight", (), {"effect": "blur+tint", "strength": 0.7, "glow": "gold"}),
        ("highlight", (), {"strength": 0.0, "outline": "white", "outline_width": 2}),
        ("replace_background", ("blur",), {"blur": 0.05, "light_wrap": 0.4}),
        ("replace_background", (image[::-1],), {"fit": "contain", "scale": 0.5, "fill": "red"}),
        ("fill_color", ("#0f0",), {}),
        ("cutout", (), {}),
    ]
    for name, args, kwargs in calls:
        want = getattr(editing, name)(image, alpha, *args, cache=cache, **kwargs)
        np.testing.assert_array_equal(getattr(edit, name)(*args, **kwargs), want, name)


def test_each_edit_takes_its_module_functions_options() -> None:
    """The module functions hand their options on by position: same names, order, defaults."""
    ops = editing.operations
    for public, build in (
        (ops.highlight, ops._highlight),
        (ops.replace_background, ops._replace_background),
        (ops.fill_color, ops._fill_color),
    ):
        given = list(inspect.signature(public).parameters.values())[2:]
        taken = list(inspect.signature(build).parameters.values())
        assert [(p.name, p.default) for p in given if p.name != "cache"] == [
            (p.name, p.default) for p in taken
        ], public.__name__


def test_parse_color_forms() -> None:
    assert editing.parse_color("#00ff00") == (0, 255, 0)
    assert editing.parse_color("#0f0") == (0, 255, 0)
    assert editing.parse_color("00FF00") == (0, 255, 0)
    assert editing.parse_color("Light Green") == (144, 238, 144)
    assert editing.parse_color("rebeccapurple") == (102, 51, 153)
    assert editing.parse_color((12, 34, 56)) == (12, 34, 56)
    assert editing.parse_color((0.0, 0.5, 1.0)) == (0, 128, 255)
    assert editing.parse_color(np.array([1, 2, 3])) == (1, 2, 3)
    with pytest.raises(TypeError):
        editing.parse_color((1, 2))


def test_parse_color_functional_and_hex_forms() -> None:
    assert editing.parse_color("rgb(0, 255, 0)") == (0, 255, 0)
    assert editing.parse_color(" RGB( 12 ,34, 56 ) ") == (12, 34, 56)
    assert editing.parse_color("rgb(0%, 100%, 50%)") == (0, 255, 128)  # 127.5 rounds up
    assert editing.parse_color("rgba(1, 2, 3, 0)") == (1, 2, 3)  # the alpha is ignored
    assert editing.parse_color("hsl(120, 100%, 50%)") == (0, 255, 0)
    assert editing.parse_color("hsl(360, 100%, 50%)") == (255, 0, 0)
    assert editing.parse_color("hsv(240, 100%, 100%)") == (0, 0, 255)
    assert editing.parse_color("hsb(0, 0%, 100%)") == (255, 255, 255)
    assert editing.parse_color("#12345678") == (0x12, 0x34, 0x56)  # an alpha pair is ignored
    assert editing.parse_color("rgb(255,255,255)") == editing.parse_color("white")


@pytest.mark.parametrize(
    ("color", "match"),
    [
        ("rgb(999, 0, 0)", r"'999' is out of range; rgb\(R, G, B\) takes three integers 0-255"),
        ("rgb(0, 256, 0)", "'256' is out of range"),
        ("rgb(-1, 0, 0)", "'-1' is out of range"),
        ("rgb(150%, 0%, 0%)", "'150%' is out of range.*percentages 0%-100%"),
        ("rgb(1.5, 0, 0)", "'1.5' is not a whole number"),
        ("rgb(50.5%, 0%, 0%)", "'50.5%' is not a whole number"),
        ("rgb(10%, 0, 0)", "mixes percentages and plain numbers"),
        ("rgb(0, 0)", r"malformed; rgb\(R, G, B\) takes three"),
        ("rgb(a, b, c)", "malformed"),
        ("rgba(0, 0, 0, 300)", r"'300' is out of range; rgba\(R, G, B, A\) takes four"),
        ("rgba(0, 0, 0)", "malformed"),
        ("hsl(400, 50%, 50%)", "'400' is out of range; hsl.*hue of 0-360 degrees"),
        ("hsl(120, 150%, 50%)", "'150%' is out of range.*percentages 0%-100%"),
        ("hsl(120, 50, 50)", "malformed"),
        ("hsv(120, 50%, 101%)", "'101%' is out of range"),
        ((0, 256, 0), "0..255"),
        ((-1, 0, 0), "0..255"),
        ((0.5, 1.5, 0.0), r"\[0, 1\]"),
        ((float("nan"), 0.5, 0.5), r"\[0, 1\]"),
    ],
)
def test_parse_color_rejects_components_out_of_range(color, match) -> None:
    with pytest.raises(ValueError, match=match) as info:
        editing.parse_color(color)
    assert "uint8" not in str(info.value) and "Python integer" not in str(info.value)


def test_out_of_range_colours_fail_clearly_in_every_edit(pair) -> None:
    image, alpha = pair
    for call in (
        lambda: editing.fill_color(image, alpha, "rgb(999,0,0)"),
        lambda: editing.replace_background(image, alpha, "rgb(0, 300, 0)"),
        lambda: editing.highlight(image, alpha, outline="hsl(10, 200%, 50%)"),
    ):
        with pytest.raises(ValueError, match="out of range"):
            call()


def test_a_long_bad_colour_is_not_echoed_whole() -> None:
    for color in ("x" * 100_000, "rgb(" + "9" * 100_000 + ", 0, 0)"):
        with pytest.raises(ValueError) as info:
            editing.parse_color(color)
        assert len(str(info.value)) < 600


def test_fit_background_layouts() -> None:
    bg = np.zeros((20, 40, 3), np.uint8)
    bg[:, :20] = (255, 0, 0)
    bg[:, 20:] = (0, 0, 255)
    cover = editing.fit_background(bg, 30, 30)  # scaled to 30x60, the middle 30 columns kept
    assert cover.shape == (30, 30, 3)
    assert tuple(cover[15, 2]) == (255, 0, 0) and tuple(cover[15, 27]) == (0, 0, 255)
    left = editing.fit_background(bg, 30, 30, position=(0.0, 0.5))  # the left part kept
    assert (left[:, :25] == (255, 0, 0)).all()
    contain = editing.fit_background(bg, 30, 30, fit="contain", fill=(0, 255, 0))
    assert tuple(contain[1, 15]) == (0, 255, 0) and tuple(contain[15, 2]) == (255, 0, 0)
    placed = editing.fit_background(bg, 50, 60, fit="place", position=(0, 0), fill=(9, 9, 9))
    assert tuple(placed[10, 5]) == (255, 0, 0) and tuple(placed[30, 50]) == (9, 9, 9)
    stretch = editing.fit_background(bg, 10, 100, fit="stretch")
    assert tuple(stretch[5, 45]) == (255, 0, 0) and tuple(stretch[5, 55]) == (0, 0, 255)


def test_matte_png_round_trips(tmp_path, pair: tuple[np.ndarray, np.ndarray]) -> None:
    _, alpha = pair
    for bits, step in ((16, 1 / 65535), (8, 1 / 255)):
        path = tmp_path / f"matte{bits}.png"
        editing.save_matte(alpha, path, bits=bits)
        raw = np.asarray(Image.open(path))
        assert raw.dtype == (np.uint8 if bits == 8 else np.uint16) or raw.dtype == np.int32
        back = editing.load_matte(path)
        assert back.dtype == np.float32 and back.shape == alpha.shape
        assert np.abs(back - alpha).max() <= step / 2 + 1e-7
        data = editing.encode_matte(alpha, bits=bits)
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="8 or 16"):
        editing.encode_matte(alpha, bits=12)


def test_cutout_png_keeps_rgba(pair: tuple[np.ndarray, np.ndarray]) -> None:
    image, alpha = pair
    rgba = editing.cutout(image, alpha, cache=ForegroundCache())
    back = editing.decode_png(editing.encode_png(rgba))
    np.testing.assert_array_equal(back, rgba)
    pil = Image.open(__import__("io").BytesIO(editing.encode_png(rgba)))
    assert pil.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(pil), rgba)
    with pytest.raises(TypeError, match="uint8 or uint16"):
        editing.encode_png(rgba.astype(np.float32))

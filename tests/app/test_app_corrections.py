"""The app's corrections without a browser: clicks, a box, a candidate picked, matting from a box
alone, the downloads at the photo's own size, and what the status line tells the user."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import gradio as gr
import numpy as np
import pytest
from PIL import Image

import editing
from clipmat.predictors.corrections import PROMPT_ONLY
from clipmat.predictors.results import MattingResult
from clipmat_app import fullsize
from clipmat_app.callbacks import Callbacks
from clipmat_app.clicks import ClickCallbacks, _position
from clipmat_app.corrections import (
    BOX_HINT,
    CANDIDATE_HINT,
    MAX_POINTS,
    POINTS_HINT,
    Corrections,
    box_problem,
    candidate_problem,
    points_problem,
)
from clipmat_app.mattes import Matte
from clipmat_app.pool import RANDOM_TINY, PredictorPool
from clipmat_app.service import MatteService
from clipmat_app.texts import status_text

ROOT = Path(__file__).resolve().parents[2]
SHAPES = ROOT / "examples" / "miniworld_shapes.jpg"
CAT = ROOT / "examples" / "photo_cat.jpg"


def _mask(k: int) -> np.ndarray:
    return np.asarray(Image.open(ROOT / "examples" / f"miniworld_shapes_{k}.png")) > 128


def _inside(mask: np.ndarray) -> tuple[float, float]:
    """The pixel of ``mask`` farthest from its border, as (x, y)."""
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(np.argmax(dist), dist.shape)
    return float(x), float(y)


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    pool, name = PredictorPool.from_option("mini-world", device="cpu")
    service = MatteService(pool, workdir=tmp_path_factory.mktemp("mini"), cache_size=16)
    yield service, name
    service.close()


@pytest.fixture
def tiny_service(tiny_predictor, tmp_path):
    pool = PredictorPool({RANDOM_TINY: tiny_predictor}, device="cpu")
    service = MatteService(pool, workdir=tmp_path / "work", max_side=128)
    yield service
    service.close()


def test_prompt_values_are_checked_with_what_is_accepted():
    for good in (None, [], "", [[1, 2, True]], [[1.5, 2, 0]], "[[3, 4, false]]"):
        assert points_problem(good) is None, good
    bad_points = [
        [[1, 2]],
        [[1, 2, "yes"]],
        [[-1, 2, True]],
        [[float("nan"), 2, True]],
        [[True, 2, True]],
        "[[1, 2",
        {"x": 1},
        [[0, 0, True]] * (MAX_POINTS + 1),
    ]
    for bad in bad_points:
        assert points_problem(bad) == POINTS_HINT, bad
    for good in (None, [], "", [0, 0, 10, 10], "[1, 2, 3.5, 4]"):
        assert box_problem(good) is None, good
    for bad in ([1, 2, 3], [5, 0, 5, 10], [0, 10, 5, 2], [0, 0, "9", 9], [-1, 0, 4, 4], 7):
        assert box_problem(bad) == BOX_HINT, bad
    for good in (None, 0, 3, 5.0):
        assert candidate_problem(good) is None
    for bad in (-1, 1.5, 64, "2", True):
        assert candidate_problem(bad) == CANDIDATE_HINT, bad
    corrections = Corrections.parse("[[10, 20, 1], [30, 40, false]]", [5, 6, 300, 80], 2.0)
    assert corrections == Corrections(
        ((10.0, 20.0, True), (30.0, 40.0, False)), (5.0, 6.0, 300.0, 80.0), 2
    )
    assert corrections.describe() == "2 clicks (1 remove), a box"
    assert Corrections.parse(**{**corrections.as_json(), "candidate": 2}) == corrections
    fitted = corrections.fitted(200, 100)
    assert fitted.box == (5.0, 6.0, 200.0, 80.0)  # clipped to the photo
    assert fitted.scaled(0.5, 0.25).points[0] == (5.0, 5.0, True)
    with pytest.raises(ValueError, match=r"\(30, 40\) is outside the 25x100 photo"):
        corrections.fitted(25, 100)
    with pytest.raises(ValueError, match="box .* is outside the 4x4 photo"):
        Corrections(box=(5.0, 0.0, 9.0, 3.0)).fitted(4, 4)
    assert Corrections(points=((1, 1, False),)).locate is False
    assert Corrections(points=((1, 1, True),)).locate and Corrections(box=(0, 0, 2, 2)).locate


def test_clicks_pick_add_and_remove_objects_on_a_mini_world_scene(mini):
    """On "the green shape": a positive click on the red ball picks it, a second one on the
    star adds the star, a negative click on the star takes it out again; the photo's features
    are computed once."""
    service, name = mini
    ball, star = _mask(0), _mask(1)
    first = service.matte(str(SHAPES), "the green shape", name, refine=True)
    alpha = first.result.alpha
    assert alpha[star].mean() > 0.6 and alpha[ball].mean() < 0.1
    encodes = service.pool.get(name).stats["image_encodes"]
    on_ball, on_star = (*_inside(ball), True), (*_inside(star), True)
    start = time.perf_counter()
    picked = service.matte(
        str(SHAPES),
        "the green shape",
        name,
        refine=True,
        corrections=Corrections(points=(on_ball,)),
        downloads=False,
    )
    seconds = time.perf_counter() - start
    print(f"click re-matte with the photo's features cached: {seconds:.2f} s")
    assert picked.result.image_cached and service.pool.get(name).stats["image_encodes"] == encodes
    assert picked.result.alpha[ball].mean() > 0.6 and picked.result.alpha[star].mean() < 0.1
    both = Corrections(points=(on_ball, on_star))
    added = service.matte(str(SHAPES), "the green shape", name, refine=True, corrections=both)
    assert added.result.alpha[ball].mean() > 0.6 and added.result.alpha[star].mean() > 0.6
    removed = service.matte(
        str(SHAPES),
        "the green shape",
        name,
        refine=True,
        corrections=Corrections(points=(*both.points, (*on_star[:2], False))),
    )
    assert removed.result.alpha[star].mean() < 0.1 and removed.result.alpha[ball].mean() > 0.6
    assert "3 clicks (1 remove)" in status_text(removed)
    overlay = np.asarray(Image.open(removed.folder / "overlay.png"))
    x, y = (round(v) for v in _inside(ball))
    assert tuple(overlay[y, x]) != tuple(first.photo[y, x])  # the click's marker is drawn


def test_a_box_alone_mattes_with_no_phrase(mini):
    service, name = mini
    ball = _mask(0)
    ys, xs = np.nonzero(ball)
    box = Corrections(box=(xs.min() - 6.0, ys.min() - 6.0, xs.max() + 7.0, ys.max() + 7.0))
    encodes = service.pool.get(name).stats["image_encodes"]
    shown = []
    progress = lambda share, desc="": shown.append(desc)  # noqa: E731
    matte = service.matte(str(SHAPES), "  ", name, refine=True, corrections=box, progress=progress)
    assert matte.result.predictor == PROMPT_ONLY and matte.result.text == ""
    assert "Matting the box" in shown
    assert service.pool.get(name).stats["image_encodes"] == encodes  # no model ran
    alpha = matte.result.alpha
    assert alpha[ball].mean() > 0.8 and alpha[~ball].mean() < 0.02
    status = status_text(matte)
    assert status.startswith("**Matted from the box alone** (no phrase, no model")
    shown.clear()
    on_ball = (*_inside(ball), True)
    clicked = service.matte(
        str(SHAPES), "", name, corrections=Corrections(points=(on_ball,)), progress=progress
    )
    assert "Matting the clicks" in shown and "Matting the box" not in shown
    assert clicked.result.alpha[ball].mean() > 0.8
    with pytest.raises(ValueError, match="phrase is empty.*draw a box"):
        service.matte(str(SHAPES), "", name)
    with pytest.raises(ValueError, match="phrase is empty"):
        service.matte(str(SHAPES), "", name, corrections=Corrections(points=((10, 10, False),)))


def test_a_candidate_is_picked_and_listed_in_the_photo_s_pixels(mini):
    service, name = mini
    auto = service.matte(str(CAT), "the cat", name)
    assert len(auto.candidates) >= 2
    assert [r["index"] for r in auto.candidates] == list(range(len(auto.candidates)))
    assert [r["box"] for r in auto.candidates] == [list(c.box) for c in auto.result.candidates]
    picked = service.matte(str(CAT), "the cat", name, corrections=Corrections(candidate=1))
    assert [r["chosen"] for r in picked.candidates] == [i == 1 for i in range(len(auto.candidates))]
    assert "candidate #1 picked" in status_text(picked)
    with pytest.raises(ValueError, match="out of range"):
        service.matte(str(CAT), "the cat", name, corrections=Corrections(candidate=40))
    strip = picked.strip()
    assert len(strip) == min(8, len(auto.candidates))
    assert strip[1][1].startswith("#1 · ") and strip[1][1].endswith(" · in matte")
    assert not strip[0][1].endswith("in matte")
    assert all(Path(path).is_file() for path, _ in strip)


def test_downloads_are_at_the_photo_s_own_size(tiny_service):
    """The app mattes at most max_side; the cutout and 16-bit matte are at the photo's own
    size: the matte upsampled along the photo's edges, the foreground estimated at full size."""
    service = tiny_service
    original = np.asarray(Image.open(CAT).convert("RGB"))  # 384x255, matted at 128x85
    matte = service.matte(str(CAT), "the cat", RANDOM_TINY, downloads=False)
    assert matte.photo.shape == (85, 128, 3) and not matte.has_downloads
    assert "downloads are at its own size, 384x255" in status_text(matte)
    assert service.downloads(matte.key, np.zeros((30, 40, 3), np.uint8)) is None  # another photo
    assert service.downloads(matte.key, str(CAT)) is matte and matte.has_downloads
    alpha16 = editing.matte_to_bits(editing.load_matte(matte.folder / "matte16.png"), 16)
    np.testing.assert_array_equal(alpha16, fullsize.upsample_matte(matte.result.alpha, original))
    cutout = np.asarray(Image.open(matte.folder / "cutout.png"))
    assert cutout.shape == (255, 384, 4)
    want = editing.cutout(original, alpha16.astype(np.float32) / 65535)
    np.testing.assert_array_equal(cutout, want)
    assert np.asarray(Image.open(matte.folder / "overlay.png")).shape == (85, 128, 3)


def test_strips_give_the_whole_frame_s_foreground(monkeypatch, rng):
    """The full-size cutout is estimated in strips of rows; its tiles and their context are the
    whole frame's, so it equals a whole-frame estimate."""
    monkeypatch.setattr(fullsize, "STRIP_TILES", 1)  # strips of 256 rows
    height, width = 700, 300
    photo = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 2)
    alpha = np.zeros((height, width), np.float32)
    cv2.ellipse(alpha, (150, 350), (110, 300), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 8)
    alpha16 = editing.matte_to_bits(alpha, 16)
    bgra = fullsize.cutout_bgra(photo, alpha16)
    want = editing.cutout(photo, alpha16.astype(np.float32) / 65535)
    np.testing.assert_array_equal(bgra[..., [2, 1, 0, 3]], want)


def test_the_status_line_says_how_far_to_trust_the_matte(tiny_service):
    photo = np.zeros((40, 60, 3), np.uint8)
    result = MattingResult(
        np.zeros((40, 60), np.float32),
        "the cat",
        "keyword",
        0.9,
        np.zeros((40, 60), np.uint8),
        "mini-world",
    )
    matte = Matte("k", photo, result, editing.MatteEdit(photo, result.alpha), [], Path("."))
    assert "Unsure" not in status_text(matte) and "Outside" not in status_text(matte)
    result.out_of_domain = True
    result.notes.append("this photo looks unlike the <synthetic> scenes; draw a box")
    status = status_text(matte)
    assert status.startswith("⚠️ **Outside this model's world** · **mini-world** matted")
    assert "this photo looks unlike the \\<synthetic\\> scenes; draw a box" in status
    result.out_of_domain, result.confidence = False, 0.2
    assert status_text(matte).startswith("⚠️ **Unsure** · ")


def test_a_click_on_the_overlay_lands_on_the_photo_s_own_pixels(tiny_service):
    last = {"key": None, "size": [384, 255], "shown": [128, 85]}
    assert _position(SimpleNamespace(index=[64, 42]), last) == (192, 126)
    assert _position(SimpleNamespace(index=[999, -5]), last) == (383, 0)  # kept on the photo
    for bad in (None, [1], ["a", "b"], "12"):
        with pytest.raises(gr.Error, match="click on the photo"):
            _position(SimpleNamespace(index=bad), last)
    clicks = ClickCallbacks(Callbacks(tiny_service.pool, tiny_service))
    view, state = clicks.preview(str(CAT))
    assert state == {"key": None, "size": [384, 255], "shown": [128, 85]}
    args = (str(CAT), "", RANDOM_TINY, False, None, None, None, "box", None, state)
    out = clicks.click(*args, SimpleNamespace(index=[10, 10]))
    assert out[2].startswith("Box: first corner at (30, 30)") and out[-1] == [30, 30]
    args = (*args[:8], out[-1], state)
    out = clicks.click(*args, SimpleNamespace(index=[100, 70]))
    assert out[2].startswith("**Matted from the box alone**")
    assert out[8] == [30, 30, 301, 211]
    assert out[-1] is None and out[3] is None  # the downloads follow in their own event

"""Clicks and a box: choosing among candidates, weight-free mattes from a box or clicks, and
CLIPMat's candidates from its semantic map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipmat import interactive, metrics
from clipmat.model.clipmat import CLIPMatOutput
from clipmat.predictors import corrections
from clipmat.predictors.clipmat import CANDIDATE_LEVEL, semantic_candidates
from clipmat.predictors.corrections import PROMPT_ONLY


def _disk(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _two_discs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured grey photo with an orange disc whose edge fades over 6 pixels (left) and a
    hard blue disc (right)."""
    h, w = 120, 200
    photo = rng.normal(120, 12, (h, w, 3)).clip(0, 255)
    radius = np.hypot(*(np.mgrid[:h, :w] - np.array([60, 55])[:, None, None]))
    left = np.clip((30 - radius) / 6, 0, 1)
    right = _disk(h, w, 60, 150, 25)
    photo = photo * (1 - left[..., None]) + np.array([235, 120, 30]) * left[..., None]
    photo[right] = (40, 70, 220)
    return photo.astype(np.uint8), left.astype(np.float32), right


def test_choose_candidates_by_box_and_clicks():
    size = (100, 100)
    a = np.zeros((10, 10), bool)
    a[1:4, 1:4] = True  # top left
    b = np.zeros((10, 10), bool)
    b[6:9, 6:9] = True  # bottom right
    masks = [a, b]
    assert corrections.choose_candidates(masks, {0}, size) == ({0}, [])
    assert corrections.choose_candidates(masks, {0}, size, box=(55, 55, 100, 100)) == ({1}, [])
    # a positive click picks what is under it instead of the predictor's choice
    chosen, stray = corrections.choose_candidates(
        masks, {0}, size, points=[(75, 75, True), (25, 25, False), (50, 50, True)]
    )
    assert chosen == {1} and stray == [(50, 50, True)]
    both = [(75, 75, True), (25, 25, True)]
    assert corrections.choose_candidates(masks, {0}, size, points=both) == ({0, 1}, [])
    # negative clicks leave the candidates alone (they remove objects from the matte)
    assert corrections.choose_candidates(masks, {0}, size, points=[(25, 25, False)]) == ({0}, [])


def test_box_alone_mattes_a_soft_object_better_than_the_cut():
    photo, left, _ = _two_discs(np.random.default_rng(0))
    alpha, trimap = interactive.prompt_matte(photo, box=(20, 25, 92, 96))
    cut = interactive.graph_cut(photo, box=(20, 25, 92, 96)).astype(np.float32)
    assert alpha.shape == left.shape and cut.shape == left.shape  # small photo: no resize
    assert metrics.mad(alpha, left) < 0.01
    assert metrics.mad(alpha, left) < 0.7 * metrics.mad(cut, left)  # the soft edge is matted
    assert (trimap == 128).any() and alpha[:, 110:].max() == 0  # nothing outside the box


def _textured(size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(120, 12, (size, size, 3)).clip(0, 255)


def test_a_box_keeps_an_object_that_fills_it_or_touches_the_border():
    """A box over the whole photo leaves GrabCut no sure background; the rings of probable
    background inside the box let it find the object anyway (one cut from the box alone
    keeps the whole box: IoU 0.78 here)."""
    yy, xx = np.mgrid[:160, :160]
    photo = _textured(160, 3)
    fills = (yy - 80) ** 2 + (xx - 80) ** 2 <= 80**2  # touches all four borders
    photo[fills] = (200, 90, 40)
    kept = interactive.prompt_matte(photo.astype(np.uint8), box=(0, 0, 160, 160))[0] > 0.5
    assert (kept & fills).sum() / (kept | fills).sum() > 0.95
    photo = _textured(160, 4)
    cut = (yy - 150) ** 2 + (xx - 80) ** 2 <= 60**2  # cut by the bottom border
    photo[cut] = (200, 90, 40)
    kept = interactive.prompt_matte(photo.astype(np.uint8), box=(14, 84, 146, 160))[0] > 0.5
    assert (kept & cut).sum() / (kept | cut).sum() > 0.95


def _fur_disc(fuzzy: bool) -> tuple[np.ndarray, np.ndarray]:
    """A 360 px grey photo with a blue disc: hard-edged, or with a 27 px fringe where blue and
    grey grains of 3 px dither (the blue ones ever sparser outwards, as fur thins); and its
    alpha."""
    photo = _textured(360, 5)
    radius = np.hypot(*(np.mgrid[:360, :360] - 180.0)) / 2.25
    truth = np.clip((52 - radius) / 12, 0, 1) if fuzzy else (radius <= 45).astype(float)
    grains = np.random.default_rng(6).random((120, 120)).repeat(3, 0).repeat(3, 1)  # 3 px
    photo[grains < truth] = (40, 70, 220)
    return photo.astype(np.uint8), truth.astype(np.float32)


def test_the_unknown_band_is_narrow_on_a_hard_edge_and_wide_on_fur():
    """Two discs of about the same size: the fur's unknown band holds several times the
    hard edge's pixels (measured: 10494 against 2774, the hard band about 4 pixels wide)."""
    unknown = []
    for fuzzy in (False, True):
        photo, truth = _fur_disc(fuzzy)
        alpha, trimap = interactive.prompt_matte(photo, box=(45, 45, 315, 315))
        assert metrics.mad(alpha, truth) < (0.05 if fuzzy else 0.002)
        unknown.append(int((trimap == 128).sum()))
    hard, fur = unknown
    perimeter = 2 * np.pi * 45 * 2.25
    assert hard < 6 * perimeter and fur > 3 * hard, unknown  # hard: under 6 px wide


def test_a_click_alone_grows_the_object_under_it_and_a_negative_one_shrinks_it():
    photo, _, right = _two_discs(np.random.default_rng(1))
    alpha, _ = interactive.prompt_matte(photo, points=[(150, 60, True)])
    grown = alpha > 0.5
    assert (grown & right).sum() / (grown | right).sum() > 0.9
    with pytest.raises(ValueError, match="positive click"):
        interactive.prompt_matte(photo, points=[(150, 60, False)])
    both = right | _disk(120, 200, 60, 55, 28)
    trimmed, _ = interactive.correct_matte(photo, both.astype(np.float32), points=[(55, 60, False)])
    kept = trimmed > 0.5
    assert (kept & right).sum() / right.sum() > 0.9 and kept[:, :100].mean() < 0.01


def test_clicks_alone_stand_for_a_box_that_later_positive_clicks_widen():
    """The first click's own cut, widened by a fifth of its size, then a disk of 8% of the
    long side around every positive click; negative clicks move nothing; inside the photo; a
    box nearer the bottom edge than its height reaches down to it."""
    photo, _, right = _two_discs(np.random.default_rng(1))
    height, width = photo.shape[:2]
    first = interactive.click_box(photo, [(150, 60, True)])
    rows, cols = np.nonzero(right)
    span_x, span_y = cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min()
    assert first[0] < cols.min() - 0.1 * span_x and first[2] > cols.max() + 0.1 * span_x
    assert first[1] < rows.min() - 0.1 * span_y and first[1] > rows.min() - 0.3 * span_y
    assert first[3] == height  # the disc's box ends 25 pixels above the bottom edge
    assert first[0] >= 0 and first[1] >= 0 and first[2] <= width
    reach = interactive.prompts.CLICK_BOX_REACH * max(height, width)
    far = (30.0, 100.0, True)
    widened = interactive.click_box(photo, [(150, 60, True), (40, 40, False), far])
    assert widened[0] == pytest.approx(max(0.0, far[0] - reach))
    assert widened[2] == first[2] and widened[1] == first[1]  # the negative click moves nothing


def test_an_object_high_above_the_bottom_keeps_its_own_box():
    """A disc whose box is far more than its height above the bottom edge: the box stops
    under the disc, and the matte holds the disc and nothing of the red floor below it."""
    rng = np.random.default_rng(3)
    photo = rng.normal(120, 12, (300, 200, 3)).clip(0, 255).astype(np.uint8)
    disc = _disk(300, 200, 50, 100, 20)
    photo[disc] = (40, 70, 220)
    photo[200:] = (200, 40, 40)
    box = interactive.click_box(photo, [(100, 50, True)])
    assert 70 < box[3] < 90, box
    alpha, _ = interactive.prompt_matte(photo, points=[(100, 50, True)])
    assert metrics.mad(alpha, disc.astype(np.float32)) < 0.01


def test_a_sessions_later_clicks_reuse_the_first_clicks_cut(monkeypatch):
    """The first click's own cut runs once per photo and click; the box it gives is the same."""
    photo, _, _ = _two_discs(np.random.default_rng(7))
    calls = []
    votes = interactive.prompts.prompt_votes

    def counted(*args, **kwargs):
        calls.append(kwargs.get("box"))
        return votes(*args, **kwargs)

    monkeypatch.setattr(interactive.prompts, "prompt_votes", counted)
    first = interactive.click_box(photo, [(150, 60, True)])
    again = interactive.click_box(photo, [(150, 60, True), (40, 40, False)])
    other = photo.copy()
    other[0, 0] += 1  # another photo: its own cut
    interactive.click_box(other, [(150, 60, True)])
    assert calls == [None, None] and again == first


def test_predict_with_an_empty_phrase_and_a_box_needs_no_model(tiny_predictor):
    photo, left, _ = _two_discs(np.random.default_rng(2))
    predictor = tiny_predictor
    r = predictor.predict(photo, "", box=(20, 25, 92, 96))
    assert r.predictor == PROMPT_ONLY and predictor.stats["image_encodes"] == 0
    assert metrics.mad(r.alpha, left) < 0.01 and not r.unsure
    with pytest.raises(ValueError, match="phrase"):
        predictor.predict(photo, "")


def test_semantic_candidates_from_a_hand_made_map():
    fg = np.zeros((20, 30), np.float32)
    fg[2:8, 2:8] = 0.9  # in the model's matte
    fg[12:18, 20:28] = 0.4  # a region the model considered and left out
    fg[0, 29] = 0.3  # one stray cell: too small to offer
    in_matte = fg > 0.5
    cands = semantic_candidates(fg, in_matte, "the cat", (200, 300))
    assert [c.chosen for c in cands] == [True, False]
    assert cands[0].box == (20, 20, 80, 80) and cands[1].box == (200, 120, 280, 180)
    assert abs(sum(c.score for c in cands) - 1) < 1e-6 and cands[0].score > cands[1].score
    assert 0.4 > CANDIDATE_LEVEL


@pytest.fixture()
def staged(tiny_predictor):
    """The tiny CLIPMat with a semantic map set by hand: a sure region on the left (the
    model's pick) and a weaker one on the right (an alternative)."""
    predictor = tiny_predictor  # its own: the decoder is replaced on the predictor only
    photo, _, right = _two_discs(np.random.default_rng(3))

    def decode(feats, phrases, settings):
        h, w = 30, 50
        logits = torch.zeros(len(phrases), 3, h, w)
        logits[:, 0] = 2.0  # background everywhere ...
        left = torch.from_numpy(_disk(h, w, 15, 14, 7))
        logits[:, 2][:, left] = 6.0  # ... but a sure object on the left
        alt = torch.from_numpy(_disk(h, w, 15, 37, 6))
        logits[:, 0][:, alt] = 0.0
        logits[:, 2][:, alt] = -0.3  # foreground probability about 0.4 on the right
        alpha = (logits.softmax(dim=1)[:, 2:3] > 0.5).float()
        return CLIPMatOutput(alpha=alpha, semantic_logits=logits, detail=alpha)

    predictor._decode = decode
    return predictor, photo, right


def test_clipmat_candidates_clicks_and_box(staged):
    predictor, photo, right = staged
    r = predictor.predict(photo, "the thing")
    assert len(r.candidates) == 2 and [c.chosen for c in r.candidates] == [True, False]
    assert r.alpha[:, 100:].max() == 0  # the alternative is not in the model's matte
    alt = r.candidates[1]
    assert alt.box[0] > 100
    picked = predictor.predict(photo, "the thing", candidate=1)
    assert picked.alpha[:, :100].max() == 0 and (picked.alpha > 0.5)[right].mean() > 0.8
    clicked = predictor.predict(photo, "the thing", points=[(150, 60, True), (55, 60, False)])
    np.testing.assert_allclose(clicked.alpha, picked.alpha, atol=1e-6)
    boxed = predictor.predict(photo, "the thing", box=(110, 20, 199, 100))
    np.testing.assert_allclose(boxed.alpha, picked.alpha, atol=1e-6)
    not_that = predictor.predict(photo, "the thing", points=[(55, 60, False)])
    np.testing.assert_allclose(not_that.alpha, picked.alpha, atol=1e-6)  # the next best
    dropped = predictor.predict(photo, "the thing", points=[(55, 60, False), (150, 60, False)])
    assert dropped.alpha.max() == 0 and dropped.confidence == 0 and dropped.unsure


def test_a_candidate_past_the_list_is_one_error_with_or_without_clicks(staged):
    """The index is checked once, against the phrase's candidates, whatever else is given."""
    predictor, photo, _ = staged
    want = r"^candidate 5 is out of range: 2 candidates \(indices 0 to 1\) for 'the thing'$"
    with pytest.raises(ValueError, match=want):
        predictor.predict(photo, "the thing", candidate=5)
    with pytest.raises(ValueError, match=want):
        predictor.predict(photo, "the thing", candidate=5, points=[(150, 60, True)])
    with pytest.raises(ValueError, match=want):
        predictor.predict(photo, "the thing", candidate=5, box=(0, 0, 199, 119))

"""The predictor interface's checks (all before any encoding), the one candidate constructor and
index check, and the corrections driven by a stand-in predictor (a callable, no model)."""

import numpy as np
import pytest
import torch

import clipmat
from clipmat.predictors import corrections
from clipmat.predictors.results import MattingResult, PredictOptions, apply_choice, make_candidate
from clipmat.zeroshot import ZeroShotPredictor, create_backbone, dense


@pytest.fixture(scope="module")
def predictors(tiny_model) -> list[clipmat.Predictor]:
    torch.manual_seed(0)
    zeroshot = ZeroShotPredictor(create_backbone(tiny_model.cfg.clip), device="cpu")
    return [clipmat.CLIPMatPredictor(tiny_model, device="cpu"), zeroshot]


REFUSED = [
    (["the cat", "the dog"], {"candidate": 0}, "single phrase"),
    ("the cat", {"candidate": -1}, "non-negative index"),
    ("the cat", {"candidate": "1"}, "non-negative index"),
    ("the cat", {"candidate": True}, "non-negative index"),
    ("the cat", {"candidate": 1.0}, "non-negative index"),
    ("the cat", {"setting": "keywords"}, "setting"),
    ("the cat", {"points": [(1, 2)]}, "each point must be"),
    ("the cat", {"points": [(float("nan"), 2, True)]}, "finite"),
    ("the cat", {"box": (5, 0, 2, 9)}, "x0 < x1"),
    (["the cat", " "], {}, "non-empty string"),
    ([], {}, "no phrase"),
    ("", {}, "phrase"),
    ("", {"points": [(3, 4, False)]}, "positive click"),  # no phrase: no model, no encoding
]


@pytest.mark.parametrize(("text", "kwargs", "message"), REFUSED)
def test_every_option_is_refused_before_the_photo_is_encoded(predictors, text, kwargs, message):
    photo = np.random.default_rng(len(message)).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    for predictor in predictors:
        before = dict(predictor.stats)
        with pytest.raises(ValueError, match=message):
            predictor.predict(photo, text, **kwargs)
        assert predictor.stats["image_encodes"] == before["image_encodes"], type(predictor)
        assert predictor.stats["cache_hits"] == before["cache_hits"]


def test_a_numpy_index_is_a_candidate(predictors):
    photo = np.random.default_rng(7).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    for predictor in predictors:
        auto = predictor.predict(photo, "the cat")
        if auto.candidates:
            r = predictor.predict(photo, "the cat", candidate=np.int64(0))
            assert r.candidates[0].chosen


def _candidates(chosen: int = 0) -> list[clipmat.Candidate]:
    """Two candidates on a (4, 6) grid over a (40, 60) photo: the left third and the right
    third."""
    left, right = np.zeros((4, 6), bool), np.zeros((4, 6), bool)
    left[:, :2], right[:, 4:] = True, True
    return [
        make_candidate("thing", m, (40, 60), score=s, similarity=s, chosen=i == chosen)
        for i, (m, s) in enumerate([(left, 0.7), (right, 0.3)])
    ]


def test_make_candidate_reads_the_box_and_area_from_the_mask():
    mask = np.zeros((10, 20), bool)
    mask[2:5, 3:9] = True
    c = make_candidate("the cat", mask, (100, 300), score=0.4, similarity=0.8, chosen=True)
    assert c.box == (45, 20, 135, 50) and c.area == pytest.approx(18 / 200)
    assert (c.phrase, c.score, c.similarity, c.chosen, c.in_matte) == (
        "the cat",
        0.4,
        0.8,
        True,
        False,
    )
    mask[:] = False  # the candidate keeps its own copy
    assert c.mask.sum() == 18 and c.mask_at((100, 300))[20:50, 45:135].all()


def test_a_zero_shot_region_s_candidate_keeps_the_region_s_box():
    """The zero-shot regions carry their grid box; the candidate's box, read from the mask, is
    that box scaled to the photo (as the zero-shot predictor's own constructor gave it)."""
    prob = np.full((10, 12), 0.05, np.float32)
    prob[2:5, 1:4], prob[6:9, 7:11] = 0.9, 0.6
    regions = dense.find_regions(prob, prob, threshold=0.3, logit_scale=50.0)
    assert len(regions) == 2
    size = (75, 130)
    for r in regions:
        c = make_candidate("x", r.mask, size, score=r.share, similarity=r.score, chosen=False)
        x0, y0, x1, y1 = r.bbox
        sy, sx = size[0] / 10, size[1] / 12
        assert c.box == (round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy))
        assert c.area == r.area / 120


def test_the_candidate_index_is_checked_against_the_candidates():
    cands = _candidates()
    assert apply_choice(cands, None, "thing") == {0}
    assert apply_choice(cands, frozenset({1}), "thing") == {1}
    assert [c.chosen for c in cands] == [False, True]
    with pytest.raises(ValueError, match=r"^candidate 5 is out of range: 2 candidates \(indices"):
        apply_choice(cands, frozenset({5}), "thing")
    with pytest.raises(ValueError, match="out of range: no candidates for 'thing'"):
        apply_choice([], frozenset({0}), "thing")


class _Stand:
    """A predictor reduced to what the corrections see: one phrase's result under options."""

    def __init__(self) -> None:
        self.calls: list[PredictOptions] = []

    def __call__(self, options: PredictOptions) -> MattingResult:
        self.calls.append(options)
        cands = _candidates()
        chosen = apply_choice(cands, options.chosen, "thing")
        alpha = np.zeros((40, 60), np.float32)
        for i in chosen:
            alpha[cands[i].mask_at((40, 60))] = 1.0
        return MattingResult(
            alpha=alpha,
            text="thing",
            setting="keyword",
            confidence=0.9,
            trimap=np.zeros((40, 60), np.uint8),
            predictor="stand-in",
            candidates=cands,
        )


def test_corrections_need_only_a_callable():
    rgb = np.zeros((40, 60, 3), np.uint8)
    stand = _Stand()
    clicked = corrections.corrected(rgb, stand, PredictOptions(points=((55.0, 20.0, True),)))
    first, second = stand.calls
    assert first.refine is False and first.points == () and first.box is None
    assert second.chosen == frozenset({1}) and second.points == () and second.box is None
    assert clicked.alpha[:, 40:].min() == 1 and clicked.alpha[:, :40].max() == 0
    assert [c.chosen for c in clicked.candidates] == [False, True]
    stand.calls.clear()
    boxed = corrections.corrected(rgb, stand, PredictOptions(box=(38.0, 0.0, 60.0, 40.0)))
    assert stand.calls[1].chosen == frozenset({1})
    assert boxed.alpha[:, 40:].min() == 1 and boxed.alpha[:, :37].max() == 0  # box + margin

"""How far a result can be trusted: the calibrated confidence, the domain check, the bundled
mini-world model's trust file on its own scenes and on real photos."""

from __future__ import annotations

import numpy as np
import pytest

import clipmat
from clipmat.evaluation.calibrate import auroc, youden_threshold
from clipmat.imageio import load_image
from clipmat.predictors.trust import CONFIDENCE_FEATURES, Logistic, Trust, trust_path


def test_auroc_and_youden_by_hand():
    # 2 hits (0.9, 0.4), 2 misses (0.4, 0.1): pairs 0.9>0.4, 0.9>0.1, 0.4=0.4 (half), 0.4>0.1
    assert auroc(np.array([0.9, 0.4, 0.4, 0.1]), np.array([1, 1, 0, 0])) == 3.5 / 4
    scores, hits = np.array([0.9, 0.8, 0.3, 0.2]), np.array([True, True, False, False])
    assert youden_threshold(scores, hits) == 0.8


def test_logistic_fit_separates_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(-2, 1, (200, 2)), rng.normal(2, 1, (200, 2))]
    y = np.r_[np.zeros(200), np.ones(200)]
    model = Logistic.fit(x, y)
    assert auroc(model(x), y) > 0.99 and model(np.array([3.0, 3.0])) > 0.95
    trust = Trust(model, 0.7, model, 0.2, "far from home", {"n": 400})
    loaded = Trust.load(trust.save(tmp_path / "m.trust.safetensors"))
    np.testing.assert_allclose(loaded.confidence(x), model(x))
    assert (loaded.threshold, loaded.domain_threshold, loaded.domain_note) == (
        0.7,
        0.2,
        "far from home",
    )
    assert loaded.report == {"n": 400}
    assert trust_path(tmp_path / "m.safetensors") == tmp_path / "m.trust.safetensors"


def test_predictor_uses_its_trust(tiny_model):
    model = tiny_model
    features = len(CONFIDENCE_FEATURES)
    sure = Logistic(np.zeros(features), np.ones(features), np.zeros(features), 3.0)
    photo = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    plain = clipmat.CLIPMatPredictor(model, device="cpu").predict(photo, "the cat")
    trusted = clipmat.CLIPMatPredictor(model, device="cpu", trust=Trust(sure, 0.9, None)).predict(
        photo, "the cat"
    )
    np.testing.assert_array_equal(plain.alpha, trusted.alpha)
    if plain.alpha.max() > 0.5:  # a region was chosen: the logistic gives sigmoid(3)
        assert abs(trusted.confidence - 1 / (1 + np.exp(-3))) < 1e-6 and trusted.threshold == 0.9
    assert plain.evidence is not None and plain.evidence.shape == (features,)
    assert abs(plain.confidence - plain.evidence[0]) < 1e-9

    def nowhere(x: np.ndarray) -> float:  # a domain check that finds no photo in its world
        assert x.ndim == 1 and x.size > 100  # it is given the photo's image features
        return 1 / (1 + np.exp(5.0))

    far = Trust(None, 0.6, nowhere, 0.5, "unlike its world")
    r = clipmat.CLIPMatPredictor(model, device="cpu", trust=far).predict(photo, "the cat")
    assert r.out_of_domain and r.unsure and "unlike its world" in r.notes[0]


def test_bundled_model_flags_real_photos_and_keeps_its_scenes(mini_world):
    assert mini_world.trust is not None, "no trust file beside the bundled weights"
    report = mini_world.trust.report
    before = report["confidence"]["AUROC before (mean foreground probability)"]
    assert report["confidence"]["AUROC after"] > before
    skimage_data = pytest.importorskip("skimage.data")
    for photo in (skimage_data.astronaut(), load_image("examples/photo_cat.jpg")):
        r = mini_world.predict(photo, "the astronaut")
        assert r.out_of_domain and r.unsure and "zeroshot" in r.notes[-1]
    scene = load_image("examples/miniworld_shapes.jpg")
    r = mini_world.predict(scene, "the red ball on the far left of the photo")
    assert not r.out_of_domain and not r.unsure and r.notes == []

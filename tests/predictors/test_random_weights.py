"""Every predictor without weights: ``load_predictor(name, pretrained=False)`` builds its
architecture with seeded random weights, offline, with the same options, and says so."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import clipmat
from clipmat.predictors import loading
from clipmat.pretrained import hub, registry
from clipmat.zeroshot import ZeroShotPredictor
from clipmat_app.pool import RANDOM_TINY, RANDOM_TINY_LICENCE, PredictorPool, create_random_tiny

TINY = ("mini-world", "clipmat-tiny", "random-tiny", "zeroshot-tiny")  # built and predicted on


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No weights folder holds anything and no file may be looked up or fetched."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(hub.WEIGHTS_DIR_ENV, str(tmp_path))

    def refuse(*args, **kwargs):
        raise AssertionError(f"weights looked up: {args}")

    monkeypatch.setattr(hub, "resolve_weights", refuse)
    monkeypatch.setattr(loading, "load_model_and_metadata", refuse)


def _state(predictor) -> dict[str, torch.Tensor]:
    module = predictor.model if hasattr(predictor, "model") else predictor.backbone
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.kron(rng.integers(0, 256, (13, 17, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))


def test_every_registered_predictor_builds_without_files(offline):
    """ViT-L/14 and ViT-B/16 too: built, not run (seconds each)."""
    names = registry.predictor_names()
    assert {"clipmat-vitl14", "clipmat-vitb16", "zeroshot-vitb16", "mini-world"} <= set(names)
    for name in names:
        p = clipmat.load_predictor(name, pretrained=False, device="cpu")
        weights = registry.predictor_weights(name)
        assert isinstance(p, ZeroShotPredictor) == weights.zero_shot
        assert p.name == f"{name} (random weights)" and "random weights" in p.licence
        assert "random" in p.domain and p.device.type == "cpu" and p.precision == "fp32"
        arch = p.model.cfg.name if hasattr(p, "model") else None
        assert arch == (None if weights.zero_shot else weights.arch)
        del p
    zs = clipmat.load_predictor("zeroshot-vitb16", pretrained=False, device="cpu")
    assert zs.sliding == (448, 224) and zs.logit_scale == 50.0  # the registry's windows
    assert zs.backbone.cfg.vision["layers"] == 12 and zs.backbone.patch_size == 16


@pytest.mark.parametrize("name", TINY)
def test_tiny_ones_predict_at_each_precision(offline, name):
    photo = _photo()
    for precision in ("fp32", "int8"):
        p = clipmat.load_predictor(name, pretrained=False, device="cpu", precision=precision)
        r = p.predict(photo, "the red star")
        assert p.precision == precision and r.alpha.shape == photo.shape[:2]
        assert r.predictor == p.name and "random" in p.licence
    with pytest.raises(ValueError, match="runs on the CPU only"):
        clipmat.load_predictor(name, pretrained=False, device="meta", precision="int8")


def test_same_seed_same_weights_and_the_global_random_state_untouched():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = _state(clipmat.load_predictor("mini-world", pretrained=False, device="cpu"))
    assert torch.equal(torch.random.get_rng_state(), before)
    b = _state(clipmat.load_predictor("mini-world", pretrained=False, device="cpu"))
    c = _state(clipmat.load_predictor("mini-world", pretrained=False, device="cpu", seed=1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    z1 = _state(clipmat.load_predictor("zeroshot-tiny", pretrained=False, device="cpu"))
    z2 = _state(clipmat.load_predictor("zeroshot-tiny", pretrained=False, device="cpu"))
    assert all(torch.equal(z1[k], z2[k]) for k in z1)


def test_random_tiny_is_a_case_of_it_with_the_apps_seed_and_name():
    app = create_random_tiny("cpu")
    assert (app.name, app.licence) == (RANDOM_TINY, RANDOM_TINY_LICENCE)
    with torch.random.fork_rng(devices=[]):  # how the app made it before: its mattes are kept
        torch.manual_seed(24)
        model = clipmat.create_model("clipmat-tiny")
    want = model.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in app.model.state_dict().items())
    named = clipmat.load_predictor(RANDOM_TINY, device="cpu")  # "random-" names: always random
    assert named.name == RANDOM_TINY and all(
        torch.equal(v, want[k]) for k, v in named.model.state_dict().items()
    )
    pool, name = PredictorPool.from_option("random-mini", device="cpu", precision="int8")
    assert name == "random-mini" and pool.get(name).precision == "int8"
    assert create_random_tiny("cpu", precision="int8").precision == "int8"


def test_unknown_names_list_what_can_be_built():
    with pytest.raises(ValueError, match="random weights.*random-tiny.*zeroshot-tiny"):
        clipmat.load_predictor("no-such-thing", pretrained=False)
    with pytest.raises(ValueError, match="pretrained=False"):
        clipmat.load_predictor("zeroshot-tiny")  # random only: its name does not say so
    assert set(TINY) <= set(loading.random_architectures())

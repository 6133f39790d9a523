"""Shared test setup: no network, no GPU, few threads, seeded randomness, and the models many
tests share (built once per session: never train, convert in place or edit them)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ["CUDA_VISIBLE_DEVICES"] = ""

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_unchanged(model, before: dict) -> None:
    """Fail if a test changed a shared model's weights, mode or precision: it serves the whole
    session, so a test that needs to change a model builds its own."""
    import torch

    from clipmat.precision import precision_of

    after = model.state_dict()
    changed = sorted(set(before) ^ set(after))
    changed += [k for k in after if k in before and not torch.equal(after[k], before[k])]
    assert not changed, f"a test changed the shared model: {changed[:5]}"
    assert not any(m.training for m in model.modules()), "a test left the shared model training"
    assert precision_of(model) == "fp32", "a test converted the shared model in place"


@pytest.fixture(scope="session")
def tiny_model():
    """The random clipmat-tiny of the app's developer option (``create_random_tiny``: seed 24,
    the same weights in every process), in eval mode, on the CPU."""
    from clipmat_app.pool import create_random_tiny

    model = create_random_tiny("cpu").model
    before = _weights(model)
    yield model
    _assert_unchanged(model, before)


@pytest.fixture
def tiny_predictor(tiny_model):
    """A fresh predictor (its own cache and stats) over ``tiny_model``, named as the app's
    random-tiny so it can stand in a PredictorPool under that name."""
    from helpers import random_tiny_predictor

    return random_tiny_predictor(tiny_model)


@pytest.fixture(scope="session")
def mini_world():
    """The bundled mini-world predictor on the CPU at fp32, shared with its cache."""
    import clipmat

    predictor = clipmat.load_predictor("mini-world", device="cpu")
    before = _weights(predictor.model)
    yield predictor
    _assert_unchanged(predictor.model, before)
    assert predictor.precision == "fp32", "a test changed the shared predictor's precision"

"""Every test of the pretrained package runs with an empty weights folder and hub cache, offline."""

import huggingface_hub
import pytest

from clipmat.pretrained import hub, registry, weights_io


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """An empty weights dir and an empty hub cache for every test; no network."""
    weights = tmp_path / "weights"
    weights.mkdir()
    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setenv(hub.WEIGHTS_DIR_ENV, str(weights))
    monkeypatch.setenv(hub.OFFLINE_ENV, "1")
    monkeypatch.delenv(registry.HUB_REPO_ENV, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    weights_io._sha256_cached.cache_clear()
    return weights

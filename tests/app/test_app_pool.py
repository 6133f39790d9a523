"""Loading a predictor blocks no one: a load that hangs (a download that never answers) holds
no lock other predictors' calls wait for and takes no matting slot; callers asking for the same
predictor share one load; a failed load answers each of them with its reason and can be tried
again."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from clipmat_app.pool import PredictorPool
from clipmat_app.service import MatteService


class HangingLoad:
    """A predictor factory that waits for ``release`` (a download that does not answer), then
    returns ``predictor`` or raises ``error``; counts its calls."""

    def __init__(self, predictor, error: Exception | None = None) -> None:
        self.predictor, self.error = predictor, error
        self.started, self.release = threading.Event(), threading.Event()
        self.calls = 0

    def __call__(self):
        self.calls += 1
        self.started.set()
        assert self.release.wait(timeout=60), "the test never released the load"
        if self.error is not None:
            raise self.error
        return self.predictor


def _photo(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)


def test_a_hanging_load_blocks_no_other_predictor(tiny_predictor):
    hanging = HangingLoad(tiny_predictor)
    pool = PredictorPool({"slow": hanging, "fast": tiny_predictor})
    with ThreadPoolExecutor(2) as workers:
        slow = workers.submit(pool.get, "slow")
        assert hanging.started.wait(10)
        assert pool.loading("slow") and not pool.loaded("slow")
        start = time.perf_counter()
        result = pool.predict("fast", _photo(0), "the thing")
        assert time.perf_counter() - start < 30 and result.alpha.shape == (64, 80)
        assert not slow.done()  # still loading while the other predictor answered
        hanging.release.set()
        assert slow.result(timeout=30) is tiny_predictor
    assert pool.loaded("slow") and not pool.loading("slow")


def test_callers_of_one_loading_predictor_share_its_load(tiny_predictor):
    hanging = HangingLoad(tiny_predictor)
    pool = PredictorPool({"slow": hanging})
    with ThreadPoolExecutor(4) as workers:
        calls = [workers.submit(pool.get, "slow") for _ in range(4)]
        assert hanging.started.wait(10)
        time.sleep(0.2)  # the other three are waiting on the first one's load
        hanging.release.set()
        got = [c.result(timeout=30) for c in calls]
    assert hanging.calls == 1 and all(p is tiny_predictor for p in got)


def test_a_failed_load_answers_every_waiter_and_can_be_tried_again(tiny_predictor):
    hanging = HangingLoad(tiny_predictor, error=ValueError("the hub did not answer"))
    pool = PredictorPool({"slow": hanging})
    with ThreadPoolExecutor(3) as workers:
        calls = [workers.submit(pool.get, "slow") for _ in range(3)]
        assert hanging.started.wait(10)
        time.sleep(0.2)
        hanging.release.set()
        for call in calls:
            with pytest.raises(ValueError, match="the hub did not answer"):
                call.result(timeout=30)
    assert hanging.calls == 1 and not pool.loading("slow") and not pool.loaded("slow")
    hanging.error = None  # the network is back: the next call loads
    assert pool.get("slow") is tiny_predictor and hanging.calls == 2


def test_a_matte_waiting_for_its_predictor_takes_no_matting_slot(tiny_predictor, tmp_path):
    """With one matting slot, another user's matte is answered while the first user's
    predictor is still loading."""
    hanging = HangingLoad(tiny_predictor)
    pool = PredictorPool({"slow": hanging, "fast": tiny_predictor})
    service = MatteService(pool, matte_slots=1, workdir=tmp_path)
    try:
        with ThreadPoolExecutor(2) as workers:
            first = workers.submit(service.matte, _photo(1), "a cat", "slow", downloads=False)
            assert hanging.started.wait(10)
            start = time.perf_counter()
            other = service.matte(_photo(2), "a dog", "fast", downloads=False)
            assert time.perf_counter() - start < 30 and other.result.alpha.shape == (64, 80)
            assert not first.done()
            hanging.release.set()
            assert first.result(timeout=60).result.alpha.shape == (64, 80)
    finally:
        hanging.release.set()
        service.close()


def test_the_page_says_a_first_use_downloads_the_weights(tmp_path, monkeypatch):
    import huggingface_hub

    from clipmat.pretrained import hub
    from clipmat_app.texts import predictor_text

    monkeypatch.setenv(hub.WEIGHTS_DIR_ENV, str(tmp_path))  # no CLIP weights here
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    online = {c.name: c for c in PredictorPool(allow_download=True).choices()}
    assert online["zeroshot-vitb16"].available and online["zeroshot-vitb16"].download
    shown = predictor_text(PredictorPool(allow_download=True), "zeroshot-vitb16")
    assert "first use downloads its weights" in shown
    offline = {c.name: c for c in PredictorPool(allow_download=False).choices()}
    assert not offline["zeroshot-vitb16"].available and offline["zeroshot-vitb16"].reason
    assert offline["mini-world"].available and not offline["mini-world"].download  # bundled

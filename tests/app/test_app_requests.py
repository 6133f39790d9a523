"""What one request to the app costs: the photo decoded and fingerprinted once, the matte
computed once, and the edit after it served from the cache."""

from __future__ import annotations

import numpy as np
from PIL import Image

import clipmat.predictors.results
import clipmat_app.inputs
from clipmat_app.callbacks import Callbacks
from clipmat_app.pool import RANDOM_TINY, PredictorPool, create_random_tiny
from clipmat_app.service import MatteService


def test_one_decode_and_one_fingerprint_per_request(tmp_path, monkeypatch):
    path = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(path)
    tiny = create_random_tiny("cpu")
    service = MatteService(PredictorPool({RANDOM_TINY: tiny}), workdir=tmp_path / "work")
    callbacks = Callbacks(service.pool, service)
    calls = {"decode": 0, "fingerprint": 0}

    def counted(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        return wrapper

    inputs = clipmat_app.inputs
    monkeypatch.setattr(inputs, "load_image", counted("decode", inputs.load_image))
    monkeypatch.setattr(inputs, "fingerprint", counted("fingerprint", inputs.fingerprint))
    for module in (clipmat.predictors.results,):  # the predictor must take the photo as it is given
        monkeypatch.setattr(module, "load_image", counted("decode", module.load_image))
        monkeypatch.setattr(module, "fingerprint", counted("fingerprint", module.fingerprint))
    out = callbacks.matte(str(path), "the thing", RANDOM_TINY, False, progress=None)
    last = out[-1]
    edited = callbacks.ui_edit(str(path), last, "color", [], 0.5, "orange", None)
    assert calls == {"decode": 1, "fingerprint": 1}
    assert tiny.stats["image_encodes"] == 1 and service.stats["mattes"] == 1
    assert np.asarray(Image.open(edited)).shape == (90, 120, 3)
    service.close()

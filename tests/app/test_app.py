"""The app's support code and startup: photo and phrase policy, predictor pool, matte cache."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import random_tiny_predictor
from PIL import Image

import clipmat.predictors.loading
import editing
from clipmat import save_model
from clipmat.precision import native_bf16
from clipmat.precision import paths as precision_paths
from clipmat.predictors.loading import PredictorStatus
from clipmat_app import cli, texts, ui
from clipmat_app import pool as app_pool
from clipmat_app.edits import EditSettings, apply_edit
from clipmat_app.fullsize import upsample_matte
from clipmat_app.inputs import clean_phrase, load_examples, read_photo
from clipmat_app.pool import RANDOM_TINY, PredictorPool
from clipmat_app.service import MatteService
from clipmat_app.views import overlay

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def service(tiny_predictor, tmp_path):
    pool = PredictorPool({RANDOM_TINY: tiny_predictor}, device="cpu")
    svc = MatteService(pool, cache_size=2, workdir=tmp_path / "work", max_side=256)
    yield svc
    svc.close()


def _photo(rng: np.random.Generator, h: int = 96, w: int = 128) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_clean_phrase_policy():
    assert clean_phrase("  the   red\tstar ") == ("the red star", [])
    for empty in ("", "   ", None):
        with pytest.raises(ValueError, match="phrase is empty"):
            clean_phrase(empty)
    with pytest.raises(TypeError, match="must be text"):
        clean_phrase(42)
    long, notes = clean_phrase("the cat " * 100, max_chars=50)
    assert len(long) <= 50 and long.startswith("the cat") and not long.endswith(" ")
    assert "only its start was read" in notes[0]
    text, notes = clean_phrase("那只猫")
    assert text == "那只猫" and "English" in notes[0]


def test_read_photo_policy(rng, tmp_path):
    big = _photo(rng, 300, 500)
    photo = read_photo(big, max_side=200)
    assert photo.rgb.shape == (120, 200, 3)
    assert "500x300" in photo.notes[0] and "200x120" in photo.notes[0]
    assert read_photo(big).notes == [] and read_photo(big).key == read_photo(big.copy()).key
    with pytest.raises(ValueError, match="no photo"):
        read_photo(None)
    with pytest.raises(ValueError, match="more than the limit"):
        read_photo(big, max_pixels=10_000)
    bad = tmp_path / "holiday.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(ValueError, match="not a readable image") as err:
        read_photo(str(bad))
    assert str(tmp_path) not in str(err.value) and "holiday.jpg" in str(err.value)


def test_read_photo_formats(rng, tmp_path):
    rgb = _photo(rng, 40, 60)
    rgba = np.dstack([rgb, np.full((40, 60), 7, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_photo(str(tmp_path / "a.png")).rgb, rgb)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg")
    assert read_photo(str(tmp_path / "c.jpg")).rgb.shape == (40, 60, 3)
    exif = Image.Exif()
    exif[274] = 6  # stored sideways: viewers rotate it by 90 degrees
    Image.fromarray(rgb).save(tmp_path / "r.jpg", exif=exif)
    assert read_photo(str(tmp_path / "r.jpg")).rgb.shape == (60, 40, 3)
    gray16 = (rng.integers(0, 65536, (40, 60))).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    out = read_photo(str(tmp_path / "g16.png")).rgb
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    assert abs(int(out[..., 0].mean()) - int(gray16.mean() / 257)) <= 2


def test_edit_settings_are_checked():
    with pytest.raises(ValueError, match="edit mode"):
        EditSettings(mode="sparkle")
    with pytest.raises(ValueError, match="effect"):
        EditSettings(effects=("dim", "glitter"))
    with pytest.raises(ValueError, match="strength"):
        EditSettings(strength=1.5)
    with pytest.raises(ValueError, match="colour"):
        EditSettings(color="not-a-colour")


def test_overlay_keeps_background_and_tints_object(rng):
    photo = _photo(rng)
    alpha = np.zeros(photo.shape[:2], np.float32)
    np.testing.assert_array_equal(overlay(photo, alpha), photo)
    alpha[:, 64:] = 1.0
    out = overlay(photo, alpha).astype(int)
    expected = photo[:, 64:] * 0.45 + np.asarray((255, 48, 112)) * 0.55
    assert np.abs(out[:, 64:] - expected).max() <= 1
    np.testing.assert_array_equal(out[:, :64], photo[:, :64])


def test_matte_computed_once_then_edited(service, tiny_predictor, rng, monkeypatch):
    photo = _photo(rng, 300, 200)
    encodes = tiny_predictor.stats["image_encodes"]
    first = service.matte(photo, "the thing", RANDOM_TINY)
    assert first.photo.shape == (256, 171, 3) and "scaled" in first.notes[0]
    again = service.matte(photo, "  the thing ", RANDOM_TINY)
    assert again is first and service.stats == {"mattes": 1, "hits": 1}
    other = service.matte(photo, "the other thing", RANDOM_TINY)
    assert other.result.image_cached and tiny_predictor.stats["image_encodes"] == encodes + 1
    expected = tiny_predictor.predict(first.photo, "the thing").alpha
    np.testing.assert_allclose(first.result.alpha, expected, atol=1e-6)
    for name in ("matte.png", "matte16.png", "cutout.png", "overlay.png"):
        assert (first.folder / name).is_file()
    np.testing.assert_allclose(editing.load_matte(first.folder / "matte.png"), expected, atol=3e-3)
    full = editing.load_matte(first.folder / "matte16.png")  # the download: the photo's own size
    assert full.shape == (300, 200)
    np.testing.assert_allclose(full, upsample_matte(expected, photo) / 65535, atol=2e-5)
    estimates = []
    real = editing.operations.estimate_foreground_arrays
    monkeypatch.setattr(
        editing.operations,
        "estimate_foreground_arrays",
        lambda *a, **k: estimates.append(1) or real(*a, **k),
    )
    for mode in ("highlight", "background", "color", "cutout"):
        path = service.edit_file(first, EditSettings(mode=mode, color="orange"))
        assert path.is_file()
    assert len(estimates) == 1  # estimated for the first edit, reused by every other one
    want = editing.fill_color(first.photo, first.result.alpha, "orange")
    np.testing.assert_array_equal(
        apply_edit(first.edit, EditSettings(mode="color", color="orange")), want
    )


def test_matte_cache_evicts_old_files(service, rng):
    photo = _photo(rng)
    mattes = [service.matte(photo, f"thing {i}", RANDOM_TINY) for i in range(5)]
    assert [m.folder.exists() for m in mattes] == [False, True, True, True, True]
    assert service.matte(photo, "thing 4", RANDOM_TINY) is mattes[4]
    assert service.matte(photo, "thing 1", RANDOM_TINY) is not mattes[1]  # evicted, made anew


def test_pool_options(tiny_predictor, tmp_path, monkeypatch):
    pool, name = PredictorPool.from_option(RANDOM_TINY, device="cpu")
    assert name == RANDOM_TINY and pool.get(name).name == RANDOM_TINY
    with pytest.raises(ValueError, match="unknown predictor"):
        PredictorPool.from_option("no-such-predictor")
    with pytest.raises(ValueError, match="unknown predictor"):
        pool.get("no-such-predictor")
    with pytest.raises(ValueError, match="cannot run here"):
        pool.get("clipmat-vitl14")
    ckpt = tmp_path / "my-matting.safetensors"
    save_model(tiny_predictor.model, ckpt)
    pool, name = PredictorPool.from_option(str(ckpt), device="cpu")
    assert name == "my-matting" and pool.choices()[0].name == "my-matting"
    photo = np.full((64, 64, 3), 90, np.uint8)
    np.testing.assert_allclose(
        pool.predict(name, photo, "the cat").alpha,
        tiny_predictor.predict(photo, "the cat").alpha,
        atol=1e-5,
    )


def test_compute_options_reach_the_pool_and_the_queue(monkeypatch):
    args = cli.parse_args(["--precision", "int8", "--threads", "1", "--matte-slots", "3"])
    assert (args.precision, args.threads, args.matte_slots) == ("int8", 1, 3)
    for bad in (["--matte-slots", "0"], ["--threads", "0"], ["--precision", "fp16"]):
        with pytest.raises(SystemExit):
            cli.parse_args(bad)
    assert cli.resolve_precision("onnx", "cpu") == "onnx"
    assert cli.resolve_precision("auto", "cuda") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert cli.resolve_precision("auto", "auto") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.resolve_precision("auto", "auto") == cli.resolve_precision("auto", "cpu")

    assert cli.resolve_precision("auto", "cpu") in cli.CPU_PRECISIONS
    refused = set()

    def check(precision):
        if precision in refused:
            raise ValueError(f"precision {precision!r} cannot run here")

    monkeypatch.setattr(precision_paths, "check_precision", check)
    assert cli.resolve_precision("auto", "cpu") == "bf16"  # native bf16: the fastest path
    refused.add("bf16")  # a CPU that emulates bf16
    assert cli.resolve_precision("auto", "cpu") == "int8"
    refused.add("int8")  # and a PyTorch build without quantized kernels
    assert cli.resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.undo()  # the real checks again
    with pytest.raises(ValueError, match="unknown precision"):
        PredictorPool(precision="fp16")
    pool, name = PredictorPool.from_option(RANDOM_TINY, device="cpu", precision="int8")
    assert pool.get(name).precision == "int8"
    service = MatteService(pool, matte_slots=3)
    demo = ui.build_demo(pool, name, service=service)
    limits = {f.concurrency_id: f.concurrency_limit for f in demo.fns.values()}
    assert limits["matte"] == 3
    with pytest.raises(ValueError, match="at least 1"):
        MatteService(pool, matte_slots=0)


def test_no_predictor_at_all_still_builds(monkeypatch):
    statuses = [PredictorStatus(n, False, "lic", "desc", f"{n} weights missing") for n in "ab"]
    monkeypatch.setattr(app_pool, "list_predictors", lambda: statuses)
    monkeypatch.setattr(clipmat.predictors.loading, "list_predictors", lambda: statuses)
    pool, name = PredictorPool.from_option("auto")
    assert name is None and pool.names() == ["a", "b"]
    text = texts.predictor_text(pool, None)
    assert "No predictor can run here" in text and "a weights missing" in text
    assert RANDOM_TINY in text
    demo = ui.build_demo(pool, None)
    assert "No predictor can run here" in str(demo.config)


def test_active_line_says_how_the_predictor_computes(tiny_model):
    pool = PredictorPool(
        extra={RANDOM_TINY: lambda: random_tiny_predictor(tiny_model, precision="int8")}
    )
    assert pool.compute(RANDOM_TINY) == ""  # not loaded yet: nothing claimed
    pool.get(RANDOM_TINY)
    assert pool.compute(RANDOM_TINY) == "int8 on the CPU"
    assert texts.predictor_text(pool, RANDOM_TINY).endswith("· computed in int8 on the CPU")


def test_importing_the_app_writes_no_files():
    assert not (ROOT / "app.pyi").exists()  # gradio writes stubs for component subclasses


def test_main_stops_on_a_bad_predictor():
    with pytest.raises(SystemExit, match="unknown predictor"):
        cli.main(["--predictor", "no-such-predictor"])


def test_examples_are_complete():
    rows = load_examples(ROOT / "examples")
    assert len(rows) >= 10
    for row in rows:
        assert Path(row["image"]).is_file() and row["text"].strip()
        if row["mask"]:
            mask = np.asarray(Image.open(row["mask"]))
            assert mask.shape[:2] == Image.open(row["image"]).size[::-1] and mask.max() > 0
    assert any(r["mask"] for r in rows) and any(not r["mask"] for r in rows)


def test_app_starts_offline_quickly(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--device", "cpu"]
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        config = None
        while time.perf_counter() - start < 60 and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2) as r:
                    config = r.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert config is not None, proc.stdout.read().decode() if proc.poll() is not None else ""
        assert time.perf_counter() - start < 60
        usable = [s for s in clipmat.predictors.loading.list_predictors() if s.available]
        if usable:
            assert f"Active: {usable[0].name}" in config
            fast = "bf16" if native_bf16() else "int8"  # what --precision auto picks on CPU
            assert f"computed in {fast} on the CPU" in config
        else:
            assert "No predictor can run here" in config
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_photo_bytes_round_trip(rng):
    buf = io.BytesIO()
    Image.fromarray(_photo(rng)).save(buf, format="PNG")
    assert read_photo(buf.getvalue()).rgb.shape == (96, 128, 3)


def test_auto_prefers_zero_shot_with_a_download_when_the_hub_answers(tiny_predictor, monkeypatch):
    """With a network, auto fetches CLIP for zero-shot; when that fails, it falls back."""
    zeroshot = "zeroshot-vitb16"
    loaded = []

    def fake_load(name, **kwargs):
        loaded.append(name)
        if name == zeroshot:
            return tiny_predictor  # stands in for the downloaded zero-shot model
        raise AssertionError(f"unexpected load of {name}")

    monkeypatch.setattr(app_pool, "load_predictor", fake_load)
    monkeypatch.setattr(clipmat.pretrained.remote, "hub_reachable", lambda *a, **k: True)
    pool = PredictorPool(allow_download=True)
    assert pool.auto_choice() == zeroshot and loaded == [zeroshot]

    def failing_load(name, **kwargs):
        raise OSError("connection reset")

    monkeypatch.setattr(app_pool, "load_predictor", failing_load)
    fallback = PredictorPool(allow_download=True)
    here = [c.name for c in fallback.choices() if c.available and not c.download]  # on disk
    with pytest.warns(UserWarning, match="cannot run here"):
        assert fallback.auto_choice() == (here[0] if here else None)
    monkeypatch.setattr(
        clipmat.pretrained.remote, "hub_reachable", lambda *a, **k: pytest.fail("probed")
    )
    monkeypatch.setattr(app_pool, "load_predictor", lambda name, **kwargs: tiny_predictor)
    offline = PredictorPool(allow_download=False)
    assert offline.auto_choice() == (here[0] if here else None)

"""Weights registry, lookup order, checksums, safetensors I/O and the download command."""

import copy
import dataclasses
import hashlib
import os
import pickle
import sys
import time
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch

import clipmat
from clipmat.pretrained import download, hub, registry, weights_io

FAKE_REPO = "clipmat-tests/fake-weights"
FAKE_REVISION = "0123456789abcdef0123456789abcdef01234567"


def _register(monkeypatch, **changes) -> registry.WeightSpec:
    """Register a test entry "test.weights" in the registry for the test's duration."""
    base = registry.WeightSpec(
        arch="test",
        tag="weights",
        contents=registry.CLIP,
        filename="test_weights.safetensors",
        licence="test licence",
        description="weights for tests",
    )
    spec = dataclasses.replace(base, **changes)
    monkeypatch.setitem(registry.PRETRAINED, spec.name, spec)
    return spec


def _fake_cache_file(name: str, content: bytes) -> Path:
    """Put a file into the (isolated) hub cache as if hf_hub_download had fetched it."""
    repo_dir = Path(huggingface_hub.constants.HF_HUB_CACHE) / (
        "models--" + FAKE_REPO.replace("/", "--")
    )
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(FAKE_REVISION)
    path = repo_dir / "snapshots" / FAKE_REVISION / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _state() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {"a.weight": torch.randn(3, 4, generator=gen), "a.bias": torch.arange(3.0)}


def test_registry_names_and_specs():
    names = registry.list_pretrained()
    expected = {"clipmat-vitb16.refmatte", "clipmat-vitl14.refmatte", "ViT-B-16.openai"}
    assert expected | {"ViT-L-14.openai", "clipmat-mini.miniworld"} == set(names)
    clip = registry.get_weight_spec("ViT-B-16.openai")
    assert registry.get_weight_spec("clip-vitb16-openai") == clip  # the name before the scheme
    assert (clip.contents, clip.arch, clip.hf_repo) == (
        "clip",
        "ViT-B-16",
        "timm/vit_base_patch16_clip_224.openai",
    )
    assert clip.hf_filename.endswith(".safetensors") and "MIT" in clip.licence
    assert registry.get_weight_spec("zeroshot-vitb16") == clip
    trained = registry.get_weight_spec("clipmat-vitb16")
    assert trained.name == "clipmat-vitb16.refmatte" and trained.arch == "clipmat-vitb16"
    assert trained.sha256 is None and trained.hf_repo is None and "CC BY-NC" in trained.licence
    mini = registry.get_weight_spec("mini-world")
    assert mini.filename == "miniworld.safetensors" and mini.bundled and mini.sha256
    # the zero-shot predictor reads CLIP weights, the others a whole CLIPMat
    assert clip.zero_shot and not trained.zero_shot and not mini.zero_shot
    # every CLIPMat weights' architecture is a model config
    configs = set(clipmat.list_models())
    trained_archs = {w.arch for w in registry.PRETRAINED.values() if w.contents == registry.CLIPMAT}
    assert trained_archs <= configs


@pytest.mark.parametrize(
    ("name", "arch"), [("clip-vitb16-openai", "ViT-B-16"), ("clip-vitl14-openai", "ViT-L-14")]
)
def test_clip_entries_match_open_clip_registry(name, arch):
    open_clip = pytest.importorskip("open_clip")
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    # A trailing slash in open_clip's "hf_hub" means: the repository's default file names.
    assert open_clip.get_pretrained_cfg(arch, "openai")["hf_hub"].endswith("/")
    spec = registry.get_weight_spec(name)
    assert spec.arch == arch
    assert spec.hf_repo == open_clip.get_pretrained_cfg(arch, "openai")["hf_hub"].rstrip("/")
    assert spec.hub_filenames() == [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match="Available: .*clipmat-vitb16.*mini-world"):
        registry.get_weight_spec("clipmat-vitx99")
    for bad in ("hf-hub:", "hf-hub:noslash", "hf-hub:a/b/c"):
        with pytest.raises(ValueError, match="hf-hub:owner/name"):
            registry.get_weight_spec(bad)


def test_hub_repo_from_environment(monkeypatch):
    monkeypatch.setenv(registry.HUB_REPO_ENV, "someone/clipmat")
    assert registry.get_weight_spec("clipmat-vitl14").hf_repo == "someone/clipmat"
    assert registry.get_weight_spec("clip-vitb16-openai").hf_repo.startswith("timm/")


def test_weights_dir_default_and_override(isolated, monkeypatch):
    assert hub.weights_dir() == isolated
    monkeypatch.delenv(hub.WEIGHTS_DIR_ENV)
    assert hub.weights_dir() == Path(hub.__file__).resolve().parents[2] / "weights"


def test_downloads_allowed_follows_offline_env(monkeypatch):
    assert not hub.downloads_allowed()
    assert hub.downloads_allowed(True)
    monkeypatch.setenv(hub.OFFLINE_ENV, "0")
    assert hub.downloads_allowed() and not hub.downloads_allowed(False)


def test_explicit_path_wins_and_missing_path_is_named(tmp_path, isolated):
    own = tmp_path / "mine.safetensors"
    own.write_bytes(b"x")
    (isolated / "clipmat_vitb16.safetensors").write_bytes(b"y")
    assert hub.resolve_weights("clipmat-vitb16", path=own) == own
    with pytest.raises(hub.WeightsNotFoundError, match="random init") as info:
        hub.resolve_weights("clipmat-vitb16", path=tmp_path / "nope.safetensors")
    assert "nope.safetensors" in str(info.value)


def test_weights_dir_file_is_found(isolated):
    target = isolated / "clipmat_vitb16.safetensors"
    target.write_bytes(b"weights")
    assert hub.resolve_weights("clipmat-vitb16") == target
    assert hub.locate_weights("clipmat-vitb16") == target


def test_missing_trained_weights_message():
    with pytest.raises(FileNotFoundError) as info:
        hub.resolve_weights("clipmat-vitb16")
    message = str(info.value)
    assert isinstance(info.value, hub.WeightsNotFoundError)
    for needle in (
        "clipmat-vitb16",
        "clipmat_vitb16.safetensors",
        "No trained CLIPMat weights have been published",
        "clipmat train",
        registry.HUB_REPO_ENV,
        "pass pretrained=None for random init",
    ):
        assert needle in message


def test_missing_clip_offline_fails_fast_and_explains():
    start = time.perf_counter()
    with pytest.raises(hub.WeightsNotFoundError) as info:
        hub.resolve_weights("zeroshot-vitb16")
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"offline miss took {elapsed:.2f} s"
    message = str(info.value)
    assert "clipmat download ViT-B-16.openai" in message
    assert "clip_vitb16_openai.safetensors" in message
    assert "open_clip_model.safetensors" in message and "open_clip_pytorch_model.bin" in message
    assert "HF_HUB_OFFLINE is set" in message and "random init" in message


def test_hub_cache_hit_and_fallback_filename(monkeypatch):
    _register(
        monkeypatch,
        hf_repo=FAKE_REPO,
        hf_filename="w.safetensors",
        hf_fallback_filenames=("w.bin",),
    )
    with pytest.raises(hub.WeightsNotFoundError):
        hub.resolve_weights("test.weights")
    fallback = _fake_cache_file("w.bin", b"fallback")
    assert hub.resolve_weights("test.weights").read_bytes() == fallback.read_bytes()
    preferred = _fake_cache_file("w.safetensors", b"preferred")
    assert hub.resolve_weights("test.weights").read_bytes() == preferred.read_bytes()


def test_checksum_verified_and_mismatch_named(isolated, monkeypatch):
    content = b"some weights"
    good = hashlib.sha256(content).hexdigest()
    (isolated / "test_weights.safetensors").write_bytes(content)
    _register(monkeypatch, sha256=good.upper())
    assert hub.resolve_weights("test.weights").name == "test_weights.safetensors"
    bad = "0" * 64
    _register(monkeypatch, sha256=bad)
    with pytest.raises(weights_io.WeightsChecksumError) as info:
        hub.resolve_weights("test.weights")
    message = str(info.value)
    assert "test_weights.safetensors" in message and bad in message and good in message


def test_checksum_is_cached_per_size_and_mtime(tmp_path, monkeypatch):
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc")
    calls = []
    real = weights_io.sha256_file
    monkeypatch.setattr(weights_io, "sha256_file", lambda p: calls.append(p) or real(p))
    digest = hashlib.sha256(b"abc").hexdigest()
    weights_io.verify_sha256(path, digest)
    weights_io.verify_sha256(path, digest)
    assert len(calls) == 1
    path.write_bytes(b"abd")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(weights_io.WeightsChecksumError):
        weights_io.verify_sha256(path, digest)
    assert len(calls) == 2
    assert weights_io.sha256_file(path) == hashlib.sha256(b"abd").hexdigest()


def test_url_download_verifies_and_leaves_no_partial_file(tmp_path, isolated, monkeypatch):
    source = tmp_path / "hosted.safetensors"
    source.write_bytes(b"hosted weights")
    digest = hashlib.sha256(b"hosted weights").hexdigest()
    _register(monkeypatch, url=source.as_uri(), sha256=digest)
    with pytest.raises(hub.WeightsNotFoundError, match="HF_HUB_OFFLINE is set"):
        hub.resolve_weights("test.weights")  # downloads off by default when offline
    got = hub.resolve_weights("test.weights", allow_download=True)
    assert got == isolated / "test_weights.safetensors" and got.read_bytes() == b"hosted weights"
    got.unlink()
    _register(monkeypatch, url=source.as_uri(), sha256="f" * 64)
    with pytest.raises(weights_io.WeightsChecksumError):
        hub.resolve_weights("test.weights", allow_download=True)
    assert list(isolated.iterdir()) == []


def test_save_load_round_trip_with_metadata_and_dtype(tmp_path):
    state = _state()
    state["tied"] = state["a.weight"]  # shares memory: stored as its own copy
    path = weights_io.save_state_dict(
        state, tmp_path / "sub" / "m.safetensors", {"config": '{"w": 8}'}
    )
    loaded, meta = weights_io.load_state_dict(path)
    assert set(loaded) == set(state) and meta == {"config": '{"w": 8}'}
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    half, _ = weights_io.load_state_dict(
        weights_io.save_state_dict(_state(), tmp_path / "h.safetensors", dtype=torch.float16)
    )
    assert half["a.weight"].dtype == torch.float16
    assert not list(tmp_path.glob("**/*.part"))


def test_save_rejects_bad_metadata_and_values(tmp_path):
    with pytest.raises(TypeError, match="str to str"):
        weights_io.save_state_dict(_state(), tmp_path / "m.safetensors", {"config": {"w": 8}})
    with pytest.raises(TypeError, match="expected a torch.Tensor"):
        weights_io.save_state_dict({"x": [1, 2]}, tmp_path / "m.safetensors")


def test_load_pickled_weights_only(tmp_path):
    plain, wrapped = tmp_path / "plain.pt", tmp_path / "wrapped.pth"
    torch.save(_state(), plain)
    torch.save({"state_dict": _state(), "epoch": 3}, wrapped)
    for path in (plain, wrapped):
        state, meta = weights_io.load_state_dict(path)
        assert set(state) == {"a.weight", "a.bias"} and meta == {}


class _Payload:
    def __reduce__(self):
        return (print, ("unpickled an arbitrary object",))


def test_arbitrary_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.bin"
    with open(path, "wb") as f:
        pickle.dump({"w": _Payload()}, f, protocol=2)
    with pytest.raises(weights_io.WeightsCorruptError, match="Refusing to load"):
        weights_io.load_state_dict(path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_truncated_file_is_reported_as_corrupt(tmp_path, suffix):
    path = tmp_path / f"m{suffix}"
    if suffix == ".pt":
        torch.save(_state(), path)
    else:
        weights_io.save_state_dict(_state(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(weights_io.WeightsCorruptError, match="corrupt") as info:
        weights_io.load_state_dict(path)
    assert str(path) in str(info.value) and "clipmat download" in str(info.value)


def test_load_rejects_missing_and_unknown_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        weights_io.load_state_dict(tmp_path / "absent.safetensors")
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(weights_io.WeightsCorruptError, match=".safetensors, .pt"):
        weights_io.load_state_dict(tmp_path / "m.onnx")


def test_cli_list_shows_licences_and_presence(isolated, capsys):
    weights_io.save_state_dict(_state(), isolated / "clipmat_vitl14.safetensors")
    assert download.main(["--list"]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("clipmat-vitl14.refmatte"))
    assert "CC BY-NC" in line and str(isolated / "clipmat_vitl14.safetensors") in line
    assert next(r for r in out.splitlines() if r.startswith("ViT-B-16.openai")).endswith("no")
    assert "MIT" in out and "zeroshot-vitb16" in out


def test_cli_errors_have_exit_codes_and_no_traceback(capsys):
    assert download.main(["clipmat-vitx99"]) == 1
    err = capsys.readouterr().err
    assert "Unknown weights name" in err and "Traceback" not in err
    assert download.main(["clipmat-vitb16"]) == 2
    err = capsys.readouterr().err
    assert "No trained CLIPMat weights have been published" in err and "Traceback" not in err
    assert download.main([]) == 1


def test_cli_copies_and_converts_into_dir(tmp_path, monkeypatch, capsys):
    _register(
        monkeypatch,
        hf_repo=FAKE_REPO,
        hf_filename="w.safetensors",
        hf_fallback_filenames=("w.bin",),
    )
    cached = _fake_cache_file("w.bin", b"")
    torch.save(_state(), cached)
    out_dir = tmp_path / "out"
    assert download.main(["test.weights", "--dir", str(out_dir)]) == 0
    target = out_dir / "test_weights.safetensors"
    state, meta = weights_io.load_state_dict(target)
    assert torch.equal(state["a.weight"], _state()["a.weight"]) and meta["source"] == str(cached)
    out = capsys.readouterr().out
    assert str(target) in out and hub.WEIGHTS_DIR_ENV in out and "test licence" in out


# ------------------------------------------------------------ trained CLIPMat on the hub


class _StandInHub:
    """Records what would be sent to the hub (huggingface_hub.HfApi's two calls we use)."""

    def __init__(self, keep: Path) -> None:
        self.keep, self.repos = keep, []

    def create_repo(self, repo_id, repo_type, private, exist_ok):
        self.repos.append((repo_id, repo_type, private, exist_ok))

    def upload_folder(self, folder_path, repo_id, repo_type, commit_message):
        import shutil

        shutil.copytree(folder_path, self.keep / repo_id.replace("/", "--"))


def _tiny_checkpoint(tmp_path: Path, model: clipmat.CLIPMat) -> Path:
    return clipmat.save_model(model, tmp_path / "trained.safetensors", command="train x")


def test_push_then_load_from_the_hub_cache(tiny_model, tmp_path, monkeypatch):
    from clipmat.pretrained import push

    ckpt = _tiny_checkpoint(tmp_path, tiny_model)
    hub_api = _StandInHub(tmp_path / "uploaded")
    url = push.push(ckpt, "someone/tiny-matting", api=hub_api, training_data="synthetic scenes")
    assert url.endswith("someone/tiny-matting")
    assert hub_api.repos == [("someone/tiny-matting", "model", False, True)]
    sent = tmp_path / "uploaded" / "someone--tiny-matting"
    assert sorted(p.name for p in sent.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    card = (sent / "README.md").read_text()
    assert "license: cc-by-nc-4.0" in card and "synthetic scenes" in card
    assert 'load_predictor("hf-hub:someone/tiny-matting")' in card and "`train x`" in card
    # The uploaded file, as hf_hub_download would cache it, is what load_predictor reads.
    monkeypatch.setattr(sys.modules[__name__], "FAKE_REPO", "someone/tiny-matting")
    _fake_cache_file("model.safetensors", (sent / "model.safetensors").read_bytes())
    p = clipmat.load_predictor("hf-hub:someone/tiny-matting", device="cpu")
    assert p.name == "hf-hub:someone/tiny-matting" and "CC BY-NC" in p.licence
    photo = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    pushed = copy.deepcopy(tiny_model)  # the weights as pushed: rounded to fp16
    pushed.load_state_dict(
        {
            k: v.half().float() if v.is_floating_point() else v
            for k, v in pushed.state_dict().items()
        }
    )
    want = clipmat.CLIPMatPredictor(pushed, device="cpu").predict(photo, "the cat")
    np.testing.assert_allclose(p.predict(photo, "the cat").alpha, want.alpha, atol=1e-4)


def test_hub_predictor_missing_offline_says_how_to_get_it():
    with pytest.raises(hub.WeightsNotFoundError) as info:
        clipmat.load_predictor("hf-hub:someone/absent")
    message = str(info.value)
    assert "clipmat download hf-hub:someone/absent" in message
    assert "HF_HUB_OFFLINE is set" in message


def test_push_command_writes_the_folder_and_checks_the_repo(tiny_model, tmp_path, capsys):
    from clipmat.pretrained import push

    ckpt = _tiny_checkpoint(tmp_path, tiny_model)
    assert push.main([str(ckpt), "not-a-repo", "--out", str(tmp_path / "o")]) == 1
    assert "owner/name" in capsys.readouterr().err
    assert push.main([str(ckpt), "me/m", "--out", str(tmp_path / "o"), "--licence", "MIT"]) == 0
    state, meta = weights_io.load_state_dict(tmp_path / "o" / "model.safetensors")
    assert meta["licence"] == "MIT" and meta["domain"] == registry.REAL_PHOTOS
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())


def test_saved_weights_have_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = weights_io.save_state_dict(_state(), tmp_path / "out" / "w.safetensors")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # readable by others, as installed files are
    assert [p.name for p in path.parent.iterdir()] == ["w.safetensors"]

"""Training: config files and overrides, a short mini-world run, resume, checkpoints."""

import csv
import json

import pytest
import torch
from helpers import checkpoint_step

from clipmat import CLIPMatPredictor
from clipmat.evaluation.evaluate import evaluate, miniworld_items, predictor_fn
from clipmat.factory import load_model
from clipmat.training.cli import main as train_main
from clipmat.training.config import TrainConfig, load_config
from clipmat.training.data import BatchStream
from clipmat.training.loop import build_model, lr_factor, param_groups, train

SIZE = 48


def _cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(
        image_size=SIZE,
        batch_size=8,
        steps=4,
        lr=2e-3,
        lr_image=5e-4,
        warmup_steps=2,
        out_dir=str(tmp_path / "run"),
        log_every=1,
        progress=False,
        threads=1,
    )
    return TrainConfig.from_dict({**base, **kw})


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('steps = 7\nsetting = "keyword"\n[model_overrides]\npopup = false\n')
    cfg = load_config(path, ["batch_size=3", "model_overrides.details=false", "out_dir=x"])
    assert (cfg.steps, cfg.batch_size, cfg.setting, cfg.out_dir) == (7, 3, "keyword", "x")
    assert cfg.model_overrides == {"popup": False, "details": False}
    with pytest.raises(ValueError, match="unknown training config keys"):
        load_config(None, ["stepz=3"])
    with pytest.raises(ValueError, match="key=value"):
        load_config(None, ["steps"])
    with pytest.raises(ValueError, match="setting must be one of"):
        load_config(None, ["setting=both"])
    with pytest.raises(ValueError, match=".json or .toml"):
        (tmp_path / "c.ini").write_text("")
        load_config(tmp_path / "c.ini")


def test_param_groups_and_freezing(tmp_path):
    cfg = _cfg(tmp_path)
    model = build_model(cfg)
    groups = param_groups(model, cfg)
    assert {g["lr"] for g in groups} == {cfg.lr, cfg.lr_image}
    in_groups = {id(p) for g in groups for p in g["params"]}
    assert id(model.prompt.context) in in_groups
    assert not any(id(p) in in_groups for p in model.backbone.text_parameters())
    visual = {id(p) for p in model.backbone.clip.visual.parameters()}
    assert all(g["lr"] == cfg.lr_image for g in groups if id(g["params"][0]) in visual)
    assert lr_factor(0, cfg) == 0.5 and lr_factor(cfg.steps, cfg) == pytest.approx(cfg.min_lr_ratio)


def test_batches_are_deterministic_and_flip_swaps_words(tmp_path):
    cfg = _cfg(tmp_path, setting="expression")
    a, b = BatchStream(cfg, SIZE, 0, 0).batch(3), BatchStream(cfg, SIZE, 0, 0).batch(3)
    assert torch.equal(a["images"], b["images"]) and a["texts"] == b["texts"]
    assert a["images"].shape == (8, 3, SIZE, SIZE) and a["alphas"].shape == (8, 1, SIZE, SIZE)
    other = BatchStream(cfg, SIZE, 1, 0).batch(3)
    assert not torch.equal(a["images"], other["images"])
    noflip = BatchStream(_cfg(tmp_path, setting="expression", flip=False), SIZE, 0, 0).batch(3)
    flipped = [i for i in range(8) if not torch.equal(a["images"][i], noflip["images"][i])]
    assert flipped, "some samples should be flipped"
    for i in flipped:
        assert torch.equal(a["images"][i], noflip["images"][i].flip(-1))
        if "left" in noflip["texts"][i]:
            assert "right" in a["texts"][i]


def test_short_run_learns_and_beats_untrained(tmp_path):
    torch.manual_seed(0)
    cfg = _cfg(tmp_path, steps=40, setting="keyword", log_every=5, lr=3e-3, min_lr_ratio=0.5)
    untrained = build_model(cfg).eval()
    summary = train(cfg)
    assert summary["step"] == 40
    assert summary["last_loss"] < 0.8 * summary["first_loss"]
    items = list(miniworld_items("keyword", images=8, size=SIZE, seed=0))
    before = evaluate(
        predictor_fn(CLIPMatPredictor(untrained, device="cpu"), "keyword"), items, fast=True
    )
    trained = CLIPMatPredictor(load_model(summary["checkpoint"]), device="cpu")
    after = evaluate(predictor_fn(trained, "keyword"), items, fast=True)
    assert after["mad"] < 0.6 * before["mad"]
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20, 25, 30, 35, 40]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["steps"] == 40 and saved["model"]["name"] == "clipmat-mini"


def test_resume_continues_from_saved_step(tmp_path, capsys):
    out = tmp_path / "run"
    args = [f"image_size={SIZE}", f"out_dir={out}"]
    args += "batch_size=4 warmup_steps=1 log_every=1 progress=false threads=1".split()
    assert train_main([*args, "steps=3"]) == 0
    assert checkpoint_step(out / "last.safetensors") == 3
    first = load_model(out / "last.safetensors").state_dict()
    assert train_main([*args, "steps=5"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 5
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    assert checkpoint_step(out / "last.safetensors") == 5
    second = load_model(out / "last.safetensors").state_dict()
    assert not torch.equal(first["prompt.context"], second["prompt.context"])
    # already complete: a third call trains nothing more
    assert train_main([*args, "steps=5"]) == 0
    assert checkpoint_step(out / "last.safetensors") == 5


def test_init_from_a_model_without_a_new_module(tmp_path):
    """Fine-tuning may add the full-resolution level to a trained model: the new modules are
    named in a warning; a checkpoint with modules the config lacks is refused."""
    without, with_level = {"details_full_res": 0}, {"details_full_res": 4}
    plain_cfg = _cfg(tmp_path, steps=1, out_dir=str(tmp_path / "plain"), model_overrides=without)
    plain = train(plain_cfg)["checkpoint"]
    with pytest.warns(UserWarning, match="details.full_res.convs.0.0.*head0"):
        model = build_model(_cfg(tmp_path, init=plain, model_overrides=with_level))
    source = load_model(plain).state_dict()
    assert torch.equal(model.state_dict()["prompt.context"], source["prompt.context"])
    big_cfg = _cfg(tmp_path, steps=1, out_dir=str(tmp_path / "big"), model_overrides=with_level)
    big = train(big_cfg)["checkpoint"]
    with pytest.raises(ValueError, match="no place for"):
        build_model(_cfg(tmp_path, init=big, model_overrides=without))


def test_cli_rejects_bad_override(capsys):
    with pytest.raises(SystemExit):
        train_main(["batch_size=0"])
    assert "batch_size" in capsys.readouterr().err


def test_export_writes_half_weights_with_licence(tmp_path):
    from clipmat.pretrained.weights_io import load_state_dict, sha256_file
    from clipmat.training.export import export_weights

    summary = train(_cfg(tmp_path, steps=1))
    path, digest = export_weights(
        summary["checkpoint"], tmp_path / "w.safetensors", licence="L", command="C", fusion="argmax"
    )
    state, meta = load_state_dict(path)
    assert meta["licence"] == "L" and meta["command"] == "C"
    assert state["prompt.context"].dtype == torch.float16
    assert digest == sha256_file(path)
    model = load_model(path)
    assert model.cfg.fusion == "argmax" and model.prompt.context.dtype == torch.float32
    with pytest.raises(ValueError, match="fusion"):
        export_weights(
            summary["checkpoint"], tmp_path / "x.safetensors", licence="", command="", fusion="max"
        )


def test_stop_step_keeps_the_schedule(tmp_path):
    summary = train(_cfg(tmp_path, steps=10, stop_step=2))
    assert summary["step"] == 2
    assert checkpoint_step(summary["checkpoint"]) == 2


def test_batches_from_a_refmatte_folder(tmp_path):
    """The generator's RefMatte-layout output feeds training through the data package's loader."""
    from clipmat.data.miniworld import MiniWorld
    from clipmat.data.refmatte import write_scenes

    world = MiniWorld("train", 64, 0)
    write_scenes([world.scene(i) for i in range(3)], tmp_path / "data", "train")
    cfg = _cfg(tmp_path, data="refmatte", data_root=str(tmp_path / "data"), batch_size=6)
    batch = BatchStream(cfg, SIZE, rank=0, start_step=0).batch(0)
    assert batch["images"].shape == (6, 3, SIZE, SIZE) and batch["alphas"].shape == (
        6,
        1,
        SIZE,
        SIZE,
    )
    assert all(a.max() > 0.5 for a in batch["alphas"])  # each sample holds its entity
    assert set(batch["settings"]) <= {"keyword", "expression"} and all(batch["texts"])
    again = BatchStream(cfg, SIZE, rank=0, start_step=0).batch(0)
    assert batch["texts"] == again["texts"] and torch.equal(batch["images"], again["images"])

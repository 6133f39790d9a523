"""Evaluation: metrics over samples, the RefMatte folder reader, the CLI's table and JSON."""

import ast
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import clipmat
from clipmat.evaluation.evaluate import (
    evaluate,
    indexed_folder_items,
    main,
    miniworld_items,
    shuffle_texts,
)

KEYS = {"n", "sad", "mse", "mad", "grad", "conn", "grounding_accuracy"}


def _write_folder(root, rng):
    """Two images in the RefMatte layout, one with two entities."""
    (root / "test" / "img").mkdir(parents=True)
    (root / "test" / "mask").mkdir(parents=True)
    labels = {}
    for name, n in (("a", 1), ("b", 2)):
        img = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "test" / "img" / f"{name}.jpg"), img)
        for k in range(n):
            mask = np.zeros((40, 60), np.uint8)
            mask[5:20, 5 + 25 * k : 25 + 25 * k] = 255
            cv2.imwrite(str(root / "test" / "mask" / f"{name}_{k}.png"), mask)
            labels[f"{name}_{k}"] = {
                "image_name": name,
                "keyword": f"thing{k}",
                "expressions": [f"the thing {k} {j}" for j in range(4)],
            }
    (root / "refmatte_test_label.json").write_text(json.dumps(labels))


def folder_items(root, split: str, setting: str):
    """The items of a RefMatte-layout folder, without their indices."""
    return (item for _, item in indexed_folder_items(root, split, setting))


def test_folder_items_and_perfect_predictor(tmp_path, rng):
    _write_folder(tmp_path, rng)
    kw = list(folder_items(tmp_path, "test", "keyword"))
    assert [len(p) for _, p in kw] == [1, 2] and kw[0][0].shape == (40, 60, 3)
    ex = list(folder_items(tmp_path, "test", "expression"))
    assert sum(len(p) for _, p in ex) == 12
    truth = {t: a for _, pairs in ex for t, a in pairs}
    perfect = evaluate(lambda img, texts: [truth[t] for t in texts], ex)
    assert perfect["n"] == 12 and perfect["grounding_accuracy"] == 1.0 and perfect["sad"] == 0.0
    empty = evaluate(lambda img, texts: [np.zeros((40, 60), np.float32) for _ in texts], ex)
    assert empty["grounding_accuracy"] == 0.0
    assert empty["sad"] == pytest.approx(15 * 20 / 1000, rel=1e-3)
    assert empty["mad"] == pytest.approx(300 / 2400, rel=1e-3)


def test_shuffle_moves_texts_not_truths(tmp_path, rng):
    _write_folder(tmp_path, rng)
    items = list(folder_items(tmp_path, "test", "expression"))
    shuffled = shuffle_texts(items, np.random.default_rng(0))
    assert sorted(t for _, p in shuffled for t, _ in p) == sorted(t for _, p in items for t, _ in p)
    assert [t for _, p in shuffled for t, _ in p] != [t for _, p in items for t, _ in p]
    assert all(
        np.array_equal(a, b)
        for (_, p), (_, q) in zip(items, shuffled)
        for (_, a), (_, b) in zip(p, q)
    )


def test_miniworld_items_settings():
    kw = list(miniworld_items("keyword", images=3, size=48))
    ex = list(miniworld_items("expression", images=3, size=48))
    assert sum(len(p) for _, p in ex) >= 4 * sum(len(p) for _, p in kw)
    assert all(img.shape == (48, 48, 3) for img, _ in ex)


def test_cli_writes_table_and_json(tmp_path, rng, capsys):
    torch.manual_seed(0)
    ckpt = clipmat.save_model(clipmat.create_model("clipmat-mini"), tmp_path / "m.safetensors")
    _write_folder(tmp_path / "data", rng)
    out = tmp_path / "out.json"
    common = ["--predictor", str(ckpt), "--device", "cpu"]
    folder = ["--data", str(tmp_path / "data"), "--split", "test", "--setting", "keyword"]
    assert main([*common, *folder, "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| keyword | 3 |" in table and "grounding" in table
    result = json.loads(out.read_text())
    assert KEYS <= set(result) and result["n"] == 3
    assert 0.0 <= result["grounding_accuracy"] <= 1.0 and result["mad"] > 0
    out2 = tmp_path / "mw.json"
    mini_world = ["--mini-world", "--images", "2", "--size", "48", "--setting", "expression"]
    main([*common, *mini_world, "--json", str(out2)])
    assert json.loads(out2.read_text())["n"] >= 8


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--predictor", "x", "--mini-world", "--data", str(tmp_path)])
    assert "exactly one of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--predictor", str(tmp_path / "missing.safetensors"), "--mini-world"])
    assert "cannot load predictor" in capsys.readouterr().err


def test_rw100_uses_the_fixed_expression(tmp_path, rng):
    """RW100 layout: image/ folder, its own label file and eval_index_expression.json."""
    root = tmp_path / "RefMatte_RW_100"
    (root / "image").mkdir(parents=True)
    (root / "mask").mkdir()
    labels = {}
    for name in ("p", "q"):
        cv2.imwrite(
            str(root / "image" / f"{name}.jpg"), rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)
        )
        mask = np.zeros((30, 30), np.uint8)
        mask[5:25, 5:25] = 255
        cv2.imwrite(str(root / "mask" / f"{name}_0.png"), mask)
        labels[f"{name}_0"] = {
            "image_name": name,
            "expressions": [f"{name} e{j}" for j in range(4)],
        }
    (root / "refmatte_rw100_label.json").write_text(json.dumps(labels))
    (root / "eval_index_expression.json").write_text(json.dumps({"p": 3, "q": 1}))
    items = list(folder_items(root, "rw100", "rw100"))
    assert sorted(t for _, pairs in items for t, _ in pairs) == ["p e3", "q e1"]
    every = list(folder_items(root, "rw100", "expression"))
    assert sum(len(pairs) for _, pairs in every) == 8


def test_selection_accuracy_separates_grounding_from_edges(tmp_path, rng):
    """A matte on the right entity but with poor edges misses IoU > 0.5 yet is still selected."""
    _write_folder(tmp_path, rng)
    items = [it for it in folder_items(tmp_path, "test", "keyword") if len(it[1]) == 2]
    ((image, pairs),) = items
    (_, first), (_, second) = pairs
    blurry = lambda a: np.clip(a * 0.3, 0, 1).astype(np.float32)  # noqa: E731
    right = evaluate(lambda img, texts: [blurry(first), blurry(second)], items)
    assert right["grounding_accuracy"] == 0.0 and right["selection_accuracy"] == 1.0
    swapped = evaluate(lambda img, texts: [second, first], items)
    assert swapped["selection_accuracy"] == 0.0 and swapped["grounding_accuracy"] == 0.0
    single = evaluate(
        lambda img, texts: [gt for _, gt in pairs][: len(texts)],
        list(folder_items(tmp_path, "test", "keyword"))[:1],
    )
    assert np.isnan(single["selection_accuracy"])


def test_per_text_groups_samples_by_keyword(tmp_path, rng):
    """thing0 is in both images (matted perfectly), thing1 in one (left empty)."""
    _write_folder(tmp_path, rng)
    items = list(folder_items(tmp_path, "test", "keyword"))
    truth = {(id(img), t): a for img, pairs in items for t, a in pairs}

    def predict(img, texts):
        return [
            truth[id(img), t] if t == "thing0" else np.zeros((40, 60), np.float32) for t in texts
        ]

    result = evaluate(predict, items, per_text=True)
    assert result["grounding_accuracy"] == pytest.approx(2 / 3)
    per = result["per_text"]
    assert sorted(per) == ["thing0", "thing1"]
    assert per["thing0"]["n"] == 2 and per["thing0"]["grounding_accuracy"] == 1.0
    assert per["thing0"]["sad"] == 0.0 and per["thing0"]["selection_accuracy"] == 1.0
    assert per["thing1"]["n"] == 1 and per["thing1"]["grounding_accuracy"] == 0.0
    assert per["thing1"]["selection_accuracy"] == 0.0
    assert "per_text" not in evaluate(predict, items)


def test_cli_per_keyword_table_and_json(tmp_path, rng, capsys):
    torch.manual_seed(0)
    ckpt = clipmat.save_model(clipmat.create_model("clipmat-mini"), tmp_path / "m.safetensors")
    _write_folder(tmp_path / "data", rng)
    out = tmp_path / "out.json"
    base = ["--predictor", str(ckpt), "--data", str(tmp_path / "data"), "--device", "cpu"]
    assert main([*base, "--per-keyword", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        "| keyword | n |" in printed and "| thing0 | 2 |" in printed and "| thing1 | 1 |" in printed
    )
    result = json.loads(out.read_text())
    assert {k: v["n"] for k, v in result["per_keyword"].items()} == {"thing0": 2, "thing1": 1}
    with pytest.raises(SystemExit):
        main([*base, "--per-keyword", "--setting", "expression"])
    assert "use it with --setting keyword" in capsys.readouterr().err


def test_inference_packages_hold_no_evaluation_code():
    """No module of the zero-shot inference package imports evaluation, data or training code,
    not even inside a function (the runtime import checks only see what a predict loads)."""
    forbidden = (
        "clipmat.evaluation.evaluate",
        "clipmat.data",
        "clipmat.training.cli",
        "clipmat.training.losses",
    )
    package = Path(clipmat.__file__).parent / "zeroshot"
    found = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            found += [f"{path.name}: {n}" for n in names if n.startswith(forbidden)]
    assert found == []

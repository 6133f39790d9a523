"""RefMatte loader and writer: generator round trip, released layouts, RW100, clear errors."""

import json

import numpy as np
import pytest
from PIL import Image

from clipmat.data import MiniWorld, RefMatte
from clipmat.data.foregrounds import load_foreground_pool
from clipmat.data.generate import main as generate_main


def _write_image(path, h=24, w=32, value=90):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)


def _write_mask(path, h=24, w=32, value=200):
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((h, w), np.uint8)
    m[4:12, 5:20] = value
    Image.fromarray(m).save(path)


def _released(tmp_path, label_inside_split=False):
    """A small hand-made folder in the released layout (nested RefMatte/RefMatte)."""
    base = tmp_path / "RefMatte" / "RefMatte"
    for name in ("a1", "b2"):
        _write_image(base / "train" / "img" / f"{name}.jpg")
        for k in range(2):
            _write_mask(base / "train" / "mask" / f"{name}_{k}.png", value=100 + 50 * k)
    labels = {
        "a1_0": {"image_name": "a1", "expressions": ["the gray cat", "the cat on the left"]},
        "a1_1": {"image_name": "a1", "category": "dog", "expressions": ["the dog"]},
        "b2_0": {"image_name": "b2", "keyword": "teddy bear", "expressions": ["the teddy"]},
        "b2_1": {"expressions": ["the lady in white"]},  # image_name from the mask stem
    }
    where = base / "train" if label_inside_split else base
    (where / "refmatte_train_label.json").write_text(json.dumps(labels))
    return tmp_path


def test_loader_reads_generator_output(tmp_path):
    args = "--mini-world --split test --images 4 --seed 3 --size 64 --no-progress".split()
    generate_main([*args, "--out", str(tmp_path)])
    assert len(list((tmp_path / "test" / "img").glob("*.jpg"))) == 4
    labels = json.loads((tmp_path / "refmatte_test_label.json").read_text())
    assert all(set(v) >= {"image_name", "keyword", "expressions"} for v in labels.values())
    data = RefMatte(tmp_path, "test", setting="expression")
    world = MiniWorld("test", 64, seed=3)
    n_entities = sum(len(world.scene(i).entities) for i in range(4))
    assert len(data.records) == n_entities and len(data) == 4 * n_entities
    for rec_idx in range(0, len(data), 4):
        sample = data[rec_idx]
        scene = world.scene(int(sample["image_name"].rsplit("_", 1)[1]))
        entity = scene.entities[int(sample["entity"].rsplit("_", 1)[1])]
        assert sample["expressions"] == entity.expressions
        assert sample["keyword"] == entity.keyword
        assert np.abs(sample["alpha"] - entity.alpha).max() <= 0.5 / 255 + 1e-6
        assert np.abs(sample["image"].astype(float) - scene.image).mean() < 4.0  # JPEG
    keyword = RefMatte(tmp_path, "test", setting="keyword")
    assert 0 < len(keyword) <= n_entities
    assert all(keyword[i]["text"] == keyword[i]["keyword"] for i in range(len(keyword)))


@pytest.mark.parametrize("inside", [False, True])
def test_released_layout_loads(tmp_path, inside):
    root = _released(tmp_path, label_inside_split=inside)
    data = RefMatte(root, "train", setting="keyword")
    keywords = {rec.entity: rec.keyword for rec in data.records}
    assert keywords == {
        "a1_0": "the gray cat",
        "a1_1": "dog",
        "b2_0": "teddy bear",
        "b2_1": "the lady in white",
    }
    s = data[0]
    assert s["image"].shape == (24, 32, 3) and s["alpha"].shape == (24, 32)
    assert s["alpha"].max() == pytest.approx(100 / 255)
    assert s["image_name"] == "a1" and s["setting"] == "keyword"
    expr = RefMatte(root, "train", setting="expression")
    assert len(expr) == 5
    assert RefMatte(root, "train", setting="expression", expression=0)[1]["text"] == "the dog"


def test_rw100_eval_index(tmp_path):
    base = tmp_path / "RefMatte_RW_100"
    _write_image(base / "image" / "p1.jpg")
    _write_mask(base / "mask" / "p1_0.png")
    exprs = ["basic", "absolute", "relative", "the girl enjoying the breeze"]
    (base / "refmatte_rw100_label.json").write_text(
        json.dumps({"p1_0": {"image_name": "p1", "expressions": exprs}})
    )
    (base / "eval_index_expression.json").write_text(json.dumps({"p1": 3}))
    data = RefMatte(tmp_path, "rw100", setting="expression", expression="eval")
    assert len(data) == 1 and data[0]["text"] == "the girl enjoying the breeze"


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RefMatte(tmp_path / "nowhere", "train")
    (tmp_path / "train" / "img").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="mask"):
        RefMatte(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match=r"no test/ folder found \(tried"):
        RefMatte(tmp_path, "test")


def test_mask_without_image_is_named(tmp_path):
    root = _released(tmp_path)
    (root / "RefMatte" / "RefMatte" / "train" / "img" / "b2.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"b2_0\.png has no image"):
        RefMatte(root, "train")


def test_malformed_json_is_named(tmp_path):
    root = _released(tmp_path)
    label = root / "RefMatte" / "RefMatte" / "refmatte_train_label.json"
    label.write_text('{"a1_0": {"image_name": "a1",')
    with pytest.raises(ValueError, match="refmatte_train_label.json: malformed JSON"):
        RefMatte(root, "train")
    label.write_text(json.dumps({"a1_0": {"image_name": "a1"}}))
    with pytest.raises(ValueError, match="'a1_0' needs a non-empty 'expressions'"):
        RefMatte(root, "train")


def test_bad_setting_and_expression_index(tmp_path):
    root = _released(tmp_path)
    with pytest.raises(ValueError, match="setting"):
        RefMatte(root, "train", setting="prompt")
    with pytest.raises(ValueError, match="expression must be"):
        RefMatte(root, "train", setting="expression", expression=3)


def _foreground_folder(tmp_path):
    fg = tmp_path / "fg"
    rng = np.random.default_rng(0)
    for cat, colour in (
        ("teddy_bear", (150, 90, 40)),
        ("cat", (200, 200, 200)),
        ("dog", (20, 20, 20)),
    ):
        for j in range(2):
            rgba = np.zeros((50, 40, 4), np.uint8)
            rgba[..., :3] = colour
            rgba[5:45, 5:35, 3] = 255
            rgba[5:45, 5:8, 3] = rng.integers(0, 255, (40, 3))  # a soft edge
            (fg / cat).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgba, "RGBA").save(fg / cat / f"{j}.png")
    labels = {
        "categories": {"teddy bear": {"synonyms": ["teddy"]}},
        "foregrounds": {"dog/0.png": {"salient": False}},
    }
    (fg / "labels.json").write_text(json.dumps(labels))
    bg = tmp_path / "bg"
    bg.mkdir()
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(bg / "x.jpg")
    return fg, bg


def test_foreground_folder_command_line(tmp_path):
    fg, bg = _foreground_folder(tmp_path)

    def run(out):
        args = ["--foregrounds", str(fg), "--backgrounds", str(bg), "--out", str(out)]
        args += "--split train --images 3 --seed 1 --holdout-fraction 0 --no-progress".split()
        generate_main(args)
        return json.loads((out / "refmatte_train_label.json").read_text())

    first = run(tmp_path / "out")
    data = RefMatte(tmp_path / "out", "train", setting="keyword")
    assert {r.keyword for r in data.records} <= {"teddy bear", "cat", "dog"}
    assert len(data) == len(data.records)  # distinct categories per image
    assert run(tmp_path / "again") == first  # deterministic for a seed
    a = np.asarray(Image.open(tmp_path / "out" / "train" / "img" / "train_1_000000.jpg"))
    b = np.asarray(Image.open(tmp_path / "again" / "train" / "img" / "train_1_000000.jpg"))
    np.testing.assert_array_equal(a, b)


def test_foreground_pool_split_and_errors(tmp_path):
    fg, _ = _foreground_folder(tmp_path)
    train, synonyms = load_foreground_pool(fg, "train", holdout_fraction=0.85)
    test, _ = load_foreground_pool(fg, "test", holdout_fraction=0.85)
    assert synonyms == {"teddy bear": ["teddy"]}
    assert not {i.relpath for i in train} & {i.relpath for i in test}
    assert len(train) + len(test) == 6
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(fg / "cat" / "flat.png")
    items, _ = load_foreground_pool(fg, "train")
    flat = next(i for i in items if i.relpath == "cat/flat.png")
    with pytest.raises(ValueError, match="flat.png has no alpha"):
        flat.load()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_foreground_pool(tmp_path / "none")

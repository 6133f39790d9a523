"""Mini world: determinism, honest train/test split, fine structure, sample views, torch wrapper."""

import numpy as np
import pytest

from clipmat.data import SETTINGS, MiniWorld
from clipmat.data.miniworld import load_world_config


def test_scene_is_deterministic_per_index():
    a, b = MiniWorld("train", 96, seed=1), MiniWorld("train", 96, seed=1)
    for i in (0, 7, 3):
        sa, sb = a.scene(i), b.scene(i)
        np.testing.assert_array_equal(sa.image, sb.image)
        assert [e.expressions for e in sa.entities] == [e.expressions for e in sb.entities]
        for x, y in zip(sa.entities, sb.entities):
            np.testing.assert_array_equal(x.alpha, y.alpha)
    assert not np.array_equal(a.scene(0).image, MiniWorld("train", 96, seed=2).scene(0).image)
    assert not np.array_equal(a.scene(0).image, MiniWorld("test", 96, seed=1).scene(0).image)
    s1, s2 = a.sample(4, "expression"), b.sample(4, "expression")
    assert s1["text"] == s2["text"] and s1["entity"] == s2["entity"]


def test_world_has_enough_categories_synonyms_and_colours():
    cfg = load_world_config()
    assert len(cfg["categories"]) >= 12
    assert all(len(c["synonyms"]) >= 2 for c in cfg["categories"])
    assert len(cfg["palette"]) >= 8
    assert set(cfg["textures"]["train"]) != set(cfg["textures"]["test"])
    assert not set(cfg["photo_backgrounds"]["train"]) & set(cfg["photo_backgrounds"]["test"])
    train_kinds = set(cfg["procedural_backgrounds"]["train"])
    assert not train_kinds & set(cfg["procedural_backgrounds"]["test"])


def test_heldout_pairs_and_backgrounds_only_in_test():
    cfg = load_world_config()
    held = {(k, c) for k, cols in cfg["heldout_colours"].items() for c in cols}
    seen = {"train": set(), "test": set()}
    bgs = {"train": set(), "test": set()}
    for split in ("train", "test"):
        world = MiniWorld(split, 64, seed=0)
        for i in range(60):
            scene = world.scene(i)
            bgs[split].add(scene.background_name)
            seen[split] |= {(e.category, e.attributes["colour"]) for e in scene.entities}
    assert not seen["train"] & held
    assert seen["test"] & held
    assert not bgs["train"] & bgs["test"]


def test_mattes_have_fine_structure():
    world = MiniWorld("train", 128, seed=0)
    fractional = {}
    rng = np.random.default_rng(0)
    for cat in world.categories:
        fg = world.entity(cat, world.allowed_colours(cat["keyword"])[0], rng)
        inside = fg.alpha[fg.alpha > 0]
        fractional[cat["renderer"]] = float(((inside > 0.05) & (inside < 0.95)).mean())
    for soft in ("furball", "dandelion", "smoke", "bubble", "net", "cloud", "bag"):
        assert fractional[soft] > 0.2, (soft, fractional[soft])
    assert fractional["star"] < 0.2  # hard shapes stay mostly binary


@pytest.mark.parametrize("setting", SETTINGS)
def test_sample_dict(setting):
    world = MiniWorld("train", 96, seed=0)
    for i in range(8):
        s = world.sample(i, setting)
        assert s["image"].shape == (96, 96, 3) and s["image"].dtype == np.uint8
        assert s["alpha"].shape == (96, 96) and s["alpha"].dtype == np.float32
        assert 0 <= s["alpha"].min() and s["alpha"].max() <= 1 and s["alpha"].max() > 0.5
        assert s["setting"] == setting and len(s["expressions"]) == 4
        assert s["entity"].startswith(s["image_name"] + "_")
        scene = world.scene(i, allow_shared=setting != "keyword")
        assert scene.image_name == s["image_name"]
        k = int(s["entity"].rsplit("_", 1)[1])
        np.testing.assert_array_equal(s["alpha"], scene.entities[k].alpha)
        if setting == "keyword":
            assert s["text"] == s["keyword"]
            assert [e.keyword for e in scene.entities].count(s["keyword"]) == 1
        else:
            assert s["text"] in s["expressions"]


def test_caption_pairs():
    world = MiniWorld("train", 64, seed=0)
    image, caption = world.caption_pair(3)
    assert image.shape == (64, 64, 3) and caption.startswith("the ")
    image2, caption2 = world.caption_pair(3)
    assert caption == caption2 and np.array_equal(image, image2)
    scene_img, scene_caption = world.caption_pair(3, mode="scene")
    assert " and " in scene_caption
    _, keyword = world.caption_pair(3, keyword=True)
    assert keyword in {c["keyword"] for c in world.categories} and keyword != caption
    _, scene_keywords = world.caption_pair(3, mode="scene", keyword=True)
    assert scene_keywords == " and ".join(e.keyword for e in world.scene(3).entities)
    with pytest.raises(ValueError, match="mode"):
        world.caption_pair(0, mode="crop")


def test_bad_world_arguments():
    with pytest.raises(ValueError, match="split"):
        MiniWorld("val")
    with pytest.raises(ValueError, match="size"):
        MiniWorld("train", size=8)

"""Zero-shot predictor: dense similarity, regions, prompts, the full pipeline, loading, registry."""

import json
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from helpers import StandInCLIP
from torch import nn

import clipmat
from clipmat.evaluation.zeroshot import evaluate_miniworld
from clipmat.factory import get_model_config
from clipmat.model.backbone import CLIPBackbone, bpe_encode
from clipmat.pretrained import hub, weights_io
from clipmat.zeroshot import (
    ZeroShotConfig,
    ZeroShotPredictor,
    create_backbone,
    dense,
    load_clip_backbone,
    prompts,
)
from clipmat.zeroshot import predictor as zeroshot_predictor
from clipmat.zeroshot.predictor import isolate_region

# ---------------------------------------------------------------- dense similarity and regions


def _unit(*v: float) -> torch.Tensor:
    t = torch.tensor(v, dtype=torch.float32)
    return t / t.norm()


def test_dense_similarity_picks_the_region_of_the_phrase():
    target, other, bg = _unit(1, 0, 0, 0), _unit(0, 1, 0, 0), _unit(0, 0, 1, 0)
    patches = bg.expand(10, 12, 4).clone()
    patches[2:5, 1:4] = target  # the referred thing
    patches[6:9, 7:11] = other  # a distractor
    classes = torch.stack([_unit(0.9, 0.1, 0.1, 0.1), bg])
    prob = dense.class_probabilities(patches, classes, logit_scale=50.0)
    assert prob.shape == (2, 10, 12)
    torch.testing.assert_close(prob.sum(0), torch.ones(10, 12))
    cos = dense.cosine_map(patches, classes[:1])[0].numpy()
    regions = dense.find_regions(prob[0].numpy(), cos, logit_scale=50.0)
    # The distractor is nearer the phrase than the background is, so it is a candidate too,
    # but a hopeless one.
    assert len(regions) == 2
    r = regions[0]
    assert r.bbox == (1, 2, 4, 5) and r.area == 9 and r.probability > 0.9
    assert r.share > 0.99 and regions[1].bbox == (7, 6, 11, 9)
    # With a distractor prompt that describes it, it no longer matches at all.
    prob = dense.class_probabilities(patches, torch.cat([classes, other[None]]), 50.0)
    regions = dense.find_regions(prob[0].numpy(), cos, logit_scale=50.0)
    assert [r.bbox for r in regions] == [(1, 2, 4, 5)]


def test_regions_are_ranked_and_a_position_word_chooses():
    prob = np.zeros((8, 16), np.float32)
    cos = np.zeros((8, 16), np.float32)
    prob[2:5, 1:4], cos[2:5, 1:4] = 0.9, 0.30  # left, slightly weaker
    prob[3:6, 11:15], cos[3:6, 11:15] = 0.95, 0.31  # right, best
    prob[0, 8], cos[0, 8] = 0.9, 0.5  # a single noisy patch: dropped by min_patches
    regions = dense.find_regions(prob, cos, min_patches=2, logit_scale=10.0)
    assert [r.bbox for r in regions] == [(11, 3, 15, 6), (1, 2, 4, 5)]
    assert sum(r.share for r in regions) == pytest.approx(1.0)
    assert dense.choose_region(regions) == 0
    assert dense.choose_region(regions, prompts.position_preference("the star on the left")) == 1
    assert dense.choose_region(regions, prompts.position_preference("the right star")) == 0
    # A region far behind in score is not chosen by position.
    far = dense.find_regions(prob, cos, min_patches=2, logit_scale=1000.0)
    assert dense.choose_region(far, (0, -1)) == 0
    kept = dense.region_probability(prob, regions, 0, grow=1)
    assert kept[4, 12] == pytest.approx(0.95) and kept[3, 2] == 0 and kept[0, 8] == 0
    assert dense.find_regions(np.zeros((4, 4)), np.zeros((4, 4))) == []
    with pytest.raises(ValueError, match="no region"):
        dense.choose_region([])


def test_prompts():
    assert prompts.split_union("the man, the dog;a cat") == ["the man", "the dog", "a cat"]
    assert prompts.split_union("the cat with white and black fur") == [
        "the cat with white and black fur"
    ]
    with pytest.raises(ValueError, match="no words"):
        prompts.split_union(" , ")
    assert prompts.position_preference("the crescent in the upper part of the image") == (1, -1)
    assert prompts.position_preference("the left lion") == (0, -1)
    assert prompts.position_preference("the star left of the circle") is None
    assert prompts.position_preference("the flower above the pompom") is None
    assert prompts.position_preference("the red star") is None
    assert prompts.expand_templates("the red star", ("a photo of the {}.",)) == [
        "a photo of the red star."
    ]
    ids = prompts.tokenize(["the red star", "x " * 100], 12)
    assert ids.shape == (2, 12) and ids[0, 0] == 49406 and ids[0, 4] == 49407
    assert ids[0, 5:].eq(0).all() and ids[1, -1] == 49407


# ---------------------------------------------------------------- dense features of a real CLIP


def test_encode_dense_matches_the_towers(tiny_model):
    """ClearCLIP's value-path ablation, recomputed from the block before the last one."""
    bb = tiny_model.backbone  # random CLIP towers, as create_backbone makes them
    layers = int(bb.cfg.vision["layers"])
    before = CLIPBackbone(bb.cfg, feature_layers=(layers - 1,))
    before.load_state_dict(bb.state_dict())
    x = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        tokens = before.encode_image_levels(x)[0]  # (B, 1 + h*w, Dv)
        last = bb.clip.visual.transformer.resblocks[-1]
        dv = tokens.shape[-1]
        w_v, b_v = last.attn.in_proj_weight[2 * dv :], last.attn.in_proj_bias[2 * dv :]
        v = last.attn.out_proj(nn.functional.linear(last.ln_1(tokens), w_v, b_v))
        expected = (bb.clip.visual.ln_post(v[:, 1:]) @ bb.clip.visual.proj).reshape(2, 6, 8, -1)
        got = bb.encode_dense(x, method="value-noresidual")
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        clear = bb.encode_dense(x, method="clearclip")
        assert clear.shape == got.shape and not torch.allclose(clear, got)
        assert bb.encode_dense(x, method="sclip").shape == got.shape
    with pytest.raises(ValueError, match="multiple of the patch size"):
        bb.encode_dense(torch.zeros(1, 3, 30, 32))
    with pytest.raises(ValueError, match="method must be one of"):
        bb.encode_dense(x, method="attention")


def test_plain_dense_features_average_to_the_image_embedding():
    """In a CLIP that pools by averaging patch tokens (the mini world's), the plain dense
    features are exactly the pieces of the image embedding."""
    torch.manual_seed(1)
    towers = get_model_config("clipmat-mini").clip
    assert towers.vision["pool_type"] == "avg"
    bb = create_backbone(towers).eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        dense = bb.encode_dense(x, method="plain")  # (2, 12, 12, E)
        torch.testing.assert_close(dense.mean(dim=(1, 2)), bb.clip.encode_image(x))


@pytest.mark.parametrize("towers", ["clipmat-mini", "clipmat-tiny"])  # avg and class token
def test_pooled_embedding_matches_open_clip_and_takes_other_sizes(towers):
    torch.manual_seed(2)
    cfg = get_model_config(towers).clip
    bb = create_backbone(cfg).eval()
    side = cfg.vision["image_size"]
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        torch.testing.assert_close(bb.encode_pooled(x), bb.clip.encode_image(x))
        small = bb.encode_pooled(torch.randn(2, 3, side // 2, side // 2))
    assert small.shape == (2, cfg.embed_dim) and torch.isfinite(small).all()


def test_short_text_encoding_matches_open_clip(tiny_model):
    p = ZeroShotPredictor(tiny_model.backbone, device="cpu")
    ids = prompts.tokenize(["the red star", "a photo of the cat with white and black fur!!"], 77)
    with torch.no_grad():
        torch.testing.assert_close(p.encode_text(ids), tiny_model.backbone.clip.encode_text(ids))


def test_random_clip_predictor_mechanics(tiny_model):
    p = ZeroShotPredictor(
        tiny_model.backbone, name="zs", device="cpu", config=ZeroShotConfig(threshold=0.2)
    )
    photo = np.random.default_rng(0).integers(0, 256, (53, 77, 3), dtype=np.uint8)
    r = p.predict(photo, "the red star")
    assert r.alpha.shape == (53, 77) and r.alpha.dtype == np.float32
    assert 0 <= r.alpha.min() and r.alpha.max() <= 1 and np.isfinite(r.alpha).all()
    assert r.trimap.shape == (53, 77) and set(np.unique(r.trimap)) <= {0, 128, 255}
    assert 0 <= r.confidence <= 1 and r.predictor == "zs" and not r.image_cached
    rs = p.predict(photo, ["cat", "the man, the dog"], setting="expression")
    assert [x.text for x in rs] == ["cat", "the man, the dog"] and rs[0].image_cached
    assert all(x.setting == "expression" for x in rs)
    assert p.stats["image_encodes"] == 1 and p.stats["cache_hits"] == 1
    p.clear_cache()
    p.predict(photo, "cat")
    assert p.stats["image_encodes"] == 2
    with pytest.raises(TypeError, match="string or a list"):
        p.predict(photo, 3)
    with pytest.raises(ValueError, match="non-empty"):
        p.predict(photo, ["cat", " "])
    with pytest.raises(ValueError, match="setting"):
        p.predict(photo, "cat", setting="fancy")
    with pytest.raises(ValueError, match="method"):
        ZeroShotConfig(method="best")


# ---------------------------------------------------------------- the pipeline, with a known answer


class ColourCLIP(StandInCLIP):
    """A stand-in CLIP whose embeddings are known: 'red', 'blue' or background, by colour."""

    def __init__(self) -> None:
        super().__init__()
        self.red, self.blue = bpe_encode("red")[0], bpe_encode("blue")[0]

    def _encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(ids), 3)
        out[:, 2] = 1.0
        out[(ids == self.red).any(1)] = torch.tensor([1.0, 0.0, 0.05])
        out[(ids == self.blue).any(1)] = torch.tensor([0.0, 1.0, 0.05])
        return out

    def encode_pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Whole images: 'red' as much as the red channel jumps between neighbours (stripes), a
        trait no patch mean shows; so scoring crops whole tells apart what the patch map cannot."""
        stripes = (x[:, 0, :, 1:] - x[:, 0, :, :-1]).abs().flatten(1).mean(dim=1)
        return torch.stack([stripes, torch.zeros_like(stripes), torch.full_like(stripes, 0.05)], 1)

    def encode_dense(self, x: torch.Tensor, method: str = "clearclip") -> torch.Tensor:
        cells = nn.functional.avg_pool2d(x, self.patch_size)  # (B, 3, h, w)
        r, g, b = cells[:, 0], cells[:, 1], cells[:, 2]
        red = (r - torch.maximum(g, b)).clamp(0, 1)
        blue = (b - torch.maximum(r, g)).clamp(0, 1)
        return torch.stack([red, blue, (1 - red - blue).clamp(min=0)], dim=-1)


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    image = np.full((128, 192, 3), 128, np.uint8)
    left, right, square = (np.zeros((128, 192), np.uint8) for _ in range(3))
    cv2.circle(left, (40, 50), 20, 1, -1)
    cv2.circle(right, (150, 70), 24, 1, -1)
    cv2.rectangle(square, (70, 85), (110, 120), 1, -1)
    image[left > 0] = (230, 20, 20)
    image[right > 0] = (230, 20, 20)
    image[square > 0] = (20, 30, 230)
    return image, left.astype(bool), right.astype(bool), square.astype(bool)


def _iou(alpha: np.ndarray, mask: np.ndarray) -> float:
    pred = alpha > 0.5
    return float((pred & mask).sum() / (pred | mask).sum())


@pytest.fixture(scope="module")
def colour_predictor() -> ZeroShotPredictor:
    return ZeroShotPredictor(ColourCLIP(), config=ZeroShotConfig(image_size=128), device="cpu")


def test_pipeline_mattes_the_referred_entity(colour_predictor):
    image, left, right, square = _scene()
    r = colour_predictor.predict(image, "the blue thing")
    assert _iou(r.alpha, square) > 0.9 and r.confidence > 0.8
    assert r.alpha[square].mean() > 0.95 and r.alpha[left | right].max() < 0.05
    assert (r.trimap == 128).any()  # the edge was matted, not thresholded
    assert len(r.candidates) == 1 and r.candidates[0].chosen
    x0, y0, x1, y1 = r.candidates[0].box
    assert abs(x0 - 70) <= 8 and abs(y0 - 85) <= 8 and abs(x1 - 111) <= 8 and abs(y1 - 121) <= 8


def test_candidates_position_and_selection(colour_predictor):
    image, left, right, _ = _scene()
    r = colour_predictor.predict(image, "the red thing")
    assert len(r.candidates) == 2
    assert sum(c.chosen for c in r.candidates) == 1
    assert all(0 <= c.score <= 1 and 0 < c.area < 1 for c in r.candidates)
    assert r.confidence < 0.8  # two equally good matches: the grounding is unsure
    on_left = colour_predictor.predict(image, "the red thing on the left")
    assert _iou(on_left.alpha, left) > 0.85
    on_right = colour_predictor.predict(image, "the right red thing")
    assert _iou(on_right.alpha, right) > 0.85
    other = next(i for i, c in enumerate(on_left.candidates) if not c.chosen)
    picked = colour_predictor.predict(image, "the red thing on the left", candidate=other)
    assert _iou(picked.alpha, right) > 0.85
    with pytest.raises(ValueError, match="out of range"):
        colour_predictor.predict(image, "the red thing", candidate=5)


def test_isolate_region_crops_square_around_the_region_and_blurs_the_rest():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (96, 160, 3), dtype=np.uint8)
    mask = np.zeros((12, 20), bool)
    mask[2:5, 3:7] = True  # photo pixels y 16..40, x 24..56
    crop = isolate_region(photo, mask, fill=0.75)
    side = round(32 / 0.75)
    assert crop.shape == (side, side, 3)
    top, left = round(28 - side / 2), round(40 - side / 2)
    assert np.array_equal(crop[16 - top : 40 - top, 24 - left : 56 - left], photo[16:40, 24:56])
    assert np.abs(crop[:2].astype(int) - photo[top : top + 2, left : left + side]).mean() > 20
    edge = np.zeros((12, 20), bool)
    edge[0:2, 18:20] = True  # at the corner: the square moves inside the photo
    assert isolate_region(photo, edge).shape[0] == round(16 / 0.75)
    assert isolate_region(photo, np.ones((12, 20), bool)).shape == (96, 96, 3)


def test_rescore_regions_reorders_and_recomputes_shares():
    image, left, right, _ = _scene()
    grid = [cv2.resize(m.astype(np.uint8), (24, 16)) > 0 for m in (left, right)]
    regions = [
        dense.Region(m, score=s, probability=0.9, share=0.5, centre=(0, 0), bbox=(0, 0, 1, 1))
        for m, s in zip(grid, (0.3, 0.2))
    ]
    out = dense.rescore_regions(regions, [0.1, 0.4], logit_scale=10.0)
    assert [r.score for r in out] == [0.4, 0.1] and out[0].mask is grid[1]
    assert out[0].share == pytest.approx(1 / (1 + np.exp(-3.0))) and sum(
        r.share for r in out
    ) == pytest.approx(1)
    with pytest.raises(ValueError, match="scores"):
        dense.rescore_regions(regions, [0.1])


def test_crop_scores_choose_between_regions_the_patch_map_cannot_tell_apart(monkeypatch):
    image, left, right, _ = _scene()
    ys, xs = np.nonzero(right)
    stripes = (xs // 4) % 2 == 0
    image[ys[stripes], xs[stripes]] = (250, 20, 20)
    image[ys[~stripes], xs[~stripes]] = (150, 20, 20)  # same patch means as a red of 200
    image[left] = (230, 20, 20)  # plain, and redder on average: the patch map prefers it
    dense_only = ZeroShotPredictor(
        ColourCLIP(), config=ZeroShotConfig(image_size=128, crop_weight=0.0), device="cpu"
    )
    assert _iou(dense_only.predict(image, "the red thing").alpha, left) > 0.85
    config = ZeroShotConfig(image_size=128, crop_weight=1.0)
    by_crop = ZeroShotPredictor(ColourCLIP(), config=config, device="cpu").predict(image, "red")
    assert _iou(by_crop.alpha, right) > 0.85
    chosen = next(c for c in by_crop.candidates if c.chosen)
    assert chosen.box[0] > 96  # the right circle's candidate is the chosen one
    # only the dense map's best region is cropped when MAX_CROPS is 1: the right one keeps
    # the lowest crop score measured, so the crops cannot overturn the dense choice
    monkeypatch.setattr(zeroshot_predictor, "MAX_CROPS", 1)
    capped = ZeroShotPredictor(ColourCLIP(), config=config, device="cpu").predict(image, "red")
    assert _iou(capped.alpha, left) > 0.85
    with pytest.raises(ValueError, match="crop_weight"):
        ZeroShotConfig(crop_weight=1.5)


def test_a_distractor_named_in_the_phrase_does_not_compete_with_it():
    image, _, _, square = _scene()
    config = ZeroShotConfig(image_size=128, distractors=("blue", "red"))
    predictor = ZeroShotPredictor(ColourCLIP(), config=config, device="cpu")
    r = predictor.predict(image, "the blue thing")
    assert _iou(r.alpha, square) > 0.9  # "blue" left out of the competition, "red" kept
    assert predictor.embed_phrases(["x"]).shape[0] == 1
    classes = predictor._class_embeddings(["the blue thing"])
    assert len(classes) == 1 + 1 + len(config.background)


def test_coarse_map_without_matting_is_the_upsampled_region_probability():
    image, _, _, square = _scene()
    config = ZeroShotConfig(image_size=128, matting=False)
    coarse = ZeroShotPredictor(ColourCLIP(), config=config, device="cpu").predict(image, "blue")
    assert coarse.alpha.shape == square.shape and coarse.alpha.dtype == np.float32
    assert not coarse.trimap.any()  # no trimap was made
    assert coarse.alpha[square].mean() > 0.6 and coarse.alpha[~square].mean() < 0.1
    # soft along the edges at patch scale, unlike the matted result
    assert ((coarse.alpha > 0.05) & (coarse.alpha < 0.95)).sum() > 100


def test_phrase_union_gives_one_matte(colour_predictor):
    image, left, right, square = _scene()
    r = colour_predictor.predict(image, "the blue thing, the red thing on the left")
    assert _iou(r.alpha, square | left) > 0.85
    assert {c.phrase for c in r.candidates} == {"the blue thing", "the red thing on the left"}
    # a union's candidates are every part's regions: one of them can be picked alone
    union = colour_predictor.predict(image, "the blue thing, the red thing")
    blue = next(i for i, c in enumerate(union.candidates) if c.phrase == "the blue thing")
    alone = colour_predictor.predict(image, "the blue thing, the red thing", candidate=blue)
    assert _iou(alone.alpha, square) > 0.85
    # a click on the right red disc picks it, however the phrase ranks it
    x = int(np.nonzero(right.any(axis=0))[0].mean())
    y = int(np.nonzero(right.any(axis=1))[0].mean())
    clicked = colour_predictor.predict(image, "the red thing on the left", points=[(x, y, True)])
    assert _iou(clicked.alpha, right) > 0.85
    boxed = colour_predictor.predict(image, "the red thing", box=(x - 30, y - 30, x + 30, y + 30))
    assert _iou(boxed.alpha, right) > 0.85


def test_no_match_gives_an_unsure_guess_or_an_empty_matte():
    image = np.full((64, 96, 3), 128, np.uint8)
    image[20:40, 10:30] = (150, 110, 110)  # a faintly red patch: below the threshold
    guess = ZeroShotPredictor(ColourCLIP(), config=ZeroShotConfig(image_size=64), device="cpu")
    r = guess.predict(image, "the red thing")
    assert r.unsure and len(r.candidates) == 1
    assert r.alpha[25:35, 15:25].mean() > 0.7 and r.alpha[:, 50:].max() < 0.05
    strict = ZeroShotConfig(image_size=64, fallback=0.0)
    empty = ZeroShotPredictor(ColourCLIP(), config=strict, device="cpu")
    r = empty.predict(image, "the red thing")
    assert r.alpha.max() == 0 and r.confidence == 0 and r.candidates == [] and r.unsure
    flat = guess.predict(np.full((64, 96, 3), 128, np.uint8), "the red thing")
    assert flat.alpha.max() == 0 and flat.candidates == []  # no whole-image guesses


# ---------------------------------------------------------------- loading and the registry


def test_load_clip_backbone_from_pretraining_file_and_checkpoint(tmp_path, tiny_model):
    towers = tiny_model.backbone.cfg
    path = weights_io.save_state_dict(
        tiny_model.backbone.clip.state_dict(),
        tmp_path / "clip.safetensors",
        metadata={"format": "open_clip", "clip": json.dumps(towers.__dict__)},
    )
    loaded, meta = load_clip_backbone(path)
    assert meta["format"] == "open_clip"
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_dense(x), tiny_model.backbone.encode_dense(x))
    model = tiny_model
    ckpt = clipmat.save_model(model, tmp_path / "tiny.safetensors")
    from_ckpt, _ = load_clip_backbone(ckpt)
    with torch.no_grad():
        torch.testing.assert_close(from_ckpt.encode_dense(x), model.backbone.encode_dense(x))
    bare = weights_io.save_state_dict(
        tiny_model.backbone.clip.state_dict(), tmp_path / "bare.safetensors"
    )
    with pytest.raises(ValueError, match="towers"):
        load_clip_backbone(bare)


def test_zeroshot_offline_fails_fast_and_clearly(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(hub.WEIGHTS_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    start = time.perf_counter()
    with pytest.raises(clipmat.WeightsNotFoundError, match="clipmat download ViT-B-16.openai"):
        clipmat.load_predictor("zeroshot-vitb16")
    assert time.perf_counter() - start < 1.0
    status = {s.name: s for s in clipmat.list_predictors()}["zeroshot-vitb16"]
    assert not status.available and "No weights file" in status.reason
    assert status.licence.startswith("MIT")


def _save_registry_clip(tmp_path, towers) -> nn.Module:
    torch.manual_seed(0)
    clip = create_backbone(towers).clip
    state = {k: v.half() for k, v in clip.state_dict().items()}  # smaller file, same keys
    weights_io.save_state_dict(state, tmp_path / "clip_vitb16_openai.safetensors")
    return clip


def test_zeroshot_registry_loads_local_weights(tmp_path, monkeypatch):
    """The registry path with weights on disk (tiny towers stand in for ViT-B/16)."""
    from clipmat.zeroshot import loading

    tiny = get_model_config("clipmat-tiny").clip
    monkeypatch.setattr(loading, "clip_towers", lambda arch, **kwargs: tiny)
    clip = _save_registry_clip(tmp_path, tiny)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(hub.WEIGHTS_DIR_ENV, str(tmp_path))
    status = {s.name: s for s in clipmat.list_predictors()}["zeroshot-vitb16"]
    assert status.available, status.reason
    p = clipmat.load_predictor("zeroshot-vitb16", device="cpu")
    assert isinstance(p, ZeroShotPredictor) and p.name == "zeroshot-vitb16"
    assert p.licence.startswith("MIT") and p.logit_scale > 1
    torch.testing.assert_close(
        p.backbone.clip.visual.conv1.weight, clip.visual.conv1.weight.half().float()
    )
    assert p.predict(np.zeros((40, 50, 3), np.uint8), "a cat").alpha.shape == (40, 50)


@pytest.mark.slow
def test_zeroshot_registry_loads_vitb16_shaped_weights(tmp_path, monkeypatch):
    from clipmat.zeroshot import loading

    clip = _save_registry_clip(tmp_path, loading.clip_towers("ViT-B-16"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(hub.WEIGHTS_DIR_ENV, str(tmp_path))
    p = clipmat.load_predictor("zeroshot-vitb16", device="cpu")
    assert p.backbone.patch_size == 16 and p.backbone.cfg.vision["image_size"] == 224
    torch.testing.assert_close(
        p.backbone.clip.visual.conv1.weight, clip.visual.conv1.weight.half().float()
    )


def test_miniworld_evaluation_runs_on_a_random_clip(tiny_model):
    p = ZeroShotPredictor(tiny_model.backbone, device="cpu", config=ZeroShotConfig(matting_side=64))
    out = evaluate_miniworld(p, setting="keyword", images=2, size=64)
    assert set(out) == {"phrases", "shuffled"}
    for r in out.values():
        assert r["n"] >= 2 and 0 <= r["grounding_accuracy"] <= 1 and r["sad"] >= 0


def test_zeroshot_inference_never_imports_training_code():
    code = (
        "import sys, numpy as np, torch\n"
        "from clipmat.factory import get_model_config\n"
        "from clipmat.zeroshot import ZeroShotPredictor, create_backbone\n"
        "p = ZeroShotPredictor(create_backbone(get_model_config('clipmat-tiny').clip), device='cpu')\n"
        "p.predict(np.zeros((32, 32, 3), np.uint8), 'cat')\n"
        "bad = [m for m in sys.modules if m.startswith(('clipmat.data', 'clipmat.training.cli',"
        " 'clipmat.training.losses', 'clipmat.evaluation.evaluate', 'clipmat.training.clip_pretrain', 'editing'))]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout

"""The zero-shot predictor on the CPU paths: the towers converted as CLIPMat's are (one
conversion), every dense method's last block read through the converted attention, parity with
fp32, precisions refused clearly, and what a second phrase on a photo reuses (the competitors'
text, the crops of regions already scored, one batch of crops per request, the matting per
group of the unknown band)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import clipmat
from clipmat import refine
from clipmat.factory import get_model_config
from clipmat.model.backbone import DENSE_METHODS, CLIPBackbone
from clipmat.precision import Bf16Linear, SelfAttention, apply_precision, native_bf16
from clipmat.precision import paths as prec
from clipmat.precision.layers import replace_attention
from clipmat.runtime import autocast
from clipmat.zeroshot import ZeroShotConfig, ZeroShotPredictor, create_backbone, crops, matting

COSINE = 0.999  # the parity asked of every dense method (docs/benchmarks.md)
NO_BF16 = pytest.mark.skipif(not native_bf16(), reason="this CPU has no native bf16")


@pytest.fixture(scope="module")
def tiny_backbone() -> CLIPBackbone:
    """Random CLIP towers of clipmat-tiny (128 px, patch 8), fp32; never converted in place."""
    torch.manual_seed(0)
    return create_backbone(get_model_config("clipmat-tiny").clip).eval()


@pytest.fixture
def emulated_bf16(monkeypatch):
    """bf16 conversion allowed on a CPU without native bf16 (computed in software: the same
    numbers, slower), to check what the conversion does."""
    monkeypatch.setattr(prec, "native_bf16", lambda: True)


def _images(batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, 96, 128, generator=g)


def _photo(height: int = 120, width: int = 160, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return np.kron(base, np.ones((8, 8, 1), np.uint8))[:height, :width].copy()


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(nn.functional.cosine_similarity(a.float(), b.float(), dim=-1).min())


# ---------------------------------------------------------------- one conversion, any backbone


def test_int8_converts_both_towers_of_a_backbone_like_clipmat(tiny_backbone, monkeypatch):
    fast = apply_precision(tiny_backbone, "int8")
    assert prec.precision_of(fast) == "int8" and prec.precision_of(tiny_backbone) == "fp32"
    image, text = fast.clip.visual.transformer, fast.clip.transformer
    for tower in (image, text):
        assert not any(isinstance(m, nn.MultiheadAttention) for m in tower.modules())
    # q/k/v, out and the two MLP layers of every block; the image tower's last attention (what
    # the dense methods read alone) keeps its fp32 projections
    count = sum(isinstance(m, nn.quantized.dynamic.Linear) for m in text.modules())
    assert count == 4 * len(text.resblocks)
    count = sum(isinstance(m, nn.quantized.dynamic.Linear) for m in image.modules())
    assert count == 4 * len(image.resblocks) - 2
    last = image.resblocks[-1].attn
    assert (
        isinstance(last, SelfAttention) and type(last.in_proj) is type(last.out_proj) is nn.Linear
    )
    # a CLIPMat's towers are converted by the same function, every linear layer quantized
    model = apply_precision(clipmat.create_model("clipmat-tiny"), "int8")
    tower = model.backbone.clip.visual.transformer
    assert sum(isinstance(m, nn.quantized.dynamic.Linear) for m in tower.modules()) == 16
    assert {type(m) for m in tower.modules()} | {nn.Linear} == {type(m) for m in image.modules()}
    with pytest.raises(ValueError, match="converted already"):
        apply_precision(fast, "int8")
    monkeypatch.setattr(prec, "check_precision", lambda precision: None)  # onnx "installed"
    with pytest.raises(ValueError, match="onnx.*need every block"):
        apply_precision(tiny_backbone, "onnx")  # a backbone's readings need every block


def test_last_block_reads_the_rewritten_attention_exactly(tiny_backbone):
    """SelfAttention keeps q, k, v in one nn.Linear (no in_proj_weight): every dense method
    reads it there and gives what it gives on nn.MultiheadAttention."""
    rewritten = CLIPBackbone(tiny_backbone.cfg, feature_layers=tiny_backbone.feature_layers)
    rewritten.load_state_dict(tiny_backbone.state_dict())
    assert replace_attention(rewritten.clip.visual.transformer) == 4
    assert isinstance(rewritten.clip.visual.transformer.resblocks[-1].attn, SelfAttention)
    x = tiny_backbone.normalize(_images())
    with torch.inference_mode():
        for method in DENSE_METHODS:
            want = tiny_backbone.encode_dense(x, method=method)
            got = rewritten.encode_dense(x, method=method)
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("method", DENSE_METHODS)
def test_int8_dense_features_close_to_fp32_for_every_method(tiny_backbone, method):
    fast = apply_precision(tiny_backbone, "int8")
    x = tiny_backbone.normalize(_images())
    with torch.inference_mode():
        want, got = (
            tiny_backbone.encode_dense(x, method=method),
            fast.encode_dense(x, method=method),
        )
    assert got.shape == want.shape and got.dtype == torch.float32
    assert _cosine(got, want) >= COSINE
    # read by the predictor: windows over a photo larger than one window, and one global pass
    photo = _photo(120, 300)
    for window in (ZeroShotConfig.window, None):
        config = ZeroShotConfig(method=method, window=window)
        ref = ZeroShotPredictor(tiny_backbone, config=config, device="cpu")
        p = ZeroShotPredictor(tiny_backbone, config=config, device="cpu", precision="int8")
        a, b = ref.set_image(photo).features.patches, p.set_image(photo).features.patches
        assert a.shape == b.shape and _cosine(a, b) >= COSINE


def test_bf16_conversion_reaches_every_linear_and_stays_close(tiny_backbone, emulated_bf16):
    fast = apply_precision(tiny_backbone, "bf16")
    assert prec.precision_of(fast) == "bf16"
    for tower in (fast.clip.visual.transformer, fast.clip.transformer):
        assert not any(type(m) is nn.Linear for m in tower.modules())
        assert sum(isinstance(m, Bf16Linear) for m in tower.modules()) == 4 * len(tower.resblocks)
    x = tiny_backbone.normalize(_images())
    with torch.inference_mode():
        for method in DENSE_METHODS:
            want = tiny_backbone.encode_dense(x, method=method)
            got = fast.encode_dense(x, method=method)  # bf16 projections, fp32 norm and proj
            assert got.dtype == torch.float32 and _cosine(got, want) >= COSINE
            with autocast(torch.device("cpu"), "bf16"):  # as the predictor runs it
                assert _cosine(fast.encode_dense(x, method=method), want) >= COSINE
        with autocast(torch.device("cpu"), "bf16"):
            assert _cosine(fast.encode_pooled(x), tiny_backbone.encode_pooled(x)) >= COSINE
    p = ZeroShotPredictor(tiny_backbone, device="cpu", precision="bf16")
    ref = ZeroShotPredictor(tiny_backbone, device="cpu")
    photo = _photo()
    r, want = p.predict(photo, "the red star"), ref.predict(photo, "the red star")
    assert p.precision == "bf16" and r.alpha.shape == want.alpha.shape == photo.shape[:2]


@NO_BF16
def test_bf16_predictor_on_a_cpu_with_native_bf16(tiny_backbone):
    p = ZeroShotPredictor(tiny_backbone, device="cpu", precision="bf16")
    assert p.precision == "bf16" and p.predict(_photo(), "the red star").alpha.shape == (120, 160)


# ---------------------------------------------------------------- the predictor's precision


def test_predictor_at_int8_keeps_the_given_backbone_and_converts_in_place(tiny_backbone):
    p = ZeroShotPredictor(tiny_backbone, device="cpu", precision="int8")
    assert p.precision == "int8" and p.backbone is not tiny_backbone
    assert prec.precision_of(tiny_backbone) == "fp32"  # the given backbone is not changed
    photo = _photo()
    ref = ZeroShotPredictor(tiny_backbone, device="cpu").predict(photo, "the red star")
    r = p.predict(photo, "the red star")
    assert r.alpha.shape == ref.alpha.shape == photo.shape[:2] and r.candidates
    # converted beforehand: kept as it is
    assert ZeroShotPredictor(p.backbone, device="cpu").precision == "int8"
    # set_precision converts in place and forgets every embedding computed at fp32
    own = ZeroShotPredictor(copy.deepcopy(tiny_backbone), device="cpu")
    own.predict(photo, "the red star")
    backbone = own.backbone
    own.set_precision("int8")
    assert own.backbone is backbone and own.precision == "int8"
    assert own._text_cache.get("the red star") is None and own._competitors is None
    own.predict(photo, "the red star")
    assert own.stats["image_encodes"] == 2  # the fp32 patches were not reused


def test_precisions_refused_with_a_clear_message(tiny_backbone, monkeypatch):
    with pytest.raises(ValueError, match="CLIPMat predictors only.*int8"):
        ZeroShotPredictor(tiny_backbone, device="cpu", precision="onnx")
    with pytest.raises(ValueError, match="CLIPMat predictors only"):
        clipmat.load_predictor("zeroshot-vitb16", pretrained=False, precision="onnx")
    with pytest.raises(ValueError, match="CLIPMat predictors only"):  # before any weights
        clipmat.load_zeroshot_predictor("no-such-weights", precision="onnx")
    with pytest.raises(ValueError, match="runs on the CPU only"):
        ZeroShotPredictor(tiny_backbone, device="meta", precision="int8")
    with pytest.raises(ValueError, match="unknown precision"):
        ZeroShotPredictor(tiny_backbone, device="cpu", precision="fp16")
    monkeypatch.setattr(prec, "native_bf16", lambda: False)
    with pytest.raises(ValueError, match=r"native bf16 .*use 'int8'"):
        ZeroShotPredictor(tiny_backbone, device="cpu", precision="bf16")


def test_auto_precision_applies_to_the_zero_shot_predictor(tiny_backbone):
    from clipmat import matte_cli
    from clipmat_app import pool

    p = ZeroShotPredictor(tiny_backbone, device="cpu")
    assert matte_cli.resolve_precision("auto", p) == prec.auto_precision("cpu") != "fp32"
    assert matte_cli.resolve_precision("fp32", p) == "fp32"
    zero_shot = clipmat.pretrained.registry.predictor_weights("zeroshot-vitb16")
    trained = clipmat.pretrained.registry.predictor_weights("mini-world")
    assert pool._precision_for(zero_shot, "int8") == "int8"
    assert pool._precision_for(zero_shot, "onnx") == "int8"  # int8 weights either way
    assert pool._precision_for(trained, "onnx") == "onnx"


# ---------------------------------------------------------------- a second phrase


def test_second_phrase_reuses_competitors_and_crops_of_regions_seen(tiny_backbone, monkeypatch):
    p = ZeroShotPredictor(tiny_backbone, config=ZeroShotConfig(threshold=0.2), device="cpu")
    pooled: list[int] = []
    encode = p.backbone.encode_pooled
    monkeypatch.setattr(p.backbone, "encode_pooled", lambda x: pooled.append(len(x)) or encode(x))
    photo = _photo()
    first = p.predict(photo, "the red star")
    texts = p.stats["text_encodes"]
    assert len(first.candidates) > 1 and sum(pooled) == min(len(first.candidates), 8)
    again = p.predict(photo, "the red star")  # the same regions: no crop is embedded again
    assert sum(pooled) == min(len(first.candidates), 8) and p.stats["text_encodes"] == texts
    for a, b in zip(first.candidates, again.candidates, strict=True):
        assert a.score == pytest.approx(b.score) and a.chosen == b.chosen
    p.clear_cache()  # a new photo: its regions are embedded anew, the competitors are kept
    p.predict(photo, "the red star")
    assert p.stats["text_encodes"] == texts + len(p.config.templates)
    calls = len(pooled)
    union = p.predict(photo, "the red star, the blue heart")
    assert len(pooled) - calls <= 1  # both parts' new crops went through the tower at once
    assert {c.phrase for c in union.candidates} <= {"the red star", "the blue heart"}


def test_crop_embeddings_cached_by_region_and_batched(tiny_backbone):
    photo = _photo()
    masks = [np.zeros((15, 20), bool) for _ in range(3)]
    masks[0][2:6, 3:8] = masks[1][8:12, 10:18] = masks[2][1:3, 1:3] = True
    cache = crops.new_cache()
    calls: list[int] = []

    class Counted:
        normalize = tiny_backbone.normalize

        def encode_pooled(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(len(x))
            return tiny_backbone.encode_pooled(x)

    counted = Counted()
    cpu = torch.device("cpu")
    with torch.inference_mode():
        a = crops.crop_embeddings(counted, photo, masks[:2], cache, side=64, device=cpu)
        b = crops.crop_embeddings(counted, photo, masks[::-1], cache, side=64, device=cpu)
    assert calls == [2, 1] and a.shape == (2, 128) and b.shape == (3, 128)
    torch.testing.assert_close(b[2], a[0])
    torch.testing.assert_close(b[1], a[1])
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(2))
    assert crops.mask_key(masks[0]) != crops.mask_key(masks[0].T)


def test_matting_per_group_equals_one_solve_over_the_whole_band(rng):
    image = rng.integers(0, 256, (96, 160, 3), dtype=np.uint8)
    image = np.ascontiguousarray(np.kron(image[::8, ::8], np.ones((8, 8, 1), np.uint8)))
    prob = np.zeros((12, 20), np.float32)
    prob[2:5, 1:4] = prob[7:10, 15:19] = 1.0  # two regions far apart
    trimap = refine.trimap_from_probability(prob, (96, 160), band=4)
    whole = refine.closed_form_alpha(image, trimap)
    grouped = matting.closed_form_by_group(image, trimap)
    assert np.abs(grouped - whole).max() < 1e-3
    one = np.zeros_like(prob)
    one[3:9, 4:16] = 1.0  # one region: one solve
    tri = refine.trimap_from_probability(one, (96, 160), band=4)
    np.testing.assert_array_equal(
        matting.closed_form_by_group(image, tri), refine.closed_form_alpha(image, tri)
    )

"""The CPU paths of clipmat.precision: the attention rewrite is exact, bf16 and int8 reach every
linear layer of both towers, every path stays close to fp32, and bad requests are refused
clearly."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

import clipmat
from clipmat.evaluation.evaluate import miniworld_items
from clipmat.precision import (
    Bf16Linear,
    SelfAttention,
    apply_precision,
    check_device,
    check_precision,
    native_bf16,
    onnx_tower,
)
from clipmat.precision import paths as prec
from clipmat.precision.layers import fold_quick_gelu
from clipmat.runtime import autocast

HAS_ONNX = all(importlib.util.find_spec(p) for p in ("onnx", "onnxruntime"))
NO_BF16 = pytest.mark.skipif(not native_bf16(), reason="this CPU has no native bf16")
FAST = [
    pytest.param("bf16", marks=NO_BF16),
    "int8",
    pytest.param("onnx", marks=pytest.mark.skipif(not HAS_ONNX, reason="no onnx")),
]


@pytest.mark.parametrize("batch_first", [True, False])
def test_self_attention_equals_multihead_attention(batch_first):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(32, 4, batch_first=batch_first).eval()
    attn = SelfAttention(mha).eval()
    x = torch.randn(2, 7, 32) if batch_first else torch.randn(7, 2, 32)
    causal = torch.full((7, 7), float("-inf")).triu(1)
    for mask in (None, causal, causal.isinf()):  # none, additive float, bool (True = blocked)
        with torch.no_grad():
            want = mha(x, x, x, need_weights=False, attn_mask=mask)[0]
            got, weights = attn(x, x, x, need_weights=False, attn_mask=mask)
        assert weights is None
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    with pytest.raises(NotImplementedError, match="self-attention"):
        attn(x, torch.randn_like(x), torch.randn_like(x))


@pytest.mark.parametrize(
    ("precision", "replaced"),
    [pytest.param("bf16", Bf16Linear, marks=NO_BF16), ("int8", nn.quantized.dynamic.Linear)],
)
def test_every_linear_layer_of_both_towers_converted(precision, replaced, tiny_model):
    model = apply_precision(tiny_model, precision)
    clip = model.backbone.clip
    for tower in (clip.visual.transformer, clip.transformer):
        assert not any(isinstance(m, nn.MultiheadAttention) for m in tower.modules())
        assert not any(type(m) is nn.Linear for m in tower.modules())
        # per block: the q/k/v projection, the output projection and the two MLP layers
        count = sum(isinstance(m, replaced) for m in tower.modules())
        assert count == 4 * len(tower.resblocks)
    assert prec.precision_of(model) == precision and prec.precision_of(tiny_model) == "fp32"
    # a predictor of the converted model knows its precision (a bf16 one needs its autocast)
    assert clipmat.CLIPMatPredictor(model, device="cpu").precision == precision
    # the rest of the model computes what it did, channels-last; the fp32 model is untouched
    conv = model.details_decoder.c1.convs[0][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert model.image_layout == torch.channels_last
    assert tiny_model.image_layout == torch.contiguous_format
    assert tiny_model.details_decoder.c1.convs[0][0].weight.is_contiguous()
    assert type(model.popup) is type(tiny_model.popup)
    assert any(isinstance(m, nn.MultiheadAttention) for m in tiny_model.backbone.clip.modules())
    with pytest.raises(ValueError, match="converted already"):
        apply_precision(model, "int8")


def test_quick_gelu_folded_into_silu_is_the_same_function():
    from open_clip.transformer import QuickGELU, Transformer

    torch.manual_seed(0)
    quick = Transformer(width=32, layers=2, heads=4, act_layer=QuickGELU).eval()
    plain = Transformer(width=32, layers=2, heads=4, act_layer=nn.GELU).eval()
    x = torch.randn(2, 9, 32)
    with torch.no_grad():
        want = quick(x)
        assert fold_quick_gelu(quick) == 2 and fold_quick_gelu(plain) == 0
        got = quick(x)
    assert not any(isinstance(m, QuickGELU) for m in quick.modules())
    assert any(isinstance(m, nn.SiLU) for m in quick.modules())
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("packed", [True, False])
def test_bf16_linear_is_a_bf16_product(packed, monkeypatch):
    if not packed:  # a PyTorch without oneDNN: a plain bf16 weight
        monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    torch.manual_seed(0)
    linear = nn.Linear(64, 96)
    layer = Bf16Linear(linear)
    if not packed:
        assert layer.packed is None
    elif native_bf16():  # oneDNN packs bf16 weights only where the CPU has bf16 instructions
        assert layer.packed is not None
    w, b = linear.weight.bfloat16(), linear.bias.bfloat16()
    for shape in [(5, 64), (2, 7, 64)]:  # any number of rows, any leading dims
        x = torch.randn(*shape)
        got = layer(x)
        assert got.dtype == torch.bfloat16 and got.shape == (*shape[:-1], 96)
        want = torch.nn.functional.linear(x.bfloat16(), w, b)
        torch.testing.assert_close(got.float(), want.float(), atol=0.02, rtol=0.01)
        exact = torch.nn.functional.linear(x, linear.weight, linear.bias)
        assert (got.float() - exact).abs().max() < 0.05  # bf16's rounding, nothing more


@NO_BF16
def test_bf16_predictor_decodes_under_autocast_and_set_precision_matches(mini_world, monkeypatch):
    seen = []
    decode = mini_world.model.decode_text
    image, pairs = next(iter(miniworld_items("expression", images=1)))
    text = pairs[0][0]
    want = clipmat.CLIPMatPredictor(mini_world.model, device="cpu", precision="bf16")
    monkeypatch.setattr(
        type(want.model),
        "decode_text",
        lambda self, *a: seen.append(torch.is_autocast_enabled("cpu")) or decode.__func__(self, *a),
    )
    ref = want.predict(image, text)
    assert seen == [True]  # the decoders ran in bf16 autocast, not only the towers
    loaded = clipmat.load_predictor("mini-world", device="cpu")
    loaded.predict(image, text)
    loaded.set_precision("bf16")  # in place, as clipmat.batch does
    got = loaded.predict(image, text)
    assert loaded.precision == "bf16" and seen == [True, False, True]  # fp32, then bf16
    assert loaded.stats["image_encodes"] == 2  # the fp32 features were not reused
    np.testing.assert_array_equal(got.alpha, ref.alpha)
    with autocast(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")  # fp32 predictors: no autocast on the CPU


def test_bf16_refused_where_the_cpu_emulates_it(monkeypatch, tiny_model):
    monkeypatch.setattr(prec, "native_bf16", lambda: False)
    with pytest.raises(ValueError, match=r"native bf16 .*AVX512-BF16 or AMX.*use 'int8'"):
        check_precision("bf16")
    with pytest.raises(ValueError, match="native bf16"):
        apply_precision(tiny_model, "bf16")


@pytest.mark.parametrize("precision", FAST)
def test_visual_tokens_and_alpha_close_to_fp32(precision, tiny_model, mini_world):
    fast = apply_precision(tiny_model, precision)
    x = torch.rand(2, 3, 128, 192)  # another grid than the config's: any token count runs
    with torch.inference_mode():
        want = tiny_model.backbone.encode_image_levels(tiny_model.backbone.normalize(x))
        got = fast.backbone.encode_image_levels(fast.backbone.normalize(x))
        ref_feats, feats = tiny_model.encode_image(x), fast.encode_image(x)
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape
        assert torch.nn.functional.cosine_similarity(a[:, 1:], b[:, 1:], dim=-1).min() > 0.99
    assert (feats.detail - ref_feats.detail).abs().max() < 0.01
    # the bundled (trained) model through the predictor: the same mattes within a hair
    p = clipmat.CLIPMatPredictor(apply_precision(mini_world.model, precision), device="cpu")
    for image, pairs in list(miniworld_items("expression", images=3)):
        texts = [t for t, _ in pairs][:3]
        for r, ref in zip(p.predict(image, texts), mini_world.predict(image, texts), strict=True):
            assert r.alpha.shape == ref.alpha.shape
            assert np.abs(r.alpha - ref.alpha).mean() < 0.01
            assert np.abs(r.alpha - ref.alpha).max() < 0.25


def test_fp32_is_the_model_itself(tiny_model):
    assert apply_precision(tiny_model, "fp32") is tiny_model


def test_unknown_precision_and_device_refused(tiny_model):
    with pytest.raises(
        ValueError, match=r"unknown precision 'fp16'; choose one of fp32, bf16, int8"
    ):
        apply_precision(tiny_model, "fp16")
    with pytest.raises(ValueError, match="CPU only"):
        check_device("int8", "cuda")
    check_device("fp32", "cuda")
    check_device("onnx" if HAS_ONNX else "int8", "cpu")


def test_missing_onnx_runtime_says_what_to_install(monkeypatch, tiny_model):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        prec.importlib.util,
        "find_spec",
        # onnx present, onnxruntime missing, whatever this machine has installed
        lambda name, *a: {"onnxruntime": None, "onnx": object()}.get(name, real(name, *a)),
    )
    with pytest.raises(ValueError, match="needs onnxruntime: pip install onnx onnxruntime"):
        check_precision("onnx")
    with pytest.raises(ValueError, match="pip install"):
        apply_precision(tiny_model, "onnx")


@pytest.mark.skipif(not HAS_ONNX, reason="no onnx")
def test_onnx_tower_cached_and_limited_to_its_levels(tiny_model, tmp_path, monkeypatch):
    model = apply_precision(tiny_model, "onnx", cache_dir=tmp_path)
    files = list(tmp_path.glob("tower-*.int8.onnx"))
    assert len(files) == 1
    monkeypatch.setattr(onnx_tower, "_export_quantized", lambda *a: pytest.fail("exported again"))
    again = apply_precision(tiny_model, "onnx", cache_dir=tmp_path)
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        a, b = model.encode_image(x), again.encode_image(x)
    torch.testing.assert_close(a.tokens, b.tokens)
    tower = model.backbone.clip.visual.transformer
    with pytest.raises(NotImplementedError, match="fp32"):
        tower(torch.zeros(1, 5, 128))
    with pytest.raises(ValueError, match="levels"):
        tower.forward_intermediates(torch.zeros(1, 5, 128), indices=[0])

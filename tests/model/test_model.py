"""CLIPMat model: shapes, ranges, gradients, ablation switches, configs, checkpoints."""

import pytest
import torch

import clipmat
from clipmat.config import CLIPMatConfig
from clipmat.model.decoders import DetailsDecoder
from clipmat.model.details import DetailsExtractor, LastTokensOnly
from clipmat.model.popup import SemanticPopUp, TextScaling


def _batch(model: clipmat.CLIPMat, h: int, w: int, n: int = 2):
    torch.manual_seed(1)
    images = torch.rand(n, 3, h, w)
    texts = ["cat", "the red star on the left of the blue ring"][:n]
    settings = ["keyword", "expression"][:n]
    return images, model.tokenize(texts, settings)


@pytest.mark.parametrize("size", [(64, 64), (72, 120), (136, 48)])
def test_forward_shapes_and_range(tiny_model, size):
    images, tokens = _batch(tiny_model, *size)
    with torch.no_grad():
        out = tiny_model(images, tokens)
    assert out.alpha.shape == (2, 1, *size)
    assert out.semantic_logits.shape == (2, 3, *size)
    assert out.detail.shape == (2, 1, *size)
    assert torch.isfinite(out.alpha).all() and torch.isfinite(out.semantic_logits).all()
    assert out.alpha.min() >= 0 and out.alpha.max() <= 1


def test_size_not_multiple_of_patch_is_an_error(tiny_model):
    images, tokens = _batch(tiny_model, 70, 64)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        tiny_model(images, tokens)


def test_text_changes_the_output(tiny_model):
    images, _ = _batch(tiny_model, 64, 64, n=1)
    a = tiny_model.tokenize(["cat"], ["keyword"])
    b = tiny_model.tokenize(["the green tree at the bottom"], ["expression"])
    with torch.no_grad():
        out_a, out_b = tiny_model(images, a), tiny_model(images, b)
    assert not torch.allclose(out_a.semantic_logits, out_b.semantic_logits)
    # the details branch takes no text
    assert torch.allclose(out_a.detail, out_b.detail)


def _loss_backward(model: clipmat.CLIPMat) -> None:
    model.train()
    images, tokens = _batch(model, 64, 64)
    out = model(images, tokens)
    loss = out.semantic_logits.mean() + out.detail.mean() + out.alpha.mean()
    loss.backward()
    model.eval()


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"popup": False},
        {"details": False},
        {"train_image_tower": False},
        {"train_text_tower": True},
    ],
)
def test_gradients_reach_trainable_and_spare_frozen(overrides):
    torch.manual_seed(0)
    model = clipmat.create_model("clipmat-tiny", **overrides)
    _loss_backward(model)
    named = dict(model.named_parameters())
    no_grad = [
        n
        for n, p in named.items()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum())
    ]
    assert not no_grad, f"trainable parameters without gradient: {no_grad[:5]}"
    frozen_with_grad = [n for n, p in named.items() if not p.requires_grad and p.grad is not None]
    assert not frozen_with_grad
    text_tower = [n for n in named if n.startswith("backbone.clip.transformer.")]
    trained_text = [n for n in text_tower if named[n].requires_grad]
    assert text_tower and bool(trained_text) == overrides.get("train_text_tower", False)
    assert named["prompt.context"].requires_grad
    image_tower = [n for n in named if n.startswith("backbone.clip.visual.transformer.")]
    assert any(named[n].requires_grad for n in image_tower) == overrides.get(
        "train_image_tower", True
    )


def test_ablation_switches_remove_their_modules(tiny_model):
    full = tiny_model
    assert isinstance(full.popup, SemanticPopUp) and isinstance(full.details, DetailsExtractor)
    no_popup = clipmat.create_model("clipmat-tiny", popup=False)
    assert isinstance(no_popup.popup, TextScaling)
    assert not any(isinstance(m, torch.nn.MultiheadAttention) for m in no_popup.popup.modules())
    no_details = clipmat.create_model("clipmat-tiny", details=False, details_full_res=4)
    assert isinstance(no_details.details, LastTokensOnly)
    assert not any(k.startswith("details.levels") for k in no_details.state_dict())
    assert no_details.details_decoder.c0 is None  # F_0 belongs to the details extractor
    no_post = clipmat.create_model("clipmat-tiny", post_context=False)
    assert no_post.prompt.context is None
    tokens = no_post.tokenize(["cat"], ["keyword"])
    assert not tokens.context_mask.any()
    assert full.tokenize(["cat"], ["keyword"]).context_mask.sum() == full.cfg.context_length
    no_pre = clipmat.create_model("clipmat-tiny", pre_context=False)
    assert no_pre.tokenize(["cat"], ["keyword"], [2]).texts == ["cat"]
    assert full.tokenize(["cat"], ["keyword"], [2]).texts == ["the mask of the cat"]


def test_token_budgets_are_enforced(tiny_model):
    long_text = " ".join(["word"] * 200)
    tokens = tiny_model.tokenize([long_text, long_text], ["expression", "keyword"])
    n_ctx = tiny_model.cfg.context_length
    lengths = (~tokens.padding_mask).sum(1).tolist()
    assert lengths == [
        tiny_model.cfg.expression_budget + n_ctx,
        tiny_model.cfg.keyword_budget + n_ctx,
    ]
    with torch.no_grad():
        out = tiny_model(torch.rand(2, 3, 64, 64), tokens)
    assert torch.isfinite(out.alpha).all()


def test_unknown_config_and_fields_raise():
    with pytest.raises(ValueError, match="Available"):
        clipmat.create_model("clipmat-huge")
    with pytest.raises(ValueError, match="unknown CLIPMat config fields"):
        clipmat.create_model("clipmat-tiny", popup_size=3)
    with pytest.raises(ValueError, match="feature_layers"):
        clipmat.create_model("clipmat-tiny", feature_layers=(1, 2, 3, 9))


@pytest.mark.parametrize("name", ["clipmat-vitb16", "clipmat-vitl14"])
def test_paper_configs_describe_the_paper_backbones(name):
    cfg = clipmat.get_model_config(name)
    assert (
        cfg.image_size // cfg.patch_size == 32
    )  # a 32x32 token grid, as the paper's ViT-B/16 at 512
    assert cfg.feature_layers[-1] == cfg.clip.vision["layers"]
    assert cfg.keyword_budget == 14 and cfg.expression_budget == 69 and cfg.context_length == 8


def test_save_load_round_trip(tiny_model, tmp_path):
    path = clipmat.save_model(tiny_model, tmp_path / "tiny.safetensors", licence="test")
    loaded = clipmat.load_model(path)
    assert loaded.cfg == tiny_model.cfg
    images, tokens = _batch(tiny_model, 64, 96)
    with torch.no_grad():
        a, b = tiny_model(images, tokens), loaded(images, tokens)
    assert torch.equal(a.alpha, b.alpha) and torch.allclose(a.semantic_logits, b.semantic_logits)
    half = clipmat.save_model(tiny_model, tmp_path / "half.safetensors", half=True)
    assert half.stat().st_size < 0.6 * path.stat().st_size
    with torch.no_grad():
        c = clipmat.load_model(half)(images, tokens)
    assert (c.detail - a.detail).abs().max() < 0.02


def test_checkpoint_of_another_config_is_refused(tiny_model, tmp_path):
    path = clipmat.save_model(tiny_model, tmp_path / "tiny.safetensors")
    state, meta = clipmat.pretrained.weights_io.load_state_dict(path)
    del state["popup.cross_attn.in_proj_weight"]
    clipmat.pretrained.weights_io.save_state_dict(
        state, tmp_path / "broken.safetensors", metadata=meta
    )
    with pytest.raises(ValueError, match="missing keys"):
        clipmat.load_model(tmp_path / "broken.safetensors")


def test_clip_weights_load_with_positional_interpolation(tmp_path):
    """CLIP weights trained at another resolution are interpolated into the towers."""
    cfg = clipmat.get_model_config("clipmat-tiny")
    small = CLIPMatConfig.from_dict(
        {
            **cfg.to_dict(),
            "clip": {**cfg.to_dict()["clip"], "vision": {**cfg.clip.vision, "image_size": 64}},
        }
    )
    donor = clipmat.create_model(small)
    state = donor.backbone.clip.state_dict()
    assert state["visual.positional_embedding"].shape[0] == 1 + 8 * 8
    clipmat.pretrained.weights_io.save_state_dict(state, tmp_path / "clip.safetensors")
    model = clipmat.create_model("clipmat-tiny")
    clipmat.load_clip_pretrained(model, tmp_path / "clip.safetensors")
    got = model.backbone.clip.state_dict()
    assert got["visual.positional_embedding"].shape[0] == 1 + 16 * 16
    assert torch.equal(got["visual.conv1.weight"], state["visual.conv1.weight"])
    assert torch.equal(
        got["visual.positional_embedding"][0], state["visual.positional_embedding"][0]
    )
    assert not model.backbone.clip.transformer.resblocks[0].attn.in_proj_weight.requires_grad
    del state["visual.conv1.weight"]
    clipmat.pretrained.weights_io.save_state_dict(state, tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="missing keys"):
        clipmat.load_clip_pretrained(model, tmp_path / "bad.safetensors")


def test_semantic_labels_equal_argmax_with_ties():
    from clipmat.model.decoders import semantic_labels

    logits = torch.randn(3, 3, 20, 30)
    logits[0, :, :4] = 0.0  # three-way ties
    logits[1, 1, :5] = logits[1, 2, :5]  # transition / foreground ties
    logits[2, 0, :, :7] = logits[2, 2, :, :7]  # background / foreground ties
    assert torch.equal(semantic_labels(logits), logits.argmax(dim=1))


def test_full_res_level_starts_as_the_model_without_it(tiny_model):
    """A model trained without F_0 loads into one with it and predicts the same alpha; one
    training step then changes the alpha through the new head (of the new model: the shared
    one only lends its weights)."""
    plain = tiny_model
    torch.manual_seed(0)
    full = clipmat.create_model("clipmat-tiny", details_full_res=4)
    missing, unexpected = full.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected
    assert missing and all(".full_res." in k or ".c0." in k or ".head0." in k for k in missing)
    images, tokens = _batch(plain, 64, 64)
    with torch.no_grad():
        before, reference = full(images, tokens), plain(images, tokens)
    assert torch.equal(before.detail, reference.detail)
    assert torch.equal(before.alpha, reference.alpha)
    full.train()
    (full(images, tokens).detail * torch.rand(2, 1, 64, 64)).sum().backward()
    assert full.details_decoder.head0.weight.grad.abs().sum() > 0
    torch.optim.SGD(full.details_decoder.head0.parameters(), lr=1.0).step()
    full.eval()
    with torch.no_grad():
        assert not torch.allclose(full(images, tokens).detail, before.detail)


def _lines(generator: torch.Generator, n: int = 8, size: int = 16):
    """Images of 1-pixel lines on noise, (n, 3, size, size), and the lines as alpha."""
    alpha = torch.zeros(n, 1, size, size)
    for i in range(n):
        for _ in range(3):
            k = int(torch.randint(0, size, (1,), generator=generator))
            if torch.rand(1, generator=generator) < 0.5:
                alpha[i, 0, k, :] = 1
            else:
                alpha[i, 0, :, k] = 1
    noise = 0.1 * torch.randn(n, 3, size, size, generator=generator)
    return alpha.expand(-1, 3, -1, -1) + noise, alpha


def _fit_lines(full_res: int, steps: int = 50) -> float:
    """IoU on held-out 1-pixel lines of a small MDE + details decoder fitted to them."""
    torch.manual_seed(0)
    ch = (8, 8, 8, 8)
    extractor = DetailsExtractor(
        visual_width=8, visual_ch=(4,) * 4, image_ch=(4,) * 4, out_ch=ch, full_res_ch=full_res
    )
    decoder = DetailsDecoder(in_ch=ch, channels=ch, skips=True, full_res_ch=full_res)
    optimizer = torch.optim.Adam([*extractor.parameters(), *decoder.parameters()], lr=1e-2)
    tokens = [torch.zeros(8, 2, 8)] * 4  # CLS + a 1x1 grid: the lines are in the image only
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        image, alpha = _lines(generator)
        pred = decoder(extractor(tokens, image, (1, 1)), image.shape[-2:])
        loss = torch.nn.functional.binary_cross_entropy(pred, alpha)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    extractor.eval(), decoder.eval()
    image, alpha = _lines(torch.Generator().manual_seed(1))
    with torch.no_grad():
        pred = decoder(extractor(tokens, image, (1, 1)), image.shape[-2:]) > 0.5
    truth = alpha > 0.5
    return float((pred & truth).sum() / (pred | truth).sum())


def test_full_res_level_draws_one_pixel_lines():
    """From stride 2 a bilinear upsampling cannot draw a 1-pixel line; F_0 and C0 can."""
    assert _fit_lines(full_res=4) > 0.9
    assert _fit_lines(full_res=0) < 0.6

"""Each dense method of CLIPBackbone.encode_dense against its formula, worked out by hand; and
which background and distractor prompts may compete with a phrase.

The formulas are those of the methods' official code (ClearCLIP: mc-lan/ClearCLIP
open_clip/transformer.py custom_attn with ignore_residual=True; SCLIP: wangf3014/SCLIP
clip/model.py VisionTransformer.forward with csa=True; MaskCLIP: chongzhou96/MaskCLIP
mmseg/models/backbones/vit.py TransformerEncoderLayer.forward with return_qkv=True), written
here with explicit matrix products per head on a tiny random ViT.
"""

from __future__ import annotations

import math

import pytest
import torch

from clipmat.config import CLIPTowersConfig
from clipmat.factory import get_model_config
from clipmat.model.backbone import DENSE_METHODS, CLIPBackbone
from clipmat.zeroshot import dense, prompts
from clipmat.zeroshot.loading import create_backbone

WIDTH, HEADS, PATCH, SIDE = 64, 4, 8, 32


def _towers(layers: int = 3) -> CLIPTowersConfig:
    return CLIPTowersConfig(
        embed_dim=32,
        vision={
            "image_size": SIDE,
            "layers": layers,
            "width": WIDTH,
            "head_width": WIDTH // HEADS,
            "patch_size": PATCH,
        },
        text={"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    )


@pytest.fixture(scope="module")
def backbone() -> CLIPBackbone:
    """A tiny random ViT whose biases and norms are random too (open_clip sets them to 0 and 1)."""
    torch.manual_seed(0)
    bb = create_backbone(_towers()).eval()
    with torch.no_grad():
        for p in bb.clip.visual.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return bb


def _layer_norm(x: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def _softmax_rows(a: torch.Tensor) -> torch.Tensor:
    e = torch.exp(a - a.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def _gelu(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _tokens_before_last_block(bb: CLIPBackbone, image: torch.Tensor) -> torch.Tensor:
    """(N, D) tokens of one image entering the last block, CLS first (at the model's own grid)."""
    visual = bb.clip.visual
    patches = visual.conv1(image[None])[0].flatten(1).T  # (h*w, D)
    x = torch.cat([visual.class_embedding[None], patches]) + visual.positional_embedding
    x = _layer_norm(x, visual.ln_pre)[None]
    for block in visual.transformer.resblocks[:-1]:
        x = block(x)
    return x[0]


def _attention_by_hand(block: torch.nn.Module, x: torch.Tensor, kind: str) -> torch.Tensor:
    """out_proj of the concatenated heads; kind "qq", "csa" or "value"."""
    w, b = block.attn.in_proj_weight, block.attn.in_proj_bias
    xn = _layer_norm(x, block.ln_1)
    d = WIDTH // HEADS
    heads = []
    for h in range(HEADS):
        rows = slice(h * d, (h + 1) * d)
        q = xn @ w[rows].T + b[rows]
        k = xn @ w[WIDTH:][rows].T + b[WIDTH:][rows]
        v = xn @ w[2 * WIDTH :][rows].T + b[2 * WIDTH :][rows]
        if kind == "value":
            heads.append(v)
            continue
        attn = _softmax_rows(q @ q.T / math.sqrt(d))
        if kind == "csa":
            attn = attn + _softmax_rows(k @ k.T / math.sqrt(d))
        heads.append(attn @ v)
    out = block.attn.out_proj
    return torch.cat(heads, dim=1) @ out.weight.T + out.bias


def _feed_forward_by_hand(block: torch.nn.Module, y: torch.Tensor) -> torch.Tensor:
    fc, proj = block.mlp.c_fc, block.mlp.c_proj
    return _gelu(_layer_norm(y, block.ln_2) @ fc.weight.T + fc.bias) @ proj.weight.T + proj.bias


def _project_patches(bb: CLIPBackbone, y: torch.Tensor) -> torch.Tensor:
    visual = bb.clip.visual
    grid = SIDE // PATCH
    return (_layer_norm(y[1:], visual.ln_post) @ visual.proj).reshape(grid, grid, -1)


def _by_hand(bb: CLIPBackbone, image: torch.Tensor, method: str) -> torch.Tensor:
    x = _tokens_before_last_block(bb, image)
    last = bb.clip.visual.transformer.resblocks[-1]
    if method in ("sclip", "maskclip"):  # residual and feed-forward kept
        y = x + _attention_by_hand(last, x, "csa" if method == "sclip" else "value")
        y = y + _feed_forward_by_hand(last, y)
    elif method == "clearclip":
        y = _attention_by_hand(last, x, "qq")
    elif method == "csa-noresidual":
        y = _attention_by_hand(last, x, "csa")
    else:
        y = _attention_by_hand(last, x, "value")
    return _project_patches(bb, y)


@pytest.mark.parametrize("method", ["clearclip", "sclip", "maskclip"])
def test_published_methods_match_their_formulas(backbone, method):
    torch.manual_seed(1)
    images = torch.randn(2, 3, SIDE, SIDE)
    with torch.no_grad():
        got = backbone.encode_dense(images, method=method)
        for i in range(2):
            expected = _by_hand(backbone, images[i], method)
            torch.testing.assert_close(got[i], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["csa-noresidual", "value-noresidual"])
def test_ablations_match_their_formulas(backbone, method):
    torch.manual_seed(2)
    image = torch.randn(3, SIDE, SIDE)
    with torch.no_grad():
        got = backbone.encode_dense(image[None], method=method)[0]
        torch.testing.assert_close(got, _by_hand(backbone, image, method), rtol=1e-4, atol=1e-5)


def test_plain_is_open_clips_own_tokens(backbone):
    visual = backbone.clip.visual
    image = torch.randn(1, 3, SIDE, SIDE)
    visual.output_tokens = True
    try:
        with torch.no_grad():
            _, tokens = visual(image)  # (1, h*w, D) patch tokens after ln_post
    finally:
        visual.output_tokens = False
    with torch.no_grad():
        got = backbone.encode_dense(image, method="plain")
    torch.testing.assert_close(got.flatten(1, 2), tokens @ visual.proj, rtol=1e-4, atol=1e-5)


def test_methods_differ_from_each_other(backbone):
    image = torch.randn(1, 3, SIDE, SIDE)
    with torch.no_grad():
        maps = {m: backbone.encode_dense(image, method=m) for m in DENSE_METHODS}
    names = list(maps)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            gap = (maps[a] - maps[b]).abs().max().item()
            assert gap > 1e-3, f"{a} and {b} give the same patches"


def test_single_block_tower_and_other_sizes():
    """With one block the last block reads the embedded patches; non-square images work."""
    torch.manual_seed(3)
    bb = create_backbone(_towers(layers=1)).eval()
    image = torch.randn(1, 3, 24, 40)
    with torch.no_grad():
        for method in DENSE_METHODS:
            out = bb.encode_dense(image, method=method)
            assert out.shape == (1, 3, 5, 32) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="method must be one of"):
        bb.encode_dense(image, method="attention")


# ------------------------------------------------------------- competitors of a phrase


def _ensembled(bb: CLIPBackbone, phrases: list[str]) -> torch.Tensor:
    """Template-ensembled unit text embeddings (N, E), as the zero-shot predictor makes them."""
    templates = prompts.PROMPT_TEMPLATES
    texts = [t for p in phrases for t in prompts.expand_templates(p, templates)]
    with torch.no_grad():
        emb = bb.clip.encode_text(prompts.tokenize(texts, bb.text_context_length)).float()
    emb = torch.nn.functional.normalize(emb, dim=-1).view(len(phrases), len(templates), -1)
    return torch.nn.functional.normalize(emb.mean(dim=1), dim=-1)


def test_a_background_phrase_drops_only_its_own_competitor():
    torch.manual_seed(0)
    bb = create_backbone(get_model_config("clipmat-tiny").clip).eval()
    background = list(prompts.BACKGROUND_PROMPTS)
    phrase = _ensembled(bb, ["the sky"])
    others = _ensembled(bb, background)
    keep = dense.keep_competitors(phrase, others)
    assert [w for w, k in zip(background, keep.tolist(), strict=True) if not k] == ["sky"]
    # On patches whose embedding is the phrase's, all competitors cap it at one half; the kept
    # ones let it win.
    patches = phrase[0].expand(2, 3, -1)
    capped = dense.class_probabilities(patches, torch.cat([phrase, others]), 50.0)[0]
    assert capped.max() <= 0.5 + 1e-6
    freed = dense.class_probabilities(patches, torch.cat([phrase, others[keep]]), 50.0)[0]
    assert freed.min() > 0.5


def test_unrelated_phrases_keep_every_competitor():
    e = torch.eye(8)
    phrase = e[:1]
    near = 0.96 * e[0] + math.sqrt(1 - 0.96**2) * e[5]  # cosine 0.96 to the phrase
    far = 0.94 * e[0] + math.sqrt(1 - 0.94**2) * e[6]  # cosine 0.94 (0.90 to ``near``)
    competitors = torch.stack([e[1], e[2], 3.0 * e[3], e[4] - e[0], far, near])
    keep = dense.keep_competitors(phrase, competitors)
    assert keep.tolist() == [True, True, True, True, True, False]
    # A union: a competitor close to either phrase goes.
    keep = dense.keep_competitors(torch.stack([e[0], e[2]]), competitors)
    assert keep.tolist() == [True, False, True, True, True, False]
    assert dense.keep_competitors(torch.zeros(0, 8), competitors).all()
    with pytest.raises(ValueError, match="expected phrases"):
        dense.keep_competitors(e[0], competitors)


def _around(centre: torch.Tensor, axis: torch.Tensor, cosine: float) -> torch.Tensor:
    """A unit vector at ``cosine`` to the unit ``centre``, towards the orthogonal ``axis``."""
    return cosine * centre + math.sqrt(1 - cosine**2) * axis


def test_in_a_compressed_text_space_only_the_phrase_itself_is_dropped():
    """A small text tower puts every word near every other (the mini world's: background words
    at 0.99 of each other, its phrases at up to 0.995 of them); a fixed 0.95 would drop them
    all, the rule drops a competitor only when the phrase is nearer to it than any two
    competitors are to each other."""
    e = torch.eye(8)
    common = e[0]
    competitors = torch.stack([_around(common, e[i], 0.995) for i in (1, 2, 3)])
    pair = float(competitors[0] @ competitors[1])  # 0.99: the closest two competitors
    assert pair == pytest.approx(0.990, abs=1e-3)
    unrelated = _around(common, e[4], 0.995)  # 0.99 to every competitor, as they are
    assert (competitors @ unrelated).min() > 0.95
    assert dense.keep_competitors(unrelated[None], competitors).all()
    itself = competitors[1:2]  # "the wall" against "wall"
    assert dense.keep_competitors(itself, competitors).tolist() == [True, False, True]
    assert dense.competitor_threshold(competitors, 0.95) == pytest.approx(pair)
    # Competitors with one embedding (a tower that cannot tell two words apart) count as one.
    twins = torch.stack([e[1], e[1], e[2]])
    assert dense.keep_competitors(e[1:2], twins).tolist() == [False, False, True]
    assert dense.competitor_threshold(twins, 0.95) == 0.95

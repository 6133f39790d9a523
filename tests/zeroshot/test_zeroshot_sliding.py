"""The zero-shot predictor read as the references read a photo: sliding windows against the global
pass, photos of any shape, a background word as the phrase, the per-photo cache, the config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import StandInCLIP
from torch import nn

from clipmat.factory import get_model_config
from clipmat.model.backbone import CLIPBackbone, bpe_encode
from clipmat.zeroshot import ZeroShotConfig, ZeroShotPredictor, create_backbone, dense, windows
from clipmat.zeroshot.config import REFERENCE_LOGIT_SCALE


@pytest.fixture(scope="module")
def mini_backbone() -> CLIPBackbone:
    """Random towers of the mini world's tiny CLIP (96 px, patch 8)."""
    torch.manual_seed(0)
    return create_backbone(get_model_config("clipmat-mini").clip).eval()


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _predictor(backbone: nn.Module, **config) -> ZeroShotPredictor:
    return ZeroShotPredictor(backbone, config=ZeroShotConfig(**config), device="cpu")


# ---------------------------------------------------------------- one window is the global pass


@pytest.mark.parametrize(
    ("size", "config"),
    [
        ((96, 96), {}),  # a mini-world scene at the tiny CLIP's own size: one window by default
        ((64, 96), {"image_size": 64, "window": 96}),  # one window over a wide photo
    ],
)
def test_one_window_over_the_photo_equals_the_global_pass(mini_backbone, size, config):
    photo = _photo(*size)
    sliding = _predictor(mini_backbone, threshold=0.2, **config)
    single = windows.window_boxes(*size, *sliding.sliding)
    assert single == [(0, 0, *size)]
    glob = _predictor(mini_backbone, threshold=0.2, **{**config, "window": None})
    assert glob.sliding is None
    a = sliding.set_image(photo).features.patches
    b = glob.set_image(photo).features.patches
    assert a.shape == b.shape == (size[0] // 8, size[1] // 8, 128)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    for phrase in ("the red star", "the cat, the dog"):
        r, g = sliding.predict(photo, phrase), glob.predict(photo, phrase)
        np.testing.assert_array_equal(r.alpha, g.alpha)
        np.testing.assert_array_equal(r.trimap, g.trimap)
        # the candidates' crops go through the image tower in separate calls: equal to float
        # rounding of the matrix products, not bit for bit
        assert r.confidence == pytest.approx(g.confidence, rel=1e-5)
        assert [c.box for c in r.candidates] == [c.box for c in g.candidates]


def test_two_windows_differ_from_the_global_pass_and_average_where_they_overlap(mini_backbone):
    photo = _photo(96, 144, seed=1)
    sliding = _predictor(mini_backbone)  # window 96, stride 48: columns 0..96 and 48..144
    assert sliding.sliding == (96, 48)
    patches = sliding.set_image(photo).features.patches  # (12, 18, E)
    x = mini_backbone.normalize(windows.resize_photo(photo, (96, 144)))
    with torch.no_grad():
        left = nn.functional.normalize(mini_backbone.encode_dense(x[..., :96])[0], dim=-1)
        right = nn.functional.normalize(mini_backbone.encode_dense(x[..., 48:])[0], dim=-1)
    torch.testing.assert_close(patches[:, :6], left[:, :6])  # one window only
    torch.testing.assert_close(patches[:, 6:12], (left[:, 6:] + right[:, :6]) / 2)
    torch.testing.assert_close(patches[:, 12:], right[:, 6:])
    glob = _predictor(mini_backbone, window=None).set_image(photo).features.patches
    assert glob.shape == patches.shape and not torch.allclose(glob, patches, atol=1e-3)


def test_cached_embeddings_give_the_windows_averaged_cosines(mini_backbone):
    """The photo's windows are combined once, as embeddings; their dot products with unit text
    embeddings are the windows' cosine maps combined (padded windows moved back included)."""
    photo = _photo(100, 150, seed=3)
    p = _predictor(mini_backbone, window=60, stride=28)
    patches = p.set_image(photo).features.patches
    size = windows.resized_size(100, 150, 96)
    x = mini_backbone.normalize(windows.resize_photo(photo, size))
    boxes = windows.window_boxes(*size, 60, 28)
    text = nn.functional.normalize(torch.randn(5, patches.shape[-1]), dim=-1)
    with torch.no_grad():
        feats, pads = windows.encode_windows(mini_backbone, x, boxes)
    assert any(any(pad) for pad in pads) and any(b[1] % 8 for b in boxes)
    maps = [torch.einsum("hwe,ke->khw", nn.functional.normalize(f, dim=-1), text) for f in feats]
    expected = windows.combine_on_grid(maps, boxes, size, windows.grid_size(*size, 8), pads)
    got = dense.cosine_map(patches, text, normalize_patches=False)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


# ---------------------------------------------------------------- any photo shape


@pytest.mark.parametrize(
    "size", [(1, 1), (2, 700), (3, 700), (700, 3), (90, 1500), (1500, 90), (5, 4000)]
)
@pytest.mark.parametrize("window", ["auto", None])
def test_extreme_aspect_ratios_give_a_matte_of_the_photo_size(mini_backbone, size, window):
    p = _predictor(mini_backbone, window=window, threshold=0.2, matting_side=64)
    r = p.predict(_photo(*size), "the red star")
    assert r.alpha.shape == size and r.trimap.shape == size and r.alpha.dtype == np.float32
    assert np.isfinite(r.alpha).all() and 0 <= r.alpha.min() and r.alpha.max() <= 1
    grid = p.set_image(_photo(*size)).features.patches.shape[:2]
    assert min(grid) >= 1


def test_reference_protocol_on_a_long_photo(mini_backbone):
    """ClearCLIP's numbers on the tiny towers: the long side capped at 2048, windows padded."""
    p = ZeroShotPredictor(
        mini_backbone,
        config=ZeroShotConfig.from_protocol(windows.CLEARCLIP, matting_side=64),
        device="cpu",
    )
    assert p.sliding == (448, 224) and p.image_size == 448 and p.logit_scale == 50.0
    r = p.predict(_photo(3, 700), "the red star")
    assert r.alpha.shape == (3, 700)
    assert p.set_image(_photo(3, 700)).features.patches.shape[:2] == (1, 256)  # 9 x 2048 px


# ---------------------------------------------------------------- a background word can win


VOCAB = ("red", "sky", "background", "wall", "floor", "ground", "texture", "pattern", "table")
COLOURS = {"red": (230, 20, 20), "sky": (135, 206, 235), "ground": (110, 110, 110)}


class SkyCLIP(StandInCLIP):
    """A stand-in CLIP with one text axis per word of ``VOCAB`` (texts with none of them: an
    axis of their own) and patches that are soft mixtures of the words of ``COLOURS``, by the
    distance of their mean colour to each."""

    def __init__(self) -> None:
        super().__init__()
        self.words = [bpe_encode(w)[0] for w in VOCAB]

    def _encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(ids), len(VOCAB) + 1)
        out[:, -1] = 1.0
        for axis, token in enumerate(self.words):
            hit = (ids == token).any(1)
            out[hit] = 0.0
            out[hit, axis] = 1.0
        return out

    def encode_dense(self, x: torch.Tensor, method: str = "clearclip") -> torch.Tensor:
        cells = nn.functional.avg_pool2d(x, self.patch_size).permute(0, 2, 3, 1)  # (B, h, w, 3)
        refs = torch.tensor(list(COLOURS.values()), dtype=torch.float32) / 255
        weights = (-((cells[..., None, :] - refs) ** 2).sum(-1) / 0.01).softmax(-1)
        out = torch.zeros(*cells.shape[:3], len(VOCAB) + 1)
        for k, word in enumerate(COLOURS):
            out[..., VOCAB.index(word)] = weights[..., k]
        return out

    def encode_pooled(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_dense(x).mean(dim=(1, 2))


def _sky_scene() -> tuple[np.ndarray, np.ndarray]:
    image = np.zeros((128, 160, 3), np.uint8)
    image[:80] = COLOURS["sky"]  # 62% of the photo
    image[80:] = COLOURS["ground"]
    image[96:120, 20:44] = COLOURS["red"]
    sky = np.zeros((128, 160), bool)
    sky[:80] = True
    return image, sky


def _iou(alpha: np.ndarray, mask: np.ndarray) -> float:
    pred = alpha > 0.5
    return float((pred & mask).sum() / (pred | mask).sum())


def test_a_background_word_wins_where_it_is(monkeypatch):
    image, sky = _sky_scene()
    p = ZeroShotPredictor(SkyCLIP(), config=ZeroShotConfig(image_size=128), device="cpu")
    classes = p._class_embeddings(["the sky"])
    assert len(classes) == 1 + len(p.config.background) - 1  # only "sky" stopped competing
    r = p.predict(image, "the sky")
    assert _iou(r.alpha, sky) > 0.95 and not r.unsure
    assert r.alpha[sky].mean() > 0.95 and r.alpha[~sky].max() < 0.05
    ground = p.predict(image, "the ground")
    assert _iou(ground.alpha, ~sky) > 0.8  # the ground but for the red square
    assert p.predict(image, "the red square").alpha[96:120, 20:44].mean() > 0.9
    # With "sky" competing against "the sky" the phrase never passes one half: the predictor
    # falls back, and the fallback leaves out regions over half the photo: the sky is lost.
    monkeypatch.setattr(dense, "keep_competitors", lambda p, c: torch.ones(len(c), dtype=bool))
    p.clear_cache()
    lost = p.predict(image, "the sky")
    assert lost.unsure and lost.alpha[sky].mean() < 0.05


# ---------------------------------------------------------------- the per-photo cache


def test_a_second_phrase_reads_no_window_again(mini_backbone, monkeypatch):
    p = _predictor(mini_backbone, matting_side=64)
    calls: list[tuple[int, ...]] = []
    encode = mini_backbone.encode_dense

    def counted(x: torch.Tensor, **kwargs) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return encode(x, **kwargs)

    monkeypatch.setattr(mini_backbone, "encode_dense", counted)
    photo = _photo(120, 300, seed=2)  # resized to 96 x 240: windows at x 0, 48, 96, 144
    p.predict(photo, "the red star")
    assert calls == [(4, 3, 96, 96)]  # four windows of one size, in one batch
    texts = p.stats["text_encodes"]
    r = p.predict(photo, "the blue heart")
    assert calls == [(4, 3, 96, 96)] and r.image_cached
    assert p.stats == {"image_encodes": 1, "cache_hits": 1, "text_encodes": texts + 8}


# ---------------------------------------------------------------- the config


def test_config_defaults_and_checks(mini_backbone):
    p = _predictor(mini_backbone)
    assert p.image_size == 96 and p.sliding == (96, 48) and p.logit_scale == 50.0
    assert ZeroShotConfig().method == "clearclip"
    assert _predictor(mini_backbone, method="sclip").logit_scale == 40.0
    learned = float(mini_backbone.clip.logit_scale.detach().exp())
    assert _predictor(mini_backbone, method="value-noresidual").logit_scale == pytest.approx(
        learned
    )
    assert _predictor(mini_backbone, logit_scale=7.0).logit_scale == 7.0
    assert REFERENCE_LOGIT_SCALE["maskclip"] == 100.0
    sclip = ZeroShotConfig.from_protocol(windows.SCLIP, method="sclip")
    assert (sclip.image_size, sclip.window, sclip.stride, sclip.logit_scale) == (336, 224, 112, 40)
    assert _predictor(mini_backbone, window=64, stride=16).sliding == (64, 16)
    for bad in ({"window": 0}, {"window": "big"}, {"stride": 0}, {"logit_scale": 0.0}):
        with pytest.raises(ValueError):
            ZeroShotConfig(**bad)
    with pytest.raises(ValueError, match="longer than the window"):
        _predictor(mini_backbone, window=32, stride=64)

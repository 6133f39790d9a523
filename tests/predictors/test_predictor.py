"""CLIPMatPredictor: any photo in, alpha at its size out; caching, batching, errors, registry."""

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import clipmat
from clipmat.phrases import infer_setting
from clipmat.predictors.results import check_box, check_points


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("size", [(37, 53), (301, 457), (640, 90), (128, 128)])
def test_alpha_at_input_resolution(tiny_predictor, size):
    r = tiny_predictor.predict(_photo(*size), "the red star")
    assert r.alpha.shape == size and r.alpha.dtype == np.float32
    assert np.isfinite(r.alpha).all() and r.alpha.min() >= 0 and r.alpha.max() <= 1
    assert r.trimap.shape == size and set(np.unique(r.trimap)) <= {0, 128, 255}
    assert 0.0 <= r.confidence <= 1.0 and r.predictor == tiny_predictor.name


def test_input_kinds_give_the_same_matte(tiny_predictor):
    rgb = _photo(60, 80)
    base = tiny_predictor.predict(rgb, "cat").alpha
    pil = tiny_predictor.predict(Image.fromarray(rgb), "cat").alpha
    rgba = tiny_predictor.predict(np.dstack([rgb, np.full((60, 80), 7, np.uint8)]), "cat").alpha
    wide = tiny_predictor.predict(rgb.astype(np.uint16) * 257, "cat").alpha  # 16-bit
    np.testing.assert_allclose(pil, base, atol=1e-6)
    np.testing.assert_allclose(rgba, base, atol=1e-6)
    np.testing.assert_allclose(wide, base, atol=1e-6)
    gray = tiny_predictor.predict(rgb[..., 0], "cat").alpha
    assert gray.shape == (60, 80)


def test_exif_rotation_is_applied(tiny_predictor):
    rgb = _photo(40, 90)
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(rgb).save(buf, format="PNG", exif=exif)
    r = tiny_predictor.predict(buf.getvalue(), "cat")
    assert r.alpha.shape == (90, 40)


def test_second_phrase_skips_the_image_encoder(tiny_predictor, monkeypatch):
    calls = []
    backbone = type(tiny_predictor.model.backbone)  # the class: the shared model is left alone
    original = backbone.encode_image_levels

    def counting(self, x):
        calls.append(x.shape)
        return original(self, x)

    monkeypatch.setattr(backbone, "encode_image_levels", counting)
    photo = _photo(70, 110, seed=3)
    tiny_predictor.clear_cache()
    first = tiny_predictor.predict(photo, "the dog on the left")
    second = tiny_predictor.predict(photo.copy(), "the cat")
    assert len(calls) == 1 and not first.image_cached and second.image_cached
    tiny_predictor.predict(_photo(70, 110, seed=4), "the cat")
    assert len(calls) == 2


def test_batched_phrases_match_single_calls(tiny_predictor):
    photo = _photo(64, 96, seed=5)
    phrases = ["cat", "the green tree at the bottom", "star"]
    batch = tiny_predictor.predict(photo, phrases)
    assert [r.text for r in batch] == phrases
    for phrase, r in zip(phrases, batch):
        np.testing.assert_allclose(tiny_predictor.predict(photo, phrase).alpha, r.alpha, atol=1e-5)


def test_setting_inference_and_override(tiny_predictor):
    assert infer_setting("cat") == "keyword" and infer_setting("the cat") == "keyword"
    assert infer_setting("the cat with white and black fur") == "expression"
    r = tiny_predictor.predict(_photo(32, 32), "cat", setting="expression")
    assert r.setting == "expression"
    assert tiny_predictor.predict(_photo(32, 32), "the teddy bear").setting == "keyword"


@pytest.mark.parametrize("bad", ["", "   ", [], [""], 3])
def test_bad_phrases_are_refused(tiny_predictor, bad):
    with pytest.raises((ValueError, TypeError), match="phrase"):
        tiny_predictor.predict(_photo(32, 32), bad)


def test_bad_images_are_refused(tiny_predictor):
    with pytest.raises(ValueError):
        tiny_predictor.predict(b"not an image at all", "cat")
    with pytest.raises(ValueError):
        tiny_predictor.predict(np.zeros((0, 5, 3), np.uint8), "cat")


def test_long_and_foreign_phrases_give_a_matte(tiny_predictor):
    long_text = "the cat " + "which is very fluffy and " * 60
    for text in (long_text, "猫", "кошка слева"):
        r = tiny_predictor.predict(_photo(48, 48), text)
        assert np.isfinite(r.alpha).all()


def test_registry_lists_every_predictor_with_a_reason():
    statuses = {s.name: s for s in clipmat.list_predictors()}
    assert {"mini-world", "clipmat-vitb16", "clipmat-vitl14", "zeroshot-vitb16"} <= set(statuses)
    for s in statuses.values():
        assert s.licence
        assert s.available or s.reason


def test_load_predictor_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="available"):
        clipmat.load_predictor("clipmat-giant")
    monkeypatch.setenv("CLIPMAT_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="clipmat download"):
        clipmat.load_predictor("clipmat-vitb16", allow_download=False)


def test_load_predictor_from_weights_dir(tiny_model, tmp_path, monkeypatch):
    """A trained checkpoint in the weights folder makes its predictor available and loadable."""
    model = tiny_model
    spec = clipmat.pretrained.hub.get_weight_spec("clipmat-vitb16")
    monkeypatch.setenv("CLIPMAT_WEIGHTS_DIR", str(tmp_path))
    clipmat.save_model(model, tmp_path / spec.filename)
    if spec.sha256 is None:
        status = {s.name: s for s in clipmat.list_predictors()}["clipmat-vitb16"]
        assert status.available, status.reason
        p = clipmat.load_predictor("clipmat-vitb16", device="cpu")
        assert p.name == "clipmat-vitb16" and p.licence == spec.licence
        assert p.predict(_photo(40, 40), "cat").alpha.shape == (40, 40)


def test_inference_never_imports_training_code():
    code = (
        "import sys, numpy as np, clipmat\n"
        "p = clipmat.CLIPMatPredictor(clipmat.create_model('clipmat-tiny'), device='cpu')\n"
        "p.predict(np.zeros((32, 32, 3), np.uint8), 'cat')\n"
        "bad = [m for m in sys.modules if m.startswith(('clipmat.data', 'clipmat.training.cli',"
        " 'clipmat.training.losses', 'clipmat.evaluation.evaluate', 'clipmat.training.clip_pretrain', 'editing'))]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_one_interface_for_every_predictor(tiny_predictor):
    """Both predictors take the same call; an option one cannot honour is a clear error."""
    from clipmat.zeroshot import ZeroShotPredictor, create_backbone

    torch.manual_seed(0)
    zeroshot = ZeroShotPredictor(create_backbone(tiny_predictor.model.cfg.clip), device="cpu")
    photo = _photo(48, 64)
    for p in (tiny_predictor, zeroshot):
        assert isinstance(p, clipmat.Predictor)
        encoded = p.set_image(photo)
        assert isinstance(encoded, clipmat.EncodedImage) and encoded.photo.rgb.shape == (48, 64, 3)
        encodes = p.stats["image_encodes"]
        r = p.predict(encoded, "the red star", setting="keyword", refine=True)
        assert isinstance(r, clipmat.MattingResult) and r.alpha.shape == (48, 64)
        assert r.image_cached and p.stats["image_encodes"] == encodes
        with pytest.raises(ValueError, match="setting"):
            p.predict(photo, "x", setting="keywords")
        with pytest.raises(ValueError, match="point"):  # badly formed, or not taken
            p.predict(photo, "x", points=[(1, 2)])
    with pytest.raises(ValueError, match="each point must be"):
        check_points([(1, 2)])
    with pytest.raises(ValueError, match="x0 < x1"):
        check_box((5, 0, 2, 9))
    assert check_points([(1, 2.5, 0)]) == ((1.0, 2.5, False),)
    with pytest.raises(ValueError, match="out of range"):
        tiny_predictor.predict(photo, "the star", candidate=99)
    with pytest.raises(ValueError, match="single phrase"):
        zeroshot.predict(photo, ["a", "b"], candidate=0)


def test_a_photo_with_its_key_is_not_hashed_again(tiny_predictor, monkeypatch):
    import clipmat.predictors.results as base

    photo = clipmat.Photo(_photo(40, 40), "my-key")
    monkeypatch.setattr(base, "fingerprint", lambda *a: pytest.fail("hashed again"))
    monkeypatch.setattr(base, "load_image", lambda *a, **k: pytest.fail("decoded again"))
    first = tiny_predictor.predict(photo, "the cat")
    assert not first.image_cached and tiny_predictor.predict(photo, "the dog").image_cached


def test_precision_is_a_predictor_option(mini_world):
    photo = np.asarray(Image.open("examples/miniworld_shapes.jpg").convert("RGB"))
    fp32 = mini_world
    int8 = clipmat.load_predictor("mini-world", device="cpu", precision="int8")
    assert int8.precision == "int8" and fp32.precision == "fp32"
    phrase = "the red ball on the far left of the photo"
    a, b = fp32.predict(photo, phrase).alpha, int8.predict(photo, phrase).alpha
    assert np.abs(a - b).mean() < 0.02 and ((a > 0.5) == (b > 0.5)).mean() > 0.97
    with pytest.raises(ValueError, match="unknown precision"):
        clipmat.load_predictor("mini-world", device="cpu", precision="int4")
    with pytest.raises(ValueError, match="'onnx' applies to CLIPMat predictors only"):
        clipmat.load_predictor("zeroshot-vitb16", precision="onnx", pretrained=False)


def test_an_empty_matte_says_so(mini_world):
    """On the shapes scene (a red ball, a green star, a yellow wedge) "the red star" matches
    nothing for the bundled model: the matte is empty and a note says what to try instead; a
    phrase that matches carries no such note."""
    photo = np.asarray(Image.open("examples/miniworld_shapes.jpg").convert("RGB"))
    p = mini_world
    empty, found = p.predict(photo, ["the red star", "the green shape"])
    assert empty.alpha.max() < 0.05 and empty.unsure
    assert any("nothing in the photo matched 'the red star'" in n for n in empty.notes)
    assert found.alpha.max() > 0.9 and not any("nothing" in n for n in found.notes)


class _Encoder(clipmat.Predictor):
    """A predictor whose features are the photo's mean (no model)."""

    def _encode(self, photo):
        return float(photo.rgb.mean())


def test_features_of_a_collected_predictor_are_not_taken_by_a_new_one():
    """A collected predictor leaves its id to a later object; a new predictor at that id
    computes the features again rather than trusting an old predictor's."""
    import gc

    photo = np.full((8, 8, 3), 7, np.uint8)
    seen: dict[int, clipmat.EncodedImage] = {}
    reused = 0
    for i in range(40):
        predictor = _Encoder(name=f"p{i}", device="cpu")
        if id(predictor) in seen:  # another predictor's features at this id
            reused += 1
            again = predictor.set_image(seen[id(predictor)])
            assert not again.cached and predictor.stats["image_encodes"] == 1
        seen[id(predictor)] = predictor.set_image(photo)
        del predictor
        gc.collect()
    assert reused > 0  # CPython did hand ids on: the case above was exercised


def test_bad_options_are_refused_before_encoding(tiny_predictor):
    photo = np.zeros((40, 60, 3), np.uint8)
    with pytest.raises(ValueError, match=r"the click \(10, 2.14748e\+09\) is outside the photo"):
        tiny_predictor.predict(photo, "the thing", points=[(10, 2**31, True)])
    with pytest.raises(ValueError, match="does not overlap the photo"):
        tiny_predictor.predict(photo, "", box=(70, 0, 90, 20))
    with pytest.raises(ValueError, match="points must be a list"):
        tiny_predictor.predict(photo, "the thing", points=5)
    with pytest.raises(ValueError, match="candidate= picks a region of one phrase"):
        tiny_predictor.predict(photo, ["a cat", "a dog"], candidate=0, box=(0, 0, 10, 10))
    assert tiny_predictor.stats["image_encodes"] == 0  # every refusal before any encoding
    inside = tiny_predictor.predict(photo, "", box=(-5, -5, 30, 30))  # overlapping: kept
    assert inside.alpha.shape == (40, 60)

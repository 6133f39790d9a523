"""The launched app through gradio_client: /matte and /edit against the predictor and the
editing layer called directly, and bad inputs answered with clear errors while serving goes on."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import editing
from clipmat.imageio import load_image
from clipmat_app.inputs import read_photo
from clipmat_app.pool import RANDOM_TINY, PredictorPool, create_random_tiny
from clipmat_app.service import MatteService
from clipmat_app.ui import build_demo
from clipmat_app.views import overlay

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from helpers import assert_same_image, serve_local  # noqa: E402

CAT = str(ROOT / "examples" / "photo_cat.jpg")
MAX_SIDE = 512
MAX_PIXELS = 2_000_000


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    predictor = create_random_tiny("cpu")
    pool = PredictorPool({RANDOM_TINY: predictor}, device="cpu")
    work = tmp_path_factory.mktemp("app")
    service = MatteService(pool, workdir=work, max_side=MAX_SIDE, max_pixels=MAX_PIXELS)
    demo = build_demo(pool, RANDOM_TINY, service=service)
    url = serve_local(demo)
    client = Client(url, verbose=False)
    yield client, predictor
    demo.close()
    service.close()


def _read(path: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(path, cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)


def _matte(client: Client, image: str, phrase: str) -> tuple:
    # refine=False: these checks compare with the plain prediction, exactly
    return client.predict(handle_file(image), phrase, RANDOM_TINY, False, api_name="/matte")


def test_matte_endpoint_matches_predictor(served):
    client, predictor = served
    matte, over, status, cutout, matte16, candidates = _matte(client, CAT, "the cat")
    photo = load_image(CAT)
    alpha = predictor.predict(photo, "the cat").alpha
    got = np.asarray(Image.open(matte))
    assert got.shape == photo.shape[:2]
    assert_same_image(got, editing.matte_to_bits(alpha, 8))
    assert_same_image(
        editing.matte_to_bits(editing.load_matte(matte16), 16), editing.matte_to_bits(alpha, 16)
    )
    assert_same_image(_read(over), overlay(photo, alpha))
    rgba = np.asarray(Image.open(cutout))
    assert rgba.shape == (*photo.shape[:2], 4)
    assert_same_image(rgba, editing.cutout(photo, alpha))
    assert RANDOM_TINY in status and "the cat" in status
    want = predictor.predict(photo, "the cat").candidates
    assert [c["score"] for c in candidates] == [round(c.score, 4) for c in want]
    assert [c["box"] for c in candidates] == [list(c.box) for c in want]
    assert [c["chosen"] for c in candidates] == [c.chosen for c in want]
    assert [c["index"] for c in candidates] == list(range(len(want)))


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("highlight", lambda p, a: editing.highlight(p, a, effect="dim+blur", strength=0.4)),
        ("color", lambda p, a: editing.fill_color(p, a, "#ff8800")),
        ("background", lambda p, a: editing.replace_background(p, a, "blur")),
        ("cutout", lambda p, a: editing.cutout(p, a)),
    ],
)
def test_edit_endpoint_matches_editing_layer(served, mode, expected):
    client, predictor = served
    out = client.predict(
        handle_file(CAT),
        "the cat",
        RANDOM_TINY,
        mode,
        ["dim", "blur"],
        0.4,
        "#ff8800",
        None,
        False,
        api_name="/edit",
    )
    photo = load_image(CAT)
    alpha = predictor.predict(photo, "the cat").alpha
    got = np.asarray(Image.open(out))
    assert_same_image(got, expected(photo, alpha))


def test_edit_with_uploaded_background_reuses_the_matte(served, tmp_path, rng):
    """A second edit of the same photo and phrase is served from the matte cache: the predictor
    is not called again (the edit's speed itself is measured in bench/editing.py)."""
    client, predictor = served
    sky = np.zeros((50, 80, 3), np.uint8)
    sky[..., 2] = 255
    Image.fromarray(sky).save(tmp_path / "sky.png")
    args = (handle_file(CAT), "a cat", RANDOM_TINY)
    client.predict(*args, "color", [], 0.5, "#00ff00", None, False, api_name="/edit")  # matte once
    calls = dict(predictor.stats)
    out = client.predict(
        *args,
        "background",
        [],
        0.5,
        "#00ff00",
        handle_file(str(tmp_path / "sky.png")),
        False,
        api_name="/edit",
    )
    assert predictor.stats == calls
    photo = load_image(CAT)
    alpha = predictor.predict(photo, "a cat").alpha
    want = editing.replace_background(photo, alpha, sky)
    assert_same_image(Image.open(out), want)


def _error(client: Client, image: str, phrase: str) -> str:
    with pytest.raises(Exception) as err:  # gradio_client's AppError
        _matte(client, image, phrase)
    return str(err.value)


def test_bad_inputs_get_clear_messages(served, tmp_path, rng):
    client, _ = served
    (tmp_path / "notes.png").write_bytes(b"these are notes, not pixels")
    assert "could not be read as an image" in _error(client, str(tmp_path / "notes.png"), "x")
    truncated = Path(CAT).read_bytes()[:2000]
    (tmp_path / "cut.jpg").write_bytes(truncated)
    assert "image" in _error(client, str(tmp_path / "cut.jpg"), "the cat")
    assert "phrase is empty" in _error(client, CAT, "   ")
    Image.new("RGB", (2000, 1500)).save(tmp_path / "huge.png")  # 3 MP over a 2 MP limit
    message = _error(client, str(tmp_path / "huge.png"), "the cat")
    assert "more than the limit" in message and "huge.png" in message
    # the server goes on serving
    assert RANDOM_TINY in _matte(client, CAT, "the cat")[2]


def test_awkward_images_get_sane_results(served, tmp_path, rng):
    client, predictor = served
    photo = load_image(CAT)
    h, w = photo.shape[:2]
    Image.fromarray(np.dstack([photo, np.full((h, w), 80, np.uint8)])).save(tmp_path / "rgba.png")
    cv2.imwrite(
        str(tmp_path / "deep.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257
    )
    Image.fromarray(photo).convert("L").save(tmp_path / "gray.jpg")
    Image.fromarray(photo).convert("CMYK").save(tmp_path / "cmyk.jpg")
    exif = Image.Exif()
    exif[274] = 8  # stored rotated: viewers turn it by 90 degrees
    Image.fromarray(photo).save(tmp_path / "exif.jpg", exif=exif)
    Image.fromarray(rng.integers(0, 256, (600, 900, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    for name, shape in [
        ("rgba.png", (h, w)),
        ("deep.png", (h, w)),
        ("gray.jpg", (h, w)),
        ("cmyk.jpg", (h, w)),
        ("exif.jpg", (w, h)),
        ("big.png", (341, 512)),
    ]:
        path = str(tmp_path / name)
        matte, _, status, *_ = _matte(client, path, "the cat")
        got = np.asarray(Image.open(matte))
        assert got.shape == shape, name
        want = predictor.predict(read_photo(path, max_side=MAX_SIDE).rgb, "the cat").alpha
        assert_same_image(got, editing.matte_to_bits(want, 8), name)
        if name == "big.png":  # matted at 512x341, downloaded at its own size
            assert "scaled to 512x341" in status and "own size, 900x600" in status
            _, _, _, cutout, matte16, _ = _matte(client, path, "the cat")
            assert np.asarray(Image.open(cutout)).shape == (600, 900, 4)
            assert editing.load_matte(matte16).shape == (600, 900)


def test_awkward_phrases(served):
    client, predictor = served
    status = _matte(client, CAT, "the cat " * 60)[2]
    assert "only its start was read" in status
    matte, _, status, *_ = _matte(client, CAT, "那只猫")
    assert "English" in status
    want = predictor.predict(load_image(CAT), "那只猫").alpha
    assert (
        np.abs(np.asarray(Image.open(matte)).astype(int) - editing.matte_to_bits(want, 8)).max()
        <= 1
    )


def test_concurrent_clients_all_answered(served):
    client, predictor = served
    phrases = [f"the cat number {i}" for i in range(6)]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda p: _matte(client, CAT, p), phrases))
    photo = load_image(CAT)
    for phrase, (matte, *_rest) in zip(phrases, results, strict=True):
        want = editing.matte_to_bits(predictor.predict(photo, phrase).alpha, 8)
        assert_same_image(Image.open(matte), want)


def test_matte_is_refined_on_request(served):
    """refine=True re-mattes the transition band in closed form."""
    client, predictor = served
    default = client.predict(handle_file(CAT), "the cat", RANDOM_TINY, True, api_name="/matte")
    photo = load_image(CAT)
    plain = predictor.predict(photo, "the cat").alpha
    refined = predictor.predict(photo, "the cat", refine=True).alpha
    got = editing.load_matte(default[4])
    assert np.abs(refined - plain).max() > 0.05  # the refiner really changes the band
    assert np.abs(got - refined).mean() < 0.2 * np.abs(plain - refined).mean()


def test_matte_endpoint_takes_a_box_clicks_and_a_candidate(served):
    """/matte's optional inputs: a box alone with an empty phrase mattes with no model; clicks
    and a candidate correct a phrase's matte; the candidates come back with their boxes."""
    client, predictor = served
    box = [60, 40, 300, 230]
    matte, _, status, cutout, _, candidates = client.predict(
        handle_file(CAT), "", RANDOM_TINY, False, None, box, None, api_name="/matte"
    )
    assert status.startswith("**Matted from the box alone**") and candidates == []
    alpha = np.asarray(Image.open(matte)).astype(np.float32) / 255
    outside = np.ones(alpha.shape, bool)
    outside[40 - 5 : 230 + 5, 60 - 5 : 300 + 5] = False
    assert alpha[~outside].mean() > 0.2 and alpha[outside].max() == 0
    assert np.asarray(Image.open(cutout))[..., 3][outside].max() == 0
    photo = load_image(CAT)
    auto = predictor.predict(photo, "the cat")
    pick = len(auto.candidates) - 1
    out = client.predict(
        handle_file(CAT), "the cat", RANDOM_TINY, False, None, None, pick, api_name="/matte"
    )
    want = predictor.predict(photo, "the cat", candidate=pick)
    assert_same_image(Image.open(out[0]), editing.matte_to_bits(want.alpha, 8))
    assert [c["chosen"] for c in out[5]] == [c.chosen for c in want.candidates]
    ys, xs = np.nonzero(auto.candidates[pick].mask_at(photo.shape[:2]))
    points = [[int(xs[len(xs) // 2]), int(ys[len(ys) // 2]), True]]  # on that candidate
    out = client.predict(
        handle_file(CAT), "the cat", RANDOM_TINY, False, points, None, None, api_name="/matte"
    )
    want = predictor.predict(photo, "the cat", points=[tuple(p) for p in points])
    assert "· 1 click" in out[2].split("\n")[0]
    # the click keeps the object under it with a graph cut, whose colour model starts from
    # OpenCV's per-thread random state: a few pixels may differ from this thread's cut
    got = np.asarray(Image.open(out[0])).astype(np.float32) / 255
    assert np.abs(got - want.alpha).mean() < 0.02

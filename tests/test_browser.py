"""The app in a real browser: upload a photo, type a phrase, run, and read back what it shows."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_same_image
from PIL import Image

import editing
from clipmat.imageio import load_image
from clipmat_app.pool import RANDOM_TINY, PredictorPool, create_random_tiny
from clipmat_app.service import MatteService

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
CAT = ROOT / "examples" / "photo_cat.jpg"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]


@pytest.fixture(scope="module")
def page_and_predictor(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api")
    sys.path.insert(0, str(ROOT))
    from clipmat_app import cli, ui

    predictor = create_random_tiny("cpu")
    pool = PredictorPool({RANDOM_TINY: predictor}, device="cpu")
    service = MatteService(pool, workdir=tmp_path_factory.mktemp("browser"))
    demo = ui.build_demo(pool, RANDOM_TINY, service=service)
    url = cli.serve_local(demo)
    with sync_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_selector("#run", timeout=30_000)
        yield page, predictor
        browser.close()
    demo.close()
    service.close()


def _shown(page, elem_id: str) -> np.ndarray:
    """The pixels of the image that component ``elem_id`` displays, fetched as the browser does."""
    img = page.locator(f"#{elem_id} img").first
    img.wait_for(timeout=60_000)
    body = page.request.get(img.get_attribute("src")).body()
    return np.asarray(Image.open(io.BytesIO(body)))


def test_upload_type_run_shows_the_matte_and_edit(page_and_predictor, tmp_path):
    page, predictor = page_and_predictor
    page.locator("#photo input[type=file]").set_input_files(str(CAT))
    page.locator("#phrase textarea").fill("the cat")
    page.locator("#run").click()
    page.wait_for_function(
        "document.querySelector('#status').innerText.includes('matted')", timeout=60_000
    )
    photo = load_image(CAT)
    alpha = predictor.predict(photo, "the cat", refine=True).alpha  # "Refine edges" is on
    matte = _shown(page, "matte")
    assert matte.shape[:2] == photo.shape[:2]
    gray = matte if matte.ndim == 2 else matte[..., 0]
    assert_same_image(gray, editing.matte_to_bits(alpha, 8))
    page.wait_for_selector("#edit img", timeout=60_000)
    edit = _shown(page, "edit")[..., :3]
    want = editing.highlight(photo, alpha, effect="dim", strength=0.6)
    assert_same_image(edit, want)
    assert "random-tiny" in page.locator("#status").inner_text()
    page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
    assert (tmp_path / "app.png").stat().st_size > 10_000


def test_an_example_is_matted_from_gradio_s_cache(page_and_predictor):
    """Clicking an example sends the copy Gradio made in its cache, which the app accepts as an
    upload (files anywhere else on the server are refused)."""
    page, _ = page_and_predictor
    page.get_by_text("the yellow pompom at the back of the picture").first.click()
    page.wait_for_function(
        "document.querySelector('#phrase textarea').value.includes('yellow pompom')",
        timeout=30_000,
    )
    page.locator("#run").click()
    page.wait_for_function(
        "document.querySelector('#status').innerText.includes('yellow pompom')", timeout=60_000
    )
    assert _shown(page, "matte").shape[:2] == (256, 256)

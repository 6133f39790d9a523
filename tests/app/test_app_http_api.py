"""The plain HTTP API (/api/matte, /api/health): a multipart request in, the PNG itself out,
through the page's admission, checks and matting slots."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
from helpers import assert_same_image, random_tiny_predictor, serve_local
from PIL import Image

import editing
from clipmat.imageio import load_image
from clipmat_app.admission import PER_ADDRESS, Admission
from clipmat_app.pool import RANDOM_TINY, PredictorPool
from clipmat_app.service import MatteService
from clipmat_app.ui import build_demo

ROOT = Path(__file__).resolve().parents[2]
CAT = ROOT / "examples" / "photo_cat.jpg"


class Gate:
    """``inner`` whose predictions wait while ``gate`` is closed (a busy model)."""

    def __init__(self, inner) -> None:
        self.inner, self.gate = inner, threading.Event()
        self.gate.set()
        self.name, self.licence = inner.name, inner.licence

    def predict(self, photo, phrase, **options):
        self.gate.wait(timeout=60)
        return self.inner.predict(photo, phrase, **options)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def api(tiny_model, tmp_path_factory):
    predictor = random_tiny_predictor(tiny_model)
    gated = Gate(predictor)
    pool = PredictorPool({RANDOM_TINY: lambda: gated}, device="cpu")
    service = MatteService(pool, workdir=tmp_path_factory.mktemp("api"), max_side=512)
    admission = Admission(trusted_proxies=1)
    demo = build_demo(pool, RANDOM_TINY, service=service, admission=admission)
    url = serve_local(demo)
    yield SimpleNamespace(
        url=url, predictor=predictor, gated=gated, service=service, admission=admission
    )
    demo.close()
    service.close()


def _post(api, headers=None, **fields) -> httpx.Response:
    files = {"image": ("cat.jpg", CAT.read_bytes(), "image/jpeg")}
    for name in ("background",):
        if name in fields:
            files[name] = ("back.png", fields.pop(name), "image/png")
    return httpx.post(f"{api.url}api/matte", data=fields, files=files, headers=headers, timeout=120)


def _png(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)))


def test_a_matte_is_the_png_itself_with_its_notes_in_headers(api):
    photo = load_image(CAT)
    response = _post(api, text="the cat")
    got = _png(response)
    want = api.predictor.predict(photo, "the cat", refine=False).alpha
    assert got.shape == photo.shape[:2] and got.dtype == np.uint8
    assert_same_image(got, editing.matte_to_bits(want, 8))
    assert response.headers["x-clipmat-predictor"] == RANDOM_TINY
    assert 0.0 <= float(response.headers["x-clipmat-confidence"]) <= 1.0
    assert response.headers["x-clipmat-unsure"] in ("true", "false")
    assert isinstance(json.loads(response.headers["x-clipmat-notes"]), list)
    deep = _png(_post(api, text="the cat", depth="16"))
    assert deep.dtype == np.uint16 and deep.shape == got.shape
    assert np.abs(deep / 257.0 - got).max() <= 1.0


def test_every_output_kind(api):
    photo = load_image(CAT)
    size = photo.shape[:2]
    cutout = _png(_post(api, text="the cat", output="cutout"))
    assert cutout.shape == (*size, 4)
    for output in ("overlay", "highlight", "color"):
        assert _png(_post(api, text="the cat", output=output, color="orange")).shape[:2] == size
    back = io.BytesIO()
    Image.new("RGB", (40, 30), (0, 200, 0)).save(back, format="PNG")
    green = _png(_post(api, text="the cat", output="background", background=back.getvalue()))
    alpha = api.predictor.predict(photo, "the cat", refine=False).alpha
    outside = alpha < 0.02
    off = np.abs(green[outside][:, :3].astype(int) - [0, 200, 0]).max(axis=1)
    assert outside.any() and (off <= 2).mean() > 0.99 and off.max() <= 8  # light wrap at edges


def test_a_box_alone_needs_no_phrase(api):
    matte = _png(_post(api, box="100,20,300,240")) / 255.0  # around the cat
    outside = matte.copy()
    outside[15:245, 95:305] = 0
    assert matte.max() > 0.9 and outside.max() < 0.05 and matte[20:240, 100:300].mean() > 0.2


@pytest.mark.parametrize(
    ("fields", "status", "says"),
    [
        ({"text": "the cat", "output": "sketch"}, 422, "output must be one of"),
        ({"text": "the cat", "depth": "12"}, 422, "depth must be 8 or 16"),
        ({"text": "the cat", "box": "9,9,1,1"}, 422, "box"),
        ({"text": "the cat", "points": "[[1, 2]]"}, 422, "click"),
        ({"text": "x" * 5000}, 422, "at most 4000 characters"),
        ({"text": "the cat", "predictor": "nope"}, 422, "unknown predictor"),
        ({"text": "the cat", "colour": "red"}, 400, "unknown field"),
    ],
)
def test_bad_values_are_answered_with_what_is_accepted(api, fields, status, says):
    response = _post(api, **fields)
    assert response.status_code == status, response.text
    assert says in response.json()["error"]


def test_requests_that_are_not_a_photo_form(api):
    no_form = httpx.post(f"{api.url}api/matte", json={"text": "the cat"})
    assert no_form.status_code == 400 and "multipart" in no_form.json()["error"]
    no_image = httpx.post(f"{api.url}api/matte", files={"text": (None, "the cat")})
    assert no_image.status_code == 400 and "no image" in no_image.json()["error"]
    not_a_photo = httpx.post(
        f"{api.url}api/matte", files={"image": ("a.jpg", b"GIF89a not really")}, data={"text": "x"}
    )
    assert not_a_photo.status_code == 422 and not_a_photo.json()["error"]


def test_a_body_over_the_limit_is_refused_before_it_is_read(api):
    where = urlparse(api.url)
    with socket.create_connection((where.hostname, where.port), timeout=30) as conn:
        conn.sendall(
            b"POST /api/matte HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            b"boundary=b\r\nContent-Length: 99999999999\r\n\r\n--b\r\n"
        )
        answer = b""
        while chunk := conn.recv(4096):  # the answer closes the connection
            answer += chunk
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 413") and '"error"' in answer


def test_the_address_cap_counts_api_requests(api):
    """With matting stalled, one address gets its share of API requests in; the next is
    answered 429 with Retry-After, another address still gets in, and all finish."""
    headers = {"x-forwarded-for": "203.0.113.77"}
    api.gated.gate.clear()
    try:
        with ThreadPoolExecutor(PER_ADDRESS + 1) as workers:
            held = [
                workers.submit(_post, api, headers, text=f"the thing {i}")
                for i in range(PER_ADDRESS)
            ]
            counted = ("address", "203.0.113.77")
            deadline = time.perf_counter() + 60
            while api.admission._joining[counted] < PER_ADDRESS:  # all of them admitted
                assert time.perf_counter() < deadline, api.admission._joining
                time.sleep(0.1)
            busy = _post(api, headers, text="one more")
            assert busy.status_code == 429 and "too many requests" in busy.json()["error"]
            assert busy.headers["retry-after"]
            other = workers.submit(_post, api, {"x-forwarded-for": "198.51.100.5"}, text="a")
            api.gated.gate.set()
            assert all(r.result(timeout=120).status_code == 200 for r in held)
            assert other.result(timeout=120).status_code == 200
    finally:
        api.gated.gate.set()


def test_health(api):
    _post(api, text="the cat")
    answer = httpx.get(f"{api.url}api/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok" and RANDOM_TINY in body["predictors"]
    assert body["default"] == RANDOM_TINY

"""Fuzzing the app over HTTP: random multipart forms to the plain API and random JSON bodies to
the page's queue (/matte and /edit). Every request is answered with a result or a 4xx that
says why, never a 5xx, and the app keeps serving."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from helpers import random_tiny_predictor, serve_local
from hypothesis import event, given
from hypothesis import strategies as st
from PIL import Image

from clipmat_app.admission import Admission
from clipmat_app.http_api import FIELDS, OUTPUTS
from clipmat_app.pool import RANDOM_TINY, PredictorPool
from clipmat_app.service import MatteService
from clipmat_app.ui import build_demo

ANSWERED = {200, 400, 413, 422, 429}


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def app(tiny_model, tmp_path_factory):
    pool = PredictorPool({RANDOM_TINY: random_tiny_predictor(tiny_model)}, device="cpu")
    service = MatteService(pool, workdir=tmp_path_factory.mktemp("fuzz"), max_side=256)
    # a generous cap: the fuzzer sends one request at a time from one address
    demo = build_demo(pool, RANDOM_TINY, service=service, admission=Admission(per_address=64))
    url = serve_local(demo)
    config = httpx.get(f"{url}config").json()
    ids = {d.get("api_name"): d["id"] for d in config["dependencies"]}
    yield url, ids
    demo.close()
    service.close()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
texts = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["the cat", "", "20,20,80,80", "[[10, 10, 1]]", "cutout", "16", "true"]),
)
files = st.one_of(
    st.binary(max_size=200),
    st.builds(_png, st.integers(1, 64), st.integers(1, 64)),
    st.just(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40),
)
PLAUSIBLE = {  # values the API accepts, mixed with others
    "box": st.sampled_from(["5,5,30,30", "", "0,0,1,1", "[2, 2, 20, 20]"]) | texts,
    "points": st.sampled_from(["[[10, 10, 1]]", "[[1, 1, 0], [5, 5, 1]]", ""]) | texts,
    "output": st.sampled_from(OUTPUTS),
    "depth": st.sampled_from(["8", "16"]),
    "refine": st.sampled_from(["true", "false"]),
    "color": st.sampled_from(["orange", "#00ff00", "rgb(1,2,3)"]) | texts,
    "predictor": st.sampled_from([RANDOM_TINY, ""]) | texts,
}
field_names = st.one_of(st.sampled_from(FIELDS), st.text(min_size=1, max_size=8))


@given(
    fields=st.one_of(
        st.fixed_dictionaries({"text": st.sampled_from(["the cat", "a"])}, optional=PLAUSIBLE),
        st.dictionaries(st.sampled_from(FIELDS[1:]), texts, max_size=6),  # the API's own fields
        st.dictionaries(field_names, texts, max_size=6),
    ),
    uploads=st.one_of(
        st.fixed_dictionaries({"image": files}, optional={"background": files}),
        st.fixed_dictionaries({"image": st.builds(_png, st.integers(1, 64), st.integers(1, 64))}),
        st.dictionaries(st.sampled_from(["image", "background", "text", "x"]), files, max_size=2),
    ),
)
def test_the_plain_api_answers_any_form(app, fields, uploads):
    url, _ = app
    data = {k: v for k, v in fields.items() if k not in uploads}
    parts = {k: (f"{k}.bin", v, "application/octet-stream") for k, v in uploads.items()}
    try:
        answer = httpx.post(f"{url}api/matte", data=data, files=parts or None, timeout=120)
    except httpx.HTTPError as err:
        pytest.fail(f"no answer: {err!r}")
    assert answer.status_code in ANSWERED, answer.text
    event(str(answer.status_code))
    if answer.status_code == 200:
        assert answer.headers["content-type"] == "image/png"
    else:
        assert json.loads(answer.text)["error"]


@given(
    endpoint=st.sampled_from(["matte", "edit"]),
    data=st.one_of(json_values, st.lists(json_values, max_size=10)),
    session=st.one_of(st.none(), st.text(max_size=12)),
)
def test_the_queue_answers_any_json(app, endpoint, data, session):
    url, ids = app
    body = {"data": data, "fn_index": ids[endpoint], "session_hash": session}
    answer = httpx.post(f"{url}gradio_api/queue/join", json=body, timeout=60)
    assert answer.status_code < 500, answer.text
    event(str(answer.status_code))


def test_the_app_still_serves_after_the_fuzzing(app):
    url, _ = app
    assert httpx.get(f"{url}api/health").status_code == 200
    photo = {"image": ("p.png", _png(40, 30), "image/png")}
    assert httpx.post(f"{url}api/matte", files=photo, data={"text": "a"}).status_code == 200

"""The app as a stranger on the internet would probe it (loopback only): server files named as
inputs, oversized requests and data: URLs, small files that decode large, bad colours and
phrases, and what the error messages give away."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import socket
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import httpx
import numpy as np
import pytest
from helpers import random_tiny_predictor, serve_local
from PIL import Image

from clipmat_app.admission import Admission
from clipmat_app.components import PhotoInput
from clipmat_app.corrections import BOX_HINT, CANDIDATE_HINT, MAX_POINTS, POINTS_HINT
from clipmat_app.inputs import NOT_AN_UPLOAD, clean_phrase, read_photo, upload_folders
from clipmat_app.pool import RANDOM_TINY, PredictorPool
from clipmat_app.service import MatteService
from clipmat_app.ui import build_demo

ROOT = Path(__file__).resolve().parents[2]
CAT = ROOT / "examples" / "photo_cat.jpg"
META = {"_type": "gradio.FileData"}
MAX_PIXELS = 2_000_000  # decode budget 7 B/px x 2 MP + 16 MB = 30.8 MB


def call(url: str, api: str, data: list, headers: dict | None = None) -> tuple[str, Any]:
    """One API call the way any HTTP client can make it: ("complete", outputs),
    ("error", message) or (HTTP status, detail) when the server refuses to queue it."""
    body = json.dumps({"data": data}).encode()  # ASCII: a lone surrogate travels as \\ud800
    head = {"content-type": "application/json", **(headers or {})}
    r = httpx.post(f"{url}gradio_api/call/{api}", content=body, headers=head, timeout=60)
    if r.status_code != 200:
        return str(r.status_code), r.json().get("detail")
    event = r.json()["event_id"]
    kind = None
    with httpx.stream("GET", f"{url}gradio_api/call/{api}/{event}", timeout=60) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line.partition(":")[2].strip()
            elif line.startswith("data:") and kind in ("complete", "error"):
                payload = json.loads(line[5:])
                return kind, payload.get("error") if kind == "error" else payload
    return str(kind), None


def messages(detail: Any) -> list[str]:
    """The messages of a 422 validation answer (or the text of any other)."""
    if isinstance(detail, list):
        return [d["message"] for d in detail if not d.get("is_valid", True)]
    return [str(detail)]


def upload(url: str, path: Path) -> dict:
    """Upload a file as the web page does; the FileData to send."""
    with open(path, "rb") as handle:
        r = httpx.post(f"{url}gradio_api/upload", files={"files": (path.name, handle)})
    r.raise_for_status()
    return {"path": r.json()[0], "orig_name": path.name, "meta": META}


def edit_args(photo: Any, *, background: Any = None, mode: str = "highlight", **kw) -> list:
    settings = {"phrase": "the cat", "strength": 0.0, "color": "#ff0000", **kw}
    return [
        photo,
        settings["phrase"],
        RANDOM_TINY,
        mode,
        ["dim"],
        settings["strength"],
        settings["color"],
        background,
        False,
    ]


@pytest.fixture(scope="module")
def app(tiny_model, tmp_path_factory):
    pool = PredictorPool({RANDOM_TINY: random_tiny_predictor(tiny_model)}, device="cpu")
    work = tmp_path_factory.mktemp("security")
    service = MatteService(pool, workdir=work / "mattes", max_side=512, max_pixels=MAX_PIXELS)
    demo = build_demo(pool, RANDOM_TINY, service=service, admission=Admission())
    url = serve_local(demo)
    yield SimpleNamespace(url=url, service=service, work=work)
    demo.close()
    service.close()


@pytest.fixture(scope="module")
def secret(app):
    """An image on the server outside every folder the app reads from."""
    path = app.work / "private" / "secret.png"
    path.parent.mkdir()
    Image.fromarray(np.full((40, 60, 3), 7, np.uint8)).save(path)
    return path


def test_server_files_are_refused_in_both_slots(app, secret):
    """Finding 1: a FileData naming a server file, with or without ``meta``, through ``..``
    or a symbolic link inside Gradio's own folder, or a URL, never returns pixels, and the
    answer is the same whether the file exists, is missing or is a folder."""
    gradio_dir = upload_folders()[0]
    gradio_dir.mkdir(parents=True, exist_ok=True)
    link = gradio_dir / f"link-{os.getpid()}.png"
    link.symlink_to(secret)
    escape = str(gradio_dir / ".." / os.path.relpath(secret, gradio_dir.parent))
    names = [str(secret), str(secret.parent / "missing.png"), str(secret.parent), escape, link]
    shapes = [{"path": str(n)} for n in names] + [{"path": str(n), "meta": META} for n in names]
    shapes += [{"path": "http://127.0.0.1:9/x.png", "meta": META}, {"url": "file:///etc"}]
    try:
        photo = upload(app.url, CAT)
        for shape in shapes:
            for args in (edit_args(shape), edit_args(photo, background=shape, mode="background")):
                status, detail = call(app.url, "edit", args)
                assert status == "422", (shape, status, detail)
                assert messages(detail) == [NOT_AN_UPLOAD], shape
                assert "secret" not in json.dumps(detail) and str(app.work) not in json.dumps(
                    detail
                )
    finally:
        link.unlink()


def test_the_component_refuses_server_files_on_any_route(app, secret):
    """The same checks inside the photo component, for a route that skips the queue's: a
    server path is not read, a URL is not downloaded."""
    component = PhotoInput(image_mode=None, type="filepath", render=False)
    for payload in (str(secret), "https://example.com/a.png", str(secret.parent)):
        with pytest.raises(gr.Error, match="not a file uploaded to this app"):
            component.preprocess(component.data_model(path=payload))
    with pytest.raises(gr.Error, match="not a file uploaded to this app"):
        asyncio.run(component.async_move_resource_to_block_cache("https://example.com/a.png"))


def _data_url(image: Image.Image, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_data_urls_are_decoded_only_within_the_limit(app, rng):
    """Finding 2: an inline photo up to 1 MB is matted; a larger one is refused before it is
    decoded (422), and a request body over the cap is refused before it is read (413)."""
    small = Image.open(CAT)
    status, out = call(app.url, "matte", [{"url": _data_url(small)}, "the cat", RANDOM_TINY, False])
    assert status == "complete", out
    noise = Image.fromarray(rng.integers(0, 256, (700, 700, 3), dtype=np.uint8))
    big = _data_url(noise)  # about 1.5 MB of PNG: the body fits, the photo does not
    assert 1.2e6 < len(big) * 3 / 4 < 2e6
    for shape in ({"url": big}, {"url": big, "path": None, "meta": META}):
        status, detail = call(app.url, "matte", [shape, "the cat", RANDOM_TINY, False])
        assert status == "422" and "inline photos are accepted up to 1 MB" in messages(detail)[0]
    status, detail = call(app.url, "matte", [{"url": big * 3}, "the cat", RANDOM_TINY, False])
    assert status == "413" and "accepted up to 2.3 MB" in detail
    long_phrase = "x" * 3_000_000
    status, detail = call(app.url, "matte", [None, long_phrase, RANDOM_TINY, False])
    assert status == "413"


def test_bodies_are_refused_before_they_are_read(app):
    """A 55 MB body is answered 413 after 64 KB of it, with or without a Content-Length."""
    host, port = "127.0.0.1", int(app.url.rstrip("/").rsplit(":", 1)[1])
    for route, framing in [
        ("/gradio_api/queue/join", b"Content-Length: 57671680\r\n"),
        ("/gradio_api/upload", b"Content-Length: 57671680\r\n"),
        ("/gradio_api/queue/join", b"Transfer-Encoding: chunked\r\n"),
    ]:
        with socket.create_connection((host, port), timeout=10) as sock:
            head = f"POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            sock.sendall(head.encode() + framing + b"\r\n")
            sent = 0
            chunked = b"chunked" in framing
            start = time.perf_counter()
            answer = b""
            while sent < 40 * 2**20 and not answer:  # the server answers before 40 MB
                piece = b"x" * 65536
                sock.sendall(b"10000\r\n" + piece + b"\r\n" if chunked else piece)
                sent += len(piece)
                sock.settimeout(0.05 if sent > 3 * 2**20 else 0.001)
                try:
                    answer = sock.recv(64)
                except (TimeoutError, BlockingIOError):
                    pass
            assert answer.startswith(b"HTTP/1.1 413"), (route, answer, sent)
            assert time.perf_counter() - start < 10
            assert sent <= (27 if "upload" in route else 3) * 2**20 + 2**20, (route, sent)


def test_small_files_that_decode_large_are_refused(app, tmp_path):
    """Finding 5: a file of a few KB whose header promises more decoding memory than the app's
    budget is refused from the header: through the app (2 MP limit, a 1.96 MP WebP needing
    about 44 MB) and with the app's real limits (a 36 MP TIFF of 0.2 MB needing 373 MB)."""
    Image.new("RGB", (1400, 1400)).save(tmp_path / "bomb.webp", quality=10)
    assert (tmp_path / "bomb.webp").stat().st_size < 20_000
    status, message = call(
        app.url, "matte", [upload(app.url, tmp_path / "bomb.webp"), "the cat", RANDOM_TINY, False]
    )
    assert status == "error" and "decoding it needs about" in message, message
    assert "bomb.webp" in message and str(tmp_path) not in message
    buf = io.BytesIO()
    Image.new("RGB", (6000, 6000)).save(buf, "TIFF", compression="tiff_deflate")
    start = time.perf_counter()
    with pytest.raises(ValueError, match="decoding it needs about 373 MB.*limit of 297 MB"):
        read_photo(buf.getvalue())
    assert time.perf_counter() - start < 0.5  # the header only: nothing was decoded


def test_colour_phrase_and_parameters_get_clear_messages(app):
    """Finding 7: every parameter is checked with a message that says what is accepted."""
    photo = upload(app.url, CAT)
    status, message = call(app.url, "edit", edit_args(photo, mode="color", color="rgb(999,0,0)"))
    assert status == "error" and "out of range" in message and "0-255" in message
    assert "uint8" not in message and "Python integer" not in message
    status, detail = call(app.url, "matte", [photo, "the \ud800 cat", RANDOM_TINY, False])
    assert status == "422" and "not valid text" in messages(detail)[0]
    for args, expected in [
        (edit_args(photo, strength="strong"), "strength must be a number from 0 to 1, got str"),
        (edit_args(photo, strength=7), "strength must be a number from 0 to 1, got 7"),
        (edit_args(photo, strength=None), "strength must be a number from 0 to 1, got NoneType"),
        (edit_args(photo, phrase="the cat " * 300), "this app accepts up to 2,000"),
        (edit_args(photo, color=["red"]), "must be a colour such as"),
        (edit_args(photo)[:-1] + ["yes"], "refine must be true or false, got str"),
        (edit_args(photo, phrase=42), "the phrase must be text"),
        (edit_args(photo)[:4] + [5] + edit_args(photo)[5:], "effects must be a list of some of"),
    ]:
        status, detail = call(app.url, "edit", args)
        assert status == "422" and expected in messages(detail)[0], (expected, detail)
    with pytest.raises(ValueError, match="not valid text at position 5"):
        clean_phrase("the \ud800 cat")
    assert clean_phrase("the\x00cat\x07 ") == ("the cat", [])


def test_unexpected_failures_reveal_nothing(app, monkeypatch):
    """An unexpected exception, or a call Gradio itself refuses, tells the user no stack, no
    handler name and no server path."""
    photo = upload(app.url, CAT)

    def broken(*args, **kwargs):
        raise RuntimeError(f"disk full at {app.work}/mattes in apply_edit")

    monkeypatch.setattr(app.service, "edit_file", broken)
    status, message = call(app.url, "edit", edit_args(photo))
    assert status == "error" and message == (
        "something went wrong on the server while doing this; please try again"
    )
    status, detail = call(app.url, "edit", edit_args(photo)[:3])  # Gradio would name the handler
    assert status == "422" and "this call takes 9 inputs (image, phrase," in messages(detail)[0]
    for text in (str(app.work), "Traceback", "apply_edit", "handler", "edit("):
        assert text not in str(detail)
    monkeypatch.undo()
    assert call(app.url, "edit", edit_args(photo))[0] == "complete"  # still serving


def test_clicks_box_and_candidate_are_checked_before_they_are_queued(app):
    """/matte's points, box and candidate: a bad value is answered 422 with the accepted form
    before the job is queued; values that only the photo can judge (a click outside it) get a
    message with its size and nothing else; the first four inputs alone still work."""
    photo = upload(app.url, CAT)
    head = [photo, "the cat", RANDOM_TINY, False]
    for tail, expected in [
        (["lots", None, None], POINTS_HINT),
        ([[[1, 2]], None, None], POINTS_HINT),
        ([[[1, 2, True]] * (MAX_POINTS + 1), None, None], POINTS_HINT),
        ([None, [50, 50, 10, 10], None], BOX_HINT),
        ([None, {"x0": 1}, None], BOX_HINT),
        ([None, None, -3], CANDIDATE_HINT),
        ([None, None, 2.5], CANDIDATE_HINT),
    ]:
        status, detail = call(app.url, "matte", head + tail)
        assert status == "422" and messages(detail) == [expected], (tail, detail)
    status, message = call(app.url, "matte", head + [[[5000, 10, True]], None, None])
    assert status == "error" and "outside the 384x255 photo" in message
    assert str(app.work) not in message and "Traceback" not in message
    status, out = call(app.url, "matte", [photo, "", RANDOM_TINY, False, None, [10, 10, 200, 200]])
    assert status == "complete" and out[2].startswith("**Matted from the box alone**")
    status, message = call(app.url, "matte", [photo, "", RANDOM_TINY, False, [[9, 9, False]]])
    assert status == "error" and "phrase is empty" in message and "draw a box" in message


def test_the_address_counted_is_the_one_the_first_trusted_proxy_wrote():
    from clipmat_app.admission import client_address

    def request(forwarded: str | None):
        headers = {} if forwarded is None else {"x-forwarded-for": forwarded}
        return SimpleNamespace(headers=headers, client=SimpleNamespace(host="10.9.9.9"))

    spoofed = request("1.2.3.4, 5.6.7.8, 203.0.113.5")  # the client wrote the first two
    assert client_address(spoofed, 0) == "10.9.9.9"  # no proxy: the connection
    assert client_address(spoofed, 1) == "203.0.113.5"
    assert client_address(spoofed, 2) == "5.6.7.8"
    assert client_address(request("203.0.113.5"), 2) == "10.9.9.9"  # did not pass two proxies
    assert client_address(request(None), 1) == "10.9.9.9"
    assert client_address(request(" , 203.0.113.5 "), 1) == "203.0.113.5"
    with pytest.raises(ValueError, match="trusted_proxies must be 0 or more"):
        Admission(trusted_proxies=-1)

"""The app under a heavy or hostile user (loopback only, bounded loops): one client flooding the
queue, matting from every endpoint at once, identical edits at the same moment, and the disk
after many distinct edits, up to the app's exit."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from gradio_client import Client, handle_file
from helpers import random_tiny_predictor, serve_local
from PIL import Image

import editing
from clipmat_app.admission import Admission
from clipmat_app.pool import RANDOM_TINY, PredictorPool
from clipmat_app.service import MatteService
from clipmat_app.ui import build_demo

ROOT = Path(__file__).resolve().parents[2]
CAT = ROOT / "examples" / "photo_cat.jpg"
META = {"_type": "gradio.FileData"}


class GatedPredictor:
    """``inner`` (the random tiny predictor), whose calls wait while ``gate`` is closed (a
    heavy model)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.gate.set()

    def predict(self, photo, phrase, **options):
        self.gate.wait(timeout=60)
        return self.inner.predict(photo, phrase, **options)


@pytest.fixture(scope="module")
def app(tiny_model, tmp_path_factory):
    gated = GatedPredictor(random_tiny_predictor(tiny_model))
    pool = PredictorPool({RANDOM_TINY: lambda: gated}, device="cpu")
    work = tmp_path_factory.mktemp("load")
    service = MatteService(pool, workdir=work, max_side=512)
    admission = Admission(trusted_proxies=1)  # as on a Space
    demo = build_demo(pool, RANDOM_TINY, service=service, admission=admission)
    url = serve_local(demo)
    config = httpx.get(f"{url}config").json()
    ids = {d.get("api_name"): d["id"] for d in config["dependencies"]}
    yield SimpleNamespace(url=url, service=service, gated=gated, admission=admission, ids=ids)
    demo.close()
    service.close()


def _upload(url: str) -> dict:
    with open(CAT, "rb") as handle:
        r = httpx.post(f"{url}gradio_api/upload", files={"files": ("cat.jpg", handle)})
    return {"path": r.json()[0], "orig_name": "cat.jpg", "meta": META}


def _cutout(client: Client, phrase: str) -> str:
    """/edit's cutout of the cat photo for ``phrase`` through ``client``; the file's path."""
    args = ("cutout", [], 0.5, "#000000", None, False)
    return client.predict(handle_file(str(CAT)), phrase, RANDOM_TINY, *args, api_name="/edit")


def _join(app, session: str, address: str, phrase: str, photo: dict) -> int:
    """Queue one /matte job and never read its result; the HTTP status."""
    body = {
        "data": [photo, phrase, RANDOM_TINY, False],
        "fn_index": app.ids["matte"],
        "session_hash": session,
        "trigger_id": None,
        "event_data": None,
    }
    headers = {"x-forwarded-for": address}
    return httpx.post(f"{app.url}gradio_api/queue/join", json=body, headers=headers).status_code


def test_one_client_cannot_fill_the_queue(app):
    """Finding 6: while matting is stalled, one session sends 70 /matte jobs and never reads a
    result: 4 get in, the rest are answered 429; twenty sessions from one address get 8 in;
    another user's edit of a cached matte is answered at once. Once the stall ends, the unread
    jobs finish and the flooding session may queue again."""
    photo = _upload(app.url)
    victim = Client(app.url, verbose=False, headers={"x-forwarded-for": "198.51.100.7"})
    args = (handle_file(str(CAT)), "my cat", RANDOM_TINY)
    victim.predict(*args, "color", [], 0.5, "#00ff00", None, False, api_name="/edit")  # cached
    app.gated.gate.clear()
    try:
        flood = [_join(app, "flood", "203.0.113.9", f"thing {i}", photo) for i in range(70)]
        assert flood.count(200) == 4 and flood.count(429) == 66, flood
        crowd = [_join(app, f"tab{i}", "203.0.113.10", f"x {i}", photo) for i in range(20)]
        assert crowd.count(200) == 8 and crowd.count(429) == 12, crowd
        # the same address behind the proxy, each job with an address of its own written left
        # of it (as a client evading the cap would): still one address
        spoof = [
            _join(app, f"s{i}", f"10.0.0.{i}, 203.0.113.11", f"y {i}", photo) for i in range(12)
        ]
        assert spoof.count(200) == 8 and spoof.count(429) == 4, spoof
        start = time.perf_counter()
        out = victim.predict(*args, "cutout", [], 0.5, "#00ff00", None, False, api_name="/edit")
        assert time.perf_counter() - start < 5 and Path(out).stat().st_size > 0
    finally:
        app.gated.gate.set()
    deadline = time.perf_counter() + 30
    while _join(app, "flood", "203.0.113.9", "again", photo) != 200:
        assert time.perf_counter() < deadline, "the unread jobs never finished"
        time.sleep(0.2)
    while app.admission.stats["admitted"] > app.service.stats["mattes"] + 2:
        assert time.perf_counter() < deadline  # let the queue drain before the next test
        time.sleep(0.2)


def test_matting_is_bounded_across_endpoints(app, monkeypatch):
    """Finding 5: /matte and /edit share one matting limit (2): with eight jobs of each
    endpoint at once, never more than two mattes estimate their foreground together."""
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()
    real = editing.operations.estimate_foreground_arrays

    def counted(*args, **kwargs):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        try:
            time.sleep(0.2)
            return real(*args, **kwargs)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(editing.operations, "estimate_foreground_arrays", counted)

    def one(i: int):
        client = Client(app.url, verbose=False, headers={"x-forwarded-for": f"192.0.2.{i}"})
        if i % 2:
            return client.predict(
                handle_file(str(CAT)), f"cat {i}", RANDOM_TINY, False, api_name="/matte"
            )
        return _cutout(client, f"cat {i}")

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(16)))
    assert len(results) == 16 and state["peak"] >= 1
    assert state["peak"] <= 2 and app.service.matting["peak"] <= 2, state


def test_identical_concurrent_edits_are_never_empty(app):
    """Finding 3: sixteen identical cutout edits at once (people clicking the same example):
    every answer is the complete PNG, byte for byte the same."""
    clients = [
        Client(app.url, verbose=False, headers={"x-forwarded-for": f"198.51.100.{i}"})
        for i in range(4)
    ]
    clients[0].predict(handle_file(str(CAT)), "the cat", RANDOM_TINY, False, api_name="/matte")

    def one(i: int) -> bytes:
        return Path(_cutout(clients[i % 4], "the cat")).read_bytes()

    for _ in range(3):
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(one, range(16)))
        assert all(len(a) > 0 for a in answers), [len(a) for a in answers]
        assert len(set(answers)) == 1
        assert editing.decode_png(answers[0]).shape[2] == 4


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_disk_budget_and_cleanup_at_exit(tmp_path):
    """Finding 4: `python app.py --max-disk-mb 1` keeps its folder (outputs and Gradio's
    cache) within 1 MB after 20 distinct edits (about 2 MB written), every edit answered in
    full, and removes the folder when it is stopped with SIGTERM."""
    temp = tmp_path / "tmp"
    proc, url = _start_app(temp, "--max-disk-mb", "1")
    try:
        (folder,) = [p for p in temp.iterdir() if p.name.startswith("clipmat-app-")]
        client = Client(url, verbose=False)
        written = 0
        for i in range(20):
            out = client.predict(
                handle_file(str(CAT)),
                "the cat",
                RANDOM_TINY,
                "color",
                [],
                0.5,
                f"#{i:02x}{i:02x}ff",
                None,
                False,
                api_name="/edit",
            )
            size = Path(out).stat().st_size
            assert size > 0 and Image.open(out).size == (384, 255)
            written += size
        assert written > 1.5 * 2**20  # well over the budget
        deadline = time.perf_counter() + 20  # files stay 5 s; the budget is swept every 2 s
        while _folder_bytes(folder) > 2**20 and time.perf_counter() < deadline:
            time.sleep(0.5)
        assert _folder_bytes(folder) <= 2**20
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert not folder.exists() and list(temp.iterdir()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_under_load_leaves_no_partial_file(tmp_path):
    """SIGTERM while plain-API requests are running and waiting: the app exits within seconds,
    every request is answered (a whole PNG or an error, never a cut one, never a hang) and
    its folder is gone."""
    temp = tmp_path / "tmp"
    proc, url = _start_app(temp, "--matte-slots", "1")
    try:

        def matte(i: int):
            files = {"image": ("cat.jpg", CAT.read_bytes(), "image/jpeg")}
            data = {"text": f"the cat {i}", "output": "cutout"}
            try:
                return httpx.post(f"{url}api/matte", files=files, data=data, timeout=60)
            except httpx.HTTPError as err:  # the connection closed on the way out
                return err

        with ThreadPoolExecutor(8) as workers:
            calls = [workers.submit(matte, i) for i in range(8)]
            first = next(iter(as_completed(calls)))
            assert isinstance(first.result(), httpx.Response)
            proc.send_signal(signal.SIGTERM)
            answers = [c.result(timeout=90) for c in calls]
        proc.wait(timeout=30)
        for answer in answers:
            if isinstance(answer, httpx.Response) and answer.status_code == 200:
                assert Image.open(io.BytesIO(answer.content)).size == (384, 255)  # whole
                Image.open(io.BytesIO(answer.content)).load()
        assert list(temp.iterdir()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _start_app(temp: Path, *options: str) -> tuple[subprocess.Popen, str]:
    """`python app.py` on random-tiny with its files under ``temp`` (made) and ``options``,
    once it answers; (the process, its URL)."""
    temp.mkdir()
    port = _free_port()
    env = dict(os.environ, TMPDIR=str(temp), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    cmd = [sys.executable, str(ROOT / "app.py"), "--predictor", RANDOM_TINY, "--device", "cpu"]
    cmd += ["--port", str(port), *options]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(f"{url}config", timeout=2).close()
            break
        except OSError:
            time.sleep(0.3)
    if proc.poll() is not None:
        raise AssertionError(proc.stderr.read().decode())
    return proc, url

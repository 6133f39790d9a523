"""Another user's matte while a predictor's download hangs.

    python bench/hanging_hub.py [--wait 60]

Starts `python app.py --predictor mini-world` with an empty weights folder and hub cache, and
the model hub at a loopback address that accepts connections and never answers
(``HF_ENDPOINT``). One user asks for the zero-shot predictor through the plain HTTP API (its
CLIP must be downloaded: the download hangs); once that request is in, another user (another
address) asks for a mini-world matte. Prints how long the second user waited, and what the first
had been answered after ``--wait`` seconds (before loads stopped blocking the pool, the second
user waited 441 s in one run and was not answered in 18 minutes in another).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "miniworld_shapes.jpg"


def silent_server() -> tuple[socket.socket, int]:
    """A listening socket that accepts connections and never answers; (socket, port)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return listener, listener.getsockname()[1]


def matte(url: str, address: str, predictor: str, text: str, timeout: float) -> str:
    """One plain-API matte; its status (or the error) and seconds."""
    files = {"image": ("shapes.jpg", PHOTO.read_bytes(), "image/jpeg")}
    data = {"text": text, "predictor": predictor}
    start = time.perf_counter()
    try:
        answer = httpx.post(
            f"{url}api/matte",
            files=files,
            data=data,
            headers={"x-forwarded-for": address},
            timeout=timeout,
        )
        got = f"HTTP {answer.status_code}"
    except httpx.TimeoutException:
        got = "no answer"
    return f"{got} after {time.perf_counter() - start:.1f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait on the first")
    args = parser.parse_args()
    listener, hub_port = silent_server()
    with tempfile.TemporaryDirectory(prefix="clipmat-hang-") as folder:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = dict(os.environ, TMPDIR=folder, GRADIO_ANALYTICS_ENABLED="False")
        env.update(HF_ENDPOINT=f"http://127.0.0.1:{hub_port}", HF_HOME=f"{folder}/hf")
        env.update(CLIPMAT_WEIGHTS_DIR=f"{folder}/weights")
        env.pop("HF_HUB_OFFLINE", None)
        cmd = [sys.executable, str(ROOT / "app.py"), "--predictor", "mini-world"]
        cmd += ["--port", str(port), "--trusted-proxies", "1"]
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.perf_counter() + 120
            while time.perf_counter() < deadline:
                try:
                    urllib.request.urlopen(f"{url}api/health", timeout=2).close()
                    break
                except OSError:
                    time.sleep(0.5)
            first: list[str] = []
            hanging = threading.Thread(
                target=lambda: first.append(
                    matte(url, "10.0.0.1", "zeroshot-vitb16", "the red ball", args.wait)
                ),
                daemon=True,
            )
            hanging.start()
            time.sleep(3)  # the first request is in and its download has started
            print(
                "another user's mini-world matte:", matte(url, "10.0.0.2", "", "the red ball", 600)
            )
            hanging.join(timeout=args.wait + 5)
            print("the user whose download hangs:", first[0] if first else "no answer yet")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
            listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

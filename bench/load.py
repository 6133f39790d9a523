"""Load test of the app: concurrent gradio_client clients against a local server.

    python bench/load.py [--clients 16] [--requests 5] [--predictor random-tiny]
                         [--max-disk-mb 1024] [--url URL] [--matte-slots N] [--threads N]
                         [--precision auto|fp32|int8|onnx] [--distinct-photos]

Each client sends one /matte and then /edit requests with changing settings (the way a person
matting once and editing several times does), on its own phrase (with ``--distinct-photos`` on
its own photo too, so that every /matte encodes a photo), as its own user (its own
X-Forwarded-For address, so the app's per-address cap treats the clients as different people).
Without --url the app is started as `python app.py` in a subprocess on 127.0.0.1 with its files
in a fresh temporary folder; a --url must point at this machine (127.0.0.1/localhost), and then
memory and disk are not measured. Prints p50/p95 latency per endpoint, the server's peak
memory (its resident-set high-water mark), its disk use (peak while running and at the end)
and the count of failed and lost requests (target: none).

``--matte-slots N`` (mattes computed at once), ``--threads N`` (torch's intra-op threads) and
``--precision`` (CLIPMat predictors' towers, see clipmat.precision) are passed to the app's own
options of those names (without them, the app's defaults).
``bench/threads.py`` runs this for several settings side by side.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from urllib.parse import urlparse

from gradio_client import Client, handle_file
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "photo_cat.jpg"
EDITS = [
    ("highlight", ["dim"], 0.6, "#2563eb"),
    ("color", [], 0.6, "#ff8800"),
    ("background", [], 0.6, "#2563eb"),
    ("highlight", ["desaturate", "blur"], 0.8, "#2563eb"),
    ("cutout", [], 0.6, "#2563eb"),
]
LOCAL = {"127.0.0.1", "localhost", "::1"}


def client_session(
    url: str, index: int, requests: int, predictor: str, photo: Path = PHOTO
) -> list[tuple]:
    """One client's requests in order: [(endpoint, seconds or None, error or ""), ...]."""
    address = f"10.0.{index // 250}.{index % 250 + 1}"  # each client its own user
    phrase = f"the cat, take {index}"
    out = []
    try:
        client = Client(url, verbose=False, headers={"x-forwarded-for": address})
    except Exception as err:  # noqa: BLE001 - a client that cannot connect fails every request
        names = ["/matte"] + ["/edit"] * (requests - 1)
        return [(name, None, f"{type(err).__name__}: {err}") for name in names[:requests]]
    for i in range(requests):
        start = time.perf_counter()
        name = "/matte" if i == 0 else "/edit"
        try:
            if i == 0:
                client.predict(handle_file(str(photo)), phrase, predictor, api_name="/matte")
            else:
                mode, effects, strength, color = EDITS[(index + i) % len(EDITS)]
                args = (mode, effects, strength, color, None)
                client.predict(handle_file(str(photo)), phrase, predictor, *args, api_name="/edit")
            out.append((name, time.perf_counter() - start, ""))
        except Exception as err:  # noqa: BLE001 - every failure is counted and reported
            out.append((name, None, f"{type(err).__name__}: {err}"))
    return out


class Server:
    """`python app.py` in a subprocess with its own temporary folder; samples its disk use."""

    def __init__(
        self,
        predictor: str,
        max_disk_mb: float,
        *,
        matte_slots: int | None = None,
        threads: int | None = None,
        precision: str = "auto",
    ) -> None:
        self.temp = tempfile.TemporaryDirectory(prefix="clipmat-load-")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/"
        env = dict(os.environ, TMPDIR=self.temp.name, GRADIO_ANALYTICS_ENABLED="False")
        app_args = ["--predictor", predictor, "--port", str(port)]
        app_args += ["--max-disk-mb", str(max_disk_mb), "--trusted-proxies", "1"]
        app_args += ["--precision", precision]
        app_args += ["--matte-slots", str(matte_slots)] if matte_slots else []
        app_args += ["--threads", str(threads)] if threads else []
        cmd = [sys.executable, str(ROOT / "app.py"), *app_args]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, cwd=ROOT)
        self.peak_disk = 0
        self._stop = threading.Event()
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline and self.proc.poll() is None:
            try:
                urllib.request.urlopen(f"{self.url}config", timeout=2).close()
                break
            except OSError:
                time.sleep(0.3)
        if self.proc.poll() is not None:
            raise SystemExit("the app did not start")
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def disk(self) -> int:
        """Bytes under the app's temporary folder now."""
        total = 0
        for folder, _, names in os.walk(self.temp.name):
            for name in names:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_size
                except OSError:
                    pass
        return total

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_disk = max(self.peak_disk, self.disk())

    def memory(self) -> tuple[int, int]:
        """(resident now, resident high-water mark) of the server process, in bytes."""
        fields = {}
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024

    def close(self) -> int:
        """Stop the app (SIGTERM); returns the bytes it left behind."""
        self._stop.set()
        self.proc.terminate()
        self.proc.wait(timeout=60)
        left = self.disk()
        self.temp.cleanup()
        return left


def latencies(records: list[tuple]) -> dict[str, tuple[int, float, float]]:
    """{endpoint: (answered requests, p50 s, p95 s)} of the requests that succeeded."""
    out = {}
    for endpoint in ("/matte", "/edit"):
        times = sorted(r[1] for r in records if r[0] == endpoint and r[1] is not None)
        if times:
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            out[endpoint] = (len(times), statistics.median(times), p95)
    return out


def client_photos(folder: Path, clients: int) -> list[Path]:
    """A photo per client in ``folder``: the example photo with a corner of the client's own
    colour, so that no two clients send the same pixels (predictors cache a photo's features by
    its content, and identical photos would be encoded once for everyone)."""
    base = Image.open(PHOTO).convert("RGB")
    paths = []
    for i in range(clients):
        photo = base.copy()
        colour = (i * 53 % 256, 255 - i * 31 % 256, i * 97 % 256)
        ImageDraw.Draw(photo).rectangle((0, 0, 23, 23), fill=colour)
        paths.append(folder / f"client{i}.jpg")
        photo.save(paths[-1], quality=92)
    return paths


def run_clients(
    url: str,
    clients: int,
    requests: int,
    predictor: str,
    timeout: float,
    photos: list[Path] | None = None,
) -> tuple[list[tuple], float]:
    """Every client's session at once (client i sends ``photos[i]``, else the example photo):
    (the records of the sessions that ended, wall s)."""
    photos = photos or [PHOTO] * clients
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as ex:
        jobs = [
            ex.submit(client_session, url, i, requests, predictor, photos[i])
            for i in range(clients)
        ]
        done, _ = wait(jobs, timeout=timeout)
    wall = time.perf_counter() - start
    return [r for job in done for r in job.result()], wall


def report(records: list[tuple], clients: int, requests: int, name: str, wall: float) -> int:
    """Print the latency lines; returns the count of failed and lost requests."""
    lost = clients * requests - len(records)
    failed = [r for r in records if r[1] is None]
    print(f"{clients} clients x {requests} requests on {name}, {wall:.1f} s wall")
    for endpoint, (n, p50, p95) in latencies(records).items():
        print(f"  {endpoint:7s} n={n:3d}  p50 {p50:.3f} s  p95 {p95:.3f} s")
    print(f"  failed {len(failed)}, lost {lost}")
    for r in failed[:5]:
        print(f"    {r[0]}: {r[2][:200]}")
    return len(failed) + lost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=5, help="requests per client")
    parser.add_argument("--predictor", default="random-tiny")
    parser.add_argument("--max-disk-mb", type=float, default=1024, help="the app's disk budget")
    parser.add_argument("--url", help="an app already running on this machine")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for the whole run")
    parser.add_argument("--matte-slots", type=int, help="mattes computed at once in the app")
    parser.add_argument("--threads", type=int, help="torch threads in the app")
    parser.add_argument(
        "--precision", default="auto", help="CLIPMat predictors' towers: auto, fp32, int8, onnx"
    )
    parser.add_argument(
        "--distinct-photos",
        action="store_true",
        help="each client its own photo (else all send one: encoded once, then cached)",
    )
    args = parser.parse_args(argv)
    server = None
    if args.url:
        if urlparse(args.url).hostname not in LOCAL:
            parser.error("--url must be on this machine (127.0.0.1 or localhost)")
        url = args.url
    else:
        server = Server(
            args.predictor,
            args.max_disk_mb,
            matte_slots=args.matte_slots,
            threads=args.threads,
            precision=args.precision,
        )
        url = server.url
    idle = server.memory()[0] if server else 0
    name = Path(args.predictor).stem if Path(args.predictor).is_file() else args.predictor
    with tempfile.TemporaryDirectory(prefix="clipmat-load-photos-") as folder:
        photos = client_photos(Path(folder), args.clients) if args.distinct_photos else None
        records, wall = run_clients(url, args.clients, args.requests, name, args.timeout, photos)
    bad = report(records, args.clients, args.requests, args.predictor, wall)
    if server is not None:
        now, peak = server.memory()
        disk_now = server.disk()
        left = server.close()
        mb = 2**20
        print(
            f"  server memory: {idle / mb:.0f} MB idle, peak {peak / mb:.0f} MB, "
            f"{now / mb:.0f} MB at the end"
        )
        print(
            f"  disk: peak {server.peak_disk / mb:.1f} MB, {disk_now / mb:.1f} MB at the end "
            f"(budget {args.max_disk_mb:g} MB), {left / mb:.1f} MB left after exit"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

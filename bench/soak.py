"""A soak of the app: simulated users for many requests, with its memory, disk and latency over time.

    python bench/soak.py [--requests 2000] [--users 8] [--predictor mini-world]
                         [--max-disk-mb 256] [--json out.json]

The app is started as `python app.py` (bench/load.py's Server: its own temporary folder,
``--trusted-proxies 1``). Each user has its own address (X-Forwarded-For) and goes round a
cycle of what people do: a matte from the page's API (/matte, gradio_client), an edit of it
(/edit), and through the plain HTTP API a matte, a box alone, clicks, a cutout, a 16-bit matte,
a highlight, a colour fill and a new background. Every request sends a photo no one sent before
(the example photos with a corner square of the request's own colour), so every matte encodes a
photo and every cache is exercised to its bound.

Prints, per quarter of the run (requests in the order they started): the requests, p50 and p95
seconds and failures; the server's resident memory sampled every second (after warm-up, at the
start of the last quarter and at the end, and its growth after warm-up); the disk the app's
folder used (peak, end, after exit); and the first failures. Targets: none failed, memory after
warm-up growing at most 50 MB, the last quarter's p95 at most 1.2x the first's.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from gradio_client import Client, handle_file
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import Server  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = [ROOT / "examples" / name for name in ("miniworld_shapes.jpg", "photo_cat.jpg")]
PHRASES = ["the red ball", "the green star", "the cat", "the yellow shape on the right"]
# (route, what the request asks for)
CYCLE = [
    ("/matte", {}),
    ("/edit", {}),
    ("api", {"output": "matte"}),
    ("api", {"output": "matte", "box": "20,20,200,200", "text": ""}),
    ("api", {"output": "cutout", "points": "[[60, 60, 1], [200, 200, 0]]"}),
    ("api", {"output": "matte", "depth": "16"}),
    ("api", {"output": "highlight", "color": "orange"}),
    ("api", {"output": "color", "color": "#00aa55"}),
    ("api", {"output": "background"}),
]
WARM_UP = 0.1  # the share of the run after which memory is taken as warmed up
MARKS = (0.1, 0.25, 0.5, 0.75)  # where else the memory is printed


def photo_bytes(index: int) -> bytes:
    """A photo no other request sends: an example with a corner square of its own colour."""
    photo = Image.open(PHOTOS[index % len(PHOTOS)]).convert("RGB")
    colour = (index * 53 % 256, index * 131 % 256, index * 197 % 256)
    ImageDraw.Draw(photo).rectangle((0, 0, 15, 15 + index % 7), fill=colour)
    out = io.BytesIO()
    photo.save(out, format="JPEG", quality=90)
    return out.getvalue()


class User:
    """One simulated user: its own address, a page client and a plain HTTP client."""

    def __init__(self, url: str, index: int, predictor: str, folder: Path) -> None:
        self.url, self.index, self.predictor, self.folder = url, index, predictor, folder
        self.headers = {"x-forwarded-for": f"10.1.0.{index + 1}"}
        self.page = Client(url, verbose=False, headers=self.headers)
        self.http = httpx.Client(headers=self.headers, timeout=300)

    def request(self, number: int) -> tuple[str, float | None, str]:
        """Send request ``number`` of this user's cycle: (what, seconds or None, error)."""
        route, fields = CYCLE[number % len(CYCLE)]
        photo = photo_bytes(number * 64 + self.index)
        phrase = PHRASES[(number + self.index) % len(PHRASES)]
        start = time.perf_counter()
        try:
            if route == "api":
                self._api(photo, {"text": phrase, **fields})
                what = f"api:{fields.get('output')}"
            else:
                self._page(route, photo, phrase, number)
                what = route
        except Exception as err:  # noqa: BLE001 - every failure is counted and reported
            return route, None, f"{type(err).__name__}: {str(err)[:300]}"
        return what, time.perf_counter() - start, ""

    def _api(self, photo: bytes, fields: dict) -> None:
        files = {"image": ("photo.jpg", photo, "image/jpeg")}
        if fields.get("output") == "background":
            files["background"] = ("back.jpg", photo_bytes(7919 + self.index), "image/jpeg")
        answer = self.http.post(f"{self.url}api/matte", data=fields, files=files)
        if answer.status_code != 200 or answer.headers.get("content-type") != "image/png":
            raise RuntimeError(f"HTTP {answer.status_code}: {answer.text[:200]}")
        Image.open(io.BytesIO(answer.content)).load()

    def _page(self, route: str, photo: bytes, phrase: str, number: int) -> None:
        path = self.folder / f"user{self.index}-{number}.jpg"
        path.write_bytes(photo)
        try:
            if route == "/matte":
                self.page.predict(handle_file(str(path)), phrase, self.predictor, api_name=route)
            else:
                args = ("highlight", ["dim"], 0.6, "#2563eb", None)
                self.page.predict(
                    handle_file(str(path)), phrase, self.predictor, *args, api_name=route
                )
        finally:
            path.unlink(missing_ok=True)


class Sampler:
    """The server's resident memory and disk, every ``interval`` seconds, in a thread."""

    def __init__(self, server: Server, interval: float = 1.0) -> None:
        self.server, self.interval = server, interval
        self.samples: list[tuple[float, int, int]] = []  # (time, rss bytes, disk bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.samples.append((time.time(), self.server.memory()[0], self.server.disk()))
            except (OSError, KeyError):
                return  # the server is gone

    def at(self, moment: float) -> int:
        """Resident bytes at the first sample at or after ``moment`` (the last one if none)."""
        for when, rss, _ in self.samples:
            if when >= moment:
                return rss
        return self.samples[-1][1]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def run(url: str, users: int, requests: int, predictor: str) -> list[tuple]:
    """Every user's requests at once, ``requests`` in all: [(start, what, seconds, error)]."""
    records: list[tuple] = []
    lock = threading.Lock()
    numbers = itertools.count()
    done = [0]

    def session(index: int, folder: Path) -> None:
        user = User(url, index, predictor, folder)
        for number in itertools.count():
            with lock:
                if next(numbers) >= requests:
                    return
            start = time.time()
            what, seconds, error = user.request(number)
            with lock:
                records.append((start, what, seconds, error))
                done[0] += 1
                if done[0] % max(1, requests // 20) == 0:
                    print(f"  {done[0]}/{requests} requests", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="clipmat-soak-") as folder:
        with ThreadPoolExecutor(users) as workers:
            for future in [workers.submit(session, i, Path(folder)) for i in range(users)]:
                future.result()
    return sorted(records)


def quarters(records: list[tuple]) -> list[dict]:
    """p50, p95 and failures of each quarter of the run, by start order."""
    out = []
    size = len(records) / 4
    for q in range(4):
        part = records[round(q * size) : round((q + 1) * size)]
        times = sorted(r[2] for r in part if r[2] is not None)
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))] if times else float("nan")
        out.append(
            {
                "quarter": q + 1,
                "requests": len(part),
                "p50": statistics.median(times) if times else float("nan"),
                "p95": p95,
                "failed": sum(r[2] is None for r in part),
                "start": part[0][0] if part else float("nan"),
            }
        )
    return out


def report(records: list[tuple], sampler: Sampler, server: Server, left: int) -> dict:
    """Print the soak's table; returns its numbers."""
    rows = quarters(records)
    mb = 2**20
    warm = sampler.at(records[int(len(records) * WARM_UP)][0])
    last_quarter, end = sampler.at(rows[3]["start"]), sampler.samples[-1][1]
    print("| quarter | requests | p50 s | p95 s | failed |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['quarter']} | {r['requests']} | {r['p50']:.2f} | {r['p95']:.2f} | {r['failed']} |"
        )
    ratio = rows[3]["p95"] / rows[0]["p95"]
    print(f"last quarter's p95 / first's: {ratio:.2f} (target <= 1.2)")
    print(
        f"resident memory: {warm / mb:.0f} MB after warm-up ({WARM_UP:.0%} of the requests), "
        f"{last_quarter / mb:.0f} MB at the last quarter's start, {end / mb:.0f} MB at the end: "
        f"{(end - warm) / mb:+.0f} MB after warm-up (target <= 50)"
    )
    marks = [sampler.at(records[min(len(records) - 1, int(len(records) * f))][0]) for f in MARKS]
    print(
        "resident memory at "
        + ", ".join(f"{f:.0%}: {m / mb:.0f} MB" for f, m in zip(MARKS, marks, strict=True))
        + f", end: {end / mb:.0f} MB"
    )
    disk_peak = max(s[2] for s in sampler.samples)
    print(
        f"disk: peak {disk_peak / mb:.1f} MB, {sampler.samples[-1][2] / mb:.1f} MB at the end, "
        f"{left / mb:.1f} MB left after exit"
    )
    failures = [r for r in records if r[2] is None]
    kinds = sorted({r[1] for r in records})
    print(f"{len(records)} requests ({', '.join(kinds)}); failed {len(failures)}")
    for r in failures[:5]:
        print(f"  {r[1]}: {r[3]}")
    return {
        "quarters": rows,
        "p95_ratio": ratio,
        "memory_mb": {"warm": warm / mb, "last_quarter": last_quarter / mb, "end": end / mb},
        "memory_series_mb": [
            (round(t - sampler.samples[0][0]), rss / mb) for t, rss, _ in sampler.samples
        ],
        "disk_peak_mb": disk_peak / mb,
        "failed": len(failures),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--predictor", default="mini-world")
    parser.add_argument("--max-disk-mb", type=float, default=256, help="the app's disk budget")
    parser.add_argument("--matte-slots", type=int, help="the app's --matte-slots")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args(argv)
    server = Server(args.predictor, args.max_disk_mb, matte_slots=args.matte_slots)
    sampler = Sampler(server)
    start = time.perf_counter()
    try:
        records = run(server.url, args.users, args.requests, args.predictor)
    finally:
        sampler.stop()
        left = server.close()
    print(
        f"{args.users} users, {args.requests} requests on {args.predictor}, "
        f"{time.perf_counter() - start:.0f} s"
    )
    numbers = report(records, sampler, server, left)
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=1))
    return 1 if numbers["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""Load test of the app: concurrent gradio_client clients against a local server.

    python bench/load.py [--clients 16] [--requests 5] [--predictor random-tiny] [--url URL]

Each client sends one /matte and then /edit requests with changing settings (the way a person
matting once and editing several times does), on its own phrase. Without --url the app is
started in this process on 127.0.0.1; a --url must point at this machine (127.0.0.1/localhost).
Prints p50/p95 latency per endpoint and the count of failed and lost requests (target: none).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gradio_client import Client, handle_file  # noqa: E402

from clipmat_app.cli import serve_local  # noqa: E402
from clipmat_app.pool import PredictorPool  # noqa: E402
from clipmat_app.ui import build_demo  # noqa: E402

PHOTO = ROOT / "examples" / "photo_cat.jpg"
EDITS = [
    ("highlight", ["dim"], 0.6, "#2563eb"),
    ("color", [], 0.6, "#ff8800"),
    ("background", [], 0.6, "#2563eb"),
    ("highlight", ["desaturate", "blur"], 0.8, "#2563eb"),
    ("cutout", [], 0.6, "#2563eb"),
]
LOCAL = {"127.0.0.1", "localhost", "::1"}


def client_session(url: str, index: int, requests: int, predictor: str) -> list[tuple]:
    """One client's requests in order: [(endpoint, seconds or None, error or ""), ...]."""
    client = Client(url, verbose=False)
    phrase = f"the cat, take {index}"
    out = []
    for i in range(requests):
        start = time.perf_counter()
        try:
            if i == 0:
                client.predict(handle_file(str(PHOTO)), phrase, predictor, api_name="/matte")
                name = "/matte"
            else:
                mode, effects, strength, color = EDITS[(index + i) % len(EDITS)]
                args = (mode, effects, strength, color, None)
                client.predict(handle_file(str(PHOTO)), phrase, predictor, *args, api_name="/edit")
                name = "/edit"
            out.append((name, time.perf_counter() - start, ""))
        except Exception as err:  # noqa: BLE001 - every failure is counted and reported
            out.append(("/matte" if i == 0 else "/edit", None, f"{type(err).__name__}: {err}"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=5, help="requests per client")
    parser.add_argument("--predictor", default="random-tiny")
    parser.add_argument("--url", help="an app already running on this machine")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for the whole run")
    args = parser.parse_args(argv)
    demo = None
    if args.url:
        if urlparse(args.url).hostname not in LOCAL:
            parser.error("--url must be on this machine (127.0.0.1 or localhost)")
        url, name = args.url, args.predictor
    else:
        pool, name = PredictorPool.from_option(args.predictor, device="cpu")
        demo = build_demo(pool, name)
        url = serve_local(demo)
    start = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as ex:
        jobs = [ex.submit(client_session, url, i, args.requests, name) for i in range(args.clients)]
        done, _ = wait(jobs, timeout=args.timeout)
    wall = time.perf_counter() - start
    records = [r for job in done for r in job.result()]
    lost = args.clients * args.requests - len(records)
    failed = [r for r in records if r[1] is None]
    print(f"{args.clients} clients x {args.requests} requests on {name}, {wall:.1f} s wall")
    for endpoint in ("/matte", "/edit"):
        times = sorted(r[1] for r in records if r[0] == endpoint and r[1] is not None)
        if times:
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            print(
                f"  {endpoint:7s} n={len(times):3d}  p50 {statistics.median(times):.3f} s"
                f"  p95 {p95:.3f} s"
            )
    print(f"  failed {len(failed)}, lost {lost}")
    for r in failed[:5]:
        print(f"    {r[0]}: {r[2][:200]}")
    if demo is not None:
        demo.close()
    return 1 if failed or lost else 0


if __name__ == "__main__":
    sys.exit(main())

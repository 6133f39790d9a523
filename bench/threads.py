"""The app's matting slots and torch threads under 16 clients, several settings side by side.

    python bench/threads.py [--settings 1x1,1x2,2x1,2x2,3x1] [--precisions fp32[,bf16,int8,onnx]]
                            [--rounds 2] [--clients 16] [--requests 5]
                            [--predictor random-tiny|random-vitb16|NAME] [--json OUT]

Each setting SLOTSxTHREADS starts ``python app.py --matte-slots SLOTS --threads THREADS`` (mattes
computed at once: the matte service's semaphore and every matting event's concurrency limit;
torch's intra-op threads) through ``bench/load.py``'s Server, and runs the load test of
``bench/load.py`` against it (each client one /matte then /edit requests, its own address and
its own photo, so that every /matte encodes a photo; ``--same-photo``: one photo for all,
encoded once and then cached, which measures mostly the refiner and the edits). The settings
are run in turn, and again in reverse order in the next round, so that load from other work on
the machine falls on them alike; the requests of every round are pooled for p50/p95.
``random-vitb16`` serves a CLIPMat ViT-B/16 with random weights (saved to a temporary
checkpoint): the compute of the real model, where ``random-tiny`` is mostly the refiner and the
edits. ``--precisions`` runs every setting with the CLIPMat predictor's towers at each of
them (clipmat.precision).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.append(str(Path(__file__).resolve().parent))  # load.py; after the packages
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load import Server, client_photos, latencies, run_clients  # noqa: E402

import clipmat  # noqa: E402
from clipmat.precision import check_precision  # noqa: E402

MB = 2**20
START_ATTEMPTS = 3
STARTUP_CHECK_S = 18.0  # Gradio's check of itself: five tries of at most 3 s, 0.5 s apart


def parse_settings(text: str) -> list[tuple[int, int]]:
    """ "1x2,2x1" -> [(1, 2), (2, 1)]: (matting slots, torch threads)."""
    out = []
    for item in text.split(","):
        slots, _, threads = item.strip().partition("x")
        if not slots.isdigit() or not threads.isdigit() or not int(slots) or not int(threads):
            raise ValueError(f"a setting is SLOTSxTHREADS with positive numbers, got {item!r}")
        out.append((int(slots), int(threads)))
    return out


def random_vitb16(folder: Path) -> str:
    """A CLIPMat ViT-B/16 checkpoint with random weights in ``folder``; its path."""
    torch.manual_seed(0)
    path = folder / "random-vitb16.safetensors"
    clipmat.save_model(clipmat.create_model("clipmat-vitb16"), path)
    return str(path)


def start_server(
    args: argparse.Namespace, predictor: str, slots: int, threads: int, precision: str
) -> Server:
    """The app with ``slots``, ``threads`` and ``precision``, alive after Gradio's own startup
    check.

    Gradio's launch checks that it can reach itself (five tries of up to 3 s) after it answers
    requests, and stops the app when that fails, which happens on a heavily loaded machine: the
    app is started again, at most ``START_ATTEMPTS`` times.
    """
    for attempt in range(START_ATTEMPTS):
        try:
            server = Server(
                predictor, args.max_disk_mb, matte_slots=slots, threads=threads, precision=precision
            )
        except SystemExit:
            continue
        time.sleep(STARTUP_CHECK_S)
        if server.proc.poll() is None:
            return server
        server.close()
        print(f"the app stopped at startup (attempt {attempt + 1}); starting it again")
    raise SystemExit(f"the app did not start in {START_ATTEMPTS} attempts")


def run_setting(
    args: argparse.Namespace, predictor: str, slots: int, threads: int, precision: str
) -> dict:
    """One load test of the app started with ``slots``, ``threads`` and ``precision``."""
    server = start_server(args, predictor, slots, threads, precision)
    try:
        # the app names a checkpoint predictor by its file's stem
        name = Path(predictor).stem if Path(predictor).is_file() else predictor
        with tempfile.TemporaryDirectory(prefix="clipmat-threads-photos-") as folder:
            photos = None if args.same_photo else client_photos(Path(folder), args.clients)
            records, wall = run_clients(
                server.url, args.clients, args.requests, name, args.timeout, photos
            )
        peak = server.memory()[1]
    finally:
        server.close()
    failed = sum(r[1] is None for r in records) + args.clients * args.requests - len(records)
    return {"records": records, "wall_s": wall, "peak_mb": peak / MB, "failed": failed}


def summary_rows(runs: dict[tuple[int, int, str], list[dict]]) -> list[dict]:
    """One row per setting, its rounds' requests pooled."""
    rows = []
    for (slots, threads, precision), results in runs.items():
        records = [r for res in results for r in res["records"]]
        lat = latencies(records)
        row = {
            "slots": slots,
            "threads": threads,
            "precision": precision,
            "matte_p50": lat.get("/matte", (0, float("nan"), float("nan")))[1],
            "matte_p95": lat.get("/matte", (0, float("nan"), float("nan")))[2],
            "edit_p50": lat.get("/edit", (0, float("nan"), float("nan")))[1],
            "edit_p95": lat.get("/edit", (0, float("nan"), float("nan")))[2],
            "wall_s": [round(r["wall_s"], 1) for r in results],
            "peak_mb": max(r["peak_mb"] for r in results),
            "failed": sum(r["failed"] for r in results),
        }
        rows.append(row)
    return rows


def _parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="1x1,1x2,2x1,2x2,3x1", help="SLOTSxTHREADS,...")
    parser.add_argument("--precisions", default="fp32", help="fp32, int8, onnx (comma-separated)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=5, help="requests per client")
    parser.add_argument("--predictor", default="random-tiny", help="or random-vitb16, a name")
    parser.add_argument("--max-disk-mb", type=float, default=1024)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per load test")
    parser.add_argument(
        "--same-photo",
        action="store_true",
        help="every client sends the same photo (encoded once, then cached)",
    )
    parser.add_argument("--json", help="write the table here")
    return parser


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    """The pooled rows as a Markdown table, under a line that names the load."""
    load = f"{args.clients} clients x {args.requests} requests on {args.predictor}"
    print(f"\n{load}, {args.rounds} rounds pooled")
    print(
        "| slots | threads | precision | /matte p50 | /matte p95 | /edit p50 | /edit p95 | wall s "
        "| peak MB | failed |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    for row in rows:
        print(
            f"| {row['slots']} | {row['threads']} | {row['precision']} | {row['matte_p50']:.2f} | "
            f"{row['matte_p95']:.2f} | {row['edit_p50']:.2f} | {row['edit_p95']:.2f} | "
            f"{', '.join(f'{w:.0f}' for w in row['wall_s'])} | {row['peak_mb']:.0f} | "
            f"{row['failed']} |"
        )


def main(argv: list[str] | None = None) -> int:
    """Run every setting for the rounds (in alternating order), print the table, write
    ``--json``; exit status 1 when a request failed."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        grid = parse_settings(args.settings)
        precisions = args.precisions.split(",")
        for p in precisions:
            check_precision(p)
    except ValueError as err:
        parser.error(str(err))
    settings = [(s, t, p) for p in precisions for s, t in grid]
    with tempfile.TemporaryDirectory(prefix="clipmat-threads-") as tmp:
        predictor = (
            random_vitb16(Path(tmp)) if args.predictor == "random-vitb16" else args.predictor
        )
        runs: dict[tuple[int, int, str], list[dict]] = {s: [] for s in settings}
        for r in range(args.rounds):
            for s in settings if r % 2 == 0 else settings[::-1]:
                result = run_setting(args, predictor, *s)
                runs[s].append(result)
                took = f"{result['wall_s']:.1f} s"
                print(f"round {r + 1}: {s[0]} slots x {s[1]} threads, {s[2]}, {took}", flush=True)
    rows = summary_rows(runs)
    print_table(rows, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    return 1 if any(row["failed"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Starting the app: ``python app.py``, ``python -m clipmat_app`` or ``clipmat app``.

clipmat app [--host H] [--port P] [--predictor NAME|auto|CHECKPOINT] [--device D]
            [--max-disk-mb N] [--trusted-proxies N]
            [--precision auto|fp32|bf16|int8|onnx] [--threads N] [--matte-slots N]

Everything the app writes (its output files, Gradio's uploads and cache) lives in one temporary
folder kept under ``--max-disk-mb`` and removed when the app exits (Ctrl-C or SIGTERM). Gradio
reads GRADIO_TEMP_DIR when it is imported, so :func:`main` sets it before importing gradio.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clipmat.precision import CPU_PRECISIONS, PRECISIONS, auto_precision
from clipmat_app.http_limits import UPLOAD_SLACK_BYTES, BodyLimit
from clipmat_app.inputs import MAX_DATA_URL_BYTES, MAX_UPLOAD_BYTES
from clipmat_app.pool import RANDOM_TINY, PredictorPool
from clipmat_app.service import MATTE_CONCURRENCY, MatteService
from clipmat_app.storage import DEFAULT_MAX_DISK_MB, Storage

if TYPE_CHECKING:
    import gradio as gr

# What --precision auto means on CPU: the first of these this machine runs (bf16 needs native
# bf16 arithmetic), as measured by bench/cpu_paths.py (see the README's benchmarks).
# Any request but an upload: a phrase, the settings, and at most one inline photo (base64).
MAX_REQUEST_BYTES = MAX_DATA_URL_BYTES * 4 // 3 + 2**20
CSS = """
#status { padding: 10px 14px; border-radius: 8px; font-size: 1.02rem;
          border: 1px solid var(--border-color-primary); background: var(--block-background-fill); }
#title h1 { margin-bottom: 0; }
"""


def launch_options(demo: Any = None) -> dict[str, Any]:
    """Options for ``demo.launch`` shared by :func:`main`, the tests and the benchmark: theme,
    CSS, upload and request-body limits, no error details for users (a ``gr.Error``'s message
    is still shown; any other exception is reported without its text), and the plain HTTP API
    of a ``demo`` made by :func:`clipmat_app.ui.build_demo` (/api/matte, /api/health)."""
    import gradio as gr
    from starlette.middleware import Middleware

    limit = Middleware(
        BodyLimit,
        upload_bytes=MAX_UPLOAD_BYTES + UPLOAD_SLACK_BYTES,
        other_bytes=MAX_REQUEST_BYTES,
    )
    app_kwargs: dict[str, Any] = {"middleware": [limit]}
    plain_api = getattr(demo, "plain_api", None)
    if plain_api is not None:
        app_kwargs["routes"] = plain_api.routes()  # ahead of Gradio's own
    return {
        "theme": gr.themes.Soft(primary_hue="indigo", secondary_hue="pink"),
        "css": CSS,
        "show_error": False,
        "max_file_size": MAX_UPLOAD_BYTES,
        "ssr_mode": False,  # this server answers requests itself, behind BodyLimit
        "app_kwargs": app_kwargs,
    }


@dataclass
class App:
    """A built app: its page, its matte service and its folder on disk."""

    demo: gr.Blocks
    service: MatteService
    storage: Storage

    def close(self) -> None:
        """Stop serving and delete every file the app wrote."""
        self.demo.close()
        self.storage.close()


def build_app(
    pool: PredictorPool,
    name: str | None,
    *,
    max_disk_mb: float = DEFAULT_MAX_DISK_MB,
    trusted_proxies: int = 0,
    matte_slots: int = MATTE_CONCURRENCY,
) -> App:
    """The app in its own folder under a disk budget, with Gradio's cache inside that folder.

    Sets GRADIO_TEMP_DIR for this process (Gradio reads it when it is imported, when components
    are made and when the server starts), so build one such app per process, before anything
    imports gradio.
    """
    storage = Storage(int(max_disk_mb * 2**20))
    os.environ["GRADIO_TEMP_DIR"] = str(storage.root)
    from clipmat_app.admission import Admission  # gradio is imported from here on
    from clipmat_app.ui import build_demo

    service = MatteService(pool, storage=storage, matte_slots=matte_slots)
    demo = build_demo(
        pool, name, service=service, admission=Admission(trusted_proxies=trusted_proxies)
    )
    storage.pin_current()  # the examples, copied into Gradio's cache
    storage.start()
    return App(demo, service, storage)


def parse_args(argv: list[str] | None = None, prog: str = "python app.py") -> argparse.Namespace:
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="CLIPMat web app: a photo and a phrase in, a soft matte and edits of it out.",
    )
    parser.add_argument(
        "--host",
        default=None,
        help="address to serve on (default: GRADIO_SERVER_NAME or 127.0.0.1)",
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: 7860 or free)")
    parser.add_argument(
        "--predictor",
        default="auto",
        help=f"a predictor name, 'auto', '{RANDOM_TINY}' (random weights, for UI work), "
        "'hf-hub:owner/repo' or a checkpoint file",
    )
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', ...")
    parser.add_argument(
        "--max-disk-mb",
        type=float,
        default=DEFAULT_MAX_DISK_MB,
        help="disk the app's files and Gradio's cache may use, least recently used files "
        f"removed first (default {DEFAULT_MAX_DISK_MB})",
    )
    parser.add_argument(
        "--trusted-proxies",
        type=int,
        metavar="N",
        default=1 if os.environ.get("SPACE_ID") else 0,
        help="proxies in front of the app that append to X-Forwarded-For: the per-address job "
        "cap counts the address N places from its right (1 on a Space, else 0: the "
        "connection's address)",
    )
    _add_compute_options(parser)
    args = parser.parse_args(argv)
    if args.max_disk_mb <= 0:
        parser.error("--max-disk-mb must be positive")
    if args.trusted_proxies < 0:
        parser.error("--trusted-proxies must be 0 or more")
    if args.threads is not None and args.threads < 1 or args.matte_slots < 1:
        parser.error("--threads and --matte-slots must be at least 1")
    return args


def _add_compute_options(parser: argparse.ArgumentParser) -> None:
    """--precision, --threads and --matte-slots, whose defaults bench/threads.py chose."""
    parser.add_argument(
        "--precision",
        choices=("auto", *PRECISIONS),
        default="auto",
        help="CPU path of the predictor's CLIP towers, CLIPMat or zero-shot (clipmat.precision); "
        f"'auto': the first of {', '.join(CPU_PRECISIONS)} this CPU runs, fp32 on a GPU "
        "(onnx: zero-shot predictors take int8)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch's intra-op threads (default: torch's own, one per core)",
    )
    parser.add_argument(
        "--matte-slots",
        type=int,
        default=MATTE_CONCURRENCY,
        help=f"mattes computed at once, by every endpoint together (default {MATTE_CONCURRENCY})",
    )


def resolve_precision(precision: str, device: str) -> str:
    """The precision ``--precision`` means on ``device`` for every predictor, CLIPMat and
    zero-shot alike (see :func:`clipmat.precision.auto_precision`)."""
    return auto_precision(device) if precision == "auto" else precision


def _stop_on_sigterm() -> None:
    """SIGTERM (how a container is stopped) ends the app as Ctrl-C does, cleaning up."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None, *, prog: str = "python app.py") -> None:
    """Run the app until Ctrl-C or SIGTERM; its folder is removed on the way out."""
    args = parse_args(argv, prog)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    precision = resolve_precision(args.precision, args.device)
    try:
        pool, name = PredictorPool.from_option(
            args.predictor, device=args.device, precision=precision
        )
    except (ValueError, FileNotFoundError, NotImplementedError) as err:
        sys.exit(f"app: {err}")
    if name is None:
        print("app: no predictor can run here; the app starts with matting off.", file=sys.stderr)
    app = build_app(
        pool,
        name,
        max_disk_mb=args.max_disk_mb,
        trusted_proxies=args.trusted_proxies,
        matte_slots=args.matte_slots,
    )
    print(f"app: files in {app.storage.root}, at most {args.max_disk_mb:g} MB", file=sys.stderr)
    _stop_on_sigterm()
    try:
        app.demo.launch(server_name=args.host, server_port=args.port, **launch_options(app.demo))
    except KeyboardInterrupt:
        pass
    finally:
        app.close()

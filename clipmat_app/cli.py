"""Starting the app: ``python app.py``, ``python -m clipmat_app`` or ``clipmat-app``.

clipmat-app [--host H] [--port P] [--predictor NAME|auto|CHECKPOINT] [--device D]
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any

import gradio as gr

from clipmat_app.pool import RANDOM_TINY, PredictorPool
from clipmat_app.ui import build_demo

MAX_FILE_SIZE = "25mb"
CSS = """
#status { padding: 10px 14px; border-radius: 8px; font-size: 1.02rem;
          border: 1px solid var(--border-color-primary); background: var(--block-background-fill); }
#title h1 { margin-bottom: 0; }
"""


def launch_options() -> dict[str, Any]:
    """Options for ``demo.launch`` shared by :func:`main` and the tests: theme, CSS, limits."""
    return {
        "theme": gr.themes.Soft(primary_hue="indigo", secondary_hue="pink"),
        "css": CSS,
        "show_error": True,
        "max_file_size": MAX_FILE_SIZE,
    }


def serve_local(demo: gr.Blocks, port: int | None = None) -> str:
    """Launch ``demo`` on 127.0.0.1 without blocking (a free port by default); returns its URL."""
    if port is None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **launch_options(),
    )
    return f"http://127.0.0.1:{port}/"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="clipmat-app",
        description="CLIPMat web app: a photo and a phrase in, a soft matte and edits of it out.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=int, default=None, help="port (default: 7860 or free)")
    parser.add_argument(
        "--predictor",
        default="auto",
        help=f"a predictor name, 'auto', '{RANDOM_TINY}' (random weights, for UI work), "
        "'hf-hub:owner/repo' or a checkpoint file",
    )
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', ...")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        pool, name = PredictorPool.from_option(args.predictor, device=args.device)
    except (ValueError, FileNotFoundError, NotImplementedError) as err:
        sys.exit(f"app: {err}")
    if name is None:
        print("app: no predictor can run here; the app starts with matting off.", file=sys.stderr)
    build_demo(pool, name).launch(server_name=args.host, server_port=args.port, **launch_options())

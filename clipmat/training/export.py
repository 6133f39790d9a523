"""``python -m clipmat.training.export CKPT OUT``: a training checkpoint -> a release weights file.

Keeps the model config, stores tensors as fp16 and writes the licence and the reproducing
command into the header (``clipmat.save_model(..., half=True, licence=..., command=...)``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clipmat.factory import load_model, save_model
from clipmat.pretrained.registry import PROJECT_LICENCE
from clipmat.pretrained.weights_io import sha256_file


def export_weights(
    checkpoint: str | Path,
    out: str | Path,
    *,
    licence: str,
    command: str,
    fusion: str | None = None,
) -> tuple[Path, str]:
    """Write ``checkpoint`` as fp16 weights to ``out``; returns (path, sha256 hex digest).

    Args:
        fusion: optionally switch the saved config's fusion rule ("argmax" or "soft").
    """
    model = load_model(checkpoint)
    if fusion is not None:
        if fusion not in ("argmax", "soft"):
            raise ValueError(f"fusion must be 'argmax' or 'soft', got {fusion!r}")
        model.cfg.fusion = fusion
    path = save_model(model, out, half=True, licence=licence, command=command)
    return path, sha256_file(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clipmat.training.export")
    parser.add_argument("checkpoint", help="training checkpoint (e.g. runs/x/last.safetensors)")
    parser.add_argument("out", help="weights file to write")
    parser.add_argument("--licence", default=PROJECT_LICENCE)
    parser.add_argument("--command", default="", help="the command that reproduces the weights")
    parser.add_argument("--fusion", choices=("argmax", "soft"))
    args = parser.parse_args(argv)
    path, digest = export_weights(
        args.checkpoint, args.out, licence=args.licence, command=args.command, fusion=args.fusion
    )
    print(f"{path} sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

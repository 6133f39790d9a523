"""``clipmat train --config FILE [key=value ...]``: train CLIPMat.

Overrides are ``key=value`` pairs (values read as JSON when they parse), e.g.
``steps=2000 batch_size=16 model_overrides.popup=false``. Several processes: run it under
``torchrun --nproc_per_node N`` (DistributedDataParallel; NCCL on GPUs, gloo on CPUs).
"""

from __future__ import annotations

import argparse
import json
import sys

from clipmat.training.config import TrainConfig, load_config
from clipmat.training.loop import train


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog or "clipmat train",
        description="Train CLIPMat (the paper's recipe; docs/training.md).",
    )
    parser.add_argument("--config", help="training config file (.json or .toml)")
    parser.add_argument("overrides", nargs="*", help="key=value settings applied after the file")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config")
    args = parser.parse_args(argv)
    try:
        cfg: TrainConfig = load_config(args.config, args.overrides)
    except (ValueError, FileNotFoundError, TypeError) as err:
        parser.error(str(err))
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    summary = train(cfg)
    if summary["step"] and int(__import__("os").environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

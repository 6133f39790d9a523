"""The fuzz tests with many more examples than the default test run, and their counts.

    python bench/fuzz.py [--examples 1000]

Runs tests/fuzz (photos, clicks, boxes and edit settings through the library; random forms to
the plain HTTP API and random JSON to the page's queue) with ``--examples`` examples per test
and prints hypothesis's statistics: per test, the examples run, how many passed and failed, and
the share of each outcome (answered, refused with ValueError / TypeError / ImageInputError, or
the HTTP status)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000, help="examples per test")
    args = parser.parse_args()
    env = dict(os.environ, CLIPMAT_FUZZ_EXAMPLES=str(args.examples), HF_HUB_OFFLINE="1")
    env.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    cmd = [sys.executable, "-m", "pytest", "-q", "tests/fuzz", "--hypothesis-show-statistics"]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    keep = ("::", "passing", "%", "passed", "failed", "Falsifying", "E  ")
    for line in done.stdout.splitlines():
        if any(k in line for k in keep) and "Retried draw" not in line and "max_leaves" not in line:
            print(line)
    print(f"{args.examples} examples per test, {time.perf_counter() - start:.0f} s")
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()

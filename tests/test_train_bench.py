"""bench/miniworld.py --smoke: every row trains and is evaluated, and the table is printed."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_smoke(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "miniworld.py"), "--smoke", "--json", str(out)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert list(rows) == ["full", "-popup", "-details", "-pre_context", "-post_context", "shuffled"]
    for r in rows.values():
        assert r["train_steps"] == 2
        for setting in ("keyword", "expression"):
            assert r[setting]["n"] > 0 and 0 <= r[setting]["grounding_accuracy"] <= 1
    assert "| shuffled | 2 |" in proc.stdout and "expression grounding" in proc.stdout

"""bench/gpu.py: every row measured in its CPU smoke mode; without CUDA the full run refuses."""

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "bench" / "gpu.py")
ENV = {
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "CUDA_VISIBLE_DEVICES": "",
    "PATH": "/usr/bin:/bin",
}


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=ENV,
    )


def test_cpu_smoke_measures_every_row(tmp_path):
    out = tmp_path / "gpu.json"
    proc = _bench("--cpu-smoke", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["smoke"] is True and result["torch"] and result["device"]
    rows = result["rows"]
    keys = {(r["kind"], r["model"], r["photo_px"], r["batch"], r["precision"]) for r in rows}
    expected = {("predict", "clipmat-tiny", side, b, "fp32") for side in (128, 256) for b in (1, 2)}
    expected |= {("forward", "clipmat-tiny", 128, b, p) for b in (1, 2) for p in ("fp32", "bf16")}
    expected |= {
        ("train", "clipmat-tiny", 128, 2, "fp32"),
        ("train", "clipmat-mini", 96, 2, "fp32"),
    }
    assert keys == expected and len(rows) == len(expected)
    for r in rows:
        numbers = [r["median_ms"], r["samples_per_s"]]
        numbers += [r["peak_memory_gib"]] if r["kind"] == "train" else []
        assert all(math.isfinite(x) and x > 0 for x in numbers), r
        assert r["samples_per_s"] == 1000 * r["batch"] / r["median_ms"]
    assert len(result["ratios"]) == 7
    assert all(math.isfinite(x) and x > 0 for x in result["ratios"].values())
    assert "| train | clipmat-mini | 96 |" in proc.stdout  # the table is printed
    assert "torch" in proc.stdout.splitlines()[0]  # the environment comes first


def test_full_run_needs_cuda():
    proc = _bench()
    assert proc.returncode == 2 and "needs CUDA" in proc.stderr

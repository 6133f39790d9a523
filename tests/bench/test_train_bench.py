"""bench/miniworld.py --smoke: every row trains and is evaluated, and the table is printed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "bench" / "miniworld.py")


def _bench(*args: str) -> subprocess.CompletedProcess:
    """bench/miniworld.py with ``args``, one thread, offline."""
    return subprocess.run(
        [sys.executable, SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )


def test_bench_smoke(tmp_path):
    out = tmp_path / "bench.json"
    proc = _bench("--smoke", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())
    trained = [
        "full",
        "-popup",
        "-details",
        "-pre_context",
        "-post_context",
        "-full_res",
        "shuffled",
    ]
    zeroshot = ["zero-shot (coarse map)", "zero-shot", "zero-shot, shuffled"]
    assert list(rows) == [trained[0], "full + refiner", *trained[1:], *zeroshot]
    for name, r in rows.items():
        assert r["train_steps"] == (0 if name in zeroshot else 2)
        for setting in ("keyword", "expression"):
            assert r[setting]["n"] > 0 and 0 <= r[setting]["grounding_accuracy"] <= 1
    assert "| shuffled | 2 |" in proc.stdout and "expression grounding" in proc.stdout
    assert "| zero-shot, shuffled | 0 |" in proc.stdout and "keyword SAD" in proc.stdout
    # the refiner re-mattes the full row's predictions; a 2-step model is never sure of any
    # pixel, so there is nothing anchored to re-matte and its mattes are returned unchanged
    assert rows["full + refiner"]["keyword"]["sad"] == rows["full"]["keyword"]["sad"]


def test_bench_zeroshot_only_trains_nothing(tmp_path):
    out = tmp_path / "bench.json"
    proc = _bench("--smoke", "--zeroshot-only", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    zeroshot = ["zero-shot (coarse map)", "zero-shot", "zero-shot, shuffled"]
    assert list(json.loads(out.read_text())) == zeroshot
    bad = _bench("--zeroshot-only", "--rows", "full")
    assert bad.returncode == 2 and "--zeroshot-only" in bad.stderr


def test_bench_seeds_average_runs(tmp_path):
    out = tmp_path / "bench.json"
    proc = _bench(
        "--smoke", "--seeds", "2", "--rows", "full", "popup", "--no-zeroshot", "--json", str(out)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert list(rows) == ["full", "full + refiner", "-popup"]
    for r in rows.values():
        a, b = r["seeds"]
        assert a["loss"] != b["loss"]  # two seeds, two different runs
        assert r["loss"] == (a["loss"] + b["loss"]) / 2
        for setting in ("keyword", "expression"):
            g = [a[setting]["grounding_accuracy"], b[setting]["grounding_accuracy"]]
            assert r[setting]["grounding_accuracy"] == sum(g) / 2
            assert r[setting]["grounding_sd"] == abs(g[0] - g[1]) / 2
    assert "| -popup | 2 |" in proc.stdout and " ± " in proc.stdout
    assert [run["seed"] for run in rows["full + refiner"]["seeds"]] == [0, 1]

    # a third seed, trained apart, then pooled with the first two
    third = tmp_path / "third.json"
    proc = _bench(
        "--smoke", "--first-seed", "2", "--rows", "popup", "--no-zeroshot", "--json", str(third)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    merged = tmp_path / "merged.json"
    proc = _bench("--merge", str(out), str(third), "--json", str(merged))
    assert proc.returncode == 0, proc.stderr[-2000:]
    pooled = json.loads(merged.read_text())
    assert list(pooled) == ["full", "full + refiner", "-popup"]
    runs = pooled["-popup"]["seeds"]
    assert [run["seed"] for run in runs] == [0, 1, 2]
    assert runs[2]["loss"] == json.loads(third.read_text())["-popup"]["loss"]
    assert pooled["-popup"]["loss"] == pytest.approx(sum(run["loss"] for run in runs) / 3)
    assert pooled["full"] == rows["full"]
    assert "| -popup | 2 |" in proc.stdout
    twice = _bench("--merge", str(out), str(out))
    assert twice.returncode == 2 and "seed 0, already merged" in twice.stderr
    longer = json.loads(third.read_text())
    longer["-popup"]["train_steps"] = 3
    third.write_text(json.dumps(longer))
    mixed = _bench("--merge", str(out), str(third))
    assert mixed.returncode == 2 and "another step count" in mixed.stderr

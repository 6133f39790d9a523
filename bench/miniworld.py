"""The mini world, end to end: the full tiny CLIPMat, the paper's ablation rows and a control.

    python bench/miniworld.py [--minutes 8] [--clip-init FILE] [--seeds 1] [--out runs/bench] [--json OUT]
    python bench/miniworld.py --smoke          # a tiny version, under a minute
    python bench/miniworld.py --merge A.json B.json [--json OUT]   # one table from several runs

Every row trains from the same tiny CLIP (``--clip-init``, made by ``python -m
clipmat.training.clip_pretrain``; random towers without it) for the same wall-time budget (or the same
number of steps with ``--steps``, which other work on the machine cannot bias), then is
evaluated on held-out mini-world scenes (test split: unseen textures, backgrounds and
colour-category pairs) in the keyword and expression settings. Rows:
  full           all modules (TSP, MDE, pre-context templates, post-context vectors)
  -popup         TSP replaced by scaling the visual tokens with the pooled text feature
  -details       MDE off: the details decoder sees only the last visual tokens
  -pre_context   no templates around keywords
  -post_context  no learnable context vectors
  -full_res      our addition off: the details decoder answers at half resolution, as drawn
  shuffled       the control: trained and tested with phrases shuffled across samples
and rows that are evaluated without training of their own:
  full + refiner          the full row with ``predict(..., refine=True)``
  zero-shot (coarse map)  the zero-shot predictor on the tiny CLIP, its region probability
                          upsampled (what the dense similarity alone gives)
  zero-shot               the same with its trimap and closed-form matting
  zero-shot, shuffled     its control, phrases shuffled across samples
The whole run takes about 7 x (minutes + evaluation) on two CPU cores. ``--seeds N`` trains every
row N times (training seeds 0..N-1) and reports the means, with the spread of grounding
accuracy across seeds (one standard deviation) beside it. The ablation rows of a single run
differ by a few hundredths, too little to order them without knowing that spread. A table can be
split across runs or machines: ``--first-seed 2 --seeds 1`` trains seed 2 only, and ``--merge``
pools the seeds of each row from the runs' JSON files (each seed once) into one table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipmat import CLIPMatPredictor  # noqa: E402
from clipmat.evaluation.evaluate import evaluate, miniworld_items, predictor_fn, shuffle_texts  # noqa: E402
from clipmat.evaluation.zeroshot import build_predictor  # noqa: E402
from clipmat.factory import load_model  # noqa: E402
from clipmat.model.backbone import DENSE_METHODS  # noqa: E402
from clipmat.training.config import TrainConfig  # noqa: E402
from clipmat.training.loop import train  # noqa: E402
from clipmat.zeroshot import ZeroShotConfig  # noqa: E402

ROWS: dict[str, dict] = {
    "full": {},
    "-popup": {"popup": False},
    "-details": {"details": False},
    "-pre_context": {"pre_context": False},
    "-post_context": {"post_context": False},
    "-full_res": {"details_full_res": 0},
    "shuffled": {},
}


def evaluate_row(
    predictor, images: int, size: int, *, shuffled: bool = False, refine: bool = False
) -> dict:
    """{setting: metrics} of a predictor on held-out scenes, keyword and expression."""
    result: dict = {}
    for setting in ("keyword", "expression"):
        items = list(miniworld_items(setting, images, size, seed=0))
        if shuffled:
            items = shuffle_texts(items, np.random.default_rng(1))
        result[setting] = evaluate(predictor_fn(predictor, setting, refine), items, fast=True)
    return result


def run_row(
    name: str, base: TrainConfig, out: Path, images: int, size: int, seed: int = 0
) -> tuple[dict, Any]:
    """Train one row and evaluate it on held-out scenes; returns ({setting: metrics}, predictor)."""
    overrides = {**base.model_overrides, **ROWS[name]}
    run_dir = str(out / name / f"seed{seed}")
    changes = {"model_overrides": overrides, "out_dir": run_dir, "shuffle_text": name == "shuffled"}
    cfg = TrainConfig.from_dict({**base.to_dict(), **changes, "resume": False, "seed": seed})
    summary = train(cfg)
    predictor = CLIPMatPredictor(load_model(summary["checkpoint"]), name=name, device="cpu")
    result = {"train_steps": summary["step"], "seed": seed, "loss": summary["last_loss"]}
    result.update(evaluate_row(predictor, images, size, shuffled=name == "shuffled"))
    return result, predictor


def mean_over_seeds(runs: list[dict]) -> dict:
    """One row from its runs: every metric averaged; with several runs, each setting also
    carries ``grounding_sd`` (standard deviation across seeds) and the row its ``seeds``."""
    if len(runs) == 1:
        return runs[0]
    row: dict = {"train_steps": runs[0]["train_steps"], "seeds": runs}
    row["loss"] = float(np.mean([r["loss"] for r in runs]))
    for setting in ("keyword", "expression"):
        row[setting] = {k: float(np.mean([r[setting][k] for r in runs])) for k in runs[0][setting]}
        row[setting]["grounding_sd"] = float(
            np.std([r[setting]["grounding_accuracy"] for r in runs])
        )
    return row


def merge_runs(paths: list[str]) -> dict[str, dict]:
    """The rows of several JSON files from this bench, each trained row's seeds pooled (a seed
    found twice is an error); rows without training (zero-shot) are taken from the last file."""
    pooled: dict[str, dict[int, dict]] = {}
    untrained: dict[str, dict] = {}
    for path in paths:
        for name, row in json.loads(Path(path).read_text()).items():
            if row["train_steps"] == 0:
                untrained[name] = row
                continue
            seeds = pooled.setdefault(name, {})
            for run in row.get("seeds", [row]):
                seed = run.get("seed")
                if seed is None:
                    raise ValueError(f"{path}: row {name!r} does not record its training seed")
                if seed in seeds:
                    raise ValueError(f"{path}: row {name!r} has seed {seed}, already merged")
                if seeds and next(iter(seeds.values()))["train_steps"] != run["train_steps"]:
                    raise ValueError(f"{path}: row {name!r} was trained for another step count")
                seeds[seed] = run
    merged = {
        name: mean_over_seeds([runs[s] for s in sorted(runs)]) for name, runs in pooled.items()
    }
    return {**merged, **untrained}


def zeroshot_rows(clip: str | None, method: str, images: int, size: int) -> dict[str, dict]:
    """The zero-shot predictor on the tiny CLIP: coarse map, matted, and its shuffled control."""
    rows = {}
    for name, matting, shuffled in (
        ("zero-shot (coarse map)", False, False),
        ("zero-shot", True, False),
        ("zero-shot, shuffled", True, True),
    ):
        predictor = build_predictor(clip, method=method, matting=matting)
        rows[name] = {"train_steps": 0, **evaluate_row(predictor, images, size, shuffled=shuffled)}
    return rows


def format_rows(results: dict[str, dict]) -> str:
    """Keyword and expression columns (SAD, MAD, grounding, selection) per row."""
    cols = ("SAD", "MAD", "grounding", "selection")
    head = [f"{s} {c}" for s in ("keyword", "expression") for c in cols]
    lines = ["| row | steps | " + " | ".join(head) + " |", "|---" * (2 + len(head)) + "|"]
    for name, r in results.items():
        cells = [
            f"{r[s]['sad']:.3f} | {r[s]['mad']:.4f} | {_grounding(r[s])} | "
            f"{r[s]['selection_accuracy']:.3f}"
            for s in ("keyword", "expression")
        ]
        lines.append(f"| {name} | {r['train_steps']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _grounding(metrics: dict) -> str:
    """Grounding accuracy, with its spread over seeds (one SD) when there are several."""
    text = f"{metrics['grounding_accuracy']:.3f}"
    return text + (f" ± {metrics['grounding_sd']:.3f}" if "grounding_sd" in metrics else "")


def _parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="training time per row")
    parser.add_argument(
        "--steps",
        type=int,
        default=0,
        help="training steps per row instead of a time budget (fair under load)",
    )
    parser.add_argument("--clip-init", help="tiny CLIP weights from clipmat.training.clip_pretrain")
    parser.add_argument(
        "--seeds", type=int, default=1, help="training runs per row (seeds 0..N-1), averaged"
    )
    parser.add_argument("--first-seed", type=int, default=0, help="seeds start here")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="pool earlier runs' JSON files")
    parser.add_argument("--images", type=int, default=150, help="held-out scenes per setting")
    parser.add_argument("--out", help="run folders (a temporary folder when omitted)")
    parser.add_argument("--json", help="write all rows' metrics here")
    parser.add_argument(
        "--rows",
        nargs="*",
        choices=[name.lstrip("-") for name in ROWS],
        help="subset of trained rows; an ablation is named by the module it removes (popup)",
    )
    parser.add_argument("--no-zeroshot", action="store_true", help="skip the zero-shot rows")
    parser.add_argument(
        "--zeroshot-only", action="store_true", help="only the zero-shot rows (no training)"
    )
    parser.add_argument(
        "--zeroshot-method",
        default=ZeroShotConfig.method,
        choices=DENSE_METHODS,
        help="dense method of the zero-shot rows (default: the predictor's; the README's older "
        "rows: value-noresidual, called maskclip then)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training")
    parser.add_argument("--smoke", action="store_true", help="tiny version (under a minute)")
    return parser


def base_config(args: argparse.Namespace) -> tuple[TrainConfig, int, int]:
    """The training config every row shares, the scene side, and the held-out scenes per
    setting; all shrunk under ``--smoke``."""
    base = TrainConfig(
        model="clipmat-mini",
        clip_init=args.clip_init,
        steps=args.steps or 100000,
        batch_size=32,
        lr=5e-4,
        lr_image=2e-4,
        warmup_steps=100,
        max_minutes=0.0 if args.steps else args.minutes,
        progress=False,
        log_every=20,
        threads=args.threads,
        workers=0 if args.smoke else 1,
        ckpt_every=10**9,
        ckpt_minutes=10**6,
    )
    if not args.smoke:
        return base, 96, args.images
    size = 48
    smoke = {"steps": 2, "batch_size": 4, "image_size": size, "max_minutes": 0.0}
    smoke.update(log_every=1, warmup_steps=1)
    return TrainConfig.from_dict({**base.to_dict(), **smoke}), size, 2


def trained_rows(
    names: list[str], base: TrainConfig, out: Path, images: int, size: int, seeds: range
) -> dict[str, dict]:
    """Train and evaluate each named row once per seed, averaged over the seeds; the full row
    is evaluated once more with the refiner, as the row "full + refiner" after it."""
    results: dict[str, dict] = {}
    for name in names:
        runs, refined = [], []
        for seed in seeds:
            result, predictor = run_row(name, base, out, images, size, seed)
            runs.append(result)
            if name == "full":
                kept = {k: result[k] for k in ("train_steps", "seed", "loss")}
                refined.append({**kept, **evaluate_row(predictor, images, size, refine=True)})
        results[name] = mean_over_seeds(runs)
        print(format_rows({name: results[name]}).splitlines()[-1], flush=True)
        if refined:
            results["full + refiner"] = mean_over_seeds(refined)
    return results


def main(argv: list[str] | None = None) -> int:
    """Train and evaluate the rows (or merge earlier runs); print the table, write ``--json``."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.merge:
        try:
            results = merge_runs(args.merge)
        except (OSError, ValueError, KeyError) as err:
            parser.error(f"--merge: {err}")
        return _report(results, args.json)
    torch.set_num_threads(max(1, args.threads))  # evaluation too
    base, size, images = base_config(args)
    if args.zeroshot_only and (args.no_zeroshot or args.rows):
        parser.error("--zeroshot-only cannot be combined with --no-zeroshot or --rows")
    chosen = [name if name in ROWS else f"-{name}" for name in args.rows or []]
    rows = [] if args.zeroshot_only else chosen or list(ROWS)
    if args.seeds < 1 or args.first_seed < 0:
        parser.error("--seeds must be >= 1 and --first-seed >= 0")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        results = trained_rows(rows, base, out, images, size, seeds)
    if not args.no_zeroshot:
        results.update(zeroshot_rows(args.clip_init, args.zeroshot_method, images, size))
    return _report(results, args.json)


def _report(results: dict[str, dict], json_path: str | None) -> int:
    """Print the table and write the rows as JSON when asked; returns the exit status 0."""
    print(format_rows(results))
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

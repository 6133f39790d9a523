"""``python -m clipmat.batch``: mattes for a folder of photos or a file of (photo, phrase) pairs.

    python -m clipmat.batch --input FOLDER --text PHRASE [--text ...] --out DIR
    python -m clipmat.batch --pairs FILE.csv|FILE.json --out DIR
        [--predictor NAME|auto|CHECKPOINT] [--device D] [--precision fp32|bf16|int8|onnx]
        [--setting auto|keyword|expression] [--refine] [--cutout]
    torchrun --nproc-per-node N -m clipmat.batch ...   # the same, shared among N processes

(also ``clipmat batch``). A folder is read recursively (the output folder excluded); a CSV has
columns ``image`` and ``text`` (or ``phrase``), a JSON a list of {"image", "text"} objects or
the examples/phrases.json layout, image paths relative to the file (:func:`read_pairs`). Per
pair it writes ``OUT/<photo's path without suffix>.<phrase>-<hash>.matte.png`` (16-bit
grey) and with ``--cutout`` ``...cutout.png``: RGBA with the photo's own colours and the matte
as alpha. The library has no editing layer: these cutouts keep the background's colour mixed
into soft edges (hair, fur), where ``editing.cutout`` estimates the foreground colour; edits
are the figure script's (``python -m clipmat_app.figure``), or pass ``writers`` to
:func:`run_batch`.

Resumable: a pair whose files all exist is skipped (files are written atomically, so a file
that exists is whole). A photo that cannot be read or matted is reported and skipped; the run
goes on. A progress bar, then a summary (done, skipped, failed with reasons) printed and written
to ``OUT/batch_summary.json``. Under torchrun each rank takes the photos i with
i % world == rank (the pairs of one photo stay together, so it is encoded once), the rows are
gathered to rank 0, which alone prints and writes the summary. Exit status 1 when a pair failed.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch.distributed as dist
from tqdm import tqdm

from clipmat.distributed import gather_rows, process_group
from clipmat.precision import PRECISIONS, check_device
from clipmat.predictors.loading import load_predictor
from clipmat.predictors.results import Photo

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
SUMMARY_FILE = "batch_summary.json"
MAX_REASON = 300  # characters of an error kept in the summary
# An extra output per pair: (photo (H, W, 3) uint8, alpha (H, W) float32 in [0, 1]) -> an
# (H, W), (H, W, 3) or (H, W, 4) uint8 or uint16 image, written as <pair>.<name>.png.
Writer = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Job:
    """One photo and its phrases.

    Attributes:
        image: the photo's path.
        key: its output path under OUT, without suffix (e.g. "trip/cat").
        phrases: the phrases to matte on it, in order.
        index: its position among every job (a rank takes the jobs i % world == rank).
    """

    image: Path
    key: str
    phrases: list[str] = field(default_factory=list)
    index: int = 0


def read_pairs(path: str | Path) -> list[tuple[str, str]]:
    """(image path, phrase) pairs from a CSV or JSON file; paths resolved against its folder.

    Raises:
        ValueError: for an unknown suffix, missing columns or keys, or no pairs.
    """
    path = Path(path)
    rows: list[dict[str, Any]]
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    elif path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and "examples" in data:
            found = [(e["image"], p["text"]) for e in data["examples"] for p in e["phrases"]]
            rows = [{"image": image, "text": text} for image, text in found]
        elif isinstance(data, list):
            rows = data
        else:
            raise ValueError(f"{path}: expected a list of {{'image', 'text'}} or {{'examples'}}")
    else:
        raise ValueError(f"{path}: pairs must be a .csv or .json file")
    pairs = []
    for i, row in enumerate(rows):
        text = row.get("text", row.get("phrase")) if isinstance(row, dict) else None
        if not isinstance(row, dict) or "image" not in row or not text:
            raise ValueError(f"{path}: pair {i} needs 'image' and 'text' (or 'phrase'): {row}")
        pairs.append((str(path.parent / row["image"]), str(text)))
    if not pairs:
        raise ValueError(f"{path}: no pairs found")
    return pairs


def folder_pairs(
    folder: str | Path, texts: list[str], exclude: Path | None = None
) -> list[tuple[str, str]]:
    """(image, phrase) for every image file under ``folder`` (recursively, sorted, hidden
    files and anything under ``exclude`` left out) and every phrase of ``texts``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    skip = exclude.resolve() if exclude is not None else None
    images = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if skip is not None and path.resolve().is_relative_to(skip):
            continue
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
    if not images:
        raise ValueError(f"{folder} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return [(str(image), text) for image in images for text in texts]


def group_jobs(pairs: list[tuple[str, str]], root: str | Path) -> list[Job]:
    """The pairs grouped by photo (first appearance first), each with its output key: its path
    relative to ``root`` without suffix (the file name when outside ``root``), the suffix kept
    where two photos would share a key."""
    root = Path(root).resolve()
    by_image: dict[Path, Job] = {}
    for image, text in pairs:
        path = Path(image)
        job = by_image.setdefault(path, Job(image=path, key="", index=len(by_image)))
        if text not in job.phrases:
            job.phrases.append(text)
    jobs = list(by_image.values())
    stems: dict[str, int] = {}
    for job in jobs:
        job.key = _relative(job.image, root).with_suffix("").as_posix()
        stems[job.key] = stems.get(job.key, 0) + 1
    for job in jobs:
        if stems[job.key] > 1:
            job.key = _relative(job.image, root).as_posix()
    return jobs


def _relative(path: Path, root: Path) -> Path:
    """``path`` relative to ``root``; its file name alone when it lies outside ``root``."""
    resolved = path.resolve()
    return resolved.relative_to(root) if resolved.is_relative_to(root) else Path(path.name)


def phrase_slug(phrase: str) -> str:
    """A file-name part for ``phrase``: its words (at most 40 characters) and a short hash, so
    that phrases differing only in case or punctuation get different files."""
    words = re.sub(r"[^a-z0-9]+", "-", phrase.lower()).strip("-")[:40].strip("-") or "phrase"
    return f"{words}-{hashlib.blake2b(phrase.encode(), digest_size=3).hexdigest()}"


def output_paths(out: Path, job: Job, phrase: str, names: list[str]) -> dict[str, Path]:
    """{name: OUT/<key>.<slug>.<name>.png} for each output ``name`` of one pair."""
    base = f"{job.key}.{phrase_slug(phrase)}"
    return {name: out / f"{base}.{name}.png" for name in names}


def matte16(alpha: np.ndarray) -> np.ndarray:
    """(H, W) float alpha in [0, 1] -> (H, W) uint16 (0..65535)."""
    return np.round(np.clip(alpha, 0.0, 1.0) * 65535.0).astype(np.uint16)


def raw_cutout(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The photo's own colours with the matte as alpha (not premultiplied): (H, W, 3) uint8
    ``rgb`` and (H, W) float ``alpha`` in [0, 1] -> (H, W, 4) uint8 RGBA."""
    a = np.round(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.dstack([rgb, a])


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an (H, W) grey or (H, W, 3) RGB or (H, W, 4) RGBA uint8/uint16 image as PNG,
    atomically (a temporary file in the same folder, then a rename)."""
    if image.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
        image = cv2.cvtColor(np.ascontiguousarray(image), code)
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"could not encode {path.name} as PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data.tobytes())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _reason(err: BaseException) -> str:
    """An error as the summary keeps it: its type and message, cut to ``MAX_REASON``."""
    return f"{type(err).__name__}: {err}"[:MAX_REASON]


def run_job(
    predictor: Any,
    job: Job,
    out: Path,
    *,
    writers: dict[str, Writer],
    predict_options: dict[str, Any],
) -> list[dict]:
    """Matte the pending phrases of one photo; one row per phrase (see :func:`run_batch`)."""
    names = list(writers)
    rows, pending = [], []
    for j, phrase in enumerate(job.phrases):
        paths = output_paths(out, job, phrase, names)
        outputs = {k: str(p.relative_to(out)) for k, p in paths.items()}
        row = {"image": str(job.image), "text": phrase, "key": (job.index, j), "outputs": outputs}
        rows.append(row)
        if all(p.is_file() for p in paths.values()):
            row["status"] = "skipped"
        else:
            pending.append((row, paths))
    if not pending:
        return rows
    try:
        encoded = predictor.set_image(Photo.load(job.image))
    except Exception as err:  # noqa: BLE001 - a bad photo is reported, the batch goes on
        for row, _ in pending:
            row.update(status="failed", reason=_reason(err))
        return rows
    for row, paths in pending:
        try:
            alpha = predictor.predict(encoded, row["text"], **predict_options).alpha
            for name, path in paths.items():
                write_png(path, writers[name](encoded.photo.rgb, alpha))
            row["status"] = "done"
        except Exception as err:  # noqa: BLE001 - one bad pair never stops the batch
            row.update(status="failed", reason=_reason(err))
    return rows


def run_batch(
    predictor: Any,
    jobs: list[Job],
    out: str | Path,
    *,
    shard: tuple[int, int] = (0, 1),
    cutout: bool = False,
    writers: dict[str, Writer] | None = None,
    progress: bool = True,
    **predict_options: Any,
) -> list[dict]:
    """Matte this shard's jobs (i % world == rank) into ``out``.

    Args:
        predictor: any :class:`clipmat.Predictor`.
        jobs: from :func:`group_jobs`.
        out: the output folder.
        shard: (rank, world size).
        cutout: also write the raw-colour cutout (:func:`raw_cutout`).
        writers: more outputs per pair, by name (see ``Writer``).
        progress: show a progress bar (one step per pair).
        predict_options: passed to ``predictor.predict`` (setting, refine, ...).

    Returns:
        One row per pair of the shard: "image", "text", "key" (job index, phrase index),
        "outputs" ({name: path relative to ``out``}), "status" ("done", "skipped" or
        "failed") and, when failed, "reason".
    """
    out = Path(out)
    every: dict[str, Writer] = {"matte": lambda rgb, alpha: matte16(alpha)}
    if cutout:
        every["cutout"] = raw_cutout
    every.update(writers or {})
    mine = [job for job in jobs if job.index % shard[1] == shard[0]]
    rows: list[dict] = []
    label = f"rank {shard[0]}" if shard[1] > 1 else "matting"
    total = sum(len(job.phrases) for job in mine)
    with tqdm(total=total, desc=label, unit="pair", disable=not progress) as bar:
        for job in mine:
            done = run_job(predictor, job, out, writers=every, predict_options=predict_options)
            rows += done
            bar.update(len(done))
            bar.set_postfix(failed=sum(r["status"] == "failed" for r in rows), refresh=False)
    return rows


def summarise(rows: list[dict], *, world: int = 1, seconds: float = 0.0) -> dict:
    """Counts, the failures with their reasons, and every pair's row in job order."""
    rows = sorted(rows, key=lambda r: r["key"])
    count = {s: sum(r["status"] == s for r in rows) for s in ("done", "skipped", "failed")}
    failed = [r for r in rows if r["status"] == "failed"]
    failures = [{"image": r["image"], "text": r["text"], "reason": r["reason"]} for r in failed]
    pairs = [{k: v for k, v in r.items() if k != "key"} for r in rows]
    totals = {"pairs_total": len(rows), **count, "failures": failures}
    return {**totals, "world_size": world, "seconds": round(seconds, 3), "pairs": pairs}


def _parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command line of ``python -m clipmat.batch`` (and ``clipmat batch``)."""
    parser = argparse.ArgumentParser(
        prog=prog or "python -m clipmat.batch",
        description="Mattes (16-bit PNG) for a folder of photos or a file of photo-phrase pairs.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="a folder of photos (read recursively)")
    source.add_argument("--pairs", help="a .csv (image,text) or .json file of pairs")
    parser.add_argument("--text", action="append", help="with --input: the phrase (repeatable)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--predictor", default="auto", help="registry name or checkpoint path")
    parser.add_argument("--device", default="auto")
    precision = "CLIP towers on the CPU: bf16 or int8 (CLIPMat and zero-shot), onnx (CLIPMat)"
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help=precision)
    parser.add_argument("--setting", choices=("auto", "keyword", "expression"), default="auto")
    parser.add_argument("--refine", action="store_true", help="re-matte the edges in closed form")
    parser.add_argument("--cutout", action="store_true", help="also an RGBA cutout (raw colours)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _jobs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[Job]:
    """The jobs of ``--input`` with ``--text``, or of ``--pairs``; a usage error otherwise."""
    try:
        if args.input:
            if not args.text:
                parser.error("--input needs --text PHRASE")
            pairs = folder_pairs(args.input, args.text, exclude=Path(args.out))
            return group_jobs(pairs, args.input)
        if args.text:
            parser.error("--text goes with --input; a pairs file holds its phrases")
        return group_jobs(read_pairs(args.pairs), Path(args.pairs).parent)
    except (OSError, ValueError) as err:
        parser.error(str(err))


def _load(parser: argparse.ArgumentParser, args: argparse.Namespace, device: str) -> Any:
    """The predictor, its CLIP towers (CLIPMat or zero-shot) at ``args.precision``."""
    try:
        check_device(args.precision, device)
        predictor = load_predictor(args.predictor, device=device)
        if args.precision != "fp32":
            if not hasattr(predictor, "set_precision"):
                parser.error(f"--precision does not apply to {predictor.name}")
            predictor.set_precision(args.precision)
        return predictor
    except (FileNotFoundError, ValueError) as err:
        parser.error(f"cannot load predictor {args.predictor!r}: {err}")


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    """Run the command line; returns the exit status (1 when a pair failed)."""
    parser = _parser(prog)
    args = parser.parse_args(argv)
    jobs = _jobs(parser, args)
    if args.precision != "fp32" and args.device == "auto":
        args.device = "cpu"  # the bf16, int8 and onnx towers run on the CPU
    with process_group(args.device) as (ranks, device):
        predictor = _load(parser, args, device)
        start = time.perf_counter()
        options = {"setting": args.setting, **({"refine": True} if args.refine else {})}
        shard, show = (ranks.rank, ranks.world), not args.no_progress
        rows = run_batch(
            predictor, jobs, args.out, shard=shard, cutout=args.cutout, progress=show, **options
        )
        rows = gather_rows(rows, ranks.world)
        failed = 0
        if rows is not None:
            summary = summarise(rows, world=ranks.world, seconds=time.perf_counter() - start)
            _report(summary, Path(args.out))
            failed = summary["failed"]
        if ranks.world > 1:
            dist.barrier()
    return 1 if failed else 0


def _report(summary: dict, out: Path) -> None:
    """Print the counts and failures; write the summary as JSON (atomically)."""
    print(
        f"{summary['pairs_total']} pairs: {summary['done']} done, {summary['skipped']} skipped "
        f"(already written), {summary['failed']} failed ({summary['seconds']:.1f} s, "
        f"{summary['world_size']} process{'es' if summary['world_size'] > 1 else ''})"
    )
    for f in summary["failures"]:
        print(f"  failed: {f['image']} {f['text']!r}: {f['reason']}")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{SUMMARY_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, out / SUMMARY_FILE)
    print(f"summary: {out / SUMMARY_FILE}")


if __name__ == "__main__":
    sys.exit(main())

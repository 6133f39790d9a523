"""``clipmat evaluate``: matting metrics and grounding accuracy of a predictor.

    clipmat evaluate --predictor NAME|CKPT --data DIR --split test \
        --setting keyword|expression|rw100 --json OUT
    clipmat evaluate --predictor mini-world --mini-world --images 200 --setting keyword
    torchrun --nproc-per-node N -m clipmat.evaluation.evaluate ...   # the same, sharded over N processes
    clipmat evaluate --real DIR [--side 800]   # box and clicks, no model, vs GrabCut on real photos

Each entity-text pair is one sample (docs/decisions.md#evaluation-protocol): the keyword setting takes every entity whose
keyword is unique in its image; the expression setting takes every expression of every entity
(RW100: the one fixed by ``eval_index_expression.json`` when present, else all). Metrics are
computed on the whole image at the ground truth's resolution; the predictor resizes internally
(short side to its image size, alpha upsampled bilinearly). OUT holds
{"n", "sad", "mse", "mad", "grad", "conn", "grounding_accuracy"} plus "iou", "selection_accuracy",
the setting and "world_size" (the number of processes; 1 when not distributed).

Under torchrun each rank evaluates the items i with i % world == rank (on cuda:LOCAL_RANK when
CUDA is present; gloo on the CPU, nccl on CUDA), the per-sample rows are gathered to rank 0 and
put back in item order, and rank 0 alone prints and writes: the table is the single-process
table. With another thread count per rank than the single process (torchrun gives each rank one
thread) matrix products sum in another order, and the last digits may differ: by under 1e-9 on
the 200 mini-world keyword scenes, measured.

``--real DIR`` needs no predictor: it is :mod:`clipmat.evaluation.real` (box-only and click-only
mattes against plain GrabCut on a folder of photo + alpha pairs, per photo and per category).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from clipmat import metrics
from clipmat.data.miniworld import MiniWorld
from clipmat.data.refmatte import EntityRecord, load_alpha, load_image, load_records
from clipmat.data.samples import unique_keyword_flags
from clipmat.distributed import gather_rows, process_group
from clipmat.predictors.loading import load_predictor

SETTINGS = ("keyword", "expression", "rw100")
COLUMNS = ("n", "sad", "mse", "mad", "grad", "conn", "grounding_accuracy")

# An evaluation item: (image (H, W, 3) uint8, [(text, gt alpha (H, W) float32 in [0, 1])]).
Item = tuple[np.ndarray, list[tuple[str, np.ndarray]]]
# A share of a sharded run: (rank, world size); a rank takes the items i with i % world == rank.
Shard = tuple[int, int]


def miniworld_items(
    setting: str, images: int = 200, size: int = 96, seed: int = 0, split: str = "test"
) -> Iterator[Item]:
    """Held-out mini-world scenes (test split: unseen textures, backgrounds, colour pairs)."""
    for _, item in indexed_miniworld_items(setting, images, size, seed, split):
        yield item


def indexed_miniworld_items(
    setting: str,
    images: int = 200,
    size: int = 96,
    seed: int = 0,
    split: str = "test",
    shard: Shard = (0, 1),
) -> Iterator[tuple[int, Item]]:
    """(scene index, item) for the scenes of ``shard``: (rank, world) generates only the scenes
    i with i % world == rank, so that the ranks of a sharded run share the generation too."""
    world = MiniWorld(split, size, seed)
    for i in range(images):
        if i % shard[1] != shard[0]:
            continue
        scene = world.scene(i)
        pairs: list[tuple[str, np.ndarray]] = []
        flags = unique_keyword_flags([e.keyword for e in scene.entities])
        for e, unique in zip(scene.entities, flags, strict=True):
            if setting == "keyword":
                if unique:
                    pairs.append((e.keyword, e.alpha))
            else:
                pairs.extend((text, e.alpha) for text in e.expressions)
        if pairs:
            yield i, (scene.image, pairs)


def indexed_folder_items(
    root: str | Path, split: str, setting: str, shard: Shard = (0, 1)
) -> Iterator[tuple[int, Item]]:
    """(image index, item) for the images of ``shard`` (see :func:`indexed_miniworld_items`);
    only those images and their mattes are read."""
    by_image: dict[str, list[EntityRecord]] = {}
    for rec in load_records(root, split):
        by_image.setdefault(rec.image_name, []).append(rec)
    for i, records in enumerate(by_image.values()):
        if i % shard[1] != shard[0]:
            continue
        flags = unique_keyword_flags([rec.keyword for rec in records])
        pairs: list[tuple[str, np.ndarray]] = []
        for rec, unique in zip(records, flags, strict=True):
            alpha = load_alpha(rec.mask_path)
            if setting == "keyword":
                if unique:
                    pairs.append((rec.keyword, alpha))
            elif setting == "rw100" and rec.eval_index is not None:
                pairs.append((rec.expressions[rec.eval_index], alpha))
            else:
                pairs.extend((text, alpha) for text in rec.expressions)
        if pairs:
            yield i, (load_image(records[0].image_path), pairs)


def shuffle_texts(items: list[Item], rng: np.random.Generator) -> list[Item]:
    """The control: every text moved to a random other sample (truths stay in place)."""
    texts = [t for _, pairs in items for t, _ in pairs]
    texts = [texts[i] for i in rng.permutation(len(texts))]
    out, k = [], 0
    for image, pairs in items:
        out.append((image, [(texts[k + j], a) for j, (_, a) in enumerate(pairs)]))
        k += len(pairs)
    return out


def sample_rows(
    predict: Callable[[np.ndarray, list[str]], list[np.ndarray]],
    items: Iterable[tuple[int, Item]],
    *,
    fast: bool = False,
) -> list[dict]:
    """Per-sample metrics of every (text, truth) pair of ``items``.

    Args:
        predict: (image, texts) -> one (H, W) float32 alpha in [0, 1] per text.
        items: (index, item) pairs (see ``Item``); the index orders the samples when the rows of
            several processes are merged.
        fast: skip Grad and Conn (reported as NaN), e.g. for quick checks during training.

    Returns:
        One dict per sample: "sad", "mse", "mad", "grad", "conn", "iou", "grounding_hit",
        "selection" (1.0 or 0.0 whether the matte overlaps the referred entity most; NaN where
        the image has a single entity), "text" and "key" (item index, pair index).
    """
    rows: list[dict] = []
    for index, (image, pairs) in items:
        alphas = predict(image, [t for t, _ in pairs])
        entities = list({id(gt): gt for _, gt in pairs}.values())
        for j, (pred, (text, gt)) in enumerate(zip(alphas, pairs, strict=True)):
            row = _fast_metrics(pred, gt) if fast else metrics.compute_all(pred, gt)
            many = len(entities) > 1
            row["selection"] = float(_selects(pred, gt, entities)) if many else float("nan")
            rows.append({**row, "text": text, "key": (index, j)})
    return rows


def summarise(rows: list[dict], *, per_text: bool = False) -> dict:
    """Means over sample rows (:func:`sample_rows`, of one process or gathered from several),
    taken in the order of their keys, so the numbers do not depend on how items were split.

    Returns:
        {"n", "sad", "mse", "mad", "grad", "conn", "grounding_accuracy", "iou",
        "selection_accuracy"}; the last is the share of samples from images with several
        entities whose matte overlaps the referred one most (NaN when there are none). With
        ``per_text``, "per_text" maps each text to the same metrics over its samples.
    """
    if not rows:
        raise ValueError("nothing to evaluate: no (text, alpha) pairs in the data")
    rows = sorted(rows, key=lambda r: r["key"])
    result = _means(rows)
    if per_text:
        groups: dict[str, list[dict]] = {}
        for row in rows:
            groups.setdefault(row["text"], []).append(row)
        result["per_text"] = {text: _means(group) for text, group in sorted(groups.items())}
    return result


def evaluate(
    predict: Callable[[np.ndarray, list[str]], list[np.ndarray]],
    items: list[Item] | Iterator[Item],
    *,
    fast: bool = False,
    per_text: bool = False,
) -> dict:
    """Mean metrics over every (text, truth) pair in one process (:func:`sample_rows`, then
    :func:`summarise`: see them for ``predict``, ``fast``, ``per_text`` and the result)."""
    return summarise(sample_rows(predict, enumerate(items), fast=fast), per_text=per_text)


def _fast_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """SAD, MSE, MAD, IoU and the grounding hit; Grad and Conn NaN."""
    p = np.clip(pred.astype(np.float64), 0, 1)
    g = gt.astype(np.float64)
    return {
        "sad": metrics.sad(p, g),
        "mse": metrics.mse(p, g),
        "mad": metrics.mad(p, g),
        "grad": float("nan"),
        "conn": float("nan"),
        "iou": metrics.iou(p, g),
        "grounding_hit": float(metrics.grounding_hit(p, g)),
    }


def _means(rows: list[dict]) -> dict:
    """Means of per-sample metrics; selection over the samples where it is defined."""
    result: dict = {"n": len(rows)}
    for key in ("sad", "mse", "mad", "grad", "conn", "iou"):
        result[key] = float(np.mean([r[key] for r in rows]))
    result["grounding_accuracy"] = float(np.mean([r["grounding_hit"] for r in rows]))
    defined = [r["selection"] for r in rows if not np.isnan(r["selection"])]
    result["selection_accuracy"] = float(np.mean(defined)) if defined else float("nan")
    return result


def _selects(pred: np.ndarray, gt: np.ndarray, entities: list[np.ndarray]) -> bool:
    """Whether ``pred`` overlaps the referred entity more than any other entity of the image
    (soft IoU), whatever the quality of its edges: grounding apart from matting."""
    p = np.clip(pred.astype(np.float64), 0, 1)

    def soft_iou(g: np.ndarray) -> float:
        union = np.maximum(p, g).sum()
        return float(np.minimum(p, g).sum() / union) if union > 0 else 0.0

    target = soft_iou(gt)
    return target > 0 and all(target > soft_iou(g) for g in entities if g is not gt)


def predictor_fn(
    predictor, setting: str, refine: bool = False
) -> Callable[[np.ndarray, list[str]], list[np.ndarray]]:
    """Adapt a predictor to :func:`evaluate`'s ``predict`` signature (``refine`` is passed on
    only when True, so predictors without a refiner are accepted)."""
    mode = "keyword" if setting == "keyword" else "expression"
    extra = {"refine": True} if refine else {}

    def predict(image: np.ndarray, texts: list[str]) -> list[np.ndarray]:
        return [r.alpha for r in predictor.predict(image, texts, setting=mode, **extra)]

    return predict


def format_table(rows: dict[str, dict[str, float]], label: str = "setting") -> str:
    """A table shaped like the poster's: one row per setting, or per whatever ``label`` names
    (SAD, Grad, Conn in thousands)."""
    head = f"| {label} | n | SAD | MSE | MAD | Grad | Conn | grounding | selection |"
    lines = [head, "|" + "---|" * 9]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['n']} | {r['sad']:.3f} | {r['mse']:.4f} | {r['mad']:.4f} | "
            f"{r['grad']:.3f} | {r['conn']:.3f} | {r['grounding_accuracy']:.3f} | "
            f"{r.get('selection_accuracy', float('nan')):.3f} |"
        )
    return "\n".join(lines)


def _parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog or "clipmat evaluate",
        description="Evaluate a predictor: matting metrics and grounding accuracy.",
        epilog="clipmat evaluate --real DIR [--side 800] scores box-only and click-only mattes "
        "(no model) against plain GrabCut on a folder of real photo + alpha pairs "
        "(clipmat evaluate --real DIR --help).",
    )
    parser.add_argument("--predictor", required=True, help="registry name or checkpoint path")
    parser.add_argument("--data", help="RefMatte-layout folder (or RefMatte-RW100)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--setting", choices=SETTINGS, default="keyword")
    parser.add_argument("--json", help="write the metrics here")
    parser.add_argument("--mini-world", action="store_true", help="held-out mini-world scenes")
    parser.add_argument("--images", type=int, default=200, help="mini-world scenes to evaluate")
    parser.add_argument("--size", type=int, default=96, help="mini-world scene side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="mini-world seed")
    parser.add_argument("--shuffle-text", action="store_true", help="control: shuffled phrases")
    parser.add_argument("--refine", action="store_true", help="predict(..., refine=True)")
    parser.add_argument(
        "--per-keyword",
        action="store_true",
        help="keyword setting: also a row per keyword (category), worst grounding first",
    )
    parser.add_argument("--device", default="auto")
    return parser


def _items(
    parser: argparse.ArgumentParser, args: argparse.Namespace, shard: Shard
) -> list[tuple[int, Item]]:
    """This rank's (index, item) pairs. The shuffled control draws from every text, so there
    each rank reads every item and keeps its share after the shuffle."""
    if args.mini_world:

        def read(s: Shard) -> Iterator[tuple[int, Item]]:
            return indexed_miniworld_items(args.setting, args.images, args.size, args.seed, shard=s)
    else:
        split = "rw100" if args.setting == "rw100" and args.split == "test" else args.split

        def read(s: Shard) -> Iterator[tuple[int, Item]]:
            return indexed_folder_items(args.data, split, args.setting, shard=s)

    try:
        if not args.shuffle_text:
            return list(read(shard))
        items = shuffle_texts([it for _, it in read((0, 1))], np.random.default_rng(args.seed))
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    return [(i, it) for i, it in enumerate(items) if i % shard[1] == shard[0]]


def _report(args: argparse.Namespace, result: dict, world: int) -> None:
    """Print the table(s) and write the JSON (rank 0 only)."""
    print(format_table({args.setting: result}))
    if args.per_keyword:
        result["per_keyword"] = result.pop("per_text")
        worst_first = sorted(
            result["per_keyword"].items(), key=lambda kv: kv[1]["grounding_accuracy"]
        )
        print(format_table(dict(worst_first), label="keyword"))
    if args.json:
        out = {**result, "setting": args.setting, "world_size": world}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(arg == "--real" or arg.startswith("--real=") for arg in argv):
        from clipmat.evaluation import real  # box and clicks on real photos: no predictor

        return real.main(argv, prog=prog or "clipmat evaluate")
    parser = _parser(prog)
    args = parser.parse_args(argv)
    if bool(args.data) == bool(args.mini_world):
        parser.error("give exactly one of --data DIR or --mini-world")
    if args.images < 1:
        parser.error("--images must be >= 1")
    if args.per_keyword and args.setting != "keyword":
        parser.error("--per-keyword groups samples by their keyword; use it with --setting keyword")
    with process_group(args.device) as (ranks, device):
        try:
            predictor = load_predictor(args.predictor, device=device)
        except (FileNotFoundError, ValueError) as err:
            parser.error(f"cannot load predictor {args.predictor!r}: {err}")
        items = _items(parser, args, (ranks.rank, ranks.world))
        rows = sample_rows(predictor_fn(predictor, args.setting, args.refine), items)
        rows = gather_rows(rows, ranks.world)
        if rows is not None:
            _report(args, summarise(rows, per_text=args.per_keyword), ranks.world)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m clipmat.evaluate``: matting metrics and grounding accuracy of a predictor.

    python -m clipmat.evaluate --predictor NAME|CKPT --data DIR --split test \
        --setting keyword|expression|rw100 --json OUT
    python -m clipmat.evaluate --predictor mini-world --mini-world --images 200 --setting keyword

Each entity-text pair is one sample (spec 5.1): the keyword setting takes every entity whose
keyword is unique in its image; the expression setting takes every expression of every entity
(RW100: the one fixed by ``eval_index_expression.json`` when present, else all). Metrics are
computed on the whole image at the ground truth's resolution; the predictor resizes internally
(short side to its image size, alpha upsampled bilinearly). OUT holds
{"n", "sad", "mse", "mad", "grad", "conn", "grounding_accuracy"} plus "iou" and the setting.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from clipmat import metrics
from clipmat.data.miniworld import MiniWorld
from clipmat.data.refmatte import EntityRecord, load_alpha, load_image, load_records
from clipmat.data.samples import unique_keyword_flags

SETTINGS = ("keyword", "expression", "rw100")
COLUMNS = ("n", "sad", "mse", "mad", "grad", "conn", "grounding_accuracy")

# An evaluation item: (image (H, W, 3) uint8, [(text, gt alpha (H, W) float32 in [0, 1])]).
Item = tuple[np.ndarray, list[tuple[str, np.ndarray]]]


def miniworld_items(
    setting: str, images: int = 200, size: int = 96, seed: int = 0, split: str = "test"
) -> Iterator[Item]:
    """Held-out mini-world scenes (test split: unseen textures, backgrounds, colour pairs)."""
    world = MiniWorld(split, size, seed)
    for i in range(images):
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
            yield scene.image, pairs


def folder_items(root: str | Path, split: str, setting: str) -> Iterator[Item]:
    """Items of a RefMatte-layout folder, read by :mod:`clipmat.data.refmatte`.

    RW100 uses the expression that ``eval_index_expression.json`` fixes per image, when present.
    """
    by_image: dict[str, list[EntityRecord]] = {}
    for rec in load_records(root, split):
        by_image.setdefault(rec.image_name, []).append(rec)
    for records in by_image.values():
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
            yield load_image(records[0].image_path), pairs


def shuffle_texts(items: list[Item], rng: np.random.Generator) -> list[Item]:
    """The control: every text moved to a random other sample (truths stay in place)."""
    texts = [t for _, pairs in items for t, _ in pairs]
    texts = [texts[i] for i in rng.permutation(len(texts))]
    out, k = [], 0
    for image, pairs in items:
        out.append((image, [(texts[k + j], a) for j, (_, a) in enumerate(pairs)]))
        k += len(pairs)
    return out


def evaluate(
    predict: Callable[[np.ndarray, list[str]], list[np.ndarray]],
    items: list[Item] | Iterator[Item],
    *,
    fast: bool = False,
    per_text: bool = False,
) -> dict:
    """Mean metrics over every (text, truth) pair.

    Args:
        predict: (image, texts) -> one (H, W) float32 alpha in [0, 1] per text.
        items: evaluation items (see ``Item``).
        fast: skip Grad and Conn (reported as NaN), e.g. for quick checks during training.
        per_text: also group the samples by their text (in the keyword setting: by category).

    Returns:
        {"n", "sad", "mse", "mad", "grad", "conn", "grounding_accuracy", "iou",
        "selection_accuracy"}; the last is the share of samples from images with several
        entities whose matte overlaps the referred one most (NaN when there are none). With
        ``per_text``, "per_text" maps each text to the same metrics over its samples.
    """
    rows: list[dict[str, float]] = []
    texts: list[str] = []
    selections: list[float] = []  # NaN where the image has a single entity
    for image, pairs in items:
        alphas = predict(image, [t for t, _ in pairs])
        entities = list({id(gt): gt for _, gt in pairs}.values())
        for pred, (text, gt) in zip(alphas, pairs, strict=True):
            texts.append(text)
            many = len(entities) > 1
            selections.append(float(_selects(pred, gt, entities)) if many else float("nan"))
            if fast:
                p = np.clip(pred.astype(np.float64), 0, 1)
                g = gt.astype(np.float64)
                rows.append({"sad": metrics.sad(p, g), "mse": metrics.mse(p, g),
                             "mad": metrics.mad(p, g), "grad": float("nan"), "conn": float("nan"),
                             "iou": metrics.iou(p, g),
                             "grounding_hit": float(metrics.grounding_hit(p, g))})  # fmt: skip
            else:
                rows.append(metrics.compute_all(pred, gt))
    if not rows:
        raise ValueError("nothing to evaluate: no (text, alpha) pairs in the data")
    result = _summarise(rows, selections)
    if per_text:
        groups: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            groups.setdefault(text, []).append(i)
        result["per_text"] = {
            text: _summarise([rows[i] for i in idx], [selections[i] for i in idx])
            for text, idx in sorted(groups.items())
        }
    return result


def _summarise(rows: list[dict[str, float]], selections: list[float]) -> dict:
    """Means of per-sample metrics; selection over the samples where it is defined."""
    result: dict = {"n": len(rows)}
    for key in ("sad", "mse", "mad", "grad", "conn", "iou"):
        result[key] = float(np.mean([r[key] for r in rows]))
    result["grounding_accuracy"] = float(np.mean([r["grounding_hit"] for r in rows]))
    defined = [s for s in selections if not np.isnan(s)]
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


def load_any_predictor(name: str, device: str = "auto"):
    """A registry name (``clipmat.load_predictor``) or a CLIPMat checkpoint path."""
    from clipmat.factory import load_model
    from clipmat.predictor import CLIPMatPredictor

    if Path(name).is_file():
        return CLIPMatPredictor(load_model(name), name=Path(name).stem, device=device)
    import clipmat

    return clipmat.load_predictor(name, device=device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clipmat.evaluate", description="Evaluate a predictor (spec section 5)."
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
    args = parser.parse_args(argv)
    if bool(args.data) == bool(args.mini_world):
        parser.error("give exactly one of --data DIR or --mini-world")
    if args.images < 1:
        parser.error("--images must be >= 1")
    if args.per_keyword and args.setting != "keyword":
        parser.error("--per-keyword groups samples by their keyword; use it with --setting keyword")
    try:
        predictor = load_any_predictor(args.predictor, args.device)
    except (FileNotFoundError, ValueError) as err:
        parser.error(f"cannot load predictor {args.predictor!r}: {err}")
    if args.mini_world:
        items = list(miniworld_items(args.setting, args.images, args.size, args.seed))
    else:
        split = "rw100" if args.setting == "rw100" and args.split == "test" else args.split
        try:
            items = list(folder_items(args.data, split, args.setting))
        except (FileNotFoundError, ValueError) as err:
            parser.error(str(err))
    if args.shuffle_text:
        items = shuffle_texts(items, np.random.default_rng(args.seed))
    predict = predictor_fn(predictor, args.setting, args.refine)
    result = evaluate(predict, items, per_text=args.per_keyword)
    print(format_table({args.setting: result}))
    if args.per_keyword:
        result["per_keyword"] = result.pop("per_text")
        worst_first = sorted(
            result["per_keyword"].items(), key=lambda kv: kv[1]["grounding_accuracy"]
        )
        print(format_table(dict(worst_first), label="keyword"))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({**result, "setting": args.setting}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

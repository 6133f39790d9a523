"""Box and clicks on real photos, no model: our mattes against plain GrabCut's, per category.

    clipmat evaluate --real DIR [--side 800] [--max-clicks 5] [--json out.json]

``DIR`` holds photo + alpha pairs in either layout:

- ``DIR/<item>/image.(jpg|png)`` with ``DIR/<item>/alpha.png`` (and an optional
  ``DIR/<item>/meta.json`` naming its ``category``);
- ``DIR/images/<item>.(jpg|png)`` with ``DIR/alphas/<item>.png``.

Categories come from ``DIR/index.json`` or ``DIR/meta.json`` when present (``{"items": [{"id",
"category"}, ...]}`` or ``{id: category}``), else from each item's ``meta.json``, else
"uncategorised". Each photo (and its alpha, alike) is resized so its long side is ``--side``
pixels: area interpolation to shrink, bicubic (alpha: bilinear) to enlarge; 0 keeps its size.

Per photo, three mattes are scored (MAD, SAD, Grad, Conn; :mod:`clipmat.metrics`):

- ``grabcut``: plain ``cv2.grabCut`` from the box (5 iterations, its hard mask): the baseline;
- ``box``: our box-only matte (:func:`clipmat.interactive.prompt_matte` with the box);
- ``clicks``: our click-only matte after a simulated user's clicks (up to ``--max-clicks``).

The box is the bounding box of the true object (alpha > 0.5), widened by 5% of its own width
and height on each side and clipped to the photo. The simulated user clicks first at the
object's most interior point (the maximum of the distance transform of alpha > 0.5), then at
the most interior point of the largest wrong region of the current matte (thresholded at 0.5):
a positive click where foreground was missed, a negative one where background leaked in. A
photo's "clicks needed" is the fewest clicks whose matte's MAD is at most its box matte's.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from clipmat import metrics
from clipmat.evaluation.clicker import MAX_CLICKS, OBJECT_LEVEL, click_session

SIDE = 800  # long side the photos are brought to
BOX_PAD = 0.05  # the box passes the object by this share of its own size on each side
GRABCUT_ITERATIONS = 5
CLICKS = 3  # the click-only matte is scored after this many clicks
IMAGE_NAMES = ("image.jpg", "image.png", "image.jpeg")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
UNCATEGORISED = "uncategorised"
METRICS = ("mad", "sad", "grad", "conn")

Box = tuple[float, float, float, float]
Point = tuple[float, float, bool]
BoxMatte = Callable[[np.ndarray, Box], np.ndarray]
ClickMatte = Callable[[np.ndarray, Sequence[Point]], np.ndarray]


@dataclass(frozen=True)
class RealItem:
    """One photo with its true alpha: ``image`` (H, W, 3) uint8 RGB, ``alpha`` (H, W) float32."""

    name: str
    category: str
    image: np.ndarray
    alpha: np.ndarray


def _categories(root: Path) -> dict[str, str]:
    """{item id: category} from ``root/index.json`` or ``root/meta.json``, else {}."""
    for name in ("index.json", "meta.json"):
        path = root / name
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        items = data.get("items", data) if isinstance(data, dict) else data
        if isinstance(items, dict):
            return {str(k): str(v) for k, v in items.items() if isinstance(v, str)}
        if isinstance(items, list):
            return {
                str(it["id"]): str(it["category"])
                for it in items
                if isinstance(it, dict) and "id" in it and "category" in it
            }
    return {}


def find_pairs(root: str | Path) -> list[tuple[str, Path, Path, str]]:
    """The (name, image path, alpha path, category) of every pair under ``root``, sorted by name.

    Raises:
        FileNotFoundError: when ``root`` is not a folder or holds no pair in either layout.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no folder at {root}")
    categories = _categories(root)
    pairs = []
    images, alphas = root / "images", root / "alphas"
    if images.is_dir() and alphas.is_dir():
        for path in sorted(images.iterdir()):
            alpha = alphas / f"{path.stem}.png"
            if path.suffix.lower() in IMAGE_SUFFIXES and alpha.is_file():
                pairs.append((path.stem, path, alpha))
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        image = next((folder / n for n in IMAGE_NAMES if (folder / n).is_file()), None)
        if image is not None and (folder / "alpha.png").is_file():
            pairs.append((folder.name, image, folder / "alpha.png"))
    if not pairs:
        raise FileNotFoundError(
            f"{root} holds no photo + alpha pairs (<item>/image.jpg + <item>/alpha.png, "
            "or images/<item>.jpg + alphas/<item>.png)"
        )
    return [(name, image, alpha, _category(root, name, categories)) for name, image, alpha in pairs]


def _category(root: Path, name: str, categories: dict[str, str]) -> str:
    if name in categories:
        return categories[name]
    meta = root / name / "meta.json"
    if meta.is_file():
        data = json.loads(meta.read_text())
        if isinstance(data, dict) and isinstance(data.get("category"), str):
            return data["category"]
    return UNCATEGORISED


def resize_long_side(
    image: np.ndarray, alpha: np.ndarray, side: int
) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (H, W, 3) and ``alpha`` (H, W) with the long side ``side`` (0: as they are).

    Returns:
        (image (h, w, 3) uint8, alpha (h, w) float32 in [0, 1]).
    """
    height, width = alpha.shape
    if side <= 0 or max(height, width) == side:
        return image, alpha
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    shrink = scale < 1
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return image, np.clip(alpha, 0.0, 1.0).astype(np.float32)


def load_items(root: str | Path, side: int = SIDE, only: Iterable[str] = ()) -> list[RealItem]:
    """Every pair under ``root`` (see :func:`find_pairs`), resized to long side ``side``;
    ``only`` keeps the named ones."""
    keep = set(only)
    items = []
    for name, image_path, alpha_path, category in find_pairs(root):
        if keep and name not in keep:
            continue
        bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        raw = cv2.imread(str(alpha_path), cv2.IMREAD_UNCHANGED)
        if bgr is None or raw is None:
            raise ValueError(f"cannot read the pair {image_path} / {alpha_path}")
        if raw.ndim == 3:  # an RGBA or RGB matte: its last channel, or its grey
            raw = raw[..., 3] if raw.shape[2] == 4 else cv2.cvtColor(raw, cv2.COLOR_BGR2GRAY)
        scale = 65535.0 if raw.dtype == np.uint16 else 255.0
        alpha = raw.astype(np.float32) / scale
        if alpha.shape != bgr.shape[:2]:
            raise ValueError(f"{name}: alpha {alpha.shape} and image {bgr.shape[:2]} differ")
        image, alpha = resize_long_side(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), alpha, side)
        items.append(RealItem(name, category, image, alpha))
    return items


def object_box(alpha: np.ndarray, pad: float = BOX_PAD) -> Box:
    """(x0, y0, x1, y1): the box of ``alpha`` (H, W) > 0.5, widened by ``pad`` x its own width
    and height on each side, clipped to the photo.

    Raises:
        ValueError: when no pixel is above 0.5.
    """
    ys, xs = np.nonzero(alpha > OBJECT_LEVEL)
    if not len(xs):
        raise ValueError("the alpha holds no object (no pixel above 0.5)")
    height, width = alpha.shape
    x0, x1, y0, y1 = float(xs.min()), float(xs.max() + 1), float(ys.min()), float(ys.max() + 1)
    dx, dy = pad * (x1 - x0), pad * (y1 - y0)
    return max(0.0, x0 - dx), max(0.0, y0 - dy), min(float(width), x1 + dx), min(height, y1 + dy)


def plain_grabcut(image: np.ndarray, box: Box, iterations: int = GRABCUT_ITERATIONS) -> np.ndarray:
    """OpenCV's GrabCut from a box at the photo's resolution, its hard mask as the matte. A box
    that covers the whole photo leaves no background to model: the matte is then the box.

    Returns:
        (H, W) float32 in {0, 1}.
    """
    height, width = image.shape[:2]
    x0, y0 = int(box[0]), int(box[1])
    x1, y1 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
    mask = np.zeros((height, width), np.uint8)
    if x0 <= 0 and y0 <= 0 and x1 >= width and y1 >= height:
        return np.ones((height, width), np.float32)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    rect = (x0, y0, max(1, x1 - x0), max(1, y1 - y0))
    cv2.grabCut(bgr, mask, rect, bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    return ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.float32)


def score(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """MAD, SAD, Grad and Conn of ``pred`` against ``gt`` (both (H, W) float in [0, 1])."""
    p = np.clip(np.asarray(pred, np.float64), 0.0, 1.0)
    g = np.asarray(gt, np.float64)
    return {
        "mad": metrics.mad(p, g),
        "sad": metrics.sad(p, g),
        "grad": metrics.grad(p, g),
        "conn": metrics.conn(p, g),
    }


def default_box_matte(image: np.ndarray, box: Box) -> np.ndarray:
    """Our box-only matte, (H, W) float32."""
    from clipmat import interactive

    return interactive.prompt_matte(image, box=box)[0]


def default_click_matte(image: np.ndarray, points: Sequence[Point]) -> np.ndarray:
    """Our click-only matte, (H, W) float32."""
    from clipmat import interactive

    return interactive.prompt_matte(image, points=points)[0]


def evaluate_item(
    item: RealItem,
    *,
    box_matte: BoxMatte = default_box_matte,
    click_matte: ClickMatte | None = default_click_matte,
    clicks: int = CLICKS,
    max_clicks: int = MAX_CLICKS,
) -> dict:
    """One photo's row: the box, each matte's metrics (the click-only matte's after ``clicks``
    clicks), the MAD after each click, the clicks given and the clicks needed (None: more than
    ``max_clicks``)."""
    box = object_box(item.alpha)
    row: dict = {"name": item.name, "category": item.category, "box": [round(v, 1) for v in box]}
    row["grabcut"] = score(plain_grabcut(item.image, box), item.alpha)
    row["box"] = score(box_matte(item.image, box), item.alpha)
    if click_matte is None:
        return row
    session = click_session(item.image, item.alpha, click_matte, max(clicks, max_clicks))
    row["clicks_mad"] = [metrics.mad(alpha, item.alpha) for _, alpha in session]
    row["clicks_list"] = [[round(x), round(y), bool(p)] for x, y, p in session[-1][0]]
    row["clicks"] = score(session[min(clicks, len(session)) - 1][1], item.alpha)
    target = row["box"]["mad"]
    row["clicks_needed"] = next(
        (k + 1 for k, value in enumerate(row["clicks_mad"]) if value <= target), None
    )
    return row


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def summarise(rows: list[dict]) -> dict[str, dict]:
    """Per category and over all ("all"): the photos, each matte's mean metrics, and the mean
    ratio of our MAD to GrabCut's (means, not per photo)."""
    groups: dict[str, list[dict]] = {"all": rows}
    for row in rows:
        groups.setdefault(row["category"], []).append(row)
    summary = {}
    for name, group in groups.items():
        entry: dict = {"photos": len(group)}
        for method in ("grabcut", "box", "clicks"):
            scored = [row[method] for row in group if method in row]
            if scored:
                entry[method] = {key: _mean([s[key] for s in scored]) for key in METRICS}
        base = entry["grabcut"]["mad"]
        for method in ("box", "clicks"):
            if method in entry and base > 0:
                entry[f"{method}_vs_grabcut"] = entry[method]["mad"] / base
        if "box" in entry:
            entry["worst_box_minus_grabcut"] = max(
                row["box"]["mad"] - row["grabcut"]["mad"] for row in group
            )
        needed = [row["clicks_needed"] for row in group if "clicks_needed" in row]
        if needed:
            entry["clicks_needed_max"] = None if None in needed else max(needed)
            entry["clicks_reached"] = sum(n is not None for n in needed)
            most = max((n for n in needed if n is not None), default=0)
            entry["clicks_reached_by"] = [  # photos reached within 1, 2, ... clicks
                sum(n is not None and n <= k for n in needed) for k in range(1, most + 1)
            ]
        summary[name] = entry
    return summary


def evaluate_real(
    items: Sequence[RealItem],
    *,
    box_matte: BoxMatte = default_box_matte,
    click_matte: ClickMatte | None = default_click_matte,
    clicks: int = CLICKS,
    max_clicks: int = MAX_CLICKS,
    progress: bool = True,
) -> dict:
    """Every photo's row (:func:`evaluate_item`) and the summary (:func:`summarise`)."""
    from tqdm import tqdm

    rows = []
    for item in tqdm(items, desc="real photos", unit="photo", disable=not progress):
        rows.append(
            evaluate_item(
                item,
                box_matte=box_matte,
                click_matte=click_matte,
                clicks=clicks,
                max_clicks=max_clicks,
            )
        )
    return {"rows": rows, "summary": summarise(rows), "clicks": clicks, "max_clicks": max_clicks}


def format_report(result: dict) -> str:
    """Plain-text tables: per photo, then per category (MAD x1000 unless named)."""
    clicks = result.get("clicks", CLICKS)
    head = f"{'photo':<28} {'category':<26} {'grabcut':>7} {'box':>7} {f'{clicks} clicks':>8}"
    lines = ["MAD x1000 per photo", head + "  clicks needed  clicks MAD x1000 (1, 2, ...)"]
    for row in result["rows"]:
        needed = row.get("clicks_needed", "-")
        trail = " ".join(f"{1000 * v:.0f}" for v in row.get("clicks_mad", []))
        lines.append(
            f"{row['name']:<28} {row['category']:<26} {1000 * row['grabcut']['mad']:>7.1f} "
            f"{1000 * row['box']['mad']:>7.1f} {_cell(row, 'clicks'):>8}  "
            f"{'>' + str(result.get('max_clicks')) if needed is None else needed:>13}  {trail}"
        )
    lines += ["", "means per category (MAD x1000; SAD, Grad, Conn in thousands)"]
    lines.append(
        f"{'category':<26} {'n':>3} {'method':<8} {'MAD':>7} {'SAD':>7} {'Grad':>7} {'Conn':>7}"
        "  vs grabcut"
    )
    for name, entry in result["summary"].items():
        for method in ("grabcut", "box", "clicks"):
            if method not in entry:
                continue
            m = entry[method]
            ratio = entry.get(f"{method}_vs_grabcut")
            lines.append(
                f"{name:<26} {entry['photos']:>3} {method:<8} {1000 * m['mad']:>7.1f} "
                f"{m['sad']:>7.2f} {m['grad']:>7.2f} {m['conn']:>7.2f}"
                + (f"  {ratio:.3f}x" if ratio is not None else "")
            )
    overall = result["summary"]["all"]
    if "worst_box_minus_grabcut" in overall:
        lines.append(
            f"\nworst photo, box minus grabcut MAD: {overall['worst_box_minus_grabcut']:+.4f}"
        )
    if overall.get("clicks_reached_by"):
        reached = ", ".join(
            f"{n} within {k}" for k, n in enumerate(overall["clicks_reached_by"], 1)
        )
        lines.append(f"photos whose clicks reach the box matte's MAD: {reached}")
    return "\n".join(lines)


def _cell(row: dict, method: str) -> str:
    return f"{1000 * row[method]['mad']:.1f}" if method in row else "-"


def parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``clipmat evaluate --real DIR``."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Box-only and click-only mattes (no model) on real photos, against GrabCut.",
    )
    p.add_argument("--real", required=True, metavar="DIR", help="folder of photo + alpha pairs")
    p.add_argument("--side", type=int, default=SIDE, help="long side in pixels (0: as stored)")
    p.add_argument("--clicks", type=int, default=CLICKS, help="clicks the click matte is scored at")
    p.add_argument("--max-clicks", type=int, default=MAX_CLICKS, help="clicks before giving up")
    p.add_argument("--no-clicks", action="store_true", help="box-only and GrabCut only")
    p.add_argument("--only", nargs="*", default=(), metavar="NAME", help="these photos only")
    p.add_argument("--json", metavar="PATH", help="write rows and summary here as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run the real-photo evaluation; prints the tables, returns 0 (2 on a bad folder)."""
    p = parser(prog)
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.clicks < 1 or args.max_clicks < 1:
        p.error("--clicks and --max-clicks must be at least 1")
    try:
        items = load_items(args.real, args.side, args.only)
    except (FileNotFoundError, ValueError) as err:
        p.error(str(err))
    if not items:
        p.error(f"none of {list(args.only)} is in {args.real}")
    result = evaluate_real(
        items,
        click_matte=None if args.no_clicks else default_click_matte,
        clicks=args.clicks,
        max_clicks=args.max_clicks,
        progress=not args.quiet,
    )
    print(format_report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

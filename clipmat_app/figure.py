"""Mattes, edits and a figure grid for papers, from one photo and phrases or a file of pairs.

    clipmat figure --image IMG --text "the cat" [--text "..."] --out DIR
    clipmat figure --pairs FILE.csv|FILE.json --out DIR [--predictor NAME_OR_CHECKPOINT]

(also ``python -m clipmat_app.figure``)

A CSV has columns ``image`` and ``text`` (or ``phrase``); a JSON holds a list of
{"image", "text"} objects or the examples/phrases.json layout. Image paths are relative to the
file. Writes, per pair, the 16-bit matte and the highlight, new background, colour and cutout
edits as PNG, then ``figure.png`` (input, matte, highlight, new background, colour; the phrase
as caption) and ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

import editing
from clipmat.batch import read_pairs
from clipmat_app.inputs import read_photo
from clipmat_app.pool import RANDOM_TINY, PredictorPool

COLUMNS = ("input", "matte", "highlight", "new background", "colour")
CELL_HEIGHT = 200  # pixels per row of the figure
CAPTION_HEIGHT = 26
HEADER_HEIGHT = 30
GAP = 6
FONT_SIZE = 15
SKY = ((112, 161, 255), (240, 246, 255))  # top and bottom of the default new background


def sky(height: int, width: int) -> np.ndarray:
    """A vertical gradient backdrop, (height, width, 3) uint8."""
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top, bottom = (np.asarray(c, np.float32) for c in SKY)
    column = top * (1 - t) + bottom * t
    return np.broadcast_to(column, (height, width, 3)).round().astype(np.uint8)


def _cell(image: np.ndarray, height: int) -> Image.Image:
    pil = Image.fromarray(image).convert("RGB")
    width = max(1, round(pil.width * height / pil.height))
    return pil.resize((width, height), Image.Resampling.LANCZOS)


def render_figure(rows: list[dict[str, Any]], *, cell_height: int = CELL_HEIGHT) -> Image.Image:
    """A grid: one row per pair (COLUMNS left to right), the phrase under each row.

    Args:
        rows: dicts with "text" and one (H, W, 3) or (H, W) uint8 array per name in COLUMNS.
    """
    font = ImageFont.load_default(size=FONT_SIZE)
    cells = [[_cell(row[c], cell_height) for c in COLUMNS] for row in rows]
    widths = [max(r[j].width for r in cells) for j in range(len(COLUMNS))]
    total_w = sum(widths) + GAP * (len(COLUMNS) + 1)
    row_h = cell_height + CAPTION_HEIGHT + GAP
    figure = Image.new("RGB", (total_w, HEADER_HEIGHT + row_h * len(rows) + GAP), "white")
    draw = ImageDraw.Draw(figure)
    x = GAP
    for name, w in zip(COLUMNS, widths, strict=True):
        draw.text((x + w / 2, HEADER_HEIGHT / 2), name, fill="black", font=font, anchor="mm")
        x += w + GAP
    for i, (row, row_cells) in enumerate(zip(rows, cells, strict=True)):
        y = HEADER_HEIGHT + i * row_h
        x = GAP
        for cell, w in zip(row_cells, widths, strict=True):
            figure.paste(cell, (x + (w - cell.width) // 2, y))
            x += w + GAP
        caption = f"“{row['text']}”"
        draw.text(
            (total_w / 2, y + cell_height + CAPTION_HEIGHT / 2),
            caption,
            fill="black",
            font=font,
            anchor="mm",
        )
    return figure


def run(
    pairs: list[tuple[str, str]],
    out: str | Path,
    pool: PredictorPool,
    predictor: str,
    *,
    background: str | None = None,
    color: str = "#2f9e44",
) -> dict[str, Any]:
    """Matte and edit every pair, one batch of phrases per image; write files and the figure.

    Returns:
        The summary also written to ``out/results.json``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    editing.parse_color(color)
    batches: OrderedDict[str, list[str]] = OrderedDict()
    for image, text in pairs:
        batches.setdefault(image, []).append(text)
    model = pool.get(predictor)
    backdrop = read_photo(background).rgb if background else None
    rows, records = [], []
    for image, texts in tqdm(batches.items(), desc="images", unit="batch"):
        upload = read_photo(image)
        photo = upload.rgb
        results = model.predict(upload.photo, texts)
        for k, result in enumerate(results):
            stem = f"{Path(image).stem}_{k}"
            edit = editing.MatteEdit(photo, result.alpha)
            h, w = result.alpha.shape
            views = {
                "input": photo,
                "matte": editing.matte_to_bits(result.alpha, 8),
                "highlight": edit.highlight(effect="dim+desaturate", strength=0.7),
                "new background": edit.replace_background(
                    backdrop if backdrop is not None else sky(h, w)
                ),
                "colour": edit.fill_color(color),
            }
            editing.save_matte(result.alpha, out / f"{stem}_matte.png", bits=16)
            for name in COLUMNS[2:]:
                editing.save_png(views[name], out / f"{stem}_{name.replace(' ', '_')}.png")
            editing.save_png(edit.cutout(), out / f"{stem}_cutout.png")
            rows.append({"text": result.text, **views})
            records.append(
                {
                    "image": image,
                    "text": result.text,
                    "stem": stem,
                    "confidence": round(result.confidence, 4),
                    "unsure": result.unsure,
                }
            )
    render_figure(rows).save(out / "figure.png")
    summary = {"predictor": predictor, "licence": model.licence, "pairs": records}
    (out / "results.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


def parse_args(argv: list[str] | None = None, prog: str | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog, description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="one photo, matted for every --text")
    source.add_argument("--pairs", help="a CSV or JSON file of image-phrase pairs")
    parser.add_argument("--text", action="append", default=[], help="a phrase (repeatable)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--predictor",
        default="auto",
        help=f"predictor name, 'auto', '{RANDOM_TINY}' or a checkpoint file",
    )
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', ...")
    parser.add_argument("--background", help="photo for the new-background column (default: sky)")
    parser.add_argument("--color", default="#2f9e44", help="colour for the colour column")
    args = parser.parse_args(argv)
    if args.image and not args.text:
        parser.error("--image needs at least one --text")
    if args.pairs and args.text:
        parser.error("--text goes with --image; put phrases in the --pairs file instead")
    return args


def main(argv: list[str] | None = None, *, prog: str | None = None) -> None:
    args = parse_args(argv, prog)
    try:
        pairs = read_pairs(args.pairs) if args.pairs else [(args.image, t) for t in args.text]
        pool, name = PredictorPool.from_option(args.predictor, device=args.device)
        if name is None:
            raise ValueError(
                f"no predictor can run here; pass --predictor NAME or a checkpoint "
                f"('{RANDOM_TINY}' runs on random weights)"
            )
        summary = run(pairs, args.out, pool, name, background=args.background, color=args.color)
    except (ValueError, TypeError, FileNotFoundError) as err:
        sys.exit(f"demo: {err}")
    print(f"wrote {len(summary['pairs'])} mattes and {Path(args.out) / 'figure.png'}")


if __name__ == "__main__":
    main()

"""Contact sheet of generated scenes: image, then each entity's matte with its keyword and texts.

python -m clipmat.data.contact_sheet --mini-world --split train --images 8 --seed 0 --out sheet.png
python -m clipmat.data.contact_sheet --data DIR --split test --images 8 --out sheet.png
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CELL = 160
TEXT_W = 330
FONT_SIZE = 11
MAX_ENTITIES = 3


def _tile(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image).resize((CELL, CELL), Image.BILINEAR)


def _matte(alpha: np.ndarray) -> np.ndarray:
    return np.repeat((np.clip(alpha, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)


def render_sheet(
    rows: Sequence[tuple[np.ndarray, str, list[tuple[np.ndarray, list[str]]]]],
) -> Image.Image:
    """Draw a sheet.

    Args:
        rows: per image (image (H, W, 3) uint8, title, [(alpha (H, W) float, texts)] per entity).

    Returns:
        The sheet as an RGB PIL image.
    """
    width = CELL + MAX_ENTITIES * (CELL + TEXT_W)
    sheet = Image.new("RGB", (width, CELL * len(rows)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=FONT_SIZE)
    for r, (image, title, entities) in enumerate(rows):
        y = r * CELL
        sheet.paste(_tile(image), (0, y))
        draw.text((3, y + 2), title, fill=(255, 255, 0), font=font, stroke_width=1, stroke_fill=0)
        for k, (alpha, texts) in enumerate(entities[:MAX_ENTITIES]):
            x = CELL + k * (CELL + TEXT_W)
            sheet.paste(_tile(_matte(alpha)), (x, y))
            for t, text in enumerate(texts):
                draw.text((x + CELL + 4, y + 4 + t * (FONT_SIZE + 5)), text[:60], fill=0, font=font)
        draw.line([(0, y + CELL - 1), (width, y + CELL - 1)], fill=(180, 180, 180))
    return sheet


def _mini_rows(split: str, n: int, seed: int, size: int) -> list:
    from clipmat.data.miniworld import MiniWorld

    world = MiniWorld(split, size, seed)
    rows = []
    for i in range(n):
        s = world.scene(i)
        ents = [(e.alpha, [f"[{e.keyword}]"] + e.expressions) for e in s.entities]
        rows.append((s.image, f"{s.relation} {s.background_name}", ents))
    return rows


def _disk_rows(root: str, split: str, n: int) -> list:
    from clipmat.data.refmatte import RefMatte

    data = RefMatte(root, split, setting="keyword")
    by_image: dict[str, list[int]] = {}
    for idx, rec in enumerate(data.records):
        by_image.setdefault(rec.image_name, []).append(idx)
    rows = []
    for name in list(by_image)[:n]:
        ents = []
        image = None
        for idx in by_image[name]:
            rec = data.records[idx]
            image, alpha = data.load_pair(rec)
            ents.append((alpha, [f"[{rec.keyword}]"] + rec.expressions))
        rows.append((image, name, ents))
    return rows


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--mini-world", action="store_true", help="draw on-the-fly mini-world scenes")
    src.add_argument("--data", help="a RefMatte-layout folder (generated or released)")
    p.add_argument("--split", default="train")
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--out", required=True, help="PNG file to write")
    args = p.parse_args(argv)
    if args.images < 1:
        p.error("--images must be at least 1")
    if args.mini_world:
        rows = _mini_rows(args.split, args.images, args.seed, args.size)
    else:
        rows = _disk_rows(args.data, args.split, args.images)
    render_sheet(rows).save(args.out)
    print(f"wrote {args.out} ({len(rows)} images)")


if __name__ == "__main__":
    main()

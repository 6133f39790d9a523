"""Write a RefMatte-layout dataset from the mini world or from folders of foregrounds.

python -m clipmat.data.generate --mini-world --split test --images N --seed S --out DIR [--size 128]
python -m clipmat.data.generate --foregrounds DIR --backgrounds DIR --split train --images N \\
    --seed S --out DIR [--size 512] [--holdout-fraction 0.1]

Output: DIR/<split>/img/*.jpg, DIR/<split>/mask/<image>_<k>.png and
DIR/refmatte_<split>_label.json keyed by mask stem.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from clipmat.data.colors import ColourNamer, css_palette
from clipmat.data.composition import RELATIONS, Scene, compose_scene
from clipmat.data.expressions import ExpressionWriter
from clipmat.data.foregrounds import (
    ForegroundItem,
    load_background_pool,
    load_foreground_pool,
)
from clipmat.data.refmatte import load_image, write_scenes

MAX_CANVAS = 1024


def folder_scenes(
    items: Sequence[ForegroundItem],
    backgrounds: Sequence[Path],
    n: int,
    seed: int,
    split: str,
    *,
    size: int | None = None,
    synonyms: dict[str, list[str]] | None = None,
) -> Iterator[Scene]:
    """Compose n annotated scenes from foreground files (distinct categories per image).

    Args:
        items: foreground pool (load_foreground_pool); needs at least 2 categories.
        backgrounds: background image paths.
        n: number of scenes.
        seed: scene i depends only on (seed, i) and the pools.
        split: used in the image names ("<split>_<seed>_<i>").
        size: canvas long side (background aspect kept); the background's own size capped at
            1024 when None.
        synonyms: extra category -> synonyms for the expressions.

    Yields:
        Annotated scenes.
    """
    by_cat: dict[str, list[ForegroundItem]] = {}
    for item in items:
        by_cat.setdefault(item.category, []).append(item)
    cats = sorted(by_cat)
    if len(cats) < 2:
        raise ValueError(f"need foregrounds of at least 2 categories, got {cats}")
    if not backgrounds:
        raise ValueError("the background pool is empty")
    namer = ColourNamer(css_palette())
    writer = ExpressionWriter(synonyms=synonyms)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        relation = str(rng.choice(RELATIONS))
        k = 2 if relation == "front/behind" or len(cats) == 2 else int(rng.integers(2, 4))
        chosen = [cats[c] for c in rng.choice(len(cats), size=k, replace=False)]
        fgs = [by_cat[c][int(rng.integers(len(by_cat[c])))].load() for c in chosen]
        bg_path = backgrounds[int(rng.integers(len(backgrounds)))]
        bg = load_image(bg_path)
        h, w = bg.shape[:2]
        long_side = size or min(max(h, w), MAX_CANVAS)
        scale = long_side / max(h, w)
        canvas = (max(32, round(h * scale)), max(32, round(w * scale)))
        scene = compose_scene(fgs, bg, relation, rng, canvas_hw=canvas, colour_namer=namer)
        scene.image_name, scene.background_name = f"{split}_{seed}_{i:06d}", bg_path.name
        yield writer.annotate(scene, rng)


def mini_world_scenes(split: str, n: int, seed: int, size: int) -> Iterator[Scene]:
    """Scenes 0..n-1 of MiniWorld(split, size, seed)."""
    from clipmat.data.miniworld import MiniWorld

    world = MiniWorld(split, size, seed)
    for i in range(n):
        yield world.scene(i)


def main(argv: list[str] | None = None, *, prog: str | None = None) -> Path:
    """Command line entry point; returns the label JSON path."""
    p = argparse.ArgumentParser(
        prog, description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--mini-world", action="store_true", help="procedural mini-world scenes")
    src.add_argument("--foregrounds", help="folder of <category>/<name>.png RGBA foregrounds")
    p.add_argument("--backgrounds", help="folder of background images (with --foregrounds)")
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument("--images", type=int, required=True, help="number of images to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="canvas side (mini world, default 128) or long side (folders)",
    )
    p.add_argument(
        "--holdout-fraction",
        type=float,
        default=0.1,
        help="folders: fraction of files (by path hash) kept for test; 0 uses all",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    if args.images < 1:
        p.error("--images must be at least 1")
    if args.mini_world:
        scenes = mini_world_scenes(args.split, args.images, args.seed, args.size or 128)
    else:
        if not args.backgrounds:
            p.error("--foregrounds needs --backgrounds")
        items, synonyms = load_foreground_pool(args.foregrounds, args.split, args.holdout_fraction)
        bgs = load_background_pool(args.backgrounds, args.split, args.holdout_fraction)
        scenes = folder_scenes(
            items, bgs, args.images, args.seed, args.split, size=args.size, synonyms=synonyms
        )
    bar = tqdm(scenes, total=args.images, desc=f"{args.split} scenes", disable=args.no_progress)
    label = write_scenes(bar, args.out, args.split)
    print(f"wrote {args.images} images to {Path(args.out) / args.split}, labels in {label}")
    return label


def cli(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    """The ``clipmat generate`` verb: :func:`main`, with exit status 0 when it is done."""
    main(argv, prog=prog)
    return 0


if __name__ == "__main__":
    main()

"""Grounding accuracy and matting error of the zero-shot predictor on held-out mini-world scenes.

    python -m clipmat.evaluation.zeroshot --clip FILE [--images 100] [--method clearclip]
        [--logit-scale S] [--global-pass]

``FILE`` is a tiny CLIP from ``python -m clipmat.training.clip_pretrain`` (or a CLIPMat checkpoint,
whose CLIP towers are used); without ``--clip`` the towers of ``--towers`` are random (the
mechanics only). Each setting is measured with the true phrases and with the control of
phrases shuffled across samples (what chance looks like for this predictor). The predictor runs
with its defaults (ClearCLIP's last block and logit scale 50, windows at the CLIP's own size: a
96 px scene is one window for a 96 px tiny CLIP) unless the options say otherwise.

Evaluation code: it reads the data engine through :mod:`clipmat.evaluation.evaluate`, so it lives beside
that module, outside the zero-shot inference package (which never imports data or training code).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipmat.evaluation.evaluate import evaluate, miniworld_items, predictor_fn, shuffle_texts
from clipmat.factory import get_model_config
from clipmat.model.backbone import DENSE_METHODS
from clipmat.zeroshot import ZeroShotConfig, ZeroShotPredictor, create_backbone, load_clip_backbone

SETTINGS = ("keyword", "expression")
# Mini-world backgrounds are procedural textures and photo crops; these words name them.
MINIWORLD_BACKGROUND = ("background", "texture", "pattern", "wall", "ground", "noise")


def evaluate_miniworld(
    predictor: Any,
    *,
    setting: str = "keyword",
    images: int = 100,
    size: int = 96,
    seed: int = 0,
    control: bool = True,
) -> dict[str, dict[str, float]]:
    """Metrics of a predictor on held-out mini-world scenes (test split).

    Args:
        predictor: anything with ``predict(image, texts, setting=...)`` returning results
            with ``.alpha`` (a :class:`ZeroShotPredictor` or a ``CLIPMatPredictor``).
        setting: "keyword" or "expression".
        images: number of test scenes.
        size: scene side in pixels.
        seed: world seed.
        control: also measure with phrases shuffled across samples.

    Returns:
        {"phrases": metrics, "shuffled": metrics}; metrics as :func:`clipmat.evaluation.evaluate.evaluate`
        ({"n", "sad", "mse", "mad", "grad", "conn", "iou", "grounding_accuracy"}; Grad and Conn
        are NaN, skipped for speed).
    """
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
    if images < 1:
        raise ValueError(f"images must be >= 1, got {images}")
    items = list(miniworld_items(setting, images, size, seed))
    run = predictor_fn(predictor, setting)
    out = {"phrases": evaluate(run, items, fast=True)}
    if control:
        shuffled = shuffle_texts(items, np.random.default_rng(seed))
        out["shuffled"] = evaluate(run, shuffled, fast=True)
    return out


def build_predictor(
    clip: str | None,
    *,
    towers: str = "clipmat-mini",
    method: str = "clearclip",
    seed: int = 0,
    matting: bool = True,
    crop_weight: float = ZeroShotConfig.crop_weight,
    logit_scale: float | None = None,
    global_pass: bool = False,
) -> ZeroShotPredictor:
    """A zero-shot predictor on a CLIP file, or on random towers of the config ``towers``
    (``matting``, ``crop_weight``, ``logit_scale``: see :class:`ZeroShotConfig`; ``global_pass``:
    one pass over the photo instead of windows)."""
    if clip:
        backbone, _ = load_clip_backbone(clip)
        name = f"zeroshot:{Path(clip).stem}"
    else:
        torch.manual_seed(seed)
        backbone = create_backbone(get_model_config(towers).clip)
        name = f"zeroshot:random-{towers}"
    config = ZeroShotConfig(
        method=method,
        background=MINIWORLD_BACKGROUND,
        matting=matting,
        crop_weight=crop_weight,
        logit_scale=logit_scale,
        window=None if global_pass else ZeroShotConfig.window,
    )
    return ZeroShotPredictor(backbone, config=config, name=name, device="cpu")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clipmat.evaluation.zeroshot",
        description="Zero-shot grounding accuracy and SAD on held-out mini-world scenes.",
    )
    parser.add_argument("--clip", help="tiny CLIP weights (clipmat.training.clip_pretrain output)")
    parser.add_argument("--towers", default="clipmat-mini", help="config of random towers")
    parser.add_argument("--method", default="clearclip", choices=DENSE_METHODS)
    parser.add_argument(
        "--logit-scale",
        type=float,
        help="softmax scale (default: the method's reference value, else the CLIP's learned one)",
    )
    parser.add_argument(
        "--global-pass", action="store_true", help="one pass over the photo instead of windows"
    )
    parser.add_argument(
        "--crop-weight",
        type=float,
        default=ZeroShotConfig.crop_weight,
        help="weight of whole-crop scores in choosing a region (0: the dense map alone)",
    )
    parser.add_argument("--setting", choices=(*SETTINGS, "both"), default="both")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.images < 1:
        parser.error("--images must be >= 1")
    try:
        predictor = build_predictor(
            args.clip,
            towers=args.towers,
            method=args.method,
            crop_weight=args.crop_weight,
            logit_scale=args.logit_scale,
            global_pass=args.global_pass,
        )
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    settings = SETTINGS if args.setting == "both" else (args.setting,)
    results = {}
    print("| predictor | setting | phrases | n | SAD | MSE | MAD | IoU | grounding | selection |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for setting in settings:
        results[setting] = evaluate_miniworld(
            predictor, setting=setting, images=args.images, size=args.size, seed=args.seed
        )
        for kind, r in results[setting].items():
            print(
                f"| {predictor.name} ({args.method}, scale {predictor.logit_scale:g}) | "
                f"{setting} | {kind} | {r['n']} | "
                f"{r['sad']:.3f} | {r['mse']:.4f} | {r['mad']:.4f} | {r['iou']:.3f} | "
                f"{r['grounding_accuracy']:.3f} | {r['selection_accuracy']:.3f} |"
            )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

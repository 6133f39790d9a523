"""The sample dict shared by the on-disk loader and the on-the-fly mini world.

A sample is ``{"image": (H, W, 3) uint8, "alpha": (H, W) float32 in [0, 1], "text": str,
"keyword": str, "expressions": list[str], "setting": "keyword" | "expression",
"image_name": str, "entity": str}``; ``entity`` is the mask stem ``<image_name>_<k>``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from clipmat.data.composition import Scene

SETTINGS = ("keyword", "expression")


def check_setting(setting: str) -> str:
    """Return the setting, or raise ValueError naming the accepted ones."""
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
    return setting


def unique_keyword_flags(keywords: Sequence[str]) -> list[bool]:
    """For the entities of one image: whether each keyword names only that entity.

    The keyword setting uses only such entities (RefMatte images hold distinct categories, so
    there all are kept; mini-world scenes with two entities of one category drop those two).
    """
    counts = Counter(keywords)
    return [counts[k] == 1 for k in keywords]


def build_sample(
    image: np.ndarray,
    alpha: np.ndarray,
    keyword: str,
    expressions: Sequence[str],
    setting: str,
    text: str,
    image_name: str,
    entity: str,
) -> dict:
    """Assemble and type-check one sample dict."""
    return {
        "image": np.ascontiguousarray(image, dtype=np.uint8),
        "alpha": np.clip(np.asarray(alpha, dtype=np.float32), 0.0, 1.0),
        "text": text,
        "keyword": keyword,
        "expressions": list(expressions),
        "setting": setting,
        "image_name": image_name,
        "entity": entity,
    }


def make_sample(
    scene: Scene, rng: np.random.Generator, setting: str, expression: int | None = None
) -> dict:
    """Pick one entity of an annotated scene and one of its texts.

    Args:
        scene: a scene annotated by ExpressionWriter.
        rng: picks the entity (and the expression when `expression` is None).
        setting: "keyword" (only entities with a keyword unique in the image) or "expression".
        expression: index 0-3 of the expression, or None for a random one.

    Returns:
        The sample dict.
    """
    check_setting(setting)
    flags = unique_keyword_flags([e.keyword for e in scene.entities])
    pool = [j for j, ok in enumerate(flags) if ok or setting == "expression"]
    if not pool:  # every keyword repeats: fall back to expressions
        pool, setting = list(range(len(scene.entities))), "expression"
    k = int(rng.choice(pool))
    e = scene.entities[k]
    if setting == "keyword":
        text = e.keyword
    else:
        idx = int(rng.integers(len(e.expressions))) if expression is None else int(expression)
        if not 0 <= idx < len(e.expressions):
            raise ValueError(f"expression index must be in [0, {len(e.expressions)}), got {idx}")
        text = e.expressions[idx]
    entity = f"{scene.image_name}_{k}"
    return build_sample(
        scene.image, e.alpha, e.keyword, e.expressions, setting, text, scene.image_name, entity
    )

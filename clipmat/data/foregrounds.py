"""Folders of real foregrounds and backgrounds for the generation engine.

Foreground folder format::

    FG_DIR/<category>/<name>.png     RGBA PNG (straight, not premultiplied colour); the folder
                                     name is the category, "_" read as a space ("teddy_bear")
    FG_DIR/labels.json               optional:
        {"categories": {"teddy bear": {"synonyms": ["teddy"]}},
         "foregrounds": {"teddy_bear/x.png": {"salient": false, "colour": "peru",
                                              "gender": "male", "clothing": ["white", "knit"]}}}

Background folder: any .jpg/.jpeg/.png file below BG_DIR.
Train/test split of a pool: a stable hash of each file's relative path puts a fixed fraction
in test, so train and test runs on the same folders never share a file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from clipmat.data.composition import Foreground, crop_to_alpha
from clipmat.data.refmatte import read_json

BG_EXTS = (".jpg", ".jpeg", ".png")


def in_split(relpath: str, split: str, holdout_fraction: float) -> bool:
    """Whether a file belongs to a split: test holds the files whose hash falls below the fraction.

    A fraction of 0 puts every file in every split (the caller keeps the pools apart).
    """
    if holdout_fraction <= 0:
        return True
    h = int(hashlib.sha1(relpath.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return (h < holdout_fraction) == (split == "test")


@dataclass
class ForegroundItem:
    """A foreground file, loaded on demand."""

    path: Path
    relpath: str
    category: str
    attributes: dict[str, Any]

    def load(self) -> Foreground:
        """Read the RGBA PNG and crop it to its alpha box."""
        with Image.open(self.path) as im:
            if im.mode not in ("RGBA", "LA", "PA") and "transparency" not in im.info:
                raise ValueError(
                    f"foreground {self.path} has no alpha channel; save it as RGBA PNG"
                )
            arr = np.asarray(im.convert("RGBA"))
        alpha = arr[..., 3].astype(np.float32) / 255.0
        if not np.any(alpha > 0):
            raise ValueError(f"foreground {self.path} has an empty alpha channel")
        rgb, alpha = crop_to_alpha(np.ascontiguousarray(arr[..., :3]), alpha)
        return Foreground(rgb, alpha, self.category, self.relpath, dict(self.attributes))


def load_foreground_pool(
    root: str | Path, split: str = "train", holdout_fraction: float = 0.0
) -> tuple[list[ForegroundItem], dict[str, list[str]]]:
    """List the foregrounds of a folder (see the module docstring for the format).

    Returns:
        The items of this split and the category -> synonyms table from labels.json.

    Raises:
        FileNotFoundError: no folder or no PNG in category subfolders.
        ValueError: malformed labels.json (the file is named).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"foreground folder {root} does not exist")
    labels: dict[str, Any] = {}
    if (root / "labels.json").is_file():
        labels = read_json(root / "labels.json")
        if not isinstance(labels, dict):
            raise ValueError(f"{root / 'labels.json'}: expected an object")
    per_file = labels.get("foregrounds", {})
    synonyms = {c: list(v.get("synonyms", [])) for c, v in labels.get("categories", {}).items()}
    items = []
    for path in sorted(root.glob("*/*.png")):
        rel = path.relative_to(root).as_posix()
        if in_split(rel, split, holdout_fraction):
            category = path.parent.name.replace("_", " ")
            items.append(ForegroundItem(path, rel, category, dict(per_file.get(rel, {}))))
    if not items:
        raise FileNotFoundError(
            f"no foregrounds for split {split!r} in {root}: expected <category>/<name>.png "
            "RGBA files in category subfolders"
        )
    return items, synonyms


def load_background_pool(
    root: str | Path, split: str = "train", holdout_fraction: float = 0.0
) -> list[Path]:
    """List the background images below a folder that belong to a split."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"background folder {root} does not exist")
    paths = [
        p
        for p in sorted(root.rglob("*"))
        if p.suffix.lower() in BG_EXTS
        and in_split(p.relative_to(root).as_posix(), split, holdout_fraction)
    ]
    if not paths:
        raise FileNotFoundError(f"no .jpg/.jpeg/.png backgrounds for split {split!r} in {root}")
    return paths

"""RefMatte and RefMatte-RW100 on disk: a tolerant loader and the writer of the same layout.

Layout (docs/decisions.md#refmatte-loader; the label location is unconfirmed, so several places are tried)::

    ROOT[/RefMatte[/RefMatte]]/<split>/img/<image>.jpg
                              <split>/mask/<image>_<k>.png
                              refmatte_<split>_label.json   (or <split>/refmatte_<split>_label.json)
    ROOT[/RefMatte_RW_100]/image/<image>.jpg, mask/<image>_<k>.png,
                          refmatte_rw100_label.json, eval_index_expression.json

The label JSON maps a mask stem to ``{"image_name", "expressions": [...]}``, optionally with
``"keyword"`` or ``"category"``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from clipmat.data.composition import Scene
from clipmat.data.samples import build_sample, check_setting, unique_keyword_flags

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
JPEG_QUALITY = 95
LAYOUT_HELP = (
    "expected <root>/<split>/img/*.jpg, <root>/<split>/mask/<image>_<k>.png and "
    "<root>/refmatte_<split>_label.json (RW100: image/, mask/, refmatte_rw100_label.json)"
)


@dataclass
class EntityRecord:
    """One annotated entity (one mask file)."""

    entity: str
    image_name: str
    image_path: Path
    mask_path: Path
    keyword: str
    expressions: list[str]
    eval_index: int | None = None


def read_json(path: Path) -> Any:
    """Parse a JSON file; a syntax error becomes a ValueError that names the file."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: malformed JSON ({err})") from err


def _first_dir(paths: Iterable[Path]) -> Path | None:
    return next((p for p in paths if p.is_dir()), None)


def _first_file(paths: Iterable[Path]) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def locate_split(root: str | Path, split: str) -> tuple[Path, Path, Path, Path | None]:
    """Find (image dir, mask dir, label JSON, eval-index JSON or None) of a split.

    Args:
        root: the dataset folder (the archive's top folder or one above it).
        split: "train", "test" or "rw100".

    Raises:
        FileNotFoundError: naming the folders or files that were looked for.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist; {LAYOUT_HELP}")
    if split == "rw100":
        bases = [root, root / "RefMatte_RW_100", root / "RefMatte_RW100"]
        base = _first_dir(b for b in bases if (b / "mask").is_dir())
        if base is None:
            raise FileNotFoundError(f"no RW100 mask/ folder under any of {bases}; {LAYOUT_HELP}")
        img = _first_dir([base / "image", base / "img"])
        if img is None:
            raise FileNotFoundError(f"missing folder {base / 'image'}; {LAYOUT_HELP}")
        names = ["refmatte_rw100_label.json"]
        label = _first_file(base / n for n in names)
        if label is None:
            raise FileNotFoundError(f"missing label file {base / names[0]}; {LAYOUT_HELP}")
        return img, base / "mask", label, _first_file([base / "eval_index_expression.json"])
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train', 'test' or 'rw100', got {split!r}")
    bases = [root, root / "RefMatte", root / "RefMatte" / "RefMatte"]
    base = _first_dir(b for b in bases if (b / split).is_dir())
    if base is None:
        tried = ", ".join(str(b / split) for b in bases)
        raise FileNotFoundError(f"no {split}/ folder found (tried {tried}); {LAYOUT_HELP}")
    for sub in ("img", "mask"):
        if not (base / split / sub).is_dir():
            raise FileNotFoundError(f"missing folder {base / split / sub}; {LAYOUT_HELP}")
    name = f"refmatte_{split}_label.json"
    candidates = [base / name, base / split / name, root / name]
    label = _first_file(candidates)
    if label is None:
        raise FileNotFoundError(f"missing label file; tried {[str(c) for c in candidates]}")
    return base / split / "img", base / split / "mask", label, None


def _find_image(img_dir: Path, image_name: str) -> Path | None:
    return _first_file(img_dir / (image_name + ext) for ext in IMAGE_EXTS)


def _parse_entry(label: Path, stem: str, entry: Any) -> tuple[str, str, list[str]]:
    if not isinstance(entry, dict):
        raise ValueError(f"{label}: entry {stem!r} must be an object, got {type(entry).__name__}")
    expressions = entry.get("expressions")
    if isinstance(expressions, str):
        expressions = [expressions]
    if not isinstance(expressions, list) or not expressions:
        raise ValueError(f"{label}: entry {stem!r} needs a non-empty 'expressions' list")
    expressions = [str(x) for x in expressions]
    image_name = str(entry.get("image_name") or stem.rsplit("_", 1)[0])
    image_name = Path(image_name).stem if Path(image_name).suffix in IMAGE_EXTS else image_name
    keyword = entry.get("keyword") or entry.get("category") or expressions[0]
    return image_name, str(keyword), expressions


def _eval_indices(path: Path | None) -> dict[str, int]:
    if path is None:
        return {}
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object image_name -> expression index")
    out = {}
    for key, value in data.items():
        try:
            out[Path(str(key)).stem] = int(value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: index of {key!r} is not an integer: {value!r}") from err
    return out


def load_records(root: str | Path, split: str, check_files: bool = True) -> list[EntityRecord]:
    """Read the label JSON of a split into entity records (sorted by mask stem).

    Raises:
        FileNotFoundError: a missing folder, label file, mask, or the image of a mask.
        ValueError: malformed JSON or an entry without expressions (the file is named).
    """
    img_dir, mask_dir, label, eval_path = locate_split(root, split)
    data = read_json(label)
    if not isinstance(data, dict):
        raise ValueError(f"{label}: expected an object keyed by mask name")
    evals = _eval_indices(eval_path)
    records = []
    for stem in sorted(data):
        image_name, keyword, expressions = _parse_entry(label, stem, data[stem])
        mask_stem = Path(stem).stem if Path(stem).suffix == ".png" else stem
        mask = mask_dir / f"{mask_stem}.png"
        image = _find_image(img_dir, image_name) or img_dir / f"{image_name}.jpg"
        if check_files and not mask.is_file():
            raise FileNotFoundError(f"{label}: entry {stem!r} has no mask file {mask}")
        if check_files and not image.is_file():
            raise FileNotFoundError(f"mask {mask} has no image: expected {image} ({LAYOUT_HELP})")
        records.append(
            EntityRecord(
                mask_stem, image_name, image, mask, keyword, expressions, evals.get(image_name)
            )
        )
    if check_files:
        for mask in sorted(mask_dir.glob("*.png")):
            if _find_image(img_dir, mask.stem.rsplit("_", 1)[0]) is None and mask.stem not in data:
                raise FileNotFoundError(f"mask {mask} has no image in {img_dir} and no label")
    return records


def load_alpha(path: Path) -> np.ndarray:
    """Read a mask PNG as (H, W) float32 in [0, 1] (8- or 16-bit, gray or colour)."""
    with Image.open(path) as im:
        arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr[..., 0]
    scale = 65535.0 if arr.dtype == np.uint16 or arr.max() > 255 else 255.0
    return (arr.astype(np.float32) / scale).clip(0.0, 1.0)


def load_image(path: Path) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


class RefMatte:
    """Samples of a RefMatte-layout split (released, or written by the generator).

    Args:
        root: dataset folder.
        split: "train", "test" or "rw100".
        setting: "keyword" (one sample per entity whose keyword is unique in its image) or
            "expression" (see `expression`).
        expression: "all" (one sample per entity and expression), "eval" (the expression that
            eval_index_expression.json fixes per image, else all), or an int index.
        check_files: check at start that every mask and image exists.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        setting: str = "keyword",
        expression: str | int = "all",
        check_files: bool = True,
    ) -> None:
        self.setting = check_setting(setting)
        self.records = load_records(root, split, check_files)
        self.index: list[tuple[int, int | None]] = []
        by_image: dict[str, list[int]] = {}
        for r, rec in enumerate(self.records):
            by_image.setdefault(rec.image_name, []).append(r)
        for rows in by_image.values():
            flags = unique_keyword_flags([self.records[r].keyword for r in rows])
            for r, unique in zip(rows, flags, strict=True):
                if setting == "keyword":
                    if unique:
                        self.index.append((r, None))
                    continue
                rec = self.records[r]
                if expression == "all" or (expression == "eval" and rec.eval_index is None):
                    self.index += [(r, j) for j in range(len(rec.expressions))]
                elif expression == "eval":
                    self.index.append((r, rec.eval_index))
                elif isinstance(expression, int) and 0 <= expression < len(rec.expressions):
                    self.index.append((r, expression))
                else:
                    raise ValueError(
                        f"expression must be 'all', 'eval' or an index below "
                        f"{len(rec.expressions)} (entity {rec.entity}), got {expression!r}"
                    )
        self.index.sort()

    def __len__(self) -> int:
        return len(self.index)

    def load_pair(self, rec: EntityRecord) -> tuple[np.ndarray, np.ndarray]:
        """(image (H, W, 3) uint8, alpha (H, W) float32) of one entity; sizes are checked."""
        image, alpha = load_image(rec.image_path), load_alpha(rec.mask_path)
        if image.shape[:2] != alpha.shape:
            raise ValueError(
                f"mask {rec.mask_path} is {alpha.shape} but image {rec.image_path} is "
                f"{image.shape[:2]}"
            )
        return image, alpha

    def __getitem__(self, i: int) -> dict:
        r, j = self.index[i]
        rec = self.records[r]
        image, alpha = self.load_pair(rec)
        if j is not None and not 0 <= j < len(rec.expressions):
            raise ValueError(f"entity {rec.entity}: expression index {j} out of range")
        text = rec.keyword if j is None else rec.expressions[j]
        setting = "keyword" if j is None else "expression"
        return build_sample(
            image, alpha, rec.keyword, rec.expressions, setting, text, rec.image_name, rec.entity
        )


def write_scenes(scenes: Iterable[Scene], out: str | Path, split: str) -> Path:
    """Write annotated scenes in the RefMatte layout; returns the label JSON path.

    Images go to out/<split>/img/<image>.jpg (quality 95), mattes to
    out/<split>/mask/<image>_<k>.png (8-bit), labels to out/refmatte_<split>_label.json, merged
    with an existing label file of that split.
    """
    out = Path(out)
    img_dir, mask_dir = out / split / "img", out / split / "mask"
    img_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    label_path = out / f"refmatte_{split}_label.json"
    labels = read_json(label_path) if label_path.is_file() else {}
    for scene in scenes:
        if not scene.image_name:
            raise ValueError("a scene without image_name cannot be written")
        Image.fromarray(scene.image).save(
            img_dir / f"{scene.image_name}.jpg", quality=JPEG_QUALITY, subsampling=0
        )
        for k, e in enumerate(scene.entities):
            stem = f"{scene.image_name}_{k}"
            mask = np.rint(np.clip(e.alpha, 0, 1) * 255).astype(np.uint8)
            Image.fromarray(mask).save(mask_dir / f"{stem}.png")
            ys, xs = np.nonzero(mask)
            bbox = (
                [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
                if len(xs)
                else None
            )
            labels[stem] = {
                "image_name": scene.image_name,
                "keyword": e.keyword,
                "expressions": list(e.expressions),
                "category": e.category,
                "relation": scene.relation,
                "bbox": bbox,
                "attributes": dict(e.attributes),
            }
    label_path.write_text(json.dumps(labels, indent=1, sort_keys=True))
    return label_path

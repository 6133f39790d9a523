"""Rebuild the example images and phrases.json used by the app, the demo script and the tests.

    python examples/make_examples.py

Mini-world scenes come from the data package's generator (test split, fixed seed) with their
ground-truth mattes; the real photos are scikit-image's bundled samples, saved small.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

HERE = Path(__file__).resolve().parent
SEED = 5
SIZE = 256
PHOTO_SIDE = 384  # longer side of the saved real photos
# (scene index, file stem, [(mask index, expression index), ...]) from the mini world's test split
SCENES = [
    (4, "miniworld_furballs", [(0, 1), (1, 0)]),
    (5, "miniworld_shapes", [(0, 1), (1, 0), (2, 1)]),
    (7, "miniworld_nets", [(1, 1), (0, 0)]),
    (0, "miniworld_blooms", [(0, 1), (2, 0)]),
]
PHOTOS = [
    ("chelsea", "photo_cat", ["the cat", "the cat with brown and black fur"]),
    ("astronaut", "photo_astronaut", ["the astronaut", "the flag on the left"]),
    ("coffee", "photo_coffee", ["the cup of coffee", "the spoon"]),
]


def _save_photo(array: np.ndarray, path: Path) -> None:
    image = Image.fromarray(array)
    image.thumbnail((PHOTO_SIDE, PHOTO_SIDE), Image.Resampling.LANCZOS)
    image.save(path, quality=90)


def main() -> None:
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "clipmat.data.generate", "--mini-world", "--split", "test"]
        cmd += ["--images", "8", "--seed", str(SEED), "--size", str(SIZE), "--out", tmp]
        subprocess.run(cmd, check=True, cwd=HERE.parent)
        labels = json.loads((Path(tmp) / "refmatte_test_label.json").read_text())
        for index, stem, picks in SCENES:
            name = f"mw_test_{SEED}_{index:07d}"
            shutil.copy(Path(tmp) / "test" / "img" / f"{name}.jpg", HERE / f"{stem}.jpg")
            phrases = []
            for k, expr in picks:
                mask = f"{stem}_{k}.png"
                shutil.copy(Path(tmp) / "test" / "mask" / f"{name}_{k}.png", HERE / mask)
                phrases.append({"text": labels[f"{name}_{k}"]["expressions"][expr], "mask": mask})
            source = f"mini world, test split, seed {SEED}, scene {index}, {SIZE} px"
            entries.append({"image": f"{stem}.jpg", "source": source, "phrases": phrases})
    for loader, stem, texts in PHOTOS:
        _save_photo(getattr(data, loader)(), HERE / f"{stem}.jpg")
        source = f"scikit-image data.{loader}(), longer side {PHOTO_SIDE} px"
        phrases = [{"text": t} for t in texts]
        entries.append({"image": f"{stem}.jpg", "source": source, "phrases": phrases})
    out = {"examples": entries}
    (HERE / "phrases.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {len(entries)} examples to {HERE}")


if __name__ == "__main__":
    main()

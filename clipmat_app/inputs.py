"""What the app accepts: photos under a size policy, phrases, and the bundled examples."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clipmat.imageio import ImageInputError, limit_size, load_image
from clipmat.predictor import Photo
from clipmat.runtime import fingerprint

MAX_SIDE = 2048  # photos with a longer side are scaled down to it before matting
MAX_PIXELS = 40_000_000  # photos above this many pixels are refused before decoding
MAX_PHRASE_CHARS = 200  # longer phrases are cut (CLIP reads at most 77 tokens anyway)
PHRASE_HINT = "type what to cut out, for example 'the cat' or 'the man on the left'"
_PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Upload:
    """A photo as the app mattes it, decoded and fingerprinted once.

    Attributes:
        photo: the pixels ((H, W, 3) uint8 RGB, EXIF-rotated, at most MAX_SIDE on the longer
            side) and their key, handed to the predictor as they are.
        notes: what was done to it that the user should know (e.g. scaled down).
    """

    photo: Photo
    notes: list[str] = field(default_factory=list)

    @property
    def rgb(self) -> np.ndarray:
        return self.photo.rgb

    @property
    def key(self) -> str:
        return self.photo.key


def read_photo(src: Any, *, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS) -> Upload:
    """Load a photo for matting under the size policy.

    Args:
        src: a file path, bytes, PIL image or (H, W[, C]) array (see clipmat.imageio.load_image).
        max_side: the longer side is scaled down to this (area interpolation) when larger.
        max_pixels: files with more pixels than this are refused before they are decoded, so
            memory stays bounded.

    Raises:
        ValueError: for a missing, corrupt or oversized image, saying what is accepted.
    """
    if src is None:
        raise ValueError("no photo: upload, paste or take a photo first")
    try:
        rgb = load_image(src, max_pixels=max_pixels)
    except (ImageInputError, FileNotFoundError) as err:
        message = str(err)
        if isinstance(src, str | Path):  # name the file, not the server's folder
            message = message.replace(str(src), Path(src).name)
        raise ValueError(message) from None
    notes = []
    height, width = rgb.shape[:2]
    rgb, scale = limit_size(rgb, max_side)
    if scale != 1.0:
        notes.append(
            f"the photo was {width}x{height}; it was scaled to {rgb.shape[1]}x{rgb.shape[0]} "
            f"(the longest side this app mattes is {max_side} px)"
        )
    return Upload(Photo(rgb, fingerprint(rgb)), notes)


def clean_phrase(text: Any, *, max_chars: int = MAX_PHRASE_CHARS) -> tuple[str, list[str]]:
    """Normalise a phrase: whitespace collapsed, cut at ``max_chars`` at a word boundary.

    Returns:
        (the phrase, notes for the user).

    Raises:
        ValueError: for an empty phrase or one that is not text.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        raise ValueError(f"the phrase is empty: {PHRASE_HINT}")
    if not isinstance(text, str):
        raise TypeError(f"the phrase must be text, got {type(text).__name__}: {PHRASE_HINT}")
    phrase = " ".join(text.split())
    notes = []
    if len(phrase) > max_chars:
        cut = phrase[:max_chars].rsplit(" ", 1)[0] or phrase[:max_chars]
        notes.append(f"the phrase was {len(phrase)} characters long; only its start was read")
        phrase = cut
    if not any("a" <= c.lower() <= "z" for c in phrase):
        notes.append("the model reads English; a phrase with no Latin letters may match poorly")
    return phrase, notes


def examples_dir() -> Path:
    """The example photos: ``clipmat_app/examples`` when installed, the checkout's
    ``examples/`` in a source tree."""
    installed = _PACKAGE / "examples"
    return installed if installed.is_dir() else _PACKAGE.parent / "examples"


def load_examples(folder: str | Path | None = None) -> list[dict[str, Any]]:
    """Read ``<folder>/phrases.json`` (default :func:`examples_dir`): one entry per (image,
    phrase), paths made absolute.

    Returns:
        [{"image": path, "text": phrase, "mask": path or None, "source": str}, ...]; empty when
        the folder has no phrases.json.
    """
    folder = Path(folder) if folder is not None else examples_dir()
    index = folder / "phrases.json"
    if not index.is_file():
        return []
    rows = []
    for entry in json.loads(index.read_text())["examples"]:
        for phrase in entry["phrases"]:
            mask = phrase.get("mask")
            rows.append(
                {
                    "image": str(folder / entry["image"]),
                    "text": phrase["text"],
                    "mask": str(folder / mask) if mask else None,
                    "source": entry.get("source", ""),
                }
            )
    return rows

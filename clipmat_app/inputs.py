"""What the app accepts: photos under a size and memory policy, phrases, uploads, examples.

Photos reach the app as files Gradio received (uploads and its cache, where the examples are
copied) or as small ``data:`` URLs; a path anywhere else on the server is refused with one
message that says nothing about that path (:func:`upload_problem`).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clipmat.imageio import ImageInputError, limit_size, load_image
from clipmat.predictors.results import Photo
from clipmat.runtime import fingerprint

MAX_SIDE = 2048  # photos with a longer side are scaled down to it before matting
MAX_PIXELS = 40_000_000  # photos above this many pixels are refused before decoding
MAX_PHRASE_CHARS = 200  # longer phrases are cut (CLIP reads at most 77 tokens anyway)
MAX_PHRASE_INPUT = 2000  # longer phrases are refused, not cut
MAX_UPLOAD_BYTES = 25 * 2**20  # one uploaded file (Gradio's max_file_size)
MAX_DATA_URL_BYTES = 2**20  # a photo sent inline as a data: URL, decoded
# Memory a photo's decoding may take (clipmat.imageio's estimate from the header): an 8-bit RGB
# photo needs about 7 bytes a pixel, plus the conversion strip (about 13 MB at most).
DECODE_BYTES_PER_PIXEL = 7
DECODE_OVERHEAD_BYTES = 16 * 2**20
PHRASE_HINT = "type what to cut out, for example 'the cat' or 'the man on the left'"
NOT_AN_UPLOAD = (
    "this photo is not a file uploaded to this app; upload, paste or take a photo (API "
    "clients: send the file with gradio_client.handle_file)"
)
UPLOAD_GONE = "this upload is no longer on the server (old files are cleared); upload it again"
_PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Upload:
    """A photo as the app mattes it, decoded and fingerprinted once.

    Attributes:
        photo: the pixels ((H, W, 3) uint8 RGB, EXIF-rotated, at most MAX_SIDE on the longer
            side) and their key, handed to the predictor as they are.
        notes: what was done to it that the user should know (e.g. scaled down).
        original: the photo at its own size when it was scaled down and asked for (for the
            downloads; not to be kept past the request), else None.
        own_size: (width, height) of the photo at its own size: the frame of clicks and boxes.
    """

    photo: Photo
    notes: list[str] = field(default_factory=list)
    original: np.ndarray | None = field(default=None, repr=False)
    own_size: tuple[int, int] | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the photo at its own size."""
        return self.own_size or (self.rgb.shape[1], self.rgb.shape[0])

    @property
    def rgb(self) -> np.ndarray:
        return self.photo.rgb

    @property
    def key(self) -> str:
        return self.photo.key


def decode_budget(max_pixels: int) -> int:
    """Bytes a photo's decoding may take: what an 8-bit RGB photo of ``max_pixels`` needs."""
    return DECODE_BYTES_PER_PIXEL * max_pixels + DECODE_OVERHEAD_BYTES


def read_photo(
    src: Any, *, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS, keep_original: bool = False
) -> Upload:
    """Load a photo for matting under the size and memory policy.

    Args:
        src: a file path, bytes, PIL image or (H, W[, C]) array (see clipmat.imageio.load_image).
        max_side: the longer side is scaled down to this (area interpolation) when larger.
        max_pixels: files with more pixels than this, or whose decoding would take more memory
            than :func:`decode_budget` of it (judged from the header), are refused before they
            are decoded, so a small file cannot expand past the budget.
        keep_original: keep the photo at its own size in ``Upload.original`` when it was
            scaled down (decoded once, for the downloads at full size).

    Raises:
        ValueError: for a missing, corrupt or oversized image, saying what is accepted.
    """
    if src is None:
        raise ValueError("no photo: upload, paste or take a photo first")
    try:
        rgb = load_image(src, max_pixels=max_pixels, max_bytes=decode_budget(max_pixels))
    except (ImageInputError, FileNotFoundError) as err:
        raise ValueError(_user_message(str(err), src)) from None
    height, width = rgb.shape[:2]
    small, scale = limit_size(rgb, max_side)
    if scale == 1.0:
        return Upload(Photo(rgb, fingerprint(rgb)))
    note = (
        f"the photo is {width}x{height}; it was scaled to {small.shape[1]}x{small.shape[0]} "
        f"for matting (the longest side this app mattes is {max_side} px)"
    )
    original = rgb if keep_original else None
    return Upload(Photo(small, fingerprint(small)), [note], original, (width, height))


def phrase_problem(text: Any) -> str | None:
    """Why ``text`` cannot be a phrase (not text, too long, not valid Unicode), or None."""
    if text is None:
        return None  # empty: clean_phrase says so
    if not isinstance(text, str):
        return f"the phrase must be text, got {type(text).__name__}: {PHRASE_HINT}"
    if len(text) > MAX_PHRASE_INPUT:
        return (
            f"the phrase is {len(text):,} characters long; this app accepts up to "
            f"{MAX_PHRASE_INPUT:,} and reads the first {MAX_PHRASE_CHARS}: {PHRASE_HINT}"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return (
            f"the phrase has a character that is not valid text at position {err.start + 1} "
            f"(a lone surrogate); retype the phrase: {PHRASE_HINT}"
        )
    return None


def _user_message(message: str, src: Any) -> str:
    """The library's message for a web user: the file named, not the server's folders, and no
    advice meant for Python callers (raising a limit)."""
    if isinstance(src, str | Path):
        for text in (str(src), os.path.realpath(src)):
            message = message.replace(text, Path(src).name)
    for advice in (
        ", or raise max_bytes if you trust the source",
        ", or raise max_pixels if you trust the source",
    ):
        message = message.replace(advice, "")
    return re.sub(r"<[^<>]* at 0x[0-9a-fA-F]+>", "the data", message)


def clean_phrase(text: Any, *, max_chars: int = MAX_PHRASE_CHARS) -> tuple[str, list[str]]:
    """Normalise a phrase: control characters and runs of whitespace become one space, and the
    phrase is cut at ``max_chars`` at a word boundary.

    Returns:
        (the phrase, notes for the user).

    Raises:
        ValueError: for an empty phrase, one over MAX_PHRASE_INPUT characters or one that is
            not valid Unicode text; TypeError for one that is not text.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        raise ValueError(f"the phrase is empty: {PHRASE_HINT}")
    problem = phrase_problem(text)
    if problem:
        raise (TypeError if not isinstance(text, str) else ValueError)(problem)
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)
    phrase = " ".join(text.split())
    if not phrase:
        raise ValueError(f"the phrase is empty: {PHRASE_HINT}")
    notes = []
    if len(phrase) > max_chars:
        cut = phrase[:max_chars].rsplit(" ", 1)[0] or phrase[:max_chars]
        notes.append(f"the phrase was {len(phrase)} characters long; only its start was read")
        phrase = cut
    if not any("a" <= c.lower() <= "z" for c in phrase):
        notes.append("the model reads English; a phrase with no Latin letters may match poorly")
    return phrase, notes


def upload_folders(*extra: str | os.PathLike[str] | None) -> list[Path]:
    """Folders whose files the app reads as photos, resolved: Gradio's upload folder
    (GRADIO_TEMP_DIR or ``<tmp>/gradio``; the examples are copied there too) and ``extra``
    (e.g. a component's cache)."""
    gradio_tmp = os.environ.get("GRADIO_TEMP_DIR") or os.path.join(tempfile.gettempdir(), "gradio")
    folders = [gradio_tmp, *[f for f in extra if f]]
    return [Path(os.path.realpath(f)) for f in folders]


def upload_problem(path: Any, folders: list[Path]) -> str | None:
    """Why the file ``path`` cannot be read as a photo, or None when it can.

    The path is resolved (symbolic links and ``..`` included) before it is compared with
    ``folders``; anything outside them, any URL and anything that is not a string get the same
    message, whether or not it exists, so the answer tells nothing about the server's files.
    """
    if not isinstance(path, str) or not path or "\x00" in path or "://" in path:
        return NOT_AN_UPLOAD
    real = Path(os.path.realpath(path))
    if not any(real == f or f in real.parents for f in folders):
        return NOT_AN_UPLOAD
    return None if real.is_file() else UPLOAD_GONE


def data_url_problem(url: str, max_bytes: int = MAX_DATA_URL_BYTES) -> str | None:
    """Why the ``data:`` URL ``url`` cannot be read as a photo (over ``max_bytes`` decoded, not
    base64), judged from its length before anything is decoded; None when it can."""
    head, _, body = url.partition(",")
    if not head.endswith(";base64") or not body:
        return "a data: URL photo must be base64 (data:image/png;base64,...)"
    if len(body) // 4 * 3 > max_bytes:
        return (
            f"this data: URL photo is about {len(body) // 4 * 3 / 2**20:.1f} MB; inline photos "
            f"are accepted up to {max_bytes / 2**20:.0f} MB; upload larger photos as files "
            f"(up to {MAX_UPLOAD_BYTES // 2**20} MB)"
        )
    return None


def decode_data_url(url: str, max_bytes: int = MAX_DATA_URL_BYTES) -> bytes:
    """The bytes of a base64 ``data:`` URL of at most ``max_bytes``.

    Raises:
        ValueError: for a URL over the limit or one that is not base64, saying what is accepted.
    """
    problem = data_url_problem(url, max_bytes)
    if problem:
        raise ValueError(problem)
    try:
        return base64.b64decode(url.partition(",")[2], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("this data: URL is not valid base64; upload the photo as a file") from None


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

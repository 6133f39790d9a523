"""What the web app needs besides its widgets: predictors by name, the photo and phrase policy,
the examples. Mattes and edits are in clipmat.app_service.

Nothing here imports gradio, so the demo script, the benchmarks and the tests use it directly.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipmat import hub
from clipmat.download import hub_reachable
from clipmat.factory import create_model, load_model
from clipmat.imageio import ImageInputError, limit_size, load_image
from clipmat.predictor import CLIPMatPredictor, MattingResult
from clipmat.predictors import PREDICTORS, list_predictors, load_predictor

RANDOM_TINY = "random-tiny"  # developer option: random weights, garbage mattes, instant
RANDOM_TINY_SEED = 24  # a seed whose random model gives a matte that varies over the photo
RANDOM_TINY_LICENCE = "none needed: random weights, for interface development only"
MAX_SIDE = 2048  # photos with a longer side are scaled down to it before matting
MAX_PIXELS = 40_000_000  # photos above this many pixels are refused before decoding
MAX_PHRASE_CHARS = 200  # longer phrases are cut (CLIP reads at most 77 tokens anyway)
PHRASE_HINT = "type what to cut out, for example 'the cat' or 'the man on the left'"


@dataclass
class Photo:
    """A photo as the app mattes it.

    Attributes:
        rgb: (H, W, 3) uint8 RGB, EXIF-rotated, at most MAX_SIDE on its longer side.
        notes: what was done to it that the user should know (e.g. scaled down).
        key: a digest of its pixels, for caching.
    """

    rgb: np.ndarray
    notes: list[str] = field(default_factory=list)
    key: str = ""


def read_photo(src: Any, *, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS) -> Photo:
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
    digest = hashlib.blake2b(np.ascontiguousarray(rgb).data, digest_size=12).hexdigest()
    return Photo(rgb=rgb, notes=notes, key=f"{rgb.shape[0]}x{rgb.shape[1]}-{digest}")


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


def create_random_tiny(device: Any = "cpu", seed: int = RANDOM_TINY_SEED) -> CLIPMatPredictor:
    """A predictor on the tiny test model with seeded random weights, the same in every process."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create_model("clipmat-tiny")
    return CLIPMatPredictor(model, name=RANDOM_TINY, licence=RANDOM_TINY_LICENCE, device=device)


@dataclass(frozen=True)
class Choice:
    """A predictor the app can offer, with whether it can run here and why not."""

    name: str
    available: bool
    licence: str
    description: str
    reason: str = ""


ZEROSHOT = "zeroshot-vitb16"


class PredictorPool:
    """Predictors by name, loaded on first use and kept; one lock per predictor.

    Args:
        extra: more predictors by name (a predictor, or a function that makes one), offered
            beside the registered ones (e.g. RANDOM_TINY, a checkpoint file).
        device: passed to every predictor ("auto" picks CUDA when present).
        allow_download: for registered weights (None: download unless HF_HUB_OFFLINE).
    """

    def __init__(
        self,
        extra: dict[str, CLIPMatPredictor | Callable[[], CLIPMatPredictor]] | None = None,
        *,
        device: Any = "auto",
        allow_download: bool | None = None,
    ) -> None:
        self.device = device
        self.allow_download = allow_download
        self._extra = dict(extra or {})
        self._loaded: dict[str, CLIPMatPredictor] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._pool_lock = threading.Lock()

    @classmethod
    def from_option(cls, option: str | None, **kwargs: Any) -> tuple[PredictorPool, str | None]:
        """A pool for the app's ``--predictor`` value and the name to start with.

        ``option`` is a registered name, "auto"/None (the best available one, or none),
        RANDOM_TINY, or a checkpoint file. An explicit choice that cannot load raises here,
        so the app stops at startup with the reason rather than at the first click.
        """
        extra: dict[str, Any] = {}
        name = option
        if option == RANDOM_TINY:
            extra[RANDOM_TINY] = lambda: create_random_tiny(kwargs.get("device", "cpu"))
        elif option not in (None, "auto") and option not in PREDICTORS:
            path = Path(option)
            if not path.is_file():
                known = ", ".join(["auto", *PREDICTORS, RANDOM_TINY])
                raise ValueError(f"--predictor {option!r} is neither {known} nor a checkpoint file")
            name = path.stem
            extra[name] = lambda: CLIPMatPredictor(
                load_model(path),
                name=name,
                licence="set by the checkpoint's owner",
                device=kwargs.get("device", "auto"),
            )
        pool = cls(extra, **kwargs)
        if name in (None, "auto"):
            name = pool.auto_choice()
        if name is not None:
            pool.get(name)
        return pool, name

    def auto_choice(self) -> str | None:
        """The best predictor to start with: a trained CLIPMat whose weights are here, else
        zero-shot (its CLIP is downloaded now when downloads are allowed and the hub answers a
        3-second probe), else the first available one (mini-world), else None."""
        available = [c.name for c in self.choices() if c.available]
        trained = [n for n in available if PREDICTORS.get(n) and PREDICTORS[n].kind == "clipmat"]
        trained = [n for n in trained if n != "mini-world"]
        if trained:
            return trained[0]
        if ZEROSHOT in available:
            return ZEROSHOT
        if hub.downloads_allowed(self.allow_download) and hub_reachable():
            try:
                self.get(ZEROSHOT)
                return ZEROSHOT
            except ValueError:
                pass  # the download failed: fall back to what is here
        return available[0] if available else None

    def choices(self) -> list[Choice]:
        """Every predictor: the extra ones first, then the registered ones with availability."""
        out = []
        for name, item in self._extra.items():
            licence = item.licence if isinstance(item, CLIPMatPredictor) else ""
            if name == RANDOM_TINY:
                licence = RANDOM_TINY_LICENCE
            out.append(Choice(name, True, licence, "given at startup"))
        for s in list_predictors():
            out.append(Choice(s.name, s.available, s.licence, s.description, s.reason))
        return out

    def choice(self, name: str) -> Choice:
        for c in self.choices():
            if c.name == name:
                return c
        raise ValueError(f"unknown predictor {name!r}; choose one of {self.names()}")

    def names(self) -> list[str]:
        return [c.name for c in self.choices()]

    def get(self, name: str) -> CLIPMatPredictor:
        """The predictor ``name``, loaded on first use.

        Raises:
            ValueError: for an unknown name or one that cannot run here, with the reason.
        """
        with self._pool_lock:
            if name in self._loaded:
                return self._loaded[name]
            if name in self._extra:
                item = self._extra[name]
                predictor = item if isinstance(item, CLIPMatPredictor) else item()
            elif name in PREDICTORS:
                try:
                    predictor = load_predictor(
                        name, device=self.device, allow_download=self.allow_download
                    )
                except (OSError, NotImplementedError, ValueError, RuntimeError) as err:
                    first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
                    raise ValueError(f"the {name} predictor cannot run here: {first}") from None
            else:
                raise ValueError(f"unknown predictor {name!r}; choose one of {self.names()}")
            self._loaded[name] = predictor
            self._locks[name] = threading.Lock()
            return predictor

    def predict(
        self, name: str, photo: np.ndarray, phrase: str, *, refine: bool = False
    ) -> MattingResult:
        """Run predictor ``name`` on one photo and phrase; calls on one predictor are serialised.

        ``refine`` applies to CLIPMat predictors (the zero-shot one always mattes in closed form).
        """
        predictor = self.get(name)
        with self._locks[name]:
            if refine and isinstance(predictor, CLIPMatPredictor):
                return predictor.predict(photo, phrase, refine=True)
            return predictor.predict(photo, phrase)


def load_examples(folder: str | Path) -> list[dict[str, Any]]:
    """Read ``<folder>/phrases.json``: one entry per (image, phrase), paths made absolute.

    Returns:
        [{"image": path, "text": phrase, "mask": path or None, "source": str}, ...]; empty when
        the folder has no phrases.json.
    """
    folder = Path(folder)
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

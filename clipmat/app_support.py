"""What the web app needs besides its widgets: predictors by name, the photo and phrase policy,
and mattes computed once per (photo, phrase, predictor) and then edited many times.

Nothing here imports gradio, so the demo script, the benchmarks and the tests use it directly.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import editing
from clipmat.factory import create_model, load_model
from clipmat.imageio import ImageInputError, limit_size, load_image
from clipmat.predictor import CLIPMatPredictor, MattingResult
from clipmat.predictors import PREDICTORS, list_predictors, load_predictor

RANDOM_TINY = "random-tiny"  # developer option: random weights, garbage mattes, instant
RANDOM_TINY_LICENCE = "none needed: random weights, for interface development only"
MAX_SIDE = 2048  # photos with a longer side are scaled down to it before matting
MAX_PIXELS = 40_000_000  # photos above this many pixels are refused before decoding
MAX_PHRASE_CHARS = 200  # longer phrases are cut (CLIP reads at most 77 tokens anyway)
OVERLAY_COLOR = (255, 48, 112)  # tint of the matted object in the overlay view
OVERLAY_OPACITY = 0.55
MODES = ("highlight", "background", "color", "cutout")
EFFECTS = editing.EFFECTS
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


def create_random_tiny(device: Any = "cpu", seed: int = 0) -> CLIPMatPredictor:
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
            name = next((c.name for c in pool.choices() if c.available), None)
        if name is not None:
            pool.get(name)
        return pool, name

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
                except (FileNotFoundError, NotImplementedError, ValueError) as err:
                    first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
                    raise ValueError(f"the {name} predictor cannot run here: {first}") from None
            else:
                raise ValueError(f"unknown predictor {name!r}; choose one of {self.names()}")
            self._loaded[name] = predictor
            self._locks[name] = threading.Lock()
            return predictor

    def predict(self, name: str, photo: np.ndarray, phrase: str) -> MattingResult:
        """Run predictor ``name`` on one photo and phrase; calls on one predictor are serialised."""
        predictor = self.get(name)
        with self._locks[name]:
            return predictor.predict(photo, phrase)


def overlay(photo: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The photo with the matted object tinted, to check at a glance what was picked.

    Args:
        photo: (H, W, 3) uint8 RGB.
        alpha: (H, W) float32 in [0, 1].

    Returns:
        (H, W, 3) uint8 RGB.
    """
    weight = (alpha * np.float32(OVERLAY_OPACITY))[..., None]
    tint = np.asarray(OVERLAY_COLOR, np.float32)
    out = photo.astype(np.float32) * (1.0 - weight) + tint * weight
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class EditSettings:
    """One edit of a matte, as the app's controls set it.

    Attributes:
        mode: "highlight", "background", "color" or "cutout".
        effects: highlight effects (editing.EFFECTS); none means "dim".
        strength: highlight strength in [0, 1].
        color: colour for "color" and the "tint" effect (hex, rgb() or a CSS name).
        background: a photo for "background" (path or array); None blurs the photo's own.
    """

    mode: str = "highlight"
    effects: tuple[str, ...] = ("dim",)
    strength: float = 0.6
    color: str = "#2563eb"
    background: Any = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown edit mode {self.mode!r}; choose one of {', '.join(MODES)}")
        unknown = [e for e in self.effects if e not in EFFECTS]
        if unknown:
            raise ValueError(f"unknown effect(s) {unknown}; choose from {', '.join(EFFECTS)}")
        if not 0.0 <= float(self.strength) <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {self.strength!r}")
        editing.parse_color(self.color)


def apply_edit(matte: editing.MatteEdit, settings: EditSettings) -> np.ndarray:
    """Apply one edit to a matte whose foreground estimate is kept between edits.

    Returns:
        (H, W, 3) uint8 RGB, or (H, W, 4) uint8 RGBA for "cutout".
    """
    if settings.mode == "highlight":
        effect = "+".join(settings.effects) or "dim"
        return matte.highlight(
            effect=effect, strength=float(settings.strength), tint_color=settings.color
        )
    if settings.mode == "background":
        if settings.background is None:
            return matte.replace_background("blur")
        backdrop = read_photo(settings.background).rgb
        return matte.replace_background(backdrop)
    if settings.mode == "color":
        return matte.fill_color(settings.color)
    return matte.cutout()


@dataclass
class Matte:
    """A matte made by the app, with what its edits and downloads need.

    Attributes:
        key: (photo digest, phrase, predictor) joined; also the name of its folder.
        photo: the photo as matted, (H, W, 3) uint8.
        result: the predictor's output.
        edit: the photo and matte with their foreground estimate, for fast edits.
        notes: messages for the user (size policy, phrase, grounding).
        folder: where its files are written.
    """

    key: str
    photo: np.ndarray
    result: MattingResult
    edit: editing.MatteEdit
    notes: list[str]
    folder: Path

    def file(self, stem: str, array: np.ndarray) -> Path:
        """Write ``array`` as ``<folder>/<stem>.png`` (fast zlib level) and return the path."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{stem}.png"
        editing.save_png(array, path)
        return path


class MatteService:
    """Mattes by (photo, phrase, predictor), computed once, kept in a small LRU with their files.

    Args:
        pool: where predictors come from.
        cache_size: how many mattes (with their photos and foreground estimates) to keep.
        workdir: folder for the PNG files handed to the UI; a fresh temporary one by default.
    """

    def __init__(
        self, pool: PredictorPool, *, cache_size: int = 8, workdir: str | Path | None = None
    ) -> None:
        self.pool = pool
        self.cache_size = cache_size
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="clipmat-app-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._cache: OrderedDict[str, Matte] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = {"mattes": 0, "hits": 0}

    def matte(
        self, image: Any, phrase: Any, predictor: str, *, progress: Callable | None = None
    ) -> Matte:
        """The matte of ``phrase`` on ``image`` by ``predictor``, from the cache when it is there.

        Raises:
            ValueError / TypeError: for a bad photo, phrase or predictor, with what is accepted.
        """
        step = progress or (lambda *a, **k: None)
        text, phrase_notes = clean_phrase(phrase)
        step(0.05, desc="Reading the photo")
        photo = read_photo(image)
        key = hashlib.blake2b(
            f"{photo.key}|{predictor}|{text}".encode(), digest_size=12
        ).hexdigest()
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.stats["hits"] += 1
                return self._cache[key]
        step(0.2, desc=f"Matting '{text}' with {predictor}")
        result = self.pool.predict(predictor, photo.rgb, text)
        notes = photo.notes + phrase_notes
        if result.unsure:
            notes.append(
                f"unsure: the model is not confident it found '{text}' "
                f"(confidence {result.confidence:.2f}); try a more specific phrase"
            )
        folder = self.workdir / key
        folder.mkdir(exist_ok=True)
        matte = Matte(
            key, photo.rgb, result, editing.MatteEdit(photo.rgb, result.alpha), notes, folder
        )
        step(0.7, desc="Estimating the object's colours")
        matte.file("cutout", matte.edit.cutout())
        editing.save_matte(result.alpha, folder / "matte16.png", bits=16)
        matte.file("matte", editing.matte_to_bits(result.alpha, 8))
        matte.file("overlay", overlay(photo.rgb, result.alpha))
        with self._lock:
            self.stats["mattes"] += 1
            self._cache[key] = matte
            while len(self._cache) > self.cache_size:
                _, old = self._cache.popitem(last=False)
                shutil.rmtree(old.folder, ignore_errors=True)
        return matte

    def edit_file(self, matte: Matte, settings: EditSettings) -> Path:
        """Apply ``settings`` to ``matte`` and write the result as a PNG; returns its path."""
        backdrop = settings.background
        if isinstance(backdrop, np.ndarray):
            backdrop = hashlib.blake2b(np.ascontiguousarray(backdrop).data).hexdigest()
        described = (settings.mode, settings.effects, settings.strength, settings.color, backdrop)
        tag = hashlib.blake2b(repr(described).encode(), digest_size=8).hexdigest()
        return matte.file(f"edit-{settings.mode}-{tag}", apply_edit(matte.edit, settings))

    def close(self) -> None:
        """Delete the files written so far."""
        with self._lock:
            self._cache.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)


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

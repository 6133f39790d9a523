"""Mattes computed once per (photo, phrase, predictor) and edited many times, for the web app.

Nothing here imports gradio, so the figure script, the benchmarks and the tests use it directly.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import editing
from clipmat.predictor import MattingResult
from clipmat_app.inputs import MAX_PIXELS, MAX_SIDE, clean_phrase, read_photo
from clipmat_app.pool import PredictorPool
from clipmat_app.storage import Storage

OVERLAY_COLOR = (255, 48, 112)  # tint of the matted object in the overlay view
OVERLAY_OPACITY = 0.55
MODES = ("highlight", "background", "color", "cutout")
EFFECTS = editing.EFFECTS
MATTE_CONCURRENCY = 2  # mattes computed at once by one service, whatever the endpoint
DEFAULT_COLOR = "#2563eb"
COLOR_HINT = "a colour such as '#2563eb', 'rgb(37, 99, 235)' or 'orange'"
FILES = ("matte", "matte16", "cutout", "overlay")  # the files every matte has


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
    color: str = DEFAULT_COLOR
    background: Any = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(
                f"unknown edit mode {str(self.mode)[:40]!r}; choose one of {', '.join(MODES)}"
            )
        unknown = [str(e)[:40] for e in self.effects if e not in EFFECTS]
        if unknown:
            raise ValueError(f"unknown effect(s) {unknown}; choose from {', '.join(EFFECTS)}")
        strength = self.strength
        if isinstance(strength, bool) or not isinstance(strength, int | float | np.number):
            raise ValueError(
                f"strength must be a number from 0 to 1, got {type(strength).__name__}"
            )
        if not 0.0 <= float(strength) <= 1.0:
            raise ValueError(f"strength must be a number from 0 to 1, got {strength!r}")
        if not isinstance(self.color, str | tuple):
            raise ValueError(f"the colour must be text, {COLOR_HINT}")
        editing.parse_color(self.color)


def apply_edit(
    matte: editing.MatteEdit,
    settings: EditSettings,
    *,
    max_side: int = MAX_SIDE,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Apply one edit to a matte whose foreground estimate is kept between edits.

    A background photo is read under the same size and memory policy as the photo.

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
        backdrop = read_photo(settings.background, max_side=max_side, max_pixels=max_pixels).rgb
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
        """Write ``array`` as ``<folder>/<stem>.png`` and return the path.

        The file is replaced atomically (a reader sees the old file or the new one, never a
        part); the folder is made again if a disk budget removed it meanwhile.
        """
        path = self.folder / f"{stem}.png"
        for attempt in range(2):
            self.folder.mkdir(parents=True, exist_ok=True)
            try:
                editing.save_png(array, path)
                break
            except FileNotFoundError:
                if attempt:
                    raise
        return path

    def write_files(self) -> None:
        """Write the files every matte has (see FILES), or mark them as just used when they are
        all there (a disk budget removes the least recently used files first)."""
        try:
            for stem in FILES:
                os.utime(self.folder / f"{stem}.png")
            return
        except FileNotFoundError:
            pass
        alpha = self.result.alpha
        self.file("cutout", self.edit.cutout())
        self.file("matte16", editing.matte_to_bits(alpha, 16))
        self.file("matte", editing.matte_to_bits(alpha, 8))
        self.file("overlay", overlay(self.photo, alpha))


class MatteService:
    """Mattes by (photo, phrase, predictor), computed once, kept in a small LRU with their files.

    Args:
        pool: where predictors come from.
        cache_size: how many mattes (with their photos and foreground estimates) to keep.
        workdir: folder for the PNG files handed to the UI; ``storage.mattes`` when a storage
            is given, else a fresh temporary one.
        max_side: photos are scaled down to this longer side (see read_photo).
        max_pixels: photos with more pixels, or whose decoding would take more memory than an
            8-bit photo of this many pixels, are refused before decoding.
        matte_slots: mattes computed at once, by every caller together (the /matte and /edit
            endpoints and the UI's edits share this limit).
        storage: a disk budget; its files are then removed by it (least recently used first)
            rather than when their matte leaves the cache.
    """

    def __init__(
        self,
        pool: PredictorPool,
        *,
        cache_size: int = 8,
        workdir: str | Path | None = None,
        max_side: int = MAX_SIDE,
        max_pixels: int = MAX_PIXELS,
        matte_slots: int = MATTE_CONCURRENCY,
        storage: Storage | None = None,
    ) -> None:
        self.pool = pool
        self.max_side = max_side
        self.max_pixels = max_pixels
        self.cache_size = cache_size
        self.storage = storage
        default = storage.mattes if storage else None
        self.workdir = Path(workdir or default or tempfile.mkdtemp(prefix="clipmat-app-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._cache: OrderedDict[str, Matte] = OrderedDict()
        self._retired: deque[Path] = deque()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(matte_slots)
        self._pending: dict[str, list] = {}  # key -> [lock, users]: one computation per key
        self.stats = {"mattes": 0, "hits": 0}
        self.matting = {"now": 0, "peak": 0}  # mattes being computed, and the most at once

    def matte(
        self,
        image: Any,
        phrase: Any,
        predictor: str,
        *,
        refine: bool = False,
        progress: Callable | None = None,
    ) -> Matte:
        """The matte of ``phrase`` on ``image`` by ``predictor``, from the cache when it is there.

        ``refine`` is ``predict``'s: the transition band matted in closed form (False: the
        predictor's own alpha; for the zero-shot predictor, its coarse probability map).
        Identical requests at the same time compute the matte once; at most ``matte_slots``
        mattes are computed at once.

        Raises:
            ValueError / TypeError: for a bad photo, phrase or predictor, with what is accepted.
        """
        step = progress or (lambda *a, **k: None)
        text, phrase_notes = clean_phrase(phrase)
        step(0.05, desc="Reading the photo")
        photo = read_photo(image, max_side=self.max_side, max_pixels=self.max_pixels)
        key = hashlib.blake2b(
            f"{photo.key}|{predictor}|{text}|{refine}".encode(), digest_size=12
        ).hexdigest()
        with self._exclusive(key):
            found = self.lookup(key)
            if found is not None:
                return found
            step(0.2, desc=f"Matting '{text}' with {predictor}")
            with self._slot():
                result = self.pool.predict(predictor, photo.photo, text, refine=refine)
                notes = photo.notes + phrase_notes
                if result.unsure:
                    notes.append(
                        f"unsure: the model is not confident it found '{text}' "
                        f"(confidence {result.confidence:.2f}); try a more specific phrase"
                    )
                edit = editing.MatteEdit(photo.rgb, result.alpha)
                matte = Matte(key, photo.rgb, result, edit, notes, self.workdir / key)
                step(0.7, desc="Estimating the object's colours")
                matte.write_files()
            self._keep(matte)
        return matte

    @contextmanager
    def _exclusive(self, key: str) -> Iterator[None]:
        """Hold the lock of ``key``: a second request for a matte being computed waits for it."""
        with self._lock:
            entry = self._pending.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._pending[key]

    @contextmanager
    def _slot(self) -> Iterator[None]:
        """One of the ``matte_slots``; counts the mattes being computed (``matting``)."""
        with self._slots:
            with self._lock:
                self.matting["now"] += 1
                self.matting["peak"] = max(self.matting["peak"], self.matting["now"])
            try:
                yield
            finally:
                with self._lock:
                    self.matting["now"] -= 1

    def _keep(self, matte: Matte) -> None:
        """Cache ``matte``; past ``cache_size`` the oldest leaves the cache, and without a disk
        budget its files go a while later (a request may still be handing them out)."""
        with self._lock:
            self.stats["mattes"] += 1
            self._cache[matte.key] = matte
            while len(self._cache) > self.cache_size:
                _, old = self._cache.popitem(last=False)
                if self.storage is None:
                    self._retired.append(old.folder)
            while len(self._retired) > self.cache_size:
                shutil.rmtree(self._retired.popleft(), ignore_errors=True)
        if self.storage is not None:
            self.storage.enforce()

    def lookup(self, key: str) -> Matte | None:
        """The cached matte with this key (``Matte.key``), or None when it was evicted; its
        files are written again if a disk budget removed them."""
        with self._lock:
            if key not in self._cache:
                return None
            self._cache.move_to_end(key)
            self.stats["hits"] += 1
            matte = self._cache[key]
        matte.write_files()
        return matte

    def edit_file(self, matte: Matte, settings: EditSettings) -> Path:
        """Apply ``settings`` to ``matte`` and write the result as a PNG; returns its path."""
        backdrop = settings.background
        if isinstance(backdrop, np.ndarray):
            backdrop = hashlib.blake2b(np.ascontiguousarray(backdrop).data).hexdigest()
        elif isinstance(backdrop, bytes | bytearray):
            backdrop = hashlib.blake2b(backdrop).hexdigest()
        described = (settings.mode, settings.effects, settings.strength, settings.color, backdrop)
        tag = hashlib.blake2b(repr(described).encode(), digest_size=8).hexdigest()
        array = apply_edit(matte.edit, settings, max_side=self.max_side, max_pixels=self.max_pixels)
        path = matte.file(f"edit-{settings.mode}-{tag}", array)
        if self.storage is not None:
            self.storage.enforce()
        return path

    def close(self) -> None:
        """Delete the files written so far."""
        with self._lock:
            self._cache.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

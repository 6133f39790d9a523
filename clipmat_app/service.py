"""Mattes computed once per (photo, phrase, predictor) and edited many times, for the web app.

Nothing here imports gradio, so the figure script, the benchmarks and the tests use it directly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import shutil
import tempfile
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import editing
from clipmat_app.corrections import Corrections
from clipmat_app.edits import EditSettings, apply_edit
from clipmat_app.inputs import MAX_PIXELS, MAX_SIDE, PHRASE_HINT, clean_phrase, read_photo
from clipmat_app.mattes import Matte
from clipmat_app.pool import PredictorPool
from clipmat_app.storage import Storage
from clipmat_app.texts import loading_text, matting_text
from clipmat_app.views import candidate_rows, draw_corrections, overlay
from editing.export import write_bytes_atomic

# Mattes computed at once by one service, whatever the endpoint. bench/threads.py on 2 cores,
# 16 clients: 1 slot x 2 threads had the lowest p50/p95 and the least memory (README).
MATTE_CONCURRENCY = 1
EMPTY_PHRASE = (
    f"the phrase is empty: {PHRASE_HINT}; or, with no phrase, draw a box around the object or "
    "click on it (a positive click), which mattes it with no model"
)


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
        if matte_slots < 1:
            raise ValueError(f"matte_slots must be at least 1, got {matte_slots}")
        self.matte_slots = matte_slots
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
        corrections: Corrections | None = None,
        downloads: bool = True,
        progress: Callable | None = None,
    ) -> Matte:
        """The matte of ``phrase`` on ``image`` by ``predictor``, from the cache when it is there.

        ``refine`` is ``predict``'s: the transition band matted in closed form (False: the
        predictor's own alpha; for the zero-shot predictor, its coarse probability map).
        ``corrections`` are the user's clicks, box and candidate in the photo's own pixels; with a
        box or a positive click the phrase may be empty (matted with no model). ``downloads``
        False writes the views only, leaving the cutout and 16-bit matte for later
        (:meth:`downloads`; an edit needs none). Identical requests at the same time compute
        the matte once; at most ``matte_slots`` mattes are computed at once.

        Raises:
            ValueError / TypeError: for a bad photo, phrase, correction or predictor, with what is
                accepted.
        """
        step = progress or (lambda *a, **k: None)
        corrections = corrections or Corrections()
        text, phrase_notes = _phrase(phrase, corrections)
        step(0.05, desc="Reading the photo")
        upload = read_photo(
            image, max_side=self.max_side, max_pixels=self.max_pixels, keep_original=downloads
        )
        corrections = corrections.fitted(*upload.size)
        if not text:  # a box or clicks alone: no model, no candidates
            corrections = dataclasses.replace(corrections, candidate=None)
        described = f"{upload.key}|{predictor if text else ''}|{text}|{refine}|{corrections!r}"
        key = hashlib.blake2b(described.encode(), digest_size=12).hexdigest()
        with self._exclusive(key):
            matte = self.lookup(key)
            if matte is None:
                if not self.pool.loaded(predictor):  # loaded before a slot is taken
                    step(0.1, desc=loading_text(predictor))
                    self.pool.get(predictor)
                step(0.2, desc=matting_text(text, predictor, corrections.box is not None))
                with self._slot():
                    matte = self._compute(key, upload, text, predictor, refine, corrections)
                    matte.notes[:0] = phrase_notes
                    step(0.7, desc="Estimating the object's colours")
                    matte.write_files(upload.original, downloads=downloads)
                self._keep(matte)
            elif downloads and not matte.has_downloads:
                with self._slot():
                    matte.write_files(upload.original)
        return matte

    def downloads(self, key: str, image: Any) -> Matte | None:
        """The cached matte ``key`` with its downloads written (the photo ``image`` is read
        again only when it was matted scaled down); None when it left the cache."""
        matte = self.lookup(key)
        if matte is None or matte.has_downloads:
            return matte
        with self._exclusive(key), self._slot():
            original = None
            if matte.scaled:
                upload = read_photo(
                    image, max_side=self.max_side, max_pixels=self.max_pixels, keep_original=True
                )
                if upload.key != matte.photo_key:  # not this photo's matte
                    return None
                original = upload.original
            matte.write_files(original)
        return matte

    def _compute(
        self,
        key: str,
        upload: Any,
        text: str,
        predictor: str,
        refine: bool,
        corrections: Corrections,
    ) -> Matte:
        """Run the predictor (or, with no phrase, the box and clicks alone) on ``upload``."""
        width, height = upload.size
        scale_x, scale_y = upload.rgb.shape[1] / width, upload.rgb.shape[0] / height
        on_photo = corrections.scaled(scale_x, scale_y)
        options: dict[str, Any] = {"refine": refine}
        if on_photo.points:
            options["points"] = on_photo.points
        if on_photo.box is not None:
            options["box"] = on_photo.box
        if text:
            if on_photo.candidate is not None:
                options["candidate"] = on_photo.candidate
            result = self.pool.predict(predictor, upload.photo, text, **options)
        else:  # any predictor mattes a box and clicks alone, with no model and no lock
            result = self.pool.get(predictor).predict(upload.photo, "", **options)
        notes = list(upload.notes)
        if notes and (width, height) != (upload.rgb.shape[1], upload.rgb.shape[0]):
            notes[-1] += f"; the cutout and matte downloads are at its own size, {width}x{height}"
        if result.confidence < result.threshold and not result.out_of_domain:  # else its note
            notes.append(
                f"unsure: the model is not confident it found '{text}' "
                f"(confidence {result.confidence:.2f}); try a more specific phrase, or click "
                "on the object or draw a box around it"
            )
        edit = editing.MatteEdit(upload.rgb, result.alpha)
        rows = candidate_rows(result, scale_x, scale_y)
        folder = self.workdir / key
        return Matte(
            key, upload.rgb, result, edit, notes, folder, corrections, upload.size, rows, upload.key
        )

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

    def matting_slot(self) -> contextlib.AbstractContextManager[None]:
        """One of the ``matte_slots``, for matting outside :meth:`matte` (a clip's frames)."""
        return self._slot()

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
        views (and the downloads that need no full-size photo) are written again if a disk
        budget removed them."""
        with self._lock:
            if key not in self._cache:
                return None
            self._cache.move_to_end(key)
            self.stats["hits"] += 1
            matte = self._cache[key]
        matte.write_files(downloads=False)
        return matte

    def view(
        self,
        image: Any,
        corrections: Corrections,
        corner: tuple[float, float] | None = None,
        key: str | None = None,
    ) -> tuple[Path, tuple[int, int], tuple[int, int]]:
        """The overlay view with the clicks, the box and a box's first ``corner`` drawn (all in
        the photo's own pixels): on the overlay of the cached matte ``key``, else on the photo
        itself (before any matte; read here).

        Returns:
            (the picture's path, the photo's own (width, height), the picture's (width, height)).
        """
        matte = self.lookup(key) if key else None
        if matte is not None:
            base, size, tag = overlay(matte.photo, matte.result.alpha), matte.own_size, matte.key
        else:
            upload = read_photo(image, max_side=self.max_side, max_pixels=self.max_pixels)
            base, size, tag = upload.rgb, upload.size, upload.key
        scale_x, scale_y = base.shape[1] / size[0], base.shape[0] / size[1]
        spot = None if corner is None else (corner[0] * scale_x, corner[1] * scale_y)
        drawn = draw_corrections(base, corrections.scaled(scale_x, scale_y), spot)
        folder = hashlib.blake2b(tag.encode(), digest_size=8).hexdigest()
        name = hashlib.blake2b(
            f"{tag}|{corrections!r}|{corner!r}".encode(), digest_size=8
        ).hexdigest()
        path = self.workdir / f"view-{folder}" / f"{name}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, encoded = cv2.imencode(".jpg", drawn[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        write_bytes_atomic(path, encoded)
        if self.storage is not None:
            self.storage.enforce()
        return path, size, (base.shape[1], base.shape[0])

    def edit_file(self, matte: Matte, settings: EditSettings) -> Path:
        """Apply ``settings`` to ``matte`` and write the result as a PNG; returns its path."""
        backdrop = settings.background
        if isinstance(backdrop, np.ndarray):
            backdrop = hashlib.blake2b(np.ascontiguousarray(backdrop).data).hexdigest()
        elif isinstance(backdrop, bytes | bytearray):
            backdrop = hashlib.blake2b(backdrop).hexdigest()
        described = (settings.mode, settings.effects, settings.strength, settings.color, backdrop)
        tag = hashlib.blake2b(repr(described).encode(), digest_size=8).hexdigest()
        if not matte.foreground_ready:  # the heavy part, bounded with the mattes
            with self._slot():
                matte.estimate_foreground()
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


def _phrase(phrase: Any, corrections: Corrections) -> tuple[str, list[str]]:
    """The phrase read (see clean_phrase) and its notes; an empty phrase is allowed, as "",
    when the corrections say where the object is (a box or a positive click)."""
    if phrase is None or (isinstance(phrase, str) and not phrase.strip()):
        if corrections.locate:
            return "", []
        raise ValueError(EMPTY_PHRASE)
    return clean_phrase(phrase)

"""A matte the app made, with its files: what the page shows and what the user downloads.

Every matte has ``matte.png`` and ``overlay.png`` (the photo as matted, the clicks and the box
drawn on the overlay) and the downloads ``cutout.png`` and ``matte16.png`` at the photo's own
size (:mod:`clipmat_app.fullsize` when it was matted scaled down). Nothing here imports gradio.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import editing
from clipmat.predictors.results import MattingResult
from clipmat_app.corrections import Corrections
from clipmat_app.fullsize import write_downloads
from clipmat_app.views import caption, draw_corrections, overlay, thumbnail

VIEWS = ("matte", "overlay")  # the files the page shows, at the matted size
DOWNLOADS = ("cutout", "matte16")  # at the photo's own size
FILES = VIEWS + DOWNLOADS  # the files every matte has
STRIP_SIZE = 8  # candidates shown in the strip (the API lists more)


@dataclass
class Matte:
    """A matte made by the app, with what its edits and downloads need.

    Attributes:
        key: (photo digest, phrase, predictor, options) hashed; also the name of its folder.
        photo: the photo as matted, (H, W, 3) uint8.
        result: the predictor's output.
        edit: the photo and matte with their foreground estimate, for fast edits.
        notes: messages for the user (size policy, phrase, grounding).
        folder: where its files are written.
        corrections: the clicks, box and candidate it was made with, in the photo's own pixels.
        size: (width, height) of the photo at its own size (the downloads' size).
        candidates: the API's rows of the result's candidates (see views.candidate_rows).
        photo_key: the matted photo's content key (clipmat.runtime.fingerprint).
    """

    key: str
    photo: np.ndarray
    result: MattingResult
    edit: editing.MatteEdit
    notes: list[str]
    folder: Path
    corrections: Corrections = field(default_factory=Corrections)
    size: tuple[int, int] | None = None
    candidates: list[dict[str, Any]] = field(default_factory=list)
    photo_key: str = ""
    foreground_ready: bool = False

    def estimate_foreground(self) -> None:
        """Estimate the foreground colours every edit and the cutout use (once; see
        ``MatteService.edit_file``, which does it within a matting slot)."""
        _ = self.edit.foreground
        self.foreground_ready = True

    @property
    def own_size(self) -> tuple[int, int]:
        """(width, height) of the photo at its own size."""
        return self.size or (self.photo.shape[1], self.photo.shape[0])

    @property
    def scaled(self) -> bool:
        """True when the photo was matted smaller than its own size."""
        return self.own_size != (self.photo.shape[1], self.photo.shape[0])

    @property
    def scale(self) -> tuple[float, float]:
        """(across, down): the matted photo's size over the photo's own size."""
        width, height = self.own_size
        return self.photo.shape[1] / width, self.photo.shape[0] / height

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

    def _fresh(self, stems: tuple[str, ...]) -> bool:
        """Whether the files ``stems`` are all there; each is marked as just used (a disk
        budget removes the least recently used files first)."""
        try:
            for stem in stems:
                os.utime(self.folder / f"{stem}.png")
        except FileNotFoundError:
            return False
        return True

    def write_files(self, original: np.ndarray | None = None, *, downloads: bool = True) -> None:
        """Write the views, and the downloads when asked and they can be made here, or mark
        them as just used when they are there.

        Args:
            original: the photo at its own size, needed for the downloads of a photo matted
                scaled down (without it they are left as they are).
            downloads: False writes the views only.
        """
        alpha = self.result.alpha
        if not self._fresh(VIEWS):
            self.file("matte", editing.matte_to_bits(alpha, 8))
            scale_x, scale_y = self.scale
            shown = overlay(self.photo, alpha)
            self.file("overlay", draw_corrections(shown, self.corrections.scaled(scale_x, scale_y)))
        if not downloads or self._fresh(DOWNLOADS):
            return
        if not self.scaled:
            self.estimate_foreground()
            self.file("cutout", self.edit.cutout())
            self.file("matte16", editing.matte_to_bits(alpha, 16))
        elif original is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_downloads(self.folder, original, alpha)

    @property
    def has_downloads(self) -> bool:
        return all((self.folder / f"{stem}.png").is_file() for stem in DOWNLOADS)

    def strip(self) -> list[tuple[str, str]]:
        """The candidates' pictures and captions for the strip (written on first use)."""
        out = []
        for row, candidate in zip(self.candidates, self.result.candidates[:STRIP_SIZE]):
            path = self.folder / f"candidate-{row['index']}.png"
            if not self._fresh((path.stem,)):
                path = self.file(path.stem, thumbnail(self.photo, candidate.mask))
            out.append((str(path), caption(row)))
        return out

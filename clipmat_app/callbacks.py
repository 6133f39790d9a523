"""What the app's events do: matte, edit, switch predictor. Widgets are in :mod:`clipmat_app.ui`.

Every matte goes through one :class:`~clipmat_app.service.MatteService`, so a photo is decoded
and fingerprinted once per request, and an edit after a matte reuses it from the cache.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from clipmat_app.pool import PredictorPool
from clipmat_app.service import EditSettings, Matte, MatteService
from clipmat_app.texts import no_predictor_text, predictor_text, status_text

try:  # Hugging Face Spaces with ZeroGPU: matting runs on a GPU lent per call
    import spaces
except ImportError:
    spaces = None


class Callbacks:
    """The event handlers of one app, over its predictor pool and matte service."""

    def __init__(self, pool: PredictorPool, service: MatteService) -> None:
        self.pool = pool
        self.service = service
        if spaces is not None:
            self.matte = spaces.GPU(self.matte)

    def _matte(self, image: Any, phrase: Any, predictor: str, refine: bool, **kw: Any) -> Matte:
        if not predictor:
            raise gr.Error(no_predictor_text(self.pool))
        try:
            return self.service.matte(image, phrase, predictor, refine=bool(refine), **kw)
        except (ValueError, TypeError) as err:
            raise gr.Error(str(err)) from None

    def matte(self, image, phrase, predictor, refine=False, progress=gr.Progress()):  # noqa: B008
        """/matte: the matte, overlay, status, cutout and 16-bit matte files, and the state
        the edit controls read."""
        matte = self._matte(image, phrase, predictor, refine, progress=progress)
        for note in matte.notes:
            gr.Warning(note)
        folder = matte.folder
        return (
            str(folder / "matte.png"),
            str(folder / "overlay.png"),
            status_text(matte),
            str(folder / "cutout.png"),
            str(folder / "matte16.png"),
            {"key": matte.key, "phrase": phrase, "predictor": predictor, "refine": bool(refine)},
        )

    def edit(self, image, phrase, predictor, mode, effects, strength, color, background, refine=False):  # fmt: skip
        """/edit: stateless; the matte comes from the cache or is computed."""
        settings = self._settings(mode, effects, strength, color, background)
        return self._edit_file(self._matte(image, phrase, predictor, refine), settings)

    def ui_edit(self, image, last, mode, effects, strength, color, background):
        """The edit view after a matte or a control change: the matte of ``last`` from the
        cache (the photo is not read again), recomputed only when it was evicted."""
        if image is None or not last:
            return None
        settings = self._settings(mode, effects, strength, color, background)
        matte = self.service.lookup(last["key"])
        if matte is None:
            matte = self._matte(image, last["phrase"], last["predictor"], last["refine"])
        return self._edit_file(matte, settings)

    def _settings(self, mode, effects, strength, color, background) -> EditSettings:
        try:
            return EditSettings(mode, tuple(effects or ()), float(strength), color, background)
        except (ValueError, TypeError) as err:
            raise gr.Error(str(err)) from None

    def _edit_file(self, matte: Matte, settings: EditSettings) -> str:
        try:
            return str(self.service.edit_file(matte, settings))
        except (ValueError, TypeError) as err:
            raise gr.Error(str(err)) from None

    def select_predictor(self, name: str, progress=gr.Progress()):  # noqa: B008
        """Load the predictor the user picked and describe it."""
        try:
            progress(0.1, desc=f"Loading {name}")
            self.pool.get(name)
        except ValueError as err:
            gr.Warning(str(err))
        return predictor_text(self.pool, name)

    @staticmethod
    def mode_controls(mode: str) -> tuple[dict, dict, dict, dict]:
        """Which edit controls the mode uses: effects, strength, colour, background."""
        return (
            gr.update(visible=mode == "highlight"),
            gr.update(visible=mode == "highlight"),
            gr.update(visible=mode in ("highlight", "color")),
            gr.update(visible=mode == "background"),
        )

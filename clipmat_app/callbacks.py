"""What the app's events do: matte, edit, switch predictor. Widgets are in :mod:`clipmat_app.ui`.

Every matte goes through one :class:`~clipmat_app.service.MatteService`, so a photo is decoded
and fingerprinted once per request, an edit after a matte reuses it from the cache, and every
endpoint shares the service's matting limit.

A bad input is answered with a ``gr.Error`` that says what was wrong and what is accepted. Any
other failure is logged here with its stack and answered with one plain message: no stack, no
handler name and no server path reaches the user.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from clipmat_app.pool import PredictorPool
from clipmat_app.service import DEFAULT_COLOR, EditSettings, Matte, MatteService
from clipmat_app.texts import no_predictor_text, predictor_text, status_text

try:  # Hugging Face Spaces with ZeroGPU: matting runs on a GPU lent per call
    import spaces
except ImportError:
    spaces = None

LOG = logging.getLogger("clipmat_app")
FAILED = "something went wrong on the server while doing this; please try again"


def user_error(message: str) -> gr.Error:
    """An error the user made: shown to them, not logged with a stack."""
    return gr.Error(message, print_exception=False)


def guarded(handler: Callable) -> Callable:
    """``handler`` with unexpected exceptions logged and answered with :data:`FAILED`."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except Exception:
            LOG.exception("request failed")
            raise user_error(FAILED) from None

    return wrapper


def _flag(value: Any, name: str, default: bool) -> bool:
    """A true/false input (None: ``default``)."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise user_error(f"{name} must be true or false, got {type(value).__name__}")
    return value


class Callbacks:
    """The event handlers of one app, over its predictor pool and matte service."""

    def __init__(self, pool: PredictorPool, service: MatteService) -> None:
        self.pool = pool
        self.service = service
        self.matte = guarded(self.matte)
        self.edit = guarded(self.edit)
        self.ui_edit = guarded(self.ui_edit)
        if spaces is not None:
            self.matte = spaces.GPU(self.matte)

    def _matte(self, image: Any, phrase: Any, predictor: str, refine: Any, **kw: Any) -> Matte:
        if not predictor:
            raise user_error(no_predictor_text(self.pool))
        refine = _flag(refine, "refine", False)
        try:
            return self.service.matte(image, phrase, predictor, refine=refine, **kw)
        except (ValueError, TypeError) as err:
            raise user_error(str(err)) from None

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
        if effects is not None and not isinstance(effects, list | tuple):
            raise user_error("effects must be a list of effect names")
        color = DEFAULT_COLOR if color is None else color
        try:
            return EditSettings(mode, tuple(effects or ()), strength, color, background)
        except (ValueError, TypeError) as err:
            raise user_error(str(err)) from None

    def _edit_file(self, matte: Matte, settings: EditSettings) -> str:
        try:
            return str(self.service.edit_file(matte, settings))
        except (ValueError, TypeError) as err:
            raise user_error(str(err)) from None

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

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

from clipmat_app.corrections import Corrections
from clipmat_app.edits import DEFAULT_COLOR, EditSettings
from clipmat_app.mattes import Matte
from clipmat_app.pool import PredictorPool
from clipmat_app.service import MatteService
from clipmat_app.texts import loading_text, no_predictor_text, predictor_text, status_text

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


def on_gpu(handler: Callable, wanted: bool = True) -> Callable:
    """``handler`` run on a GPU lent per call on a Space with ZeroGPU (``spaces`` present)."""
    return spaces.GPU(handler) if wanted and spaces is not None else handler


def parse_corrections(points: Any, box: Any, candidate: Any) -> Corrections:
    """The API's clicks, box and candidate, or a ``gr.Error`` that says what is accepted."""
    try:
        return Corrections.parse(points, box, candidate)
    except ValueError as err:
        raise user_error(str(err)) from None


class Callbacks:
    """The event handlers of one app, over its predictor pool and matte service. The page's
    click, pick and clear handlers are in :class:`clipmat_app.clicks.ClickCallbacks`."""

    def __init__(self, pool: PredictorPool, service: MatteService) -> None:
        self.pool = pool
        self.service = service
        for name in self.GUARDED:
            setattr(self, name, on_gpu(guarded(getattr(self, name)), name in self.ON_GPU))

    GUARDED = ("matte", "ui_matte", "edit", "ui_edit", "strip", "downloads")
    ON_GPU = ("matte", "ui_matte")

    def _matte(
        self,
        image: Any,
        phrase: Any,
        predictor: str,
        refine: Any,
        corrections: Corrections | None = None,
        **kw: Any,
    ) -> Matte:
        if not predictor:
            raise user_error(no_predictor_text(self.pool))
        refine = _flag(refine, "refine", False)
        try:
            return self.service.matte(
                image, phrase, predictor, refine=refine, corrections=corrections, **kw
            )
        except (ValueError, TypeError) as err:
            raise user_error(str(err)) from None

    def matte(
        self,
        image,
        phrase,
        predictor,
        refine=False,
        points=None,
        box=None,
        candidate=None,
        progress=gr.Progress(track_tqdm=True),  # noqa: B008  (Gradio reads its tracker here)
    ):
        """/matte: the matte, overlay, status, cutout and 16-bit matte files, the candidates
        ([{index, phrase, score, box, area, chosen}, ...], boxes in the photo's pixels), and
        the state the edit controls read. ``points`` ([[x, y, positive], ...]), ``box``
        ([x0, y0, x1, y1]) and ``candidate`` (an index into the candidates) correct the matte;
        with a box or a positive click the phrase may be empty."""
        corrections = parse_corrections(points, box, candidate)
        return self.respond(image, phrase, predictor, refine, corrections, progress=progress)

    def ui_matte(
        self,
        image,
        phrase,
        predictor,
        refine=False,
        points=None,
        box=None,
        candidate=None,
        progress=gr.Progress(track_tqdm=True),  # noqa: B008  (Gradio reads its tracker here)
    ):
        """The page's Matte button and Enter: as /matte, but the downloads (the photo's own
        size) follow in their own event, so the matte is shown first."""
        corrections = parse_corrections(points, box, candidate)
        return self.respond(
            image, phrase, predictor, refine, corrections, downloads=False, progress=progress
        )

    def respond(
        self,
        image: Any,
        phrase: Any,
        predictor: str,
        refine: Any,
        corrections: Corrections,
        *,
        downloads: bool = True,
        warn: bool = True,
        progress: Any = None,
    ) -> tuple:
        """Matte and answer with /matte's outputs (the download buttons empty while their files
        are left for later); ``warn`` shows the notes as pop-ups too."""
        matte = self._matte(
            image, phrase, predictor, refine, corrections, downloads=downloads, progress=progress
        )
        if warn:
            for note in matte.notes:
                gr.Warning(note)
        out = list(self.outputs(matte, phrase, predictor, refine))
        if not matte.has_downloads:
            out[3] = out[4] = None
        return tuple(out)

    @staticmethod
    def outputs(matte: Matte, phrase: Any, predictor: str, refine: Any) -> tuple:
        """What /matte returns: the files, the status, the candidates and the page's state."""
        folder = matte.folder
        last = {
            "key": matte.key,
            "phrase": phrase,
            "predictor": predictor,
            "refine": bool(refine),
            "size": list(matte.own_size),
            "shown": [matte.photo.shape[1], matte.photo.shape[0]],
            "corrections": {
                **matte.corrections.as_json(),
                "candidate": matte.corrections.candidate,
            },
        }
        return (
            str(folder / "matte.png"),
            str(folder / "overlay.png"),
            status_text(matte),
            str(folder / "cutout.png"),
            str(folder / "matte16.png"),
            matte.candidates,
            last,
        )

    def downloads(self, image: Any, last: Any) -> tuple[Any, Any]:
        """The cutout and 16-bit matte of the matte in ``last``, at the photo's own size: the
        page's last step after a matte (which it shows first)."""
        key = last.get("key") if last else None
        matte = self.service.downloads(key, image) if key and image is not None else None
        if matte is None:
            return None, None
        return str(matte.folder / "cutout.png"), str(matte.folder / "matte16.png")

    def strip(self, last: Any) -> Any:
        """The candidates' strip of the matte in ``last`` (hidden when there is one or none)."""
        matte = self.service.lookup(last["key"]) if last and last.get("key") else None
        items = matte.strip() if matte is not None else []
        return gr.update(value=items or None, visible=len(items) > 1)

    def edit(
        self, image, phrase, predictor, mode, effects, strength, color, background, refine=False
    ):
        """/edit: stateless; the matte comes from the cache or is computed."""
        settings = self._settings(mode, effects, strength, color, background)
        matte = self._matte(image, phrase, predictor, refine, downloads=False)
        return self._edit_file(matte, settings)

    def ui_edit(self, image, last, mode, effects, strength, color, background):
        """The edit view after a matte or a control change: the matte of ``last`` from the
        cache (the photo is not read again), recomputed only when it was evicted."""
        if image is None or not last or not last.get("key"):
            return None
        settings = self._settings(mode, effects, strength, color, background)
        matte = self.service.lookup(last["key"])
        if matte is None:
            corrections = Corrections.parse(**last.get("corrections", {}))
            matte = self._matte(
                image,
                last["phrase"],
                last["predictor"],
                last["refine"],
                corrections,
                downloads=False,
            )
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

    def select_predictor(self, name: str, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        """Load the predictor the user picked and describe it."""
        try:
            progress(0.1, desc=loading_text(name))
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

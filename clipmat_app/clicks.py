"""What the page's corrections do: a click on the overlay (add, remove, or a box corner), a pick
in the candidates' strip, clearing them, and the photo shown there before any matte.

Clicks and boxes are kept in the photo's own pixels, in the page's ``points`` and ``box``
fields, the same values /matte takes; the overlay shows the photo as matted (at most MAX_SIDE),
so a click there is mapped back with the sizes in the page's state.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gradio as gr

from clipmat_app.callbacks import Callbacks, guarded, on_gpu, parse_corrections, user_error
from clipmat_app.corrections import MAX_POINTS, Corrections

CLICK_MODES = ("add", "remove", "box")
NO_PHOTO = "upload a photo first, then click on it"
MIN_BOX = 2  # pixels: a box's smallest width and height


class ClickCallbacks:
    """Handlers of the page's corrections, beside the app's :class:`Callbacks`."""

    def __init__(self, callbacks: Callbacks) -> None:
        self.cb = callbacks
        self.service = callbacks.service
        for name in ("preview", "click", "pick", "clear"):
            setattr(self, name, on_gpu(guarded(getattr(self, name)), name != "preview"))

    def preview(self, image: Any) -> tuple[Any, Any]:
        """The photo in the overlay view as soon as it is there, so a box can be drawn on it
        before any matte; and the page's state (no matte yet)."""
        if image is None:
            return None, None
        try:
            path, size, shown = self.service.view(image, Corrections())
        except (ValueError, TypeError) as err:
            raise user_error(str(err)) from None
        return str(path), {"key": None, "size": list(size), "shown": list(shown)}

    def click(
        self,
        image,
        phrase,
        predictor,
        refine,
        points,
        box,
        candidate,
        mode,
        corner,
        last,
        evt: gr.SelectData,
    ):
        """A click on the overlay: "add" or "remove" a click there and matte again; "box": the
        first click sets a corner (shown), the second the opposite one, and it mattes."""
        if image is None or not last:
            raise user_error(NO_PHOTO)
        corrections = parse_corrections(points, box, candidate)
        x, y = _position(evt, last)
        if mode == "box":
            if not corner:
                path, _, _ = self.service.view(image, corrections, (x, y), key=last.get("key"))
                status = f"Box: first corner at ({x}, {y}); now click the opposite corner."
                skip = gr.skip()
                return (skip, str(path), status, *([skip] * 7), [x, y])
            corrections = dataclasses.replace(corrections, box=_box(corner, (x, y), last["size"]))
        elif mode in ("add", "remove"):
            if len(corrections.points) >= MAX_POINTS:
                raise user_error(
                    f"at most {MAX_POINTS} clicks; press 'Clear clicks and box' to start again"
                )
            point = (float(x), float(y), mode == "add")
            corrections = dataclasses.replace(corrections, points=(*corrections.points, point))
        else:
            raise user_error(f"the click mode must be one of {', '.join(CLICK_MODES)}")
        return self._matte(image, phrase, predictor, refine, corrections)

    def pick(self, image, refine, last, evt: gr.SelectData):
        """A candidate picked in the strip: matte it instead (the clicks and box cleared)."""
        if image is None or not last or not last.get("key"):
            raise user_error("matte a phrase first; its candidates are shown below the matte")
        index = evt.index
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise user_error("pick a candidate in the strip")
        corrections = Corrections(candidate=index)
        return self._matte(image, last["phrase"], last["predictor"], refine, corrections)

    def clear(self, image, phrase, predictor, refine):
        """The clicks, box and pick cleared: the phrase's own matte, or with no phrase the
        photo again."""
        if image is None:
            return (*([None] * 6), None, None, None, None, None)
        if phrase is None or not str(phrase).strip():
            view, state = self.preview(image)
            status = "Clicks and box cleared. Type a phrase, or draw a box or click on the object."
            return (None, view, status, None, None, [], state, None, None, None, None)
        return self._matte(image, phrase, predictor, refine, Corrections())

    def _matte(
        self, image: Any, phrase: Any, predictor: str, refine: Any, corrections: Corrections
    ):
        """Matte again and show it; the downloads follow in their own event (ui.py), so the
        overlay answers first."""
        out = self.cb.respond(
            image, phrase, predictor, refine, corrections, downloads=False, warn=False
        )
        kept = out[-1][
            "corrections"
        ]  # as matted: the box clipped to the photo, no pick without a phrase
        return (*out, kept["points"] or None, kept["box"], kept["candidate"], None)


def _position(evt: Any, last: dict) -> tuple[int, int]:
    """The click's pixel on the photo at its own size, from the overlay's pixel ``evt.index``
    (the overlay shows the photo at ``last["shown"]``; its own size is ``last["size"]``)."""
    index = getattr(evt, "index", None)
    if not isinstance(index, list | tuple) or len(index) != 2:
        raise user_error("click on the photo in the overlay view")
    try:
        x, y = (float(v) for v in index)
    except (TypeError, ValueError):
        raise user_error("click on the photo in the overlay view") from None
    (width, height), (shown_w, shown_h) = last["size"], last["shown"]
    col = min(width - 1, max(0, round(x * width / shown_w)))
    row = min(height - 1, max(0, round(y * height / shown_h)))
    return int(col), int(row)


def _box(corner: Any, other: tuple[int, int], size: list[int]) -> tuple[float, ...]:
    """The box with opposite corners ``corner`` and ``other`` (both pixels, inclusive)."""
    x0, x1 = sorted((corner[0], other[0]))
    y0, y1 = sorted((corner[1], other[1]))
    if x1 - x0 < MIN_BOX or y1 - y0 < MIN_BOX:
        raise user_error(
            "the box is too small: click one corner of the object, then the opposite corner"
        )
    return float(x0), float(y0), float(min(x1 + 1, size[0])), float(min(y1 + 1, size[1]))

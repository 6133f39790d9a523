"""The plain HTTP API beside the page: one multipart request in, the PNG itself out.

    curl -F image=@photo.jpg -F text="the cat" http://127.0.0.1:7860/api/matte -o matte.png
    curl -F image=@photo.jpg -F text="the cat" -F output=cutout ... -o cutout.png
    curl http://127.0.0.1:7860/api/health

``POST /api/matte`` takes the form fields:

- ``image`` (a file, required) and ``text`` (the phrase; may be empty with a box or a positive
  click);
- ``box``: "x0,y0,x1,y1" (or a JSON list) and ``points``: JSON ``[[x, y, 1|0], ...]``, in the
  photo's own pixels;
- ``predictor`` (the app's current one by default), ``refine`` (true|false);
- ``output``: matte (default) | cutout | overlay | highlight | background | color;
  ``background``: a file for output=background (none: the photo's own, blurred); ``color``:
  the colour of output=color, the tint of highlight;
- ``depth``: 8 (default) or 16, the matte's bits.

It answers ``image/png``: the matte and the cutout at the photo's own size, the overlay and the
edits at the size the app mattes at. Headers: ``X-Clipmat-Predictor``, ``X-Clipmat-Confidence``,
``X-Clipmat-Unsure`` and ``X-Clipmat-Notes`` (a JSON list, ASCII). Errors are JSON
``{"error": "..."}``: 400 (not a form, no image), 413 (too large), 422 (a value not accepted),
429 (too many of this address's requests waiting or running).

Every request passes the page's admission (the per-address cap counts the page's jobs and these
together; :meth:`clipmat_app.admission.Admission.api_job`), the same input checks, and the
matting slots of :class:`clipmat_app.service.MatteService`. It waits for a slot in the slots'
own line rather than in Gradio's queue; ``GET /api/health`` answers 200 with the loaded
predictors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import editing
from clipmat.imageio import ImageInputError, load_image
from clipmat_app.admission import Admission, client_address
from clipmat_app.corrections import Corrections
from clipmat_app.edits import DEFAULT_COLOR, EditSettings
from clipmat_app.inputs import MAX_PIXELS, phrase_problem
from clipmat_app.service import MatteService

OUTPUTS = ("matte", "cutout", "overlay", "highlight", "background", "color")
EDIT_OUTPUTS = ("highlight", "background", "color")
FIELDS = (
    "image",
    "text",
    "box",
    "points",
    "predictor",
    "refine",
    "output",
    "background",
    "color",
    "depth",
)
MAX_FIELD_CHARS = 4000  # any text field


class APIError(Exception):
    """A request the API answers with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PlainAPI:
    """The routes of the plain HTTP API over one app's service and admission.

    Args:
        service: the app's matte service (its pool, matting slots and disk budget).
        admission: the page's admission, whose caps these requests share.
        queue: the page's Gradio queue, whose waiting jobs count against those caps.
        default: the predictor used when a request names none.
    """

    def __init__(
        self, service: MatteService, admission: Admission, queue: Any, default: str | None
    ) -> None:
        self.service, self.admission, self.queue = service, admission, queue
        self.default = default

    def routes(self) -> list[Route]:
        return [
            Route("/api/matte", self.matte, methods=["POST"]),
            Route("/api/health", self.health, methods=["GET"]),
        ]

    async def health(self, request: Request) -> JSONResponse:
        pool = self.service.pool
        loaded = [name for name in pool.names() if pool.loaded(name)]
        return JSONResponse({"status": "ok", "predictors": loaded, "default": self.default})

    async def matte(self, request: Request) -> Response:
        try:
            form = await _form(request)
            address = client_address(request, self.admission.trusted_proxies)
            with self.admission.api_job(self.queue, address):
                fields = await _fields(form)
                return await run_in_threadpool(self._answer, fields)
        except APIError as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)
        except HTTPException as err:  # the admission's 429
            headers = dict(err.headers or {})
            return JSONResponse({"error": err.detail}, status_code=err.status_code, headers=headers)

    def _answer(self, fields: dict[str, Any]) -> Response:
        """Matte (within a matting slot) and render the asked output as PNG bytes."""
        output = fields["output"]
        try:
            matte = self.service.matte(
                fields["image"],
                fields["text"],
                fields["predictor"] or self.default or "",
                refine=fields["refine"],
                corrections=fields["corrections"],
                downloads=output in ("matte", "cutout"),
            )
            if output in EDIT_OUTPUTS:
                settings = EditSettings(
                    mode=output, color=fields["color"], background=fields["background"]
                )
                body = Path(self.service.edit_file(matte, settings)).read_bytes()
            elif output == "matte":
                alpha = editing.load_matte(matte.folder / "matte16.png")
                body = editing.encode_matte(alpha, bits=fields["depth"])
            else:  # cutout, overlay: written with the matte
                body = (matte.folder / f"{output}.png").read_bytes()
        except (ValueError, TypeError) as err:
            raise APIError(422, str(err)) from None
        except FileNotFoundError:
            raise APIError(503, "the result was removed under the disk budget; retry") from None
        result = matte.result
        headers = {
            "X-Clipmat-Predictor": fields["predictor"] or self.default or "",
            "X-Clipmat-Confidence": f"{float(result.confidence):.4f}",
            "X-Clipmat-Unsure": "true" if result.unsure else "false",
            "X-Clipmat-Notes": json.dumps(matte.notes + list(result.notes)),
        }
        return Response(body, media_type="image/png", headers=headers)


async def _form(request: Request) -> Any:
    """The request's multipart form, or a 400 saying what is expected."""
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        raise APIError(400, "send a multipart form (curl -F image=@photo.jpg -F text=...)")
    try:
        return await request.form(max_files=2, max_fields=len(FIELDS))
    except Exception as err:  # malformed multipart: the parser's own message
        raise APIError(400, f"the form could not be read: {err}") from None


async def _fields(form: Any) -> dict[str, Any]:
    """The form's fields checked and converted (see the module's docstring).

    Raises:
        APIError: 400 for a missing image or an unknown field, 422 for a value not accepted.
    """
    unknown = sorted(set(form.keys()) - set(FIELDS))
    if unknown:
        raise APIError(400, f"unknown field(s) {unknown[:5]}; the fields are {', '.join(FIELDS)}")
    image = form.get("image")
    if not isinstance(image, UploadFile):
        raise APIError(400, "no image: send the photo as a file field, -F image=@photo.jpg")
    text = _text(form, "text")
    if (problem := phrase_problem(text)) is not None:
        raise APIError(422, problem)
    output = _text(form, "output") or "matte"
    if output not in OUTPUTS:
        raise APIError(422, f"output must be one of {', '.join(OUTPUTS)}, got {output[:40]!r}")
    depth = _text(form, "depth") or "8"
    if depth not in ("8", "16"):
        raise APIError(422, f"depth must be 8 or 16, got {depth[:40]!r}")
    refine = (_text(form, "refine") or "false").lower()
    if refine not in ("true", "false", "1", "0"):
        raise APIError(422, f"refine must be true or false, got {refine[:40]!r}")
    try:
        corrections = Corrections.parse(_text(form, "points") or None, _box(_text(form, "box")))
    except ValueError as err:
        raise APIError(422, str(err)) from None
    return {
        "image": await image.read(),
        "text": text,
        "predictor": _text(form, "predictor"),
        "refine": refine in ("true", "1"),
        "corrections": corrections,
        "output": output,
        "depth": int(depth),
        "color": _text(form, "color") or DEFAULT_COLOR,
        "background": await _background(form.get("background"), output),
    }


def _text(form: Any, name: str) -> str:
    """A text field ("" when absent); a file or an over-long value is refused."""
    value = form.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_FIELD_CHARS:
        raise APIError(422, f"{name} must be text of at most {MAX_FIELD_CHARS} characters")
    return value.strip()


def _box(text: str) -> Any:
    """A box given as "x0,y0,x1,y1" turned into a JSON list; JSON and "" as they are."""
    if text and not text.startswith("["):
        return f"[{text}]"
    return text or None


async def _background(value: Any, output: str) -> np.ndarray | None:
    """The background photo of output=background, read; None for the photo's own, blurred."""
    if value is None:
        return None
    if output != "background":
        raise APIError(422, "a background file goes with output=background")
    if not isinstance(value, UploadFile):
        raise APIError(422, "background must be a file: -F background=@beach.jpg")
    data = await value.read()
    try:
        return load_image(data, max_pixels=MAX_PIXELS)
    except (ImageInputError, ValueError, OSError) as err:
        raise APIError(422, f"the background could not be read as a photo: {err}") from None

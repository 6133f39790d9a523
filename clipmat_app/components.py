"""Gradio components the app adds: an image input that reads only files Gradio received.

:data:`PhotoInput` is ``gr.Image`` with its own ``preprocess``: the payload must be a file in
Gradio's upload folder or cache, or a bundled example (checked after resolving the path, so
``..`` and symbolic links do not escape), or a ``data:`` URL within the inline limit. Anything
else, whether or not it exists, gets one message that says nothing about the path. Remote URLs
are never fetched. These checks also run before a job is queued (:mod:`clipmat_app.admission`);
here they hold for any route that reaches the component.
"""

from __future__ import annotations

import os
from abc import ABCMeta
from typing import Any

import gradio as gr
import PIL.Image

from clipmat_app.inputs import (
    NOT_AN_UPLOAD,
    decode_data_url,
    upload_folders,
    upload_problem,
)


def _error(message: str) -> gr.Error:
    return gr.Error(message, print_exception=False)


UNREADABLE = (
    "this file could not be read as an image; upload a JPEG, PNG, WebP, BMP, TIFF or GIF photo"
)


def _read_upload(self: gr.Image, payload: Any) -> str | bytes | None:
    """The upload's resolved path (or the bytes of a ``data:`` URL), after the checks above and
    a look at the file's header."""
    if payload is None:
        return None
    url = getattr(payload, "url", None)
    if isinstance(url, str) and url.startswith("data:"):
        try:
            return decode_data_url(url)
        except ValueError as err:
            raise _error(str(err)) from None
    path = getattr(payload, "path", None)
    problem = upload_problem(path, upload_folders(self.GRADIO_CACHE))
    if problem:
        raise _error(problem)
    real = os.path.realpath(path)
    try:
        with PIL.Image.open(real):  # the header only
            pass
    except (OSError, ValueError, PIL.Image.DecompressionBombError):
        raise _error(UNREADABLE) from None
    uploads = upload_folders()[0]
    if real.startswith(str(uploads) + os.sep):
        try:
            os.utime(real)  # used again: the disk budget removes it last
        except OSError:
            pass
    return real


async def _no_download(self: gr.Image, url_or_file_path: Any) -> Any:
    """Gradio copies an input into its cache here; a URL would be downloaded: refuse it."""
    if isinstance(url_or_file_path, str) and "://" in url_or_file_path:
        raise _error(NOT_AN_UPLOAD)
    return await gr.Image.async_move_resource_to_block_cache(self, url_or_file_path)


# gr.Image with the same front end and the checks above. Construct it with image_mode=None and
# type="filepath": the uploaded file then reaches our loader untouched (the default "RGB"
# re-encodes grayscale, 16-bit and CMYK files lossily). It is made with ABCMeta.__new__ because
# gradio's component metaclass would write a .pyi stub beside this file for a subclass declared
# with `class`; the metaclass adds nothing else for a subclass without its own __init__ or EVENTS.
PhotoInput = ABCMeta.__new__(
    type(gr.Image),
    "PhotoInput",
    (gr.Image,),
    {
        "__module__": __name__,
        "__doc__": "gr.Image that reads only files Gradio received, and reports bad ones clearly.",
        "is_template": True,  # rendered by the built-in image component
        "preprocess": _read_upload,
        "async_move_resource_to_block_cache": _no_download,
        "get_component_class_id": classmethod(lambda cls: gr.Image.get_component_class_id()),
    },
)

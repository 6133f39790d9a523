"""Gradio components the app adds: an image input that reports unreadable uploads clearly."""

from __future__ import annotations

from abc import ABCMeta
from typing import Any

import gradio as gr
import PIL.Image


def _read_upload(self: gr.Image, payload: Any) -> Any:
    try:
        return gr.Image.preprocess(self, payload)
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as err:
        raise gr.Error(
            f"this file could not be read as an image ({type(err).__name__}); "
            "upload a JPEG, PNG, WebP, BMP, TIFF or GIF photo"
        ) from None


# gr.Image with the same front end that answers an unreadable upload with a clear message.
# Construct it with image_mode=None and type="filepath": the uploaded file then reaches our loader
# untouched (the default "RGB" re-encodes grayscale, 16-bit and CMYK files lossily). It is made
# with ABCMeta.__new__ because gradio's component metaclass would write a .pyi stub beside this
# file for a subclass declared with `class`; the metaclass adds nothing else for a subclass
# without its own __init__ or EVENTS.
PhotoInput = ABCMeta.__new__(
    type(gr.Image),
    "PhotoInput",
    (gr.Image,),
    {
        "__module__": __name__,
        "__doc__": "gr.Image that reports unreadable uploads clearly.",
        "is_template": True,  # rendered by the built-in image component
        "preprocess": _read_upload,
        "get_component_class_id": classmethod(lambda cls: gr.Image.get_component_class_id()),
    },
)

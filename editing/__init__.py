"""Edits from an image and any soft alpha matte: highlight, new background, colour, cutout."""

from editing.compositing import fit_background, parse_color
from editing.export import (
    decode_png,
    encode_matte,
    encode_png,
    load_matte,
    matte_to_bits,
    save_matte,
    save_png,
)
from editing.foreground import (
    Foreground,
    ForegroundCache,
    clear_cache,
    default_cache,
    estimate_foreground,
)
from editing.operations import (
    EFFECTS,
    MatteEdit,
    cutout,
    fill_color,
    highlight,
    replace_background,
)

__all__ = [
    "EFFECTS",
    "Foreground",
    "ForegroundCache",
    "MatteEdit",
    "clear_cache",
    "cutout",
    "decode_png",
    "default_cache",
    "encode_matte",
    "encode_png",
    "estimate_foreground",
    "fill_color",
    "fit_background",
    "highlight",
    "load_matte",
    "matte_to_bits",
    "parse_color",
    "replace_background",
    "save_matte",
    "save_png",
]

"""RefMatte data: loader, generation engine and the procedural mini world (numpy only)."""

from clipmat.data.colors import ColourNamer, css_palette
from clipmat.data.composition import (
    RELATIONS,
    Foreground,
    Scene,
    SceneEntity,
    compose_scene,
    composite_layers,
    occluded_alphas,
)
from clipmat.data.expressions import ExpressionWriter, load_templates, swap_left_right
from clipmat.data.foregrounds import load_background_pool, load_foreground_pool
from clipmat.data.miniworld import MiniWorld
from clipmat.data.refmatte import RefMatte, load_records, locate_split, write_scenes
from clipmat.data.samples import SETTINGS, make_sample

__all__ = [
    "RELATIONS",
    "SETTINGS",
    "ColourNamer",
    "ExpressionWriter",
    "Foreground",
    "MiniWorld",
    "RefMatte",
    "Scene",
    "SceneEntity",
    "compose_scene",
    "composite_layers",
    "css_palette",
    "load_background_pool",
    "load_foreground_pool",
    "load_records",
    "load_templates",
    "locate_split",
    "make_sample",
    "occluded_alphas",
    "swap_left_right",
    "write_scenes",
]

"""Pretrained weights: their names (``registry``), where they are on disk (``hub``), the network
(``remote``), state dicts on disk (``weights_io``), and the ``download`` and ``push`` commands.
"""

from clipmat.pretrained.hub import (
    WeightsNotFoundError,
    locate_weights,
    resolve_weights,
    weights_dir,
)
from clipmat.pretrained.registry import WeightSpec, get_weight_spec, list_pretrained

__all__ = [
    "WeightSpec",
    "WeightsNotFoundError",
    "get_weight_spec",
    "list_pretrained",
    "locate_weights",
    "resolve_weights",
    "weights_dir",
]

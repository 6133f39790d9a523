"""The predictors: one interface (``base``) and what it gives (``results``), the paper's model
behind it (``clipmat``), the user's clicks and box (``corrections``), how far to trust a result
(``trust``), and the names users pick with the "auto" policy (``loading``). The training-free
predictor is its own package, :mod:`clipmat.zeroshot`.
"""

from clipmat.predictors.base import Predictor
from clipmat.predictors.clipmat import CLIPMatPredictor
from clipmat.predictors.loading import (
    MiniWorldOnlyWarning,
    auto_choice,
    list_predictors,
    load_predictor,
)
from clipmat.predictors.results import Candidate, EncodedImage, MattingResult, Photo

__all__ = [
    "CLIPMatPredictor",
    "Candidate",
    "EncodedImage",
    "MattingResult",
    "MiniWorldOnlyWarning",
    "Photo",
    "Predictor",
    "auto_choice",
    "list_predictors",
    "load_predictor",
]

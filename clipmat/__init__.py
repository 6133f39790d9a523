"""CLIPMat: referring image matting. A phrase in, a soft alpha matte out.

import clipmat
p = clipmat.load_predictor("mini-world")
r = p.predict(image, "the red star")   # r.alpha: (H, W) float32 in [0, 1]
"""

from clipmat import metrics, refine  # noqa: F401
from clipmat.config import CLIPMatConfig, CLIPTowersConfig
from clipmat.factory import (
    create_model,
    get_model_config,
    list_models,
    load_clip_pretrained,
    load_model,
    save_model,
)
from clipmat.model.clipmat import CLIPMat, CLIPMatOutput
from clipmat.predictors.base import Predictor
from clipmat.predictors.clipmat import CLIPMatPredictor
from clipmat.predictors.loading import (
    MiniWorldOnlyWarning,
    auto_choice,
    list_predictors,
    load_predictor,
)
from clipmat.predictors.results import Candidate, EncodedImage, MattingResult, Photo
from clipmat.pretrained.hub import WeightsNotFoundError
from clipmat.pretrained.registry import list_pretrained
from clipmat.zeroshot import ZeroShotConfig, ZeroShotPredictor, load_zeroshot_predictor

__all__ = [
    "CLIPMat",
    "CLIPMatConfig",
    "CLIPMatOutput",
    "CLIPMatPredictor",
    "CLIPTowersConfig",
    "Candidate",
    "EncodedImage",
    "MattingResult",
    "MiniWorldOnlyWarning",
    "Photo",
    "Predictor",
    "WeightsNotFoundError",
    "ZeroShotConfig",
    "ZeroShotPredictor",
    "auto_choice",
    "create_model",
    "get_model_config",
    "list_models",
    "list_predictors",
    "list_pretrained",
    "load_clip_pretrained",
    "load_model",
    "load_predictor",
    "load_zeroshot_predictor",
    "metrics",
    "refine",
    "save_model",
]

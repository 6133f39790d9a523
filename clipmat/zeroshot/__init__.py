"""Zero-shot referring matting: dense CLIP similarity, candidates, trimap, closed-form matting."""

from clipmat.zeroshot.config import ZeroShotConfig
from clipmat.zeroshot.loading import create_backbone, load_clip_backbone, load_zeroshot_predictor
from clipmat.zeroshot.predictor import ZeroShotPredictor

__all__ = [
    "ZeroShotConfig",
    "ZeroShotPredictor",
    "create_backbone",
    "load_clip_backbone",
    "load_zeroshot_predictor",
]

"""Zero-shot referring matting: dense CLIP similarity, candidates, trimap, closed-form matting."""

from clipmat.zeroshot.loading import create_backbone, load_clip_backbone, load_zeroshot_predictor
from clipmat.zeroshot.predictor import ZeroShotConfig, ZeroShotPredictor

__all__ = [
    "ZeroShotConfig",
    "ZeroShotPredictor",
    "create_backbone",
    "load_clip_backbone",
    "load_zeroshot_predictor",
]

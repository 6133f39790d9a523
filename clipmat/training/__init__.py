"""Training of CLIPMat: configuration, data streams, the loop and its checkpoints.

Inference modules never import this package.
"""

from clipmat.training.config import TrainConfig, load_config
from clipmat.training.loop import build_model, train

__all__ = ["TrainConfig", "build_model", "load_config", "train"]

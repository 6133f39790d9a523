"""Assertions and stand-ins shared by the tests."""

import numpy as np
import torch
from torch import nn

from clipmat.factory import get_model_config


def assert_same_image(got, want, name: str = "") -> None:
    """Equal within one level, except at most 0.1% of pixels. The random test model fuses by
    argmax and has many near-ties between classes; the server computes in a worker thread whose
    float rounding differs from the test's, which can flip a few of those pixels."""
    d = np.abs(np.asarray(got).astype(np.int64) - np.asarray(want).astype(np.int64))
    if d.ndim == 3:
        d = d.max(axis=2)
    assert (d > 1).mean() <= 1e-3, (name, int(d.max()), int((d > 1).sum()))


class StandInCLIP(nn.Module):
    """What the zero-shot predictor reads of a CLIP backbone, for stand-ins whose embeddings are
    known: the tiny config, patches of 8 pixels, OpenAI's logit scale (100) and no input
    normalisation. Subclasses give ``_encode_text``, ``encode_dense`` and ``encode_pooled``."""

    def __init__(self) -> None:
        super().__init__()
        self.cfg = get_model_config("clipmat-tiny").clip
        self.clip = nn.Module()
        self.clip.logit_scale = nn.Parameter(torch.tensor(np.log(100.0), dtype=torch.float32))
        self.clip.encode_text = self._encode_text
        self.patch_size, self.text_context_length = 8, 77

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x


def checkpoint_step(path) -> int:
    """The training step a checkpoint of clipmat.training records in its header."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return int((f.metadata() or {})["step"])


def serve_local(demo, port: int | None = None) -> str:
    """Launch a built app's ``demo`` on 127.0.0.1 without blocking (a free port by default),
    with the app's own launch options; returns its URL."""
    import socket

    from clipmat_app.cli import launch_options

    if port is None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **launch_options(demo),
    )
    return f"http://127.0.0.1:{port}/"


def random_tiny_predictor(model, **kwargs):
    """A predictor over ``model`` (the session's ``tiny_model``) as the app's random-tiny option
    makes it: its name and licence, on the CPU; ``kwargs`` go to CLIPMatPredictor."""
    from clipmat import CLIPMatPredictor
    from clipmat_app.pool import RANDOM_TINY, RANDOM_TINY_LICENCE

    return CLIPMatPredictor(
        model, name=RANDOM_TINY, licence=RANDOM_TINY_LICENCE, device="cpu", **kwargs
    )

"""How the zero-shot predictor reads a photo and a phrase: :class:`ZeroShotConfig`.

The defaults make the dense map as the references make it: ClearCLIP's last block, its sliding
windows (short side, window, stride) and its logit scale. ``load_zeroshot_predictor`` gives
OpenAI's ViT-B/16 ClearCLIP's own numbers for it (:data:`clipmat.zeroshot.windows.CLEARCLIP`);
a CLIP built by hand gets windows at its own resolution (a tiny CLIP at 96 px reads a 96 px
scene as one window).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clipmat.model.backbone import DENSE_METHODS
from clipmat.precision import check_device
from clipmat.zeroshot import prompts
from clipmat.zeroshot.windows import SlidingProtocol

REFERENCE_LOGIT_SCALE = {"clearclip": 50.0, "sclip": 40.0, "maskclip": 100.0}
"""The softmax scale each method's official code uses on cosine logits: ClearCLIP's segmentor
(logit_scale=50) and SCLIP's (logit_scale=40) evaluate with these; MaskCLIP's head takes the
argmax of the cosines and uses softmax(100 x cosine) where it needs probabilities (its
``refine_output``), which is also OpenAI CLIP's learned scale. The other methods ("plain" and
ClearCLIP's ablations) take the CLIP's learned scale, as this project did before."""

AUTO_WINDOW = "auto"  # the window's side is the short side the photo is resized to

PRECISIONS = ("fp32", "bf16", "int8")  # the zero-shot predictor's (no "onnx": see check_precision)


def check_precision(precision: str, device: Any = "cpu") -> None:
    """Raise a ValueError when the zero-shot predictor cannot run at ``precision`` on
    ``device``: "onnx" exports only the image blocks a CLIPMat reads (its dense and pooled
    readings need every block), and the CPU paths' own conditions
    (:func:`clipmat.precision.check_device`)."""
    if precision == "onnx":
        raise ValueError(
            "precision 'onnx' applies to CLIPMat predictors only; the zero-shot predictor runs "
            f"at {', '.join(PRECISIONS)}: use 'int8' (or 'bf16' on a CPU with native bf16)"
        )
    check_device(precision, device)


@dataclass
class ZeroShotConfig:
    """How the zero-shot predictor reads a phrase and makes a matte.

    The dense map: the photo is resized so that its short side is ``image_size`` (long side at
    most 2048, as the references' ``Resize(scale=(2048, short))``), cut into square windows of
    ``window`` pixels every ``stride`` pixels, each read alone by the dense CLIP, and the
    windows' cosine logits are averaged where they overlap (see
    :mod:`clipmat.zeroshot.windows`). ``window=None`` is one global pass instead: the short side
    floored to a multiple of the patch and the long side capped at twice the short side
    (:func:`clipmat.transforms.model_input_size`), as this predictor did before.
    """

    image_size: int | None = None  # short side of the resized photo; None: the CLIP's own
    window: int | str | None = AUTO_WINDOW  # pixels; "auto": image_size; None: global pass
    stride: int | None = None  # pixels between windows; None: half the window
    method: str = "clearclip"  # dense-feature method, one of DENSE_METHODS
    templates: tuple[str, ...] = prompts.PROMPT_TEMPLATES  # ensembled around every phrase
    background: tuple[str, ...] = prompts.BACKGROUND_PROMPTS  # stuff that competes per patch
    distractors: tuple[str, ...] = ()  # extra things that compete per patch
    logit_scale: float | None = None  # softmax inverse temperature; None: the method's
    # reference value (REFERENCE_LOGIT_SCALE), else the CLIP's learned one
    threshold: float = 0.5  # a patch belongs to the phrase above this probability
    fallback: float = 0.5  # no patch above threshold: patches above this x the best one are
    # the candidates (a referring phrase presumes its object; confidence stays low). 0: empty
    min_patches: int = 2  # smaller regions are not candidates (unless nothing else is)
    matting_side: int = 768  # long side of the closed-form matting resolution
    band: float = 0.75  # half width of the trimap's unknown band, in patches
    crop_weight: float = 0.5  # weight of the whole-crop score in a region's score (0: dense only)
    matting: bool = True  # False: the alpha is the chosen region's patch probability, upsampled
    # bilinearly (a coarse map for ablations that measure what the matting step adds; no trimap)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes

    def __post_init__(self) -> None:
        if self.method not in DENSE_METHODS:
            raise ValueError(f"method must be one of {DENSE_METHODS}, got {self.method!r}")
        if not self.templates or any("{}" not in t for t in self.templates):
            raise ValueError("templates must be a non-empty tuple of strings holding '{}'")
        if not 0.0 < self.threshold < 1.0 or not 0.0 <= self.fallback < 1.0:
            raise ValueError(
                f"threshold must lie in (0, 1) and fallback in [0, 1), got {self.threshold} "
                f"and {self.fallback}"
            )
        if not 0.0 <= self.crop_weight <= 1.0:
            raise ValueError(f"crop_weight must lie in [0, 1], got {self.crop_weight}")
        if self.band <= 0 or self.matting_side < 32:
            raise ValueError("band must be > 0 patches and matting_side >= 32 pixels")
        if self.image_size is not None and self.image_size < 1:
            raise ValueError(f"image_size must be >= 1 or None, got {self.image_size}")
        window_ok = self.window in (None, AUTO_WINDOW) or (
            isinstance(self.window, int) and self.window >= 1
        )
        if not window_ok:
            raise ValueError(f"window must be pixels, 'auto' or None, got {self.window!r}")
        if self.stride is not None and self.stride < 1:
            raise ValueError(f"stride must be >= 1 pixel or None, got {self.stride}")
        if self.logit_scale is not None and self.logit_scale <= 0:
            raise ValueError(f"logit_scale must be > 0 or None, got {self.logit_scale}")

    @classmethod
    def from_protocol(
        cls, protocol: SlidingProtocol, method: str = "clearclip", **kwargs: Any
    ) -> ZeroShotConfig:
        """A config with a reference's short side, window, stride and logit scale (e.g.
        :data:`clipmat.zeroshot.windows.CLEARCLIP`); ``kwargs`` set the other fields."""
        return cls(
            image_size=protocol.short_side,
            window=protocol.window,
            stride=protocol.stride,
            logit_scale=protocol.logit_scale,
            method=method,
            **kwargs,
        )

    def sliding(self, short_side: int) -> tuple[int, int] | None:
        """(window, stride) in pixels for a photo resized to ``short_side``, or None for the
        global pass.

        Raises:
            ValueError: when the stride is longer than the window (pixels would be left out).
        """
        if self.window is None:
            return None
        window = short_side if self.window == AUTO_WINDOW else int(self.window)
        stride = self.stride if self.stride is not None else max(1, window // 2)
        if stride > window:
            raise ValueError(f"stride {stride} is longer than the window {window}")
        return window, stride

    def resolved_logit_scale(self, learned: float) -> float:
        """The softmax scale: the config's, else the method's reference one, else ``learned``."""
        if self.logit_scale is not None:
            return float(self.logit_scale)
        return float(REFERENCE_LOGIT_SCALE.get(self.method, learned))

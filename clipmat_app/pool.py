"""The predictors the app offers, loaded on first use and kept, one lock each.

Nothing here imports gradio, so the figure script, the benchmarks and the tests use it directly.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipmat.precision import check_precision
from clipmat.predictors.base import Predictor
from clipmat.predictors.clipmat import CLIPMatPredictor
from clipmat.predictors.loading import RANDOM_SEED, auto_choice, list_predictors, load_predictor
from clipmat.predictors.results import MattingResult, Photo
from clipmat.pretrained import hub, registry

RANDOM_TINY = "random-tiny"  # developer option: random weights, garbage mattes, instant
RANDOM_TINY_SEED = RANDOM_SEED  # 24: its random model gives a matte that varies over the photo
RANDOM_TINY_LICENCE = "none needed: random weights, for interface development only"


def create_random_tiny(
    device: Any = "cpu", seed: int = RANDOM_TINY_SEED, precision: str = "fp32"
) -> CLIPMatPredictor:
    """A predictor on the tiny test model with seeded random weights, the same in every process:
    ``load_predictor("clipmat-tiny", pretrained=False)`` named RANDOM_TINY."""
    predictor = load_predictor(
        "clipmat-tiny", pretrained=False, seed=seed, device=device, precision=precision
    )
    predictor.name, predictor.licence = RANDOM_TINY, RANDOM_TINY_LICENCE
    return predictor


@dataclass(frozen=True)
class Choice:
    """A predictor the app can offer, with whether it can run here and why not."""

    name: str
    available: bool
    licence: str
    description: str
    reason: str = ""
    download: bool = False  # runs here after its first use downloads its weights


class PredictorPool:
    """Predictors by name, loaded on first use and kept; calls on one predictor are serialised.

    Args:
        extra: more predictors by name (a predictor, or a function that makes one), offered
            beside the registered ones (e.g. RANDOM_TINY, a checkpoint file).
        device: passed to every predictor ("auto" picks CUDA when present).
        allow_download: for registered weights (None: download unless HF_HUB_OFFLINE).
        precision: the CLIP towers' CPU path ("fp32", "bf16", "int8", "onnx";
            :mod:`clipmat.precision`), for CLIPMat and zero-shot predictors alike; "onnx"
            exports a CLIPMat's image tower only, so zero-shot predictors take "int8" for it.
    """

    def __init__(
        self,
        extra: dict[str, Predictor | Callable[[], Predictor]] | None = None,
        *,
        device: Any = "auto",
        allow_download: bool | None = None,
        precision: str = "fp32",
    ) -> None:
        check_precision(precision)
        self.device = device
        self.allow_download = allow_download
        self.precision = precision
        self._extra = dict(extra or {})
        self._loaded: dict[str, Predictor] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._loading: dict[str, Future[Predictor]] = {}  # loads in progress, by name
        self._pool_lock = threading.Lock()  # guards the tables above, never held while loading

    @classmethod
    def from_option(cls, option: str | None, **kwargs: Any) -> tuple[PredictorPool, str | None]:
        """A pool for the app's ``--predictor`` value and the name to start with.

        ``option`` is a registered name, "auto"/None (see :func:`clipmat.auto_choice`; None
        when no predictor can run), RANDOM_TINY, ``hf-hub:owner/repo`` or a checkpoint file.
        An explicit choice that cannot load raises here, so the app stops at startup with the
        reason rather than at the first click.
        """
        extra: dict[str, Any] = {}
        name = option
        device, precision = kwargs.get("device", "auto"), kwargs.get("precision", "fp32")
        if option == RANDOM_TINY:
            extra[RANDOM_TINY] = lambda: create_random_tiny(device, precision=precision)
        elif option not in (None, "auto") and registry.predictor_weights(option) is None:
            name = Path(option).stem if Path(option).is_file() else option
            extra[name] = load_predictor(option, device=device, precision=precision)
        pool = cls(extra, **kwargs)
        if name in (None, "auto"):
            name = pool.auto_choice()
        if name is not None:
            pool.get(name)
        return pool, name

    def auto_choice(self) -> str | None:
        """What "auto" means here (:func:`clipmat.auto_choice`), or None when nothing can run;
        when it is the zero-shot predictor without its CLIP, the download happens now, and if it
        fails the mini world is taken."""
        try:
            name = auto_choice(self.allow_download)
        except FileNotFoundError:
            return None
        try:
            self.get(name)
        except ValueError as err:
            warnings.warn(f"{err}; starting on what is here", stacklevel=2)
            available = [c.name for c in self.choices() if c.available and not c.download]
            return available[0] if available else None
        return name

    def choices(self) -> list[Choice]:
        """Every predictor: the extra ones first, then the registered ones with availability."""
        out = []
        for name, item in self._extra.items():
            licence = RANDOM_TINY_LICENCE if name == RANDOM_TINY else getattr(item, "licence", "")
            out.append(Choice(name, True, licence, "given at startup"))
        for s in list_predictors():
            if not s.available and not self.loaded(s.name) and self._downloadable(s.name):
                note = f"{s.description} (its first use downloads its weights)"
                out.append(Choice(s.name, True, s.licence, note, download=True))
            else:
                out.append(Choice(s.name, s.available, s.licence, s.description, s.reason))
        return out

    def _downloadable(self, name: str) -> bool:
        """Whether registered predictor ``name``'s weights are hosted and may be downloaded."""
        weights = registry.predictor_weights(name)
        hosted = weights is not None and bool(weights.hf_repo or weights.url)
        return hosted and hub.downloads_allowed(self.allow_download)

    def compute(self, name: str) -> str:
        """How the loaded predictor ``name`` computes ("bf16 on the CPU", "fp32 on the CPU",
        "bf16 autocast on the GPU"); "" when it is not loaded yet."""
        predictor = self._loaded.get(name)
        if predictor is None:
            return ""
        device = getattr(predictor, "device", None)
        if device is not None and device.type == "cuda":
            return "bf16 autocast on the GPU"
        return f"{getattr(predictor, 'precision', 'fp32')} on the CPU"

    def choice(self, name: str) -> Choice:
        for c in self.choices():
            if c.name == name:
                return c
        raise ValueError(f"unknown predictor {name!r}; choose one of {self.names()}")

    def names(self) -> list[str]:
        return [c.name for c in self.choices()]

    def get(self, name: str) -> Predictor:
        """The predictor ``name``, loaded on first use.

        A load (a download included) holds no lock that calls on other predictors wait for:
        the pool's lock guards only its tables. Callers asking for a predictor that is being
        loaded wait for that one load and share its predictor, or its error; after an error
        the next call tries again.

        Raises:
            ValueError: for an unknown name or one that cannot run here, with the reason.
        """
        with self._pool_lock:
            if name in self._loaded:
                return self._loaded[name]
            future = self._loading.get(name)
            loader = future is None
            if loader:
                future = self._loading[name] = Future()
        if not loader:
            return future.result()  # the loader's predictor, or its error raised here
        try:
            predictor = self._load(name)
        except BaseException as err:
            with self._pool_lock:
                del self._loading[name]  # the next call loads again
            future.set_exception(err)
            raise
        with self._pool_lock:
            self._loaded[name] = predictor
            self._locks[name] = threading.Lock()
            del self._loading[name]
        future.set_result(predictor)
        return predictor

    def loaded(self, name: str) -> bool:
        """Whether ``name`` is loaded (a call to :meth:`get` returns at once)."""
        with self._pool_lock:
            return name in self._loaded

    def loading(self, name: str) -> bool:
        """Whether ``name`` is being loaded (or downloaded) now."""
        with self._pool_lock:
            return name in self._loading

    def _load(self, name: str) -> Predictor:
        """Load ``name`` (no lock held; see :meth:`get`)."""
        if name in self._extra:
            item = self._extra[name]
            return item if isinstance(item, Predictor) else item()
        weights = registry.predictor_weights(name)
        if weights is None:
            raise ValueError(f"unknown predictor {name!r}; choose one of {self.names()}")
        try:
            return load_predictor(
                name,
                device=self.device,
                allow_download=self.allow_download,
                precision=_precision_for(weights, self.precision),
            )
        except (OSError, NotImplementedError, ValueError, RuntimeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            raise ValueError(f"the {name} predictor cannot run here: {first}") from None

    def predict(self, name: str, photo: Photo, phrase: str, **options: Any) -> MattingResult:
        """Run predictor ``name`` on one photo and phrase; ``options`` are ``predict``'s keyword
        arguments (the same for every predictor)."""
        predictor = self.get(name)
        with self._locks[name]:
            return predictor.predict(photo, phrase, **options)


def _precision_for(weights: registry.WeightSpec, precision: str) -> str:
    """The precision a registered predictor runs at in a pool at ``precision``: the same, but
    "int8" for the zero-shot predictor when the pool's is "onnx" (int8 weights either way)."""
    return "int8" if weights.zero_shot and precision == "onnx" else precision

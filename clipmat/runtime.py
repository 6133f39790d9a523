"""What every predictor shares: device choice, autocast, phrase checks, an image cache."""

from __future__ import annotations

import contextlib
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import numpy as np
import torch

T = TypeVar("T")


def select_device(device: str | torch.device | None = "auto") -> torch.device:
    """ "auto" (or None) picks CUDA when available, else the CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def autocast(device: torch.device, precision: str = "fp32") -> contextlib.AbstractContextManager:
    """bf16 (or fp16 where bf16 is missing) autocast on CUDA; on the CPU, bf16 autocast for
    ``precision`` "bf16" (:mod:`clipmat.precision`) and nothing otherwise."""
    if device.type != "cuda":
        if precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def fingerprint(image: np.ndarray) -> str:
    """A key for an image's content: its shape and a hash of every byte."""
    digest = hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).hexdigest()
    return f"{image.shape}:{digest}"


def check_phrases(text: Any) -> list[str]:
    """A phrase or a list of phrases -> stripped phrases.

    Raises:
        TypeError: for anything but a string or a list/tuple of strings.
        ValueError: for an empty list or an empty phrase.
    """
    if isinstance(text, str):
        items = [text]
    elif isinstance(text, (list, tuple)):
        items = list(text)
    else:
        raise TypeError(f"phrase must be a string or a list of strings, got {type(text).__name__}")
    if not items:
        raise ValueError("no phrase given: pass a string or a non-empty list of strings")
    for p in items:
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"each phrase must be a non-empty string, got {p!r}")
    return [p.strip() for p in items]


class LRUCache(Generic[T]):
    """A small least-recently-used map (image features by fingerprint, text by phrase)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"cache capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._items: OrderedDict[str, T] = OrderedDict()

    def get(self, key: str) -> T | None:
        """The value for ``key`` (now the most recent), or None."""
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key]

    def get_or_put(self, key: str, compute: Callable[[], T]) -> tuple[T, bool]:
        """(the value for ``key``, True) when cached, else (``compute()``, now cached, False)."""
        value = self.get(key)
        if value is not None:
            return value, True
        value = compute()
        self.put(key, value)
        return value, False

    def put(self, key: str, value: T) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

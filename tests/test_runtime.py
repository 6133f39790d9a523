"""Shared predictor runtime: LRU cache, fingerprints, phrase checks, device choice."""

import numpy as np
import pytest
import torch

from clipmat.runtime import LRUCache, check_phrases, fingerprint, select_device


def test_lru_cache_keeps_the_most_recent():
    cache: LRUCache[int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3
    assert len(cache) == 2 and cache.get("missing") is None
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError, match="at least 1"):
        LRUCache(0)


def test_fingerprint_follows_content_and_shape():
    a = np.zeros((4, 6, 3), np.uint8)
    assert fingerprint(a) == fingerprint(a.copy())
    b = a.copy()
    b[3, 5, 2] = 1
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(a) != fingerprint(a.reshape(6, 4, 3))
    assert fingerprint(a[:, ::2]) == fingerprint(np.ascontiguousarray(a[:, ::2]))


def test_check_phrases():
    assert check_phrases("  the cat ") == ["the cat"]
    assert check_phrases(("a", "b ")) == ["a", "b"]
    for bad in ([], [""], ["ok", "  "]):
        with pytest.raises(ValueError):
            check_phrases(bad)
    with pytest.raises(TypeError, match="string"):
        check_phrases(None)


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_lru_get_or_put_computes_once():
    cache: LRUCache[int] = LRUCache(2)
    calls = []
    assert cache.get_or_put("k", lambda: calls.append(1) or 7) == (7, False)
    assert cache.get_or_put("k", lambda: calls.append(1) or 8) == (7, True)
    assert calls == [1]

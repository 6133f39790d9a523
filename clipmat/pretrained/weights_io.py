"""State dicts on disk: safetensors (written atomically), weights-only pickles, checksums."""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import torch

SAFETENSORS_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = frozenset({".pt", ".pth", ".bin"})
HASH_CHUNK_BYTES = 1 << 20


class WeightsCorruptError(ValueError):
    """A weights file cannot be read (truncated, corrupt or of an unsupported kind)."""


class WeightsChecksumError(ValueError):
    """A weights file does not have the expected sha256 digest."""


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime_ns are part of the cache key: a changed file is hashed again.
    return sha256_file(path)


def verify_sha256(path: str | os.PathLike, expected: str | None) -> None:
    """Check a file's sha256 digest (no-op when ``expected`` is None).

    The digest is cached per (path, size, mtime), so a large file is hashed once per process.

    Raises:
        WeightsChecksumError: the digest differs; the message names the file and both digests.
    """
    if expected is None:
        return
    path = Path(path).resolve()
    stat = path.stat()
    actual = _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns)
    if actual.lower() != expected.lower():
        raise WeightsChecksumError(
            f"Checksum mismatch for {path}: expected sha256 {expected.lower()}, got {actual}. "
            "The file is incomplete, corrupt or a different version; delete it and fetch it again."
        )


def save_state_dict(
    state: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    metadata: Mapping[str, str] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a state dict as safetensors, atomically (temporary file, then rename).

    Args:
        state: name -> tensor; tensors are moved to CPU, made contiguous, and tensors that share
            memory (tied weights) are stored as separate copies.
        path: target file, normally ending in `.safetensors`; parent folders are created.
        metadata: str -> str pairs stored in the header (e.g. {"config": json.dumps(cfg)}).
        dtype: if given, floating point tensors are cast to it (e.g. torch.float16).

    Returns:
        The path written.
    """
    from safetensors.torch import save_file

    meta = dict(metadata or {})
    bad = [k for k, v in meta.items() if not (isinstance(k, str) and isinstance(v, str))]
    if bad:
        raise TypeError(
            f"metadata must map str to str (use json.dumps for values); bad keys: {bad}"
        )
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state[{key!r}] is {type(value).__name__}, expected a torch.Tensor")
        tensor = value.detach().to("cpu")
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensor = tensor.contiguous()
        if tensor.numel() and tensor.untyped_storage().data_ptr() in seen:
            tensor = tensor.clone()
        if tensor.numel():
            seen.add(tensor.untyped_storage().data_ptr())
        tensors[key] = tensor
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(path.parent / f".{path.name}.{secrets.token_hex(8)}.part")
    # the usual permissions (0o666 less the umask), which the writer may not keep
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    mode = os.stat(tmp).st_mode & 0o777
    try:
        save_file(tensors, tmp, metadata=meta)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a state dict on CPU from `.safetensors`, or `.pt`/`.pth`/`.bin` (weights only).

    Pickled files are read with `torch.load(weights_only=True)`: tensors and plain containers
    only, never arbitrary objects. A top-level {"state_dict": ...} or {"model": ...} wrapper is
    unwrapped.

    Returns:
        (state, metadata): name -> tensor, and the safetensors header metadata ({} for pickles).

    Raises:
        FileNotFoundError: no such file.
        WeightsCorruptError: unreadable, truncated or unsupported file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Weights file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        return _load_safetensors(path)
    if suffix in PICKLE_SUFFIXES:
        return _load_pickle(path), {}
    raise WeightsCorruptError(
        f"Unsupported weights file {path}: expected a .safetensors, .pt, .pth or .bin file."
    )


def _corrupt(path: Path, err: Exception) -> WeightsCorruptError:
    return WeightsCorruptError(
        f"Weights file {path} is corrupt or truncated ({type(err).__name__}: {err}). Delete it "
        "and fetch it again (`clipmat download NAME`), or re-save it from its source."
    )


def _load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            state = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise _corrupt(path, err) from err
    return state, metadata


def _load_pickle(path: Path) -> dict[str, torch.Tensor]:
    import pickle

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise WeightsCorruptError(
            f"Refusing to load {path}: it holds objects other than tensors, and this package only "
            "unpickles weights (torch.load(weights_only=True)). Convert it to .safetensors with "
            "a trusted copy of the code that wrote it."
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise _corrupt(path, err) from err
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsCorruptError(f"{path} does not hold a state dict (name -> tensor).")
    return dict(obj)

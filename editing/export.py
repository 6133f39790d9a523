"""PNG encodings of mattes, cutouts and edited images (8-bit and 16-bit).

Files are written atomically: the bytes go to a temporary file in the destination's folder,
which then replaces the destination in one step, so a reader sees the old file or the new one,
never an empty or partial one, even while identical requests write the same path at once.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import Any

import cv2
import numpy as np

from editing.validate import as_alpha

# zlib level for PNG: 1 is several times faster than 9 for a few percent larger files.
PNG_COMPRESSION = 1
_BITS = (8, 16)


def matte_to_bits(alpha: Any, bits: int = 16) -> np.ndarray:
    """Quantise a matte to 8-bit or 16-bit integers.

    Args:
        alpha: (H, W) or (H, W, 1) float in [0, 1], uint8 or uint16 (see `as_alpha`).
        bits: 8 (values 0..255) or 16 (values 0..65535).

    Returns:
        (H, W) uint8 or uint16, rounded.
    """
    if bits not in _BITS:
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    if isinstance(alpha, np.ndarray) and alpha.dtype == (np.uint8 if bits == 8 else np.uint16):
        return np.ascontiguousarray(alpha.reshape(alpha.shape[:2]))
    matte = as_alpha(alpha)
    if bits == 8:
        return cv2.convertScaleAbs(matte, alpha=255.0)
    return np.round(matte * np.float32(65535.0)).astype(np.uint16)


def encode_png(array: np.ndarray, *, compression: int = PNG_COMPRESSION) -> bytes:
    """Encode an image array as PNG bytes, keeping its bit depth.

    Args:
        array: (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA, dtype uint8 or uint16.
        compression: zlib level 0..9.

    Returns:
        The PNG file's bytes.
    """
    if not isinstance(array, np.ndarray) or array.dtype not in (np.uint8, np.uint16):
        kind = getattr(array, "dtype", type(array).__name__)
        raise TypeError(f"encode_png needs a uint8 or uint16 array, got {kind}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    elif array.ndim != 2:
        raise ValueError(f"encode_png needs HxW, HxWx3 or HxWx4, got shape {array.shape}")
    if not 0 <= compression <= 9:
        raise ValueError(f"compression must be in 0..9, got {compression}")
    ok, buffer = cv2.imencode(
        ".png", np.ascontiguousarray(array), [cv2.IMWRITE_PNG_COMPRESSION, compression]
    )
    if not ok:
        raise RuntimeError(f"PNG encoding failed for an array of shape {array.shape}")
    return buffer.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    """Decode PNG bytes, keeping bit depth and channels; colour comes back as RGB(A).

    Returns:
        (H, W), (H, W, 3) or (H, W, 4) uint8 or uint16.
    """
    array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ValueError("the bytes are not a readable PNG image")
    if array.ndim == 3 and array.shape[2] == 3:
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    if array.ndim == 3 and array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA)
    return array


def encode_matte(alpha: Any, bits: int = 16) -> bytes:
    """Encode a matte as a grayscale PNG of 8 or 16 bits.

    Args:
        alpha: (H, W) or (H, W, 1) float in [0, 1], uint8 or uint16.
        bits: 8 or 16.

    Returns:
        PNG bytes.
    """
    return encode_png(matte_to_bits(alpha, bits))


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, fsync: bool = False) -> None:
    """Write `data` to `path` atomically: readers see the old file or the new one, never a part.

    The bytes go to a uniquely named temporary file in the same folder (created with the usual
    permissions, 0o666 less the umask), which `os.replace` then moves over `path`. On any
    failure the temporary file is removed and `path` is left as it was.

    Args:
        path: Destination file; its folder must exist.
        data: The file's whole content.
        fsync: Flush the bytes to the disk before the replacement (durable across a crash,
            slower).
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def save_png(array: np.ndarray, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
    """Write a uint8/uint16 gray, RGB or RGBA array to a PNG file (see `encode_png`).

    The file is replaced atomically (see `write_bytes_atomic`); `fsync` makes it durable.
    """
    write_bytes_atomic(path, encode_png(array), fsync=fsync)


def save_matte(
    alpha: Any, path: str | os.PathLike[str], bits: int = 16, *, fsync: bool = False
) -> None:
    """Write a matte as an 8-bit or 16-bit grayscale PNG file, replaced atomically.

    Args:
        alpha: (H, W) or (H, W, 1) float in [0, 1], uint8 or uint16.
        path: Destination file.
        bits: 8 or 16.
        fsync: Flush the file to the disk before it replaces `path`.
    """
    write_bytes_atomic(path, encode_matte(alpha, bits), fsync=fsync)


def load_matte(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a grayscale matte PNG (8 or 16 bits) back as float32 in [0, 1].

    Returns:
        (H, W) float32 in [0, 1].
    """
    with open(path, "rb") as handle:
        array = decode_png(handle.read())
    if array.ndim != 2:
        raise ValueError(f"{os.fspath(path)!r} is not a grayscale matte (shape {array.shape})")
    return as_alpha(array)

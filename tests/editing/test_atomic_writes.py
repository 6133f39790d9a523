"""PNG files are replaced atomically: a reader never sees an empty, partial or mixed file."""

import os
import threading

import numpy as np
import pytest

import editing
from editing import export

WRITERS = 16
ROUNDS = 8
READERS = 2


def _images(count: int) -> list[np.ndarray]:
    """Distinct 1 MP RGB images that encode quickly (smooth, a little noise)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:1000, :1000]
    base = np.dstack([xx % 256, yy % 256, (xx + yy) % 256]).astype(np.uint8)
    images = []
    for k in range(count):
        image = base.copy()
        image[::7, ::5] = rng.integers(0, 256, image[::7, ::5].shape, dtype=np.uint8)
        image[k * 10 : k * 10 + 10] = k * 16  # a band that tells the images apart
        images.append(image)
    return images


def _hammer(
    write, path, items: list, images: list[np.ndarray], writers: int = WRITERS, rounds: int = ROUNDS
) -> list[str]:
    """`writers` threads write `rounds` times each while READERS threads read; returns faults.

    Writer k writes items[k % len(items)]; every distinct content read must decode to one of
    `images` (each is decoded once, after the run, so the readers spin fast).
    """
    faults: list[str] = []
    seen: dict[int, bytes] = {}
    done = threading.Event()
    write(items[0], path)  # the file exists before anyone reads it

    def writer(k: int) -> None:
        for _ in range(rounds):
            write(items[k % len(items)], path)

    def reader() -> None:
        while not done.is_set():
            with open(path, "rb") as handle:
                data = handle.read()
            if not data:
                faults.append("empty file")
            elif len(seen) < 100:
                seen.setdefault(hash(data), data)

    readers = [threading.Thread(target=reader) for _ in range(READERS)]
    writing = [threading.Thread(target=writer, args=(k,)) for k in range(writers)]
    for thread in readers + writing:
        thread.start()
    for thread in writing:
        thread.join()
    done.set()
    for thread in readers:
        thread.join()
    for data in seen.values():
        try:
            image = editing.decode_png(data)
        except ValueError:
            faults.append(f"undecodable file of {len(data)} bytes")
            continue
        if not any(np.array_equal(image, want) for want in images):
            faults.append("a file that is none of the written images")
    return faults


def test_concurrent_save_png_never_shows_a_partial_file(tmp_path):
    path = tmp_path / "cutout.png"
    images = _images(4)
    faults = _hammer(editing.save_png, path, images, images)
    assert not faults, f"{len(faults)} bad reads, e.g. {faults[:3]}"
    assert os.listdir(tmp_path) == ["cutout.png"]  # no temporary file left behind


def test_concurrent_save_matte_never_shows_a_partial_file(tmp_path):
    path = tmp_path / "matte.png"
    mattes = [image[..., 0].astype(np.float32) / 255.0 for image in _images(2)]
    as_written = [editing.decode_png(editing.encode_matte(m)) for m in mattes]
    faults = _hammer(editing.save_matte, path, mattes, as_written, writers=8, rounds=4)
    assert not faults, f"{len(faults)} bad reads, e.g. {faults[:3]}"
    assert os.listdir(tmp_path) == ["matte.png"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    first = np.zeros((4, 5, 3), np.uint8)
    editing.save_png(first, path)
    before = path.read_bytes()

    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(export.os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        editing.save_png(np.full((4, 5, 3), 9, np.uint8), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.png"]
    with pytest.raises(TypeError, match="uint8 or uint16"):  # encoding fails before any file
        editing.save_png(np.zeros((4, 5, 3), np.float32), tmp_path / "new.png")
    assert os.listdir(tmp_path) == ["out.png"]


def test_atomic_write_keeps_the_umask_permissions(tmp_path):
    path = tmp_path / "perm.png"
    editing.save_matte(np.zeros((3, 3), np.float32), path, bits=8, fsync=True)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert editing.load_matte(path).shape == (3, 3)

"""The disk budget: outputs go before the uploads a user may still be editing."""

from __future__ import annotations

import os
import time

from clipmat_app.storage import Storage


def _file(path, size: int, age: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))


def test_outputs_are_removed_before_uploads(tmp_path):
    storage = Storage(3000, root=tmp_path / "app", grace=1.0)
    upload = storage.root / "a1b2" / "photo.jpg"  # where Gradio keeps an upload
    _file(upload, 1000, age=600)  # the oldest file, but a user's photo
    outputs = [storage.mattes / "k1" / f"{name}.png" for name in ("matte", "edit", "cutout")]
    for i, path in enumerate(outputs):
        _file(path, 1000, age=300 - i)
    young = storage.mattes / "k2" / "edit.png"
    _file(young, 1000, age=0)  # being handed out: kept whatever the budget
    assert storage.enforce() == 2000
    assert upload.is_file() and young.is_file() and outputs[2].is_file()
    assert not outputs[0].exists() and not outputs[1].exists()  # the older outputs went first


def test_uploads_go_least_recently_used_once_no_output_is_left(tmp_path):
    storage = Storage(1500, root=tmp_path / "app", grace=1.0)
    old, recent = storage.root / "u1" / "old.jpg", storage.root / "u2" / "recent.jpg"
    _file(old, 1000, age=600)
    _file(recent, 1000, age=60)
    output = storage.mattes / "k" / "matte.png"
    _file(output, 400, age=30)
    assert storage.enforce() == 1400
    assert recent.is_file() and not old.exists() and not output.exists()

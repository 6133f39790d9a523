"""The app's Video tab: a clip is checked from its header before a frame is decoded, matted
frame by frame through the service's matte slots into its three outputs under the disk budget,
and /video answers through the served app's queue."""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from clipmat.data.clips import make_clip
from clipmat.video import codec
from clipmat.video.codec import VideoWriter, probe, read_video
from clipmat_app.edits import EditSettings
from clipmat_app.inputs import NOT_AN_UPLOAD, upload_folders
from clipmat_app.pool import RANDOM_TINY, PredictorPool, create_random_tiny
from clipmat_app.service import MatteService
from clipmat_app.storage import Storage
from clipmat_app.video import VideoJobs, VideoLimits

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

COUNT, SIDE = 6, 64


@pytest.fixture(scope="module")
def uploads():
    """A folder inside Gradio's upload folder (where the app reads files), removed after."""
    folder = upload_folders()[0] / f"test-video-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def clip():
    return make_clip("pass", 0, size=SIDE, length=COUNT)


def _write_clip(path: Path, clip) -> Path:
    with VideoWriter(path, clip.size, clip.fps, alpha=False) as writer:
        for image in clip.images():
            writer.write(image)
    return path


@pytest.fixture
def service(tmp_path, mini_world):
    pool = PredictorPool({"mini-world": mini_world}, device="cpu")
    service = MatteService(pool, storage=Storage(50 * 2**20, root=tmp_path / "app"))
    yield service
    service.close()


def test_a_clip_is_matted_into_three_outputs(service, clip, uploads, monkeypatch):
    slots = []
    original = service.matting_slot

    def counted():
        slots.append(service.matting["now"])
        return original()

    monkeypatch.setattr(service, "matting_slot", counted)
    source = _write_clip(uploads / "pass.mp4", clip)
    jobs = VideoJobs(service.pool, service)
    out = jobs.run(str(source), clip.phrase, "mini-world", EditSettings("color", color="green"))
    assert out.frames == COUNT and sum(out.statuses.values()) == COUNT
    assert len(slots) >= COUNT and service.matting["peak"] == 1  # a slot per frame, one at once
    for path in (out.edited, out.matte, out.transparent):
        assert path.is_file() and service.workdir in path.parents
    edited = list(read_video(out.edited))
    assert len(edited) == COUNT and edited[0].shape == (SIDE, SIDE, 3)
    assert len(list(read_video(out.matte))) == COUNT
    clear = list(read_video(out.transparent, alpha=True))
    assert len(clear) == COUNT and clear[0].shape == (SIDE, SIDE, 4)
    grey = list(read_video(out.matte))[2][..., 0].astype(int)
    assert np.abs(clear[2][..., 3].astype(int) - grey).mean() < 8  # one matte in both
    assert probe(out.edited).fps == clip.fps
    assert "followed" in out.status(clip.phrase, "mini-world")


def test_a_clip_beyond_the_limits_is_refused_before_decoding(service, clip, uploads, monkeypatch):
    def never(self):
        raise AssertionError("a frame was decoded")

    monkeypatch.setattr(codec.VideoReader, "frames", never)
    source = str(_write_clip(uploads / "limits.mp4", clip))
    for limits, message in (
        (VideoLimits(frames=COUNT - 1), f"the clip has {COUNT} frames"),
        (VideoLimits(pixels=SIDE * SIDE - 1), f"frames are {SIDE}x{SIDE}"),
        (VideoLimits(seconds=0.2), "the clip is 0.5 s long"),
    ):
        jobs = VideoJobs(service.pool, service, limits)
        with pytest.raises(ValueError, match=message):
            jobs.run(source, clip.phrase, "mini-world", EditSettings())
    jobs = VideoJobs(service.pool, service)
    outside = _write_clip(service.workdir / "elsewhere.mp4", clip)
    with pytest.raises(ValueError) as refused:
        jobs.run(str(outside), clip.phrase, "mini-world", EditSettings())
    assert str(refused.value) == NOT_AN_UPLOAD
    text = uploads / "notes.mp4"
    text.write_text("not a clip\n" * 40)
    with pytest.raises(ValueError, match="cannot be read as a video"):
        jobs.run(str(text), clip.phrase, "mini-world", EditSettings())


def test_the_video_endpoint_through_the_app(tmp_path, clip, uploads):
    pytest.importorskip("gradio_client")
    from gradio_client import Client, handle_file
    from helpers import serve_local

    from clipmat_app.ui import build_demo

    pool = PredictorPool({RANDOM_TINY: create_random_tiny("cpu")}, device="cpu")
    service = MatteService(pool, workdir=tmp_path / "work")
    demo = build_demo(pool, RANDOM_TINY, service=service)
    try:
        client = Client(serve_local(demo), verbose=False)
        source = _write_clip(tmp_path / "clip.mp4", clip)
        edited, matte, clear, status = client.predict(
            handle_file(str(source)),
            "the red star",
            RANDOM_TINY,
            "highlight",
            "#00ff00",
            None,
            api_name="/video",
        )
        edited = edited["video"] if isinstance(edited, dict) else edited
        assert len(list(read_video(edited))) == COUNT
        assert len(list(read_video(matte))) == COUNT
        assert len(list(read_video(clear, alpha=True))) == COUNT
        assert f"{COUNT} frames" in status
    finally:
        demo.close()
        service.close()


def test_the_outputs_are_kept_under_the_disk_budget(tmp_path, mini_world, clip, uploads):
    """A clip's outputs count against the app's disk budget: once they are written, older files
    are removed until the folder fits (the new outputs, younger than the grace, stay)."""
    pool = PredictorPool({"mini-world": mini_world}, device="cpu")
    storage = Storage(64 * 2**10, root=tmp_path / "app", grace=2.0)
    service = MatteService(pool, storage=storage)
    try:
        old = service.workdir / "old" / "edit.png"
        old.parent.mkdir(parents=True)
        old.write_bytes(b"\0" * 80 * 2**10)  # alone over the budget
        os.utime(old, (time.time() - 60, time.time() - 60))
        source = _write_clip(uploads / "budget.mp4", clip)
        out = VideoJobs(pool, service).run(str(source), clip.phrase, "mini-world", EditSettings())
        assert not old.exists() and storage.stats["removed_files"] >= 1
        assert out.edited.is_file() and out.matte.is_file() and out.transparent.is_file()
        assert storage.root in out.edited.parents
    finally:
        service.close()

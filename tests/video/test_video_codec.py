"""Video files through PyAV: a transparent WebM and an MP4 that decode back to their frames,
the source's audio kept, numbered PNGs written whole, and files that are not videos refused."""

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from helpers_video import streams, write_source
from PIL import Image

from clipmat.video.codec import PngSequence, VideoError, VideoReader, VideoWriter, probe, read_video


def _frames(count: int, height: int, width: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    return [np.roll(base, 2 * i, axis=1) for i in range(count)]


def test_a_transparent_webm_decodes_back_with_its_alpha(tmp_path):
    height, width = 21, 33  # odd sides: VP9 keeps them
    alpha = np.zeros((height, width), np.uint8)
    alpha[5:15, 8:25] = 255
    path = tmp_path / "out" / "clip.webm"
    with VideoWriter(path, (height, width), Fraction(15), alpha=True) as writer:
        for frame in _frames(5, height, width):
            writer.write(np.dstack([frame, alpha]))
    back = list(read_video(path, alpha=True))
    assert len(back) == 5 and back[0].shape == (height, width, 4)
    assert np.abs(back[2][..., 3].astype(int) - alpha).mean() < 8
    info = probe(path)
    assert (info.width, info.height, info.fps, info.codec) == (width, height, 15, "vp9")
    assert streams(path) == {"video": "vp9"}


def test_an_mp4_pads_an_odd_side_and_keeps_the_frame_rate(tmp_path):
    path = tmp_path / "clip.mp4"
    with VideoWriter(path, (20, 31), 24000 / 1001, alpha=False) as writer:
        for frame in _frames(4, 20, 31):
            writer.write(frame)
    back = list(read_video(path))
    assert len(back) == 4 and back[0].shape == (20, 32, 3)  # H.264 4:2:0 needs even sides
    assert abs(float(probe(path).fps) - 24000 / 1001) < 1e-3


def test_the_source_audio_is_carried_over(tmp_path):
    source = write_source(tmp_path / "src.mp4", _frames(6, 32, 48))
    info = probe(source)
    assert info.audio and info.frames == 6 and (info.width, info.height) == (48, 32)
    out = tmp_path / "out.webm"
    with VideoReader(source) as reader:
        with VideoWriter(out, (32, 48), info.fps, alpha=True, audio=reader.audio_stream) as writer:
            for frame in reader.frames():
                writer.write(np.dstack([frame, np.full(frame.shape[:2], 255, np.uint8)]))
                writer.write_audio(reader.take_audio())
            writer.write_audio(reader.take_audio())
    assert streams(out) == {"video": "vp9", "audio": "opus"}
    assert len(list(read_video(out, alpha=True))) == 6
    assert abs(probe(out).seconds - 0.5) < 0.1


def test_a_png_sequence_is_numbered_and_whole(tmp_path):
    pngs = PngSequence(tmp_path / "mattes")
    for value in (0, 128, 255):
        pngs.write(np.full((7, 9), value, np.uint8))
    names = sorted(p.name for p in (tmp_path / "mattes").iterdir())
    assert names == ["000000.png", "000001.png", "000002.png"]
    assert np.asarray(Image.open(tmp_path / "mattes" / "000001.png")).tolist()[0][0] == 128


def test_what_is_not_a_video_is_refused(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    with pytest.raises(VideoError, match="not a video"):
        probe(text)
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(photo)
    with pytest.raises(VideoError, match="photo"):
        probe(photo)
    with pytest.raises(VideoError):
        VideoReader(tmp_path / "missing.mp4")


def test_a_png_interrupted_while_written_leaves_no_partial_file(tmp_path, monkeypatch):
    pngs = PngSequence(tmp_path / "mattes")
    pngs.write(np.zeros((4, 4), np.uint8))

    def interrupted(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pngs.write(np.zeros((4, 4), np.uint8))
    assert [p.name for p in (tmp_path / "mattes").iterdir()] == ["000000.png"]

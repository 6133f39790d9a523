"""``clipmat video``: the PNG sequence and the video files it writes, Ctrl-C, and bad input."""

import json
import re

import numpy as np
import pytest
from helpers_video import streams, write_source
from PIL import Image

from clipmat import cli, matte_cli
from clipmat.data.clips import make_clip
from clipmat.video import codec
from clipmat.video.codec import probe, read_video

HEIGHT, WIDTH, COUNT = 64, 96, 6


@pytest.fixture(scope="module")
def clip():
    """A look-alike passing the target, cut to 96 x 64 (not square: a transposed output shows)."""
    return make_clip("pass", 0, size=96, length=COUNT)


@pytest.fixture(scope="module")
def source(clip, tmp_path_factory):
    """The clip as an MP4 (H.264, 12 frames/s) with an audio track."""
    frames = [np.ascontiguousarray(f.image[16:80]) for f in clip]
    return write_source(tmp_path_factory.mktemp("video") / "clip.mp4", frames)


@pytest.fixture
def loaded(monkeypatch, mini_world):
    """``clipmat video`` with the session's mini-world predictor (no second load)."""
    monkeypatch.setattr(matte_cli, "load_predictor", lambda name, **kwargs: mini_world)


def run(argv, capsys):
    """``clipmat ARGV`` in this process: (exit status, stdout, stderr)."""
    try:
        status = cli.main(argv)
    except SystemExit as stop:
        status = stop.code
    out, err = capsys.readouterr()
    return status, out, err


def _argv(source, clip, *more):
    return [
        "video",
        str(source),
        clip.phrase,
        "--predictor",
        "mini-world",
        "--precision",
        "fp32",
        "--quiet",
        *map(str, more),
    ]


def _pngs(folder):
    return sorted(folder.iterdir())


def test_writes_the_mattes_and_a_transparent_webm(source, clip, tmp_path, loaded, capsys):
    out, mattes = tmp_path / "out.webm", tmp_path / "mattes"
    status, stdout, err = run(_argv(source, clip, "-o", out, "--mattes", mattes, "--json"), capsys)
    assert status == 0, err
    report = json.loads(stdout)
    assert report["frames"] == COUNT and not report["interrupted"] and report["audio"]
    files = _pngs(mattes)
    assert [p.name for p in files] == [f"{i:06d}.png" for i in range(COUNT)]
    pngs = [np.asarray(Image.open(p)) for p in files]
    assert all(p.shape == (HEIGHT, WIDTH) and p.dtype == np.uint8 for p in pngs)
    back = list(read_video(out, alpha=True))
    assert len(back) == COUNT and back[0].shape == (HEIGHT, WIDTH, 4)
    assert np.abs(back[3][..., 3].astype(int) - pngs[3]).mean() < 6  # the alpha is the matte
    assert streams(out) == {"video": "vp9", "audio": "opus"}
    assert probe(out).fps == 12


def test_an_edit_is_an_mp4_with_the_audio(source, clip, tmp_path, loaded, capsys):
    out = tmp_path / "green.mp4"
    status, _, err = run(
        _argv(source, clip, "-o", out, "--edit", "color", "--color", "green"), capsys
    )
    assert status == 0, err
    back = list(read_video(out))
    assert len(back) == COUNT and back[0].shape == (HEIGHT, WIDTH, 3)
    assert streams(out) == {"video": "h264", "audio": "aac"}
    assert "6 frames (96x64)" in err


def test_ctrl_c_leaves_usable_partial_output(source, clip, tmp_path, loaded, capsys, monkeypatch):
    """KeyboardInterrupt raised by the frame source after 3 frames: status 130, three whole
    PNGs and a WebM that is closed and decodes to its 3 frames."""
    frames = codec.VideoReader.frames

    def interrupted(self):
        for i, frame in enumerate(frames(self)):
            if i == 3:
                raise KeyboardInterrupt
            yield frame

    monkeypatch.setattr(codec.VideoReader, "frames", interrupted)
    out, mattes = tmp_path / "part.webm", tmp_path / "mattes"
    status, _, err = run(_argv(source, clip, "-o", out, "--mattes", mattes), capsys)
    assert status == 130, err
    assert "interrupted" in err
    files = _pngs(mattes)
    assert [p.name for p in files] == ["000000.png", "000001.png", "000002.png"]
    assert all(np.asarray(Image.open(p)).shape == (HEIGHT, WIDTH) for p in files)
    back = list(read_video(out, alpha=True))
    assert len(back) == 3 and back[0].shape == (HEIGHT, WIDTH, 4)


@pytest.mark.parametrize(
    ("make", "more", "message"),
    [
        ("text", (), "cannot read the video"),
        ("photo", (), "this is a photo"),
        (
            "source",
            ("--box", "10,10,200,50"),
            "the box 10,10,200,50 is not inside the first frame (96x64",
        ),
        ("source", ("--points", "20,90"), "the click 20,90 is not inside the first frame"),
        ("missing", (), "no such video"),
    ],
)
def test_bad_input_is_one_error_line_and_status_2(
    make, more, message, source, clip, tmp_path, loaded, capsys
):
    path = {"source": source, "missing": tmp_path / "none.mp4"}.get(make, tmp_path / f"{make}.mp4")
    if make == "text":
        path.write_text("hello\n" * 50)
    if make == "photo":
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, format="PNG")
    out = tmp_path / "out.webm"
    status, _, err = run(_argv(path, clip, "-o", out, *more), capsys)
    assert status == 2, err
    assert err.startswith("clipmat video: error: ") and len(err.strip().splitlines()) == 1, err
    assert message in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-o", "out.mp4"], "the clip is a WebM: name it *.webm"),
        (["-o", "out.webm", "--edit", "color", "--color", "red"], "an MP4: name it *.mp4"),
        ([], "give -o OUT.webm"),
        (["-o", "out.webm", "--steady", "1.5"], "--steady is a weight in [0, 1)"),
        (["-o", "out.webm", "--color", "red"], "--color does not apply without --edit"),
    ],
)
def test_command_lines_that_cannot_run(argv, message, source, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, _, err = run(["video", str(source), "the red star", *argv], capsys)
    assert status == 2 and message in err, err


def test_the_verb_is_listed_with_its_own_help(capsys):
    status, out, _ = run(["video", "--help"], capsys)
    assert status == 0 and out.startswith("usage: clipmat video ")
    assert "--mattes" in out and "--edit" in out and "--box" in out
    status, out, _ = run(["--help"], capsys)
    assert "\n  video " in out


def test_a_progress_bar_with_frames_per_second(source, clip, tmp_path, loaded, capsys):
    argv = [a for a in _argv(source, clip, "--mattes", tmp_path / "m") if a != "--quiet"]
    status, _, err = run(argv, capsys)
    assert status == 0, err
    bars = re.findall(r"(\d+)/6 \[[^\]]*, +[\d.]+(frame/s|s/frame)\]", err)
    assert bars and int(bars[-1][0]) >= 1, err  # frames done of 6, at a measured rate


def test_the_mattes_alone_leave_the_audio_undecoded(
    source, clip, tmp_path, loaded, capsys, monkeypatch
):
    """Without a video to carry it into, the audio is not decoded (nor kept: memory stays bounded
    on a long clip); with one, it is."""
    opened = []
    original = codec.VideoReader.__init__

    def recording(self, path, *, audio=True):
        opened.append(audio)
        original(self, path, audio=audio)

    monkeypatch.setattr(codec.VideoReader, "__init__", recording)
    status, _, err = run(_argv(source, clip, "--mattes", tmp_path / "m"), capsys)
    assert status == 0 and opened == [False], (err, opened)
    status, _, err = run(_argv(source, clip, "-o", tmp_path / "o.webm", "--no-audio"), capsys)
    assert status == 0 and opened == [False, False], (err, opened)
    assert streams(tmp_path / "o.webm") == {"video": "vp9"}

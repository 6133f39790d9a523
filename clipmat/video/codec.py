"""Video files in and out through PyAV, whose wheel brings FFmpeg and its codecs (libvpx for
VP9, x264 for H.264, Opus, AAC): nothing for the user to install.

Read: :func:`probe` (size, frame rate, frame count, audio) and :class:`VideoReader` (frames one
at a time as (H, W, 3) uint8 RGB, upright; the audio decoded on the way and kept for a writer).
Write: :class:`VideoWriter`, a transparent WebM (VP9 with alpha, yuva420p: Chrome and Firefox
play it) or an MP4 (H.264, yuv420p, what every browser plays), the source's frame rate and
audio kept (Opus in WebM, AAC in MP4); :class:`PngSequence`, numbered 8-bit PNGs, each written
whole (a temporary file renamed), so an interrupted run leaves complete files only.
:func:`read_video` decodes a file back (with its alpha for VP9), for tests and checks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

PHOTO_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "gif", "bmp_pipe", "tiff_pipe")
WEBM_OPTIONS = {"deadline": "realtime", "cpu-used": "8", "crf": "30", "b": "0", "row-mt": "1"}
MP4_OPTIONS = {"preset": "veryfast", "crf": "20"}
DEFAULT_FPS = Fraction(25)


class VideoError(ValueError):
    """A file that cannot be read as a video, or a video that cannot be written."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` reads of a video file.

    Attributes:
        width, height: the upright frame size in pixels.
        fps: the average frame rate (frames per second).
        frames: the number of frames, as the file says or estimated from its duration (None
            when it says neither).
        seconds: its duration (None when unknown).
        audio: True when it has an audio stream.
        codec: the video codec's name.
    """

    width: int
    height: int
    fps: Fraction
    frames: int | None
    seconds: float | None
    audio: bool
    codec: str


def _open(path: str | Path) -> Any:
    """The file opened by PyAV for reading, with a video stream that is not a photo.

    Raises:
        VideoError: when it is missing, not a video, or a photo.
    """
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise VideoError(f"not a video FFmpeg can read ({_reason(err)})") from None
    if not container.streams.video:
        container.close()
        raise VideoError("the file has no video stream")
    if container.format.name in PHOTO_FORMATS:
        container.close()
        raise VideoError("this is a photo, not a video (matte it with 'clipmat matte')")
    return container


def _reason(err: BaseException) -> str:
    """An FFmpeg error's message without its errno and file name."""
    text = getattr(err, "strerror", None) or str(err)
    return " ".join(str(text).split())


def probe(path: str | Path, *, decode: bool = True) -> VideoInfo:
    """Read a video's size, frame rate, length and streams; its first frame is decoded, so a
    file that opens but does not decode is refused here, before any work. With ``decode``
    False only the container's header is read (the size is then the coded one, before any
    display rotation): for limits checked before any frame is decoded.

    Raises:
        VideoError: when the file is not a video (see :func:`_open`) or its first frame cannot
            be decoded.
    """
    import av

    with _open(path) as container:
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate or DEFAULT_FPS
        seconds = None
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / 1_000_000
        frames = stream.frames or (round(seconds * float(fps)) if seconds else None)
        if not decode:
            context = stream.codec_context
            return VideoInfo(
                context.width,
                context.height,
                Fraction(fps),
                frames,
                seconds,
                bool(container.streams.audio),
                context.name,
            )
        try:
            first = next(iter(container.decode(stream)), None)
        except av.FFmpegError as err:
            raise VideoError(f"cannot decode its first frame ({_reason(err)})") from None
        if first is None:
            raise VideoError("the video has no frames")
        height, width = _upright(first).shape[:2]
        return VideoInfo(
            width=width,
            height=height,
            fps=Fraction(fps),
            frames=frames,
            seconds=seconds,
            audio=bool(container.streams.audio),
            codec=stream.codec_context.name,
        )


def _upright(frame: Any) -> np.ndarray:
    """A decoded video frame as (H, W, 3) uint8 RGB, turned by its display rotation."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = round(getattr(frame, "rotation", 0) or 0) // 90 % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


class VideoReader:
    """A video's frames, decoded one at a time; its audio decoded on the way and kept (a few
    frames' worth) until a writer takes it (:meth:`take_audio`).

    Args:
        path: the video file.
        audio: decode the audio too (else its packets are skipped).

    Raises:
        VideoError: when the file is not a video.
    """

    def __init__(self, path: str | Path, *, audio: bool = True) -> None:
        self.path = Path(path)
        self.info = probe(path)
        self._container = _open(path)
        self._video = self._container.streams.video[0]
        self._video.thread_type = "AUTO"
        streams = self._container.streams
        self._audio_stream = streams.audio[0] if audio and streams.audio else None
        self._audio: list[Any] = []

    @property
    def audio_stream(self) -> Any:
        """The source's audio stream (its rate and layout), or None."""
        return self._audio_stream

    def frames(self) -> Iterator[np.ndarray]:
        """The frames in order, (H, W, 3) uint8 RGB, upright.

        Raises:
            VideoError: when a packet cannot be decoded.
        """
        import av

        streams = [s for s in (self._video, self._audio_stream) if s is not None]
        try:
            for packet in self._container.demux(*streams):
                if packet.stream.type == "audio":
                    self._audio.extend(packet.decode())
                    continue
                for frame in packet.decode():
                    yield _upright(frame)
        except av.FFmpegError as err:
            raise VideoError(f"cannot decode {self.path.name}: {_reason(err)}") from None

    def take_audio(self) -> list[Any]:
        """The audio frames decoded since the last call (PyAV ``AudioFrame``s)."""
        taken, self._audio = self._audio, []
        return taken

    def close(self) -> None:
        """Close the file."""
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoWriter:
    """A video file written frame by frame: a WebM with alpha (VP9, yuva420p) when ``alpha``,
    else an MP4 (H.264, yuv420p; an odd side is padded by one repeated row or column).

    Args:
        path: the file to write (its folder is created).
        size: (H, W) of the frames.
        fps: frames per second.
        alpha: write RGBA frames into a transparent WebM; else RGB frames into an MP4.
        audio: the source's audio stream (:attr:`VideoReader.audio_stream`) to re-encode
            (Opus in WebM, AAC in MP4), or None.

    Raises:
        VideoError: when the file cannot be created.
    """

    def __init__(
        self,
        path: str | Path,
        size: tuple[int, int],
        fps: Fraction | float,
        *,
        alpha: bool,
        audio: Any = None,
    ) -> None:
        import av

        self.path, self.alpha, self.count = Path(path), alpha, 0
        height, width = size
        self._pad = (0, 0) if alpha else (height % 2, width % 2)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), "w", format="webm" if alpha else "mp4")
        except (av.FFmpegError, OSError) as err:
            raise VideoError(f"cannot write {self.path}: {_reason(err)}") from None
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libvpx-vp9" if alpha else "libx264", rate=rate)
        self._stream.width, self._stream.height = width + self._pad[1], height + self._pad[0]
        self._stream.pix_fmt = "yuva420p" if alpha else "yuv420p"
        self._stream.options = dict(WEBM_OPTIONS if alpha else MP4_OPTIONS)
        self._audio = None
        if audio is not None:
            codec = "libopus" if alpha else "aac"
            self._audio = self._container.add_stream(codec, rate=48000 if alpha else audio.rate)
        self._closed = False

    def write(self, image: np.ndarray) -> None:
        """Append one frame: (H, W, 4) uint8 RGBA for a WebM, (H, W, 3) uint8 RGB for an MP4."""
        import av

        if any(self._pad):
            image = np.pad(image, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=self._format)
        frame.pts = self.count
        self.count += 1
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    @property
    def _format(self) -> str:
        return "rgba" if self.alpha else "rgb24"

    def write_audio(self, frames: list[Any]) -> None:
        """Append the source's audio frames (from :meth:`VideoReader.take_audio`)."""
        if self._audio is None:
            return
        for frame in frames:
            frame.pts = None  # the encoder counts samples from the start
            for packet in self._audio.encode(frame):
                self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoders and close the file (it plays to its last frame); idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            for stream in (self._stream, self._audio):
                if stream is not None:
                    for packet in stream.encode(None):
                        self._container.mux(packet)
        finally:
            self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PngSequence:
    """Numbered 8-bit PNGs in a folder (``DIR/000000.png``, ...), each written to a temporary
    file and renamed, so that every file present is whole.

    Args:
        folder: created when missing.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def write(self, image: np.ndarray) -> Path:
        """Write the next image ((H, W) or (H, W, C) uint8); returns its path."""
        from PIL import Image

        path = self.folder / f"{self.count:06d}.png"
        part = path.with_name(f".{path.name}.part")
        try:
            Image.fromarray(image).save(part, format="PNG", compress_level=1)
            os.replace(part, path)
        except BaseException:  # Ctrl-C in the middle of a file: no partial file is left
            part.unlink(missing_ok=True)
            raise
        self.count += 1
        return path


def read_video(path: str | Path, *, alpha: bool = False) -> Iterator[np.ndarray]:
    """Decode a video file's frames: (H, W, 4) uint8 RGBA when ``alpha`` (a VP9 stream's alpha
    is read by libvpx), else (H, W, 3) uint8 RGB.

    Raises:
        VideoError: when the file is not a video.
    """
    import av

    with _open(path) as container:
        stream = container.streams.video[0]
        if not alpha:
            for frame in container.decode(stream):
                yield _upright(frame)
            return
        name = "libvpx-vp9" if stream.codec_context.name == "vp9" else stream.codec_context.name
        decoder = av.CodecContext.create(name, "r")
        for packet in container.demux(stream):
            for frame in decoder.decode(packet):
                yield frame.to_ndarray(format="rgba")

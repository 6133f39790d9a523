"""Tiny video files for the video tests, written with PyAV directly (independent of the code
under test): H.264 frames and, when asked, an AAC sine tone of the clip's length."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_source(path: Path, frames: list[np.ndarray], fps: int = 12, audio: bool = True) -> Path:
    """Write (H, W, 3) uint8 ``frames`` (even sides) as an MP4, with 44.1 kHz audio."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=Fraction(fps))
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "12"}
        tone = out.add_stream("aac", rate=44100) if audio else None
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        if tone is not None:
            samples = int(44100 * len(frames) / fps)
            wave = (0.2 * np.sin(np.arange(samples) * 0.05)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = np.stack([wave[start : start + 1024]] * 2)
                sound = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                sound.sample_rate, sound.pts = 44100, start
                for packet in tone.encode(sound):
                    out.mux(packet)
        for stream in (video, tone):
            if stream is not None:
                for packet in stream.encode(None):
                    out.mux(packet)
    return path


def streams(path: Path) -> dict[str, str]:
    """{"video": codec, "audio": codec} of a file's streams."""
    with av.open(str(path)) as container:
        return {s.type: s.codec_context.name for s in container.streams}

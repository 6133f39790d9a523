"""The app's Video tab: a phrase through a short clip; the edited clip and the matte clips.

A clip is checked from its header before any frame is decoded (:func:`clip_problem`: its
length, frame size and frame count under :class:`VideoLimits`), as photos are checked before
they are decoded, and its frames are counted again while they are decoded (a header can lie).
Frames are matted by :func:`clipmat.video.predict_video` through the app's pool and service:
each frame takes one of the service's matte slots and the predictor's lock for its predict only
(:class:`PooledPredictor`), so a photo's matte waits at most one frame behind a clip. The
outputs are written in the service's folder, under its disk budget: the edited clip (MP4,
H.264, the source's audio), the matte as a grey MP4 and the transparent clip (WebM, VP9 with
alpha). The tab's events go through the app's queue and its admission like every other.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

import editing
from clipmat.video import predict_video
from clipmat.video.codec import VideoError, VideoReader, VideoWriter, probe
from clipmat.video.stream import LatestFrame
from clipmat_app.callbacks import guarded, user_error
from clipmat_app.components import PhotoInput
from clipmat_app.edits import DEFAULT_COLOR, EditSettings, apply_edit
from clipmat_app.inputs import clean_phrase, read_photo, upload_folders, upload_problem
from clipmat_app.pool import PredictorPool
from clipmat_app.service import MatteService

MAX_SECONDS = 20.0  # the longest clip the app mattes
MAX_FRAME_PIXELS = 1280 * 720  # the largest frame
MAX_FRAMES = 600  # the most frames (20 s at 30 frames/s)
VIDEO_MODES = [("Highlight", "highlight"), ("New background", "background"), ("Colour", "color")]


@dataclass(frozen=True)
class VideoLimits:
    """What a clip may be: seconds long, pixels a frame, frames in all."""

    seconds: float = MAX_SECONDS
    pixels: int = MAX_FRAME_PIXELS
    frames: int = MAX_FRAMES

    def describe(self) -> str:
        """The limits in words, e.g. "up to 20 s, 600 frames and 0.92 MP a frame (1280x720)"."""
        size = " (1280x720)" if self.pixels == MAX_FRAME_PIXELS else ""
        return (
            f"up to {self.seconds:g} s, {self.frames} frames and {self.pixels / 1e6:.2g} MP a "
            f"frame{size}"
        )


def clip_problem(path: str | Path, limits: VideoLimits) -> str | None:
    """Why the clip at ``path`` cannot be matted, judged from its header (no frame decoded);
    None when it can."""
    try:
        info = probe(path, decode=False)
    except VideoError as err:
        return f"this file cannot be read as a video: {err}; upload an MP4, WebM or MOV clip"
    if info.width * info.height > limits.pixels:
        return (
            f"the clip's frames are {info.width}x{info.height}; this app mattes clips "
            f"{limits.describe()}: scale it down first"
        )
    if info.seconds is not None and info.seconds > limits.seconds + 1.0 / float(info.fps):
        return f"the clip is {info.seconds:.1f} s long; this app mattes clips {limits.describe()}"
    if info.frames is not None and info.frames > limits.frames:
        return f"the clip has {info.frames} frames; this app mattes clips {limits.describe()}"
    return None


class PooledPredictor:
    """A pool's predictor as :func:`clipmat.video.predict_video` sees it: each call to
    ``predict`` takes one of the service's matte slots and the predictor's lock (the pool's)."""

    def __init__(self, pool: PredictorPool, name: str, service: MatteService) -> None:
        self.pool, self.name, self.service = pool, name, service
        self.predictor = pool.get(name)

    @property
    def model(self) -> Any:
        """The predictor's model (the phrase is then encoded once for the clip)."""
        return getattr(self.predictor, "model", None)

    @property
    def precision(self) -> str:
        return getattr(self.predictor, "precision", "fp32")

    def predict(self, image: Any, text: Any, **options: Any) -> Any:
        with self.service.matting_slot():
            return self.pool.predict(self.name, image, text, **options)


@dataclass
class VideoOutputs:
    """What a clip's run wrote, and how it went."""

    edited: Path
    matte: Path
    transparent: Path
    frames: int = 0
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)

    def status(self, phrase: str, predictor: str) -> str:
        """The status line shown under the clip."""
        followed = ", ".join(f"{k} {v}" for k, v in self.statuses.items())
        rate = self.frames / self.seconds if self.seconds else 0.0
        return (
            f"**{predictor}** followed '{phrase}' through {self.frames} frames in "
            f"{self.seconds:.1f} s ({rate:.1f} frames/s; {followed})."
        )


class VideoJobs:
    """Clips matted through an app's pool and service (see the module's docstring).

    Args:
        pool: where predictors come from.
        service: its matte slots bound every frame; its folder (and disk budget) holds the
            outputs.
        limits: what a clip may be.
    """

    def __init__(
        self, pool: PredictorPool, service: MatteService, limits: VideoLimits | None = None
    ) -> None:
        self.pool, self.service = pool, service
        self.limits = limits or VideoLimits()

    def check(self, path: Any) -> Path:
        """The clip's path, once it is an upload within the limits.

        Raises:
            ValueError: saying what is accepted.
        """
        if path is None:
            raise ValueError("no clip: upload a video first")
        problem = upload_problem(path, upload_folders()) or clip_problem(path, self.limits)
        if problem:
            raise ValueError(problem)
        return Path(path)

    def run(
        self,
        path: Any,
        phrase: Any,
        predictor: str,
        settings: EditSettings,
        progress: Callable[..., Any] | None = None,
    ) -> VideoOutputs:
        """Matte the clip at ``path``, writing its three outputs; see :class:`VideoOutputs`.

        Raises:
            ValueError: for a clip, phrase or setting that cannot be used, saying why.
        """
        clip = self.check(path)
        text, _ = clean_phrase(phrase)
        if settings.mode == "background" and settings.background is not None:
            backdrop = read_photo(settings.background, max_side=self.service.max_side).rgb
            settings = EditSettings(
                settings.mode, settings.effects, settings.strength, settings.color, backdrop
            )
        run = f"{clip}|{text}|{predictor}|{settings.mode}|{time.time_ns()}".encode()
        folder = self.service.workdir / f"video-{hashlib.blake2b(run, digest_size=8).hexdigest()}"
        outputs = VideoOutputs(folder / "edited.mp4", folder / "matte.mp4", folder / "cutout.webm")
        start = time.perf_counter()
        try:
            with VideoReader(clip) as reader:
                self._write(
                    reader,
                    text,
                    PooledPredictor(self.pool, predictor, self.service),
                    settings,
                    outputs,
                    progress,
                )
        except VideoError as err:
            raise ValueError(f"the clip could not be decoded: {err}") from None
        outputs.seconds = time.perf_counter() - start
        if self.service.storage is not None:
            self.service.storage.enforce()
        return outputs

    def _frames(self, reader: VideoReader) -> Iterator[np.ndarray]:
        """The clip's frames, stopped with an error past the limit (whatever its header said)."""
        for count, frame in enumerate(reader.frames(), start=1):
            if count > self.limits.frames:
                raise ValueError(
                    f"the clip has more frames than its header says; this app "
                    f"mattes clips {self.limits.describe()}"
                )
            yield frame

    def _write(
        self,
        reader: VideoReader,
        phrase: str,
        predictor: PooledPredictor,
        settings: EditSettings,
        outputs: VideoOutputs,
        progress: Callable[..., Any] | None,
    ) -> None:
        """Predict every frame and write the three outputs."""
        info = reader.info
        size, total = (info.height, info.width), info.frames or self.limits.frames
        audio = reader.audio_stream
        with (
            VideoWriter(outputs.edited, size, info.fps, alpha=False, audio=audio) as edited,
            VideoWriter(outputs.matte, size, info.fps, alpha=False) as matte,
            VideoWriter(outputs.transparent, size, info.fps, alpha=True, audio=audio) as clear,
        ):
            source = LatestFrame(self._frames(reader))
            for result in predict_video(predictor, source, phrase):
                rgb, alpha = source.frame, result.alpha
                grey = np.rint(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8)
                edited.write(apply_edit(editing.MatteEdit(rgb, alpha), settings))
                matte.write(np.repeat(grey[..., None], 3, axis=2))
                clear.write(np.dstack([rgb, grey]))
                sound = reader.take_audio()
                edited.write_audio(sound)
                clear.write_audio(sound)
                outputs.frames += 1
                outputs.statuses[result.status] += 1
                if progress is not None:
                    progress(min(1.0, outputs.frames / total), desc=f"Frame {outputs.frames}")


class VideoCallbacks:
    """The Video tab's event: /video (clip, phrase, predictor, mode, colour, background) ->
    (the edited clip, the matte clip, the transparent clip, the status line)."""

    def __init__(self, jobs: VideoJobs) -> None:
        self.jobs = jobs
        self.run = guarded(self.run)

    def run(
        self,
        clip: str | None,
        phrase: str | None,
        predictor: str | None,
        mode: str | None = "highlight",
        color: str | None = DEFAULT_COLOR,
        background: str | None = None,
        progress: Any = gr.Progress(),  # noqa: B008  (Gradio reads its progress tracker here)
    ) -> tuple[str, str, str, str]:
        """/video: matte the clip (a file Gradio received) and answer with the edited clip, the
        matte clip, the transparent clip (paths) and the status line."""
        if not predictor:
            raise user_error("no predictor can run on this server")
        try:
            settings = EditSettings(
                mode or "highlight", ("dim",), 0.6, color or DEFAULT_COLOR, background
            )
            out = self.jobs.run(clip, phrase, predictor, settings, progress)
        except (ValueError, TypeError) as err:
            raise user_error(str(err)) from None
        return str(out.edited), str(out.matte), str(out.transparent), out.status(phrase, predictor)


def video_tab(pool: PredictorPool, service: MatteService, default: str | None) -> None:
    """The Video tab's widgets and event, inside the caller's ``gr.Tab``."""
    jobs = VideoJobs(pool, service)
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=320):
            clip = gr.Video(
                label=f"Clip: up to {jobs.limits.seconds:g} s",
                sources=["upload"],
                format=None,
                elem_id="video-clip",
            )
            phrase = gr.Textbox(
                label="Phrase",
                placeholder="e.g. the dog on the left",
                max_lines=2,
                elem_id="video-phrase",
            )
            predictor = gr.Dropdown(
                pool.names(), value=default, label="Predictor", elem_id="video-predictor"
            )
            mode = gr.Radio(VIDEO_MODES, value="highlight", label="Edit", elem_id="video-mode")
            color = gr.ColorPicker(DEFAULT_COLOR, label="Colour", elem_id="video-color")
            background = PhotoInput(
                image_mode=None,
                type="filepath",
                sources=["upload"],
                label="New background (empty: blur the clip's own)",
                height=140,
            )
            run = gr.Button("Matte the clip", variant="primary", elem_id="video-run")
        with gr.Column(scale=8, min_width=480):
            status = gr.Markdown(
                f"Upload a clip {jobs.limits.describe()}; type a phrase and press "
                "**Matte the clip**: the phrase picks the object on the first frame, and it "
                "is followed through the clip.",
                elem_id="video-status",
            )
            edited = gr.Video(
                label="Edited clip", interactive=False, format=None, elem_id="video-edited"
            )
            with gr.Row():
                matte = gr.DownloadButton("Download the matte clip (MP4)", value=None)
                clear = gr.DownloadButton("Download the transparent clip (WebM)", value=None)
    run.click(
        VideoCallbacks(jobs).run,
        [clip, phrase, predictor, mode, color, background],
        [edited, matte, clear, status],
        api_name="video",
        concurrency_limit=1,  # one clip at a time; its frames share the matte slots
        concurrency_id="video",
    )

"""Text-driven video matting: a phrase through a clip, the object followed, its matte steady.

:func:`predict_video` (also :meth:`clipmat.Predictor.predict_video`) yields one result per
frame; :mod:`clipmat.video.codec` reads and writes video files (PyAV), :mod:`~.follow` and
:mod:`~.steady` hold the object and its edges, :mod:`~.metrics` measures both, and
:mod:`~.cli` is the ``clipmat video`` command. See ``docs/video.md``.
"""

from clipmat.video.stream import FrameResult, predict_video, text_encoded_once

__all__ = ["FrameResult", "predict_video", "text_encoded_once"]

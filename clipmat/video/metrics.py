"""Measures of a video matte against known alphas: grounding, identity switches, MAD and
temporal stability (dtSSD).

dtSSD is Robust Video Matting's (Lin et al., 2021; its evaluation code): for each frame t > 0,
``100 * sqrt(sum(((p_t - p_{t-1}) - (g_t - g_{t-1}))**2) / N)`` with p and g the predicted and
true alphas in [0, 1] (read from 8-bit PNGs there, so both are rounded to 8 bits here) and N the
pixels of a frame; a clip's value is the mean over its frames after the first. MAD is the mean
absolute difference times 1e3 (as the same code reports it). Grounding is the share of frames
whose matte has IoU above 0.5 with the referred entity's alpha at 0.5
(:func:`clipmat.metrics.grounding_hit`; an empty matte where the entity is absent counts as
found). The entity a matte shows is the one it has IoU above 0.5 with (none when no entity
does); an identity switch is a frame whose entity differs from the last entity shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clipmat.metrics import grounding_hit, iou


def to_8bit(alpha: np.ndarray) -> np.ndarray:
    """(H, W) float alpha rounded to 8 bits and back, float32 in [0, 1]."""
    return np.rint(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.float32) / 255.0


def dtssd(
    pred: np.ndarray, pred_before: np.ndarray, true: np.ndarray, true_before: np.ndarray
) -> float:
    """RVM's dtSSD of one frame: (H, W) alphas in [0, 1] of this frame and the one before."""
    change = (pred - pred_before) - (true - true_before)
    return float(100.0 * np.sqrt(np.sum(change.astype(np.float64) ** 2) / true.size))


def shown_entity(alpha: np.ndarray, alphas: np.ndarray) -> int | None:
    """The entity of (K, H, W) ``alphas`` that the (H, W) matte shows (IoU above 0.5), or None."""
    scores = [iou(alpha, a) if (a > 0.5).any() else 0.0 for a in alphas]
    best = int(np.argmax(scores)) if scores else 0
    return best if scores and scores[best] > 0.5 else None


def count_switches(shown: list[int | None]) -> int:
    """How often the entity shown changes (frames showing none are skipped)."""
    seen = [s for s in shown if s is not None]
    return sum(a != b for a, b in zip(seen, seen[1:]))


@dataclass
class ClipScore:
    """The measures of one clip, frame by frame (:meth:`add`), then :meth:`summary`.

    Args:
        target: the referred entity's index in each frame's ``alphas``.
    """

    target: int
    hits: list[float] = field(default_factory=list)
    mads: list[float] = field(default_factory=list)
    dtssds: list[float] = field(default_factory=list)
    shown: list[int | None] = field(default_factory=list)
    _before: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def add(self, alpha: np.ndarray, alphas: np.ndarray) -> None:
        """Score one frame: the (H, W) predicted matte and every entity's (K, H, W) alpha."""
        pred, true = to_8bit(alpha), to_8bit(alphas[self.target])
        self.hits.append(float(grounding_hit(pred, true)))
        self.mads.append(float(np.abs(pred - true).mean() * 1e3))
        if self._before is not None:
            self.dtssds.append(dtssd(pred, self._before[0], true, self._before[1]))
        self._before = (pred, true)
        self.shown.append(shown_entity(pred, alphas))

    def summary(self) -> dict[str, float]:
        """{"frames", "grounding", "mad", "dtssd", "switches", "wrong"}: grounding the share
        of frames found, mad and dtssd means over the frames, switches the identity switches,
        wrong the frames showing another entity than the referred one."""
        return {
            "frames": len(self.hits),
            "grounding": float(np.mean(self.hits)) if self.hits else 0.0,
            "mad": float(np.mean(self.mads)) if self.mads else 0.0,
            "dtssd": float(np.mean(self.dtssds)) if self.dtssds else 0.0,
            "switches": count_switches(self.shown),
            "wrong": sum(s is not None and s != self.target for s in self.shown),
        }

"""Dense text-patch similarity and the regions it proposes (pure torch / numpy, no model).

The patch embeddings come from a training-free dense CLIP (see
:meth:`clipmat.model.backbone.CLIPBackbone.encode_dense`); here they meet the text embeddings:
a softmax over the phrase, the other phrases of a union, distractor and background prompts
turns cosine similarities into a per-patch probability, whose connected regions are the
candidates.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch
import torch.nn.functional as F

POSITION_KEEP = 0.1  # a position word chooses among candidates with this share of the best one
COMPETITOR_MAX_COSINE = 0.95
"""A competitor (background or distractor prompt) whose text embedding has a cosine above this
with a phrase of the request is that phrase, or nearly, and may be left out of the softmax (see
:func:`keep_competitors` for the second condition).

The same word in the same templates ("the sky" against the background prompt "sky": the article
is stripped before templating) gives exactly 1, and then the phrase can never pass probability
0.5. Below 1 the limit is what a patch can tell apart: a patch whose embedding equals the
phrase's beats a competitor at cosine c by exp(s (1 - c)) in the softmax, s the logit scale. At
c = 0.95 that is e^2.5 = 12 at ClearCLIP's s = 50 and e^2 = 7.4 at SCLIP's s = 40: against one
such competitor the phrase reaches at most 0.92 and 0.88 on its own patches, against several
less, so any closer competitor is a second name for the phrase rather than something else.
"""


@dataclass
class Region:
    """One connected region of patches that matches a phrase.

    Attributes:
        mask: (h, w) bool on the patch grid.
        score: mean cosine similarity of its patches to the phrase, in [-1, 1].
        probability: mean probability of the phrase over its patches, in [0, 1].
        share: softmax of ``score`` against the other regions of the phrase, in [0, 1].
        centre: (x, y) centre of mass on the patch grid.
        bbox: (x0, y0, x1, y1) on the patch grid, end exclusive.
    """

    mask: np.ndarray
    score: float
    probability: float
    share: float
    centre: tuple[float, float]
    bbox: tuple[int, int, int, int]

    @property
    def area(self) -> int:
        """Number of patches."""
        return int(self.mask.sum())


def class_probabilities(
    patches: torch.Tensor,
    classes: torch.Tensor,
    logit_scale: float,
    *,
    normalize_patches: bool = True,
) -> torch.Tensor:
    """Softmax over classes of the scaled cosine similarity, per patch.

    Args:
        patches: (h, w, E) patch embeddings (normalised here unless ``normalize_patches`` is
            False: windows' unit embeddings averaged on a grid are used as they are).
        classes: (K, E) class (prompt) embeddings (normalised here).
        logit_scale: the inverse temperature (e.g. ClearCLIP's 50).
        normalize_patches: see ``patches``.

    Returns:
        (K, h, w) float32 probabilities, summing to 1 over K.
    """
    if patches.ndim != 3 or classes.ndim != 2 or patches.shape[-1] != classes.shape[-1]:
        raise ValueError(
            f"expected patches (h, w, E) and classes (K, E), got {tuple(patches.shape)} and "
            f"{tuple(classes.shape)}"
        )
    cos = cosine_map(patches, classes, normalize_patches=normalize_patches)
    return (logit_scale * cos).softmax(dim=0)


def keep_competitors(
    phrases: torch.Tensor, competitors: torch.Tensor, max_cosine: float = COMPETITOR_MAX_COSINE
) -> torch.Tensor:
    """Which competitors may compete with the phrases of a request, by embedding similarity.

    A competitor is dropped when its cosine to some phrase is above both ``max_cosine`` and
    every cosine between two distinct competitors. The competitors name different things, so
    the closest two of them show how near different things come in this text space; a phrase
    nearer than that to a competitor, and nearer than ``max_cosine``, is that competitor. In a
    real CLIP unrelated words lie well under 0.95 and the rule is the fixed threshold; in a
    small text tower trained briefly (the mini world's: background words at cosines 0.99 to
    0.999 of each other, mini-world phrases at 0.77 to 0.995 of them) a fixed 0.95 would drop
    most competitors of every phrase, this rule none, while "the wall" still drops "wall".
    Competitors with the same embedding (cosine 1) count as one.

    Args:
        phrases: (N, E) text embeddings of the request's phrases (normalised here).
        competitors: (M, E) embeddings of the background and distractor prompts (normalised
            here).
        max_cosine: the least cosine at which a competitor is the phrase (see
            ``COMPETITOR_MAX_COSINE``).

    Returns:
        (M,) bool, True for the competitors to keep.
    """
    if phrases.ndim != 2 or competitors.ndim != 2 or phrases.shape[1] != competitors.shape[1]:
        raise ValueError(
            f"expected phrases (N, E) and competitors (M, E), got {tuple(phrases.shape)} and "
            f"{tuple(competitors.shape)}"
        )
    p = F.normalize(phrases.float(), dim=-1)
    c = F.normalize(competitors.float(), dim=-1)
    if len(p) == 0:
        return torch.ones(len(c), dtype=torch.bool, device=c.device)
    return (c @ p.T).amax(dim=1) <= competitor_threshold(c, max_cosine)


def competitor_threshold(competitors: torch.Tensor, max_cosine: float) -> float:
    """max(``max_cosine``, the highest cosine between two competitors of distinct embeddings).

    Args:
        competitors: (M, E) unit embeddings.
    """
    pairs = competitors @ competitors.T
    distinct = pairs < 1.0 - 1e-6  # the diagonal and duplicates are not two competitors
    spread = float(pairs[distinct].max()) if distinct.any() else -1.0
    return max(max_cosine, spread)


def cosine_map(
    patches: torch.Tensor, classes: torch.Tensor, *, normalize_patches: bool = True
) -> torch.Tensor:
    """(h, w, E) patches and (K, E) classes -> (K, h, w) float32 cosine similarities (dot
    products with the unit classes when ``normalize_patches`` is False)."""
    p = F.normalize(patches.float(), dim=-1) if normalize_patches else patches.float()
    c = F.normalize(classes.float(), dim=-1)
    return torch.einsum("hwe,ke->khw", p, c)


def find_regions(
    prob: np.ndarray,
    cosine: np.ndarray,
    *,
    threshold: float = 0.5,
    min_patches: int = 1,
    logit_scale: float = 100.0,
) -> list[Region]:
    """The 8-connected regions where a phrase wins, best first.

    Args:
        prob: (h, w) float probability of the phrase per patch, in [0, 1].
        cosine: (h, w) float cosine similarity of each patch to the phrase.
        threshold: a patch belongs to the phrase above this probability.
        min_patches: smaller regions are dropped (unless none would be left).
        logit_scale: inverse temperature of the softmax that turns scores into shares.

    Returns:
        Regions sorted by decreasing score; empty when no patch passes the threshold.
    """
    prob, cosine = np.asarray(prob, np.float32), np.asarray(cosine, np.float32)
    if prob.ndim != 2 or prob.shape != cosine.shape:
        raise ValueError(
            f"prob and cosine must be equal (h, w) maps, got {prob.shape}, {cosine.shape}"
        )
    inside = (prob > threshold).astype(np.uint8)
    count, labels = cv2.connectedComponents(inside, connectivity=8)
    masks = [labels == k for k in range(1, count)]
    big = [m for m in masks if m.sum() >= min_patches]
    masks = big or masks
    if not masks:
        return []
    scores = np.array([float(cosine[m].mean()) for m in masks])
    shares = _shares(scores, logit_scale)
    regions = []
    for m, s, share in zip(masks, scores, shares, strict=True):
        ys, xs = np.nonzero(m)
        regions.append(
            Region(
                mask=m,
                score=float(s),
                probability=float(prob[m].mean()),
                share=float(share),
                centre=(float(xs.mean()) + 0.5, float(ys.mean()) + 0.5),
                bbox=(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1),
            )
        )
    regions.sort(key=lambda r: -r.score)
    return regions


def _shares(scores: np.ndarray, logit_scale: float) -> np.ndarray:
    """Softmax of the scaled scores: each region's share of the phrase."""
    shares = np.exp(logit_scale * (scores - scores.max()))
    return shares / shares.sum()


def rescore_regions(
    regions: list[Region], scores: list[float], logit_scale: float = 100.0
) -> list[Region]:
    """Regions with new scores (e.g. from crops scored whole), shares recomputed, best first."""
    if len(scores) != len(regions):
        raise ValueError(f"{len(regions)} regions but {len(scores)} scores")
    if not regions:
        return []
    shares = _shares(np.asarray(scores, np.float64), logit_scale)
    out = [
        replace(r, score=float(s), share=float(share))
        for r, s, share in zip(regions, scores, shares, strict=True)
    ]
    return sorted(out, key=lambda r: -r.score)


def choose_region(regions: list[Region], position: tuple[int, int] | None = None) -> int:
    """Index of the region a phrase refers to: the best score, or the one at the asked position.

    Args:
        regions: candidates, best first (as from :func:`find_regions`).
        position: (axis, sign) from :func:`clipmat.zeroshot.prompts.position_preference`:
            among regions with at least ``POSITION_KEEP`` of the best share, the one with the
            smallest (sign -1) or largest (sign 1) centre coordinate on that axis.

    Raises:
        ValueError: when ``regions`` is empty.
    """
    if not regions:
        raise ValueError("no region to choose from")
    if position is None or len(regions) == 1:
        return 0
    axis, sign = position
    best = max(r.share for r in regions)
    keep = [i for i, r in enumerate(regions) if r.share >= POSITION_KEEP * best]
    return max(keep, key=lambda i: sign * regions[i].centre[axis])


def region_probability(
    prob: np.ndarray, regions: list[Region], index: int, grow: int = 1
) -> np.ndarray:
    """The phrase's probability kept only on and around one region (the others zeroed).

    Args:
        prob: (h, w) float in [0, 1].
        regions: all candidate regions of the phrase.
        index: the chosen one.
        grow: patches the region is dilated by, so its soft border survives.

    Returns:
        (h, w) float32 in [0, 1].
    """
    keep = regions[index].mask.astype(np.uint8)
    if grow > 0:
        keep = cv2.dilate(keep, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    keep = keep > 0
    for i, other in enumerate(regions):
        if i != index:
            keep &= ~other.mask
    return np.where(keep, prob, 0.0).astype(np.float32)

"""ZeroShotPredictor: referring matting from a CLIP with no training.

The image tower is made dense with ClearCLIP's training-free change of its last block
(query-query attention, no residual, no feed-forward; SCLIP, MaskCLIP and other readings
selectable), so every patch has an embedding in the text space. The photo is read as ClearCLIP
evaluates: its short side resized, square windows at a stride read alone, their cosine logits
averaged where they overlap, the logit scale of the method (see :class:`ZeroShotConfig`); one
global pass is an option. A phrase (its template ensemble) competes per patch with the other
phrases of a union, and with the distractor and background prompts that are not the phrase
itself (judged by embedding, :func:`dense.keep_competitors`); the connected regions where it
wins are the candidates. When there are several, each is also scored whole, after ReCLIP's
isolation of proposals (a square crop around the region, the rest blurred, through the pooled
image embedding), since a patch knows less about an object's shape than the whole crop does.
The best candidate (or the one at a named position) is turned into a trimap at a working
resolution, matted in closed form, and upsampled to the photo's size with a guided filter. The
windows' patch embeddings are combined once per photo and cached, so a second phrase on the same
photo costs only the text tower, the candidates' crops and the matting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from clipmat import refine
from clipmat.model.backbone import CLIPBackbone
from clipmat.predictors.base import Predictor
from clipmat.predictors.results import (
    EncodedImage,
    MattingResult,
    Photo,
    PredictOptions,
    apply_choice,
    make_candidate,
)
from clipmat.runtime import LRUCache, autocast
from clipmat.transforms import model_input_size, to_model_input
from clipmat.zeroshot import dense, prompts, windows
from clipmat.zeroshot.config import ZeroShotConfig

TEXT_CACHE_SIZE = 256  # phrases whose ensembled embeddings are kept
MAX_FALLBACK_AREA = 0.5  # largest fallback candidate, as a fraction of the patch grid
CROP_FILL = 0.75  # a region's crop is a square whose side is its longest side / this
CROP_SIDE = 224  # crops are scored at most at this side (CLIP's pretraining resolution)
MAX_CROPS = 8  # regions cropped at most (the best by dense score; see _crop_scores)
MIN_MATTING_SIDE = 3  # closed-form matting builds its Laplacian on 3 x 3 windows; thinner
# photos get the coarse map (see _matte)


def matting_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """The closed-form matting resolution: long side at most ``max_side``, aspect kept (see
    :func:`refine.working_size`), but each side at least ``MIN_MATTING_SIDE`` pixels where the
    photo has them (a 700 x 3 photo is matted at 700 x 3, not 768 x 1)."""
    h, w = refine.working_size(height, width, max_side)
    return max(h, min(height, MIN_MATTING_SIDE)), max(w, min(width, MIN_MATTING_SIDE))


def isolate_region(photo: np.ndarray, mask: np.ndarray, fill: float = CROP_FILL) -> np.ndarray:
    """A square crop of ``photo`` around a patch-grid ``mask``, blurred outside the mask.

    Args:
        photo: (H, W, 3) uint8.
        mask: (h, w) bool on the patch grid.
        fill: share of the crop's side that the region's longer side takes.

    Returns:
        (S, S, 3) uint8 crop (the square is moved to stay inside the photo, and shrinks to the
        photo's shorter side when it cannot).
    """
    height, width = photo.shape[:2]
    sy, sx = height / mask.shape[0], width / mask.shape[1]
    ys, xs = np.nonzero(mask)
    y0, y1 = ys.min() * sy, (ys.max() + 1) * sy
    x0, x1 = xs.min() * sx, (xs.max() + 1) * sx
    side = round(min(max(y1 - y0, x1 - x0) / fill, height, width))
    top = round(np.clip((y0 + y1) / 2 - side / 2, 0, height - side))
    left = round(np.clip((x0 + x1) / 2 - side / 2, 0, width - side))
    crop = photo[top : top + side, left : left + side]
    keep = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    rows = np.minimum(((top + np.arange(side)) / sy).astype(int), mask.shape[0] - 1)
    cols = np.minimum(((left + np.arange(side)) / sx).astype(int), mask.shape[1] - 1)
    blurred = cv2.GaussianBlur(crop, (0, 0), max(1.0, side / 32))
    return np.where(keep[rows][:, cols][..., None], crop, blurred)


@dataclass
class _ImageEntry:
    patches: torch.Tensor  # (h, w, E) patch embeddings: unit ones (global pass) or the windows'
    # unit embeddings averaged on the grid (not normalised again: a dot product with a unit text
    # embedding is then the windows' averaged cosine)
    work: tuple[int, int]  # matting resolution (h, w)


class ZeroShotPredictor(Predictor[_ImageEntry]):
    """Zero-shot referring matting with any open_clip CLIP held by a :class:`CLIPBackbone`.

    The common predictor interface (:class:`clipmat.predictors.base.Predictor`); ``refine`` defaults
    to ``config.matting`` (False gives the chosen regions' probability map, upsampled); the
    candidates are every part's regions, in order, and ``candidate``, clicks and a box choose
    among them.

    Args:
        backbone: the CLIP (OpenAI ViT-B/16, a tiny pretrained one, or random for tests).
        config: dense method, windows, logit scale, prompts and matting resolution.
        name: shown in results and in the app.
        licence: licence of the CLIP weights.
        device: "auto", "cpu", "cuda", ...
        cache_size: how many photos' patch embeddings to keep.
        domain: what the CLIP was trained on.
    """

    def __init__(
        self,
        backbone: CLIPBackbone,
        *,
        config: ZeroShotConfig | None = None,
        name: str = "zeroshot",
        licence: str = "",
        device: Any = "auto",
        cache_size: int = 4,
        domain: str = "",
    ) -> None:
        super().__init__(
            name=name, licence=licence, device=device, cache_size=cache_size, domain=domain
        )
        self.config = config or ZeroShotConfig()
        self.backbone = backbone.to(self.device).eval()
        self.image_size = int(self.config.image_size or backbone.cfg.vision["image_size"])
        self.sliding = self.config.sliding(self.image_size)  # (window, stride) or None
        learned = float(backbone.clip.logit_scale.detach().exp())
        self.logit_scale = self.config.resolved_logit_scale(learned)
        self._text_cache: LRUCache[torch.Tensor] = LRUCache(TEXT_CACHE_SIZE)
        self.stats["text_encodes"] = 0

    def clear_cache(self) -> None:
        """Forget every cached photo's patch embeddings and every phrase's text embedding."""
        super().clear_cache()
        self._text_cache.clear()

    def _encode(self, photo: Photo) -> _ImageEntry:
        height, width = photo.rgb.shape[:2]
        if self.sliding is None:
            patches = self._encode_global(photo.rgb)
        else:
            patches = self._encode_windows(photo.rgb, *self.sliding)
        return _ImageEntry(patches, matting_size(height, width, self.config.matting_side))

    def _encode_global(self, rgb: np.ndarray) -> torch.Tensor:
        """(h, w, E) unit patch embeddings of one pass over the photo at ``image_size``."""
        patch = self.backbone.patch_size
        size = model_input_size(*rgb.shape[:2], short_side=self.image_size, multiple=patch)
        x = self.backbone.normalize(to_model_input(rgb, size).to(self.device))
        with autocast(self.device):
            feats = self.backbone.encode_dense(x, method=self.config.method)[0]
        return torch.nn.functional.normalize(feats.float(), dim=-1)

    def _encode_windows(self, rgb: np.ndarray, window: int, stride: int) -> torch.Tensor:
        """(h, w, E) embeddings on the patch grid of the resized photo, window by window.

        The photo is resized as the references resize it (short side ``image_size``, bilinear),
        each window is read alone (:func:`windows.encode_windows`), its patch embeddings are
        normalised, and the windows are averaged at the centres of the resized photo's patch
        grid (:func:`windows.combine_on_grid`). Cosines with unit text embeddings are then the
        references' averaged cosine logits, read at those centres. The grid is at the patch
        stride because that is all each window resolves (one embedding per patch); finer, it
        would only interpolate, coarser, it would lose what overlapping windows add, and the
        region sizes and trimap band, counted in patches, keep their meaning.
        """
        size = windows.resized_size(*rgb.shape[:2], self.image_size)
        x = self.backbone.normalize(windows.resize_photo(rgb, size).to(self.device))
        boxes = windows.window_boxes(*size, window, stride)
        with autocast(self.device):
            feats, pads = windows.encode_windows(self.backbone, x, boxes, method=self.config.method)
        maps = [torch.nn.functional.normalize(f.float(), dim=-1).permute(2, 0, 1) for f in feats]
        grid = windows.grid_size(*size, self.backbone.patch_size)
        return windows.combine_on_grid(maps, boxes, size, grid, pads).permute(1, 2, 0)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """CLIP text embeddings (N, E) of token ids (N, L), run only up to the longest text.

        CLIP's text attention is causal and pools at the end token, so the padding after the
        longest text changes nothing and is cut (about 6x faster for short phrases).
        """
        clip = self.backbone.clip
        if getattr(clip, "text_pool_type", None) != "argmax":
            return clip.encode_text(ids)
        ids = ids[:, : int(ids.argmax(dim=-1).max()) + 1]  # through the last end token
        feats = self.backbone.encode_text_embeddings(self.backbone.token_embedding(ids))
        pooled = feats[torch.arange(len(ids), device=ids.device), ids.argmax(dim=-1)]
        proj = clip.text_projection
        if proj is None:
            return pooled
        return proj(pooled) if isinstance(proj, torch.nn.Linear) else pooled @ proj

    @torch.inference_mode()
    def embed_phrases(self, phrases: list[str]) -> torch.Tensor:
        """Template-ensembled, normalised text embeddings (N, E), cached per phrase."""
        found = {p: self._text_cache.get(p) for p in dict.fromkeys(phrases)}
        missing = [p for p, emb in found.items() if emb is None]
        if missing:
            templates = self.config.templates
            texts = [t for p in missing for t in prompts.expand_templates(p, templates)]
            ids = prompts.tokenize(texts, self.backbone.text_context_length).to(self.device)
            with autocast(self.device):
                emb = self.encode_text(ids).float()
            emb = torch.nn.functional.normalize(emb, dim=-1).view(len(missing), len(templates), -1)
            emb = torch.nn.functional.normalize(emb.mean(dim=1), dim=-1)
            self.stats["text_encodes"] += len(texts)
            for p, e in zip(missing, emb, strict=True):
                found[p] = e
                self._text_cache.put(p, e)
        return torch.stack([found[p] for p in phrases])

    def _predict(
        self,
        image: EncodedImage[_ImageEntry],
        phrases: list[str],
        settings: list[str],
        options: PredictOptions,
    ) -> list[MattingResult]:
        """Results with ``candidates``: one per region that matches (its phrase, score in
        [0, 1], similarity, box in photo pixels, area as a fraction of the photo, chosen)."""
        matting = self.config.matting if options.refine is None else options.refine
        return [
            self._predict_one(image, p, s, options.chosen, matting)
            for p, s in zip(phrases, settings, strict=True)
        ]

    def _class_embeddings(self, parts: list[str]) -> torch.Tensor:
        """(K, E): the parts' embeddings, then the distractors' and background prompts' that
        may compete with them (:func:`dense.keep_competitors`: a competitor that is one of the
        parts by its embedding, as "sky" is for "the sky", is left out)."""
        phrases = self.embed_phrases(parts)
        names = list(dict.fromkeys(self.config.distractors + self.config.background))
        if not names:
            return phrases
        competitors = self.embed_phrases(names)
        keep = dense.keep_competitors(phrases, competitors)
        return torch.cat([phrases, competitors[keep]])

    def _predict_one(
        self,
        image: EncodedImage[_ImageEntry],
        phrase: str,
        setting: str,
        select: frozenset[int] | None,
        matting: bool,
    ) -> MattingResult:
        """One phrase (or union of phrases): every part's regions become the candidates, in
        order; each part's own choice is matted, or the candidates ``select`` names."""
        parts = prompts.split_union(phrase)
        entry, rgb = image.features, image.photo.rgb
        classes = self._class_embeddings(parts)
        probs = dense.class_probabilities(
            entry.patches, classes, self.logit_scale, normalize_patches=False
        )
        cosine = dense.cosine_map(entry.patches, classes[: len(parts)], normalize_patches=False)
        found = []  # (part, its probability map, its regions, its threshold, its own choice)
        for i, part in enumerate(parts):
            prob, cos = probs[i].cpu().numpy(), cosine[i].cpu().numpy()
            regions, threshold = self._regions(rgb, prob, cos, classes[i])
            own = dense.choose_region(regions, prompts.position_preference(part)) if regions else -1
            found.append((part, prob, regions, threshold, own))
        candidates = [  # every part's regions, in order
            make_candidate(
                part,
                r.mask,
                rgb.shape[:2],
                score=r.share * r.probability,
                similarity=r.score,
                chosen=k == own,
            )
            for part, _, regions, _, own in found
            for k, r in enumerate(regions)
        ]
        picked = apply_choice(candidates, select, phrase)
        confidences: list[float] = []
        kept: list[tuple[np.ndarray, float]] = []  # chosen regions' probability, threshold
        first = 0  # index of the part's first candidate
        for _, prob, regions, threshold, _ in found:
            picks = [k for k in range(len(regions)) if first + k in picked]
            first += len(regions)
            if not picks:
                confidences.append(0.0)
                continue
            confidences.append(max(regions[k].share * regions[k].probability for k in picks))
            chosen = [dense.region_probability(prob, regions, k) for k in picks]
            kept.append((np.maximum.reduce(chosen), threshold))
        alpha, trimap = self._matte(rgb, entry, kept, matting)
        return MattingResult(
            alpha=alpha,
            text=phrase,
            setting=setting,
            confidence=float(min(confidences)),
            trimap=trimap,
            predictor=self.name,
            image_cached=image.cached,
            candidates=candidates,
        )

    def _regions(
        self, rgb: np.ndarray, prob: np.ndarray, cos: np.ndarray, text: torch.Tensor
    ) -> tuple[list[dense.Region], float]:
        """A phrase's candidate regions (best first) and the probability level that made them.

        With no patch above ``config.threshold`` the level falls to ``config.fallback`` x the
        best patch (a referring phrase presumes its object), and regions over
        ``MAX_FALLBACK_AREA`` of the grid are dropped. Several regions are also scored whole.
        """
        threshold = self.config.threshold
        fallback = prob.max() <= threshold and self.config.fallback > 0
        if fallback:
            threshold = self.config.fallback * float(prob.max())
        regions = dense.find_regions(
            prob,
            cos,
            threshold=threshold,
            min_patches=self.config.min_patches,
            logit_scale=self.logit_scale,
        )
        if fallback:  # a guess that covers most of the photo is no guess
            regions = [r for r in regions if r.area <= MAX_FALLBACK_AREA * prob.size]
        if self.config.crop_weight > 0 and len(regions) > 1:
            w = self.config.crop_weight
            crops = self._crop_scores(rgb, regions, text)
            scores = [(1 - w) * r.score + w * c for r, c in zip(regions, crops, strict=True)]
            regions = dense.rescore_regions(regions, scores, self.logit_scale)
        return regions, threshold

    def _matte(
        self,
        rgb: np.ndarray,
        entry: _ImageEntry,
        kept: list[tuple[np.ndarray, float]],
        matting: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(alpha, trimap) at the photo's size from the chosen regions' probability maps: a
        trimap at the working resolution matted in closed form, or (``matting`` False, or a
        photo thinner than ``MIN_MATTING_SIDE``) the maps themselves upsampled bilinearly
        (then the trimap is all background)."""
        height, width = rgb.shape[:2]
        if not kept:
            return np.zeros((height, width), np.float32), np.zeros((height, width), np.uint8)
        if not matting or min(entry.work) < MIN_MATTING_SIDE:
            coarse = np.maximum.reduce([k.astype(np.float32) for k, _ in kept])
            alpha = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
            return np.clip(alpha, 0.0, 1.0).astype(np.float32), np.zeros((height, width), np.uint8)
        work_h, work_w = entry.work
        band = max(2, round(self.config.band * work_h / entry.patches.shape[0]))
        trimaps = [
            refine.trimap_from_probability(k, (work_h, work_w), band=band, threshold=t)
            for k, t in kept
        ]
        trimap_work = np.maximum.reduce(trimaps)  # fg > unknown > bg across the union
        alpha = refine.matte_from_trimap(rgb, trimap_work)
        trimap = cv2.resize(trimap_work, (width, height), interpolation=cv2.INTER_NEAREST)
        return alpha, trimap

    @torch.inference_mode()
    def _crop_scores(
        self, rgb: np.ndarray, regions: list[dense.Region], text: torch.Tensor
    ) -> list[float]:
        """Cosine of the phrase to each region seen alone, as a whole image (after ReCLIP's
        isolation of proposals: a square crop around the region, everything outside the region
        blurred), through the CLIP's pooled image embedding. Regions past the first
        ``MAX_CROPS`` (``regions`` come best first) get the lowest score measured."""
        crops = [isolate_region(rgb, r.mask) for r in regions[:MAX_CROPS]]
        patch = self.backbone.patch_size
        side = min(self.image_size, CROP_SIDE) // patch * patch
        x = torch.cat([to_model_input(c, (side, side)) for c in crops]).to(self.device)
        with autocast(self.device):
            emb = self.backbone.encode_pooled(self.backbone.normalize(x)).float()
        emb = torch.nn.functional.normalize(emb, dim=-1)
        scores = (emb @ text.float().to(emb.device)).tolist()
        return scores + [min(scores)] * (len(regions) - len(scores))

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
windows' patch embeddings are combined once per photo and cached, and so are the crops' pooled
embeddings (by region, :mod:`clipmat.zeroshot.crops`) and the competitors' text embeddings (once
per predictor), so a second phrase on the same photo costs its text tower, the crops of regions
not seen before and the matting. ``precision`` runs both towers on the CPU paths of
:mod:`clipmat.precision` ("int8", or "bf16" where the CPU computes it natively).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from clipmat.model.backbone import CLIPBackbone
from clipmat.precision import apply_precision, precision_of
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
from clipmat.zeroshot import crops, dense, prompts, windows
from clipmat.zeroshot.config import ZeroShotConfig, check_precision
from clipmat.zeroshot.crops import CROP_FILL, CROP_SIDE, isolate_region
from clipmat.zeroshot.matting import MIN_MATTING_SIDE, matte_regions, matting_size

__all__ = [
    "CROP_FILL",
    "CROP_SIDE",
    "MIN_MATTING_SIDE",
    "ZeroShotPredictor",
    "isolate_region",
    "matting_size",
]

TEXT_CACHE_SIZE = 256  # phrases whose ensembled embeddings are kept
MAX_FALLBACK_AREA = 0.5  # largest fallback candidate, as a fraction of the patch grid
MAX_CROPS = 8  # regions cropped at most (the best by dense score; see _crop_scores)


@dataclass
class _ImageEntry:
    patches: torch.Tensor  # (h, w, E) patch embeddings: unit ones (global pass) or the windows'
    # unit embeddings averaged on the grid (not normalised again: a dot product with a unit text
    # embedding is then the windows' averaged cosine)
    work: tuple[int, int]  # matting resolution (h, w)
    crops: LRUCache[torch.Tensor]  # unit pooled embeddings of isolated regions, by mask


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
        precision: "fp32", or a CPU path of both towers, "int8" or "bf16" (where the CPU
            computes bf16 natively; :func:`clipmat.precision.apply_precision`, the backbone
            itself is not changed). A backbone converted beforehand keeps its precision.
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
        precision: str = "fp32",
    ) -> None:
        super().__init__(
            name=name, licence=licence, device=device, cache_size=cache_size, domain=domain
        )
        check_precision(precision, self.device)
        self.config = config or ZeroShotConfig()
        self.backbone = apply_precision(backbone.to(self.device).eval(), precision)
        self.precision = self._precision()
        self.image_size = int(self.config.image_size or backbone.cfg.vision["image_size"])
        self.sliding = self.config.sliding(self.image_size)  # (window, stride) or None
        learned = float(backbone.clip.logit_scale.detach().exp())
        self.logit_scale = self.config.resolved_logit_scale(learned)
        self._text_cache: LRUCache[torch.Tensor] = LRUCache(TEXT_CACHE_SIZE)
        self._competitors: torch.Tensor | None = None  # (M, E), the config's prompts, once
        self.stats["text_encodes"] = 0

    def _precision(self) -> str:
        """The towers' precision (a stand-in backbone without open_clip towers: fp32)."""
        return precision_of(self.backbone) if isinstance(self.backbone, CLIPBackbone) else "fp32"

    def set_precision(self, precision: str) -> None:
        """Convert this predictor's fp32 towers to ``precision`` in place (no copy of the
        backbone: for a predictor loaded at fp32); every cached embedding is forgotten."""
        check_precision(precision, self.device)
        self.backbone = apply_precision(self.backbone, precision, inplace=True)
        self.precision = self._precision()
        self.clear_cache()
        self._competitors = None

    def clear_cache(self) -> None:
        """Forget every cached photo's patch and crop embeddings and every phrase's text
        embedding (the competitors' prompts, fixed by the config, are kept)."""
        super().clear_cache()
        self._text_cache.clear()

    def _encode(self, photo: Photo) -> _ImageEntry:
        height, width = photo.rgb.shape[:2]
        if self.sliding is None:
            patches = self._encode_global(photo.rgb)
        else:
            patches = self._encode_windows(photo.rgb, *self.sliding)
        work = matting_size(height, width, self.config.matting_side)
        return _ImageEntry(patches, work, crops.new_cache())

    def _encode_global(self, rgb: np.ndarray) -> torch.Tensor:
        """(h, w, E) unit patch embeddings of one pass over the photo at ``image_size``."""
        patch = self.backbone.patch_size
        size = model_input_size(*rgb.shape[:2], short_side=self.image_size, multiple=patch)
        x = self.backbone.normalize(to_model_input(rgb, size).to(self.device))
        with autocast(self.device, self.precision):
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
        with autocast(self.device, self.precision):
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
            with autocast(self.device, self.precision):
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
        names = tuple(dict.fromkeys(self.config.distractors + self.config.background))
        if not names:
            return phrases
        if self._competitors is None or self._competitors[0] != names:
            self._competitors = (names, self.embed_phrases(list(names)))
        competitors = self._competitors[1]
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
        rgb = image.photo.rgb
        found = self._part_regions(image, parts)
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
        alpha, trimap = self._matte(rgb, image.features, kept, matting)
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

    def _part_regions(
        self, image: EncodedImage[_ImageEntry], parts: list[str]
    ) -> list[tuple[str, np.ndarray, list[dense.Region], float, int]]:
        """Per part of a union: (the part, its (h, w) probability map, its regions best first,
        the level that made them, the index of its own choice or -1). The parts' regions are
        found on the dense map, then the crops of all of them are scored whole in one batch."""
        entry = image.features
        classes = self._class_embeddings(parts)
        probs = dense.class_probabilities(
            entry.patches, classes, self.logit_scale, normalize_patches=False
        )
        cosine = dense.cosine_map(entry.patches, classes[: len(parts)], normalize_patches=False)
        maps = [(probs[i].cpu().numpy(), cosine[i].cpu().numpy()) for i in range(len(parts))]
        found = [self._regions(prob, cos) for prob, cos in maps]
        region_lists = self._rescore(image, [r for r, _ in found], classes[: len(parts)])
        out = []
        for part, (prob, _), regions, (_, threshold) in zip(
            parts, maps, region_lists, found, strict=True
        ):
            own = dense.choose_region(regions, prompts.position_preference(part)) if regions else -1
            out.append((part, prob, regions, threshold, own))
        return out

    def _regions(self, prob: np.ndarray, cos: np.ndarray) -> tuple[list[dense.Region], float]:
        """A phrase's candidate regions on the dense map (best first) and the probability level
        that made them.

        With no patch above ``config.threshold`` the level falls to ``config.fallback`` x the
        best patch (a referring phrase presumes its object), and regions over
        ``MAX_FALLBACK_AREA`` of the grid are dropped.
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
        return regions, threshold

    def _rescore(
        self,
        image: EncodedImage[_ImageEntry],
        region_lists: list[list[dense.Region]],
        texts: torch.Tensor,
    ) -> list[list[dense.Region]]:
        """Each list of two or more regions rescored with its crops' scores (weight
        ``config.crop_weight``), the crops of every list in one batch; ``texts``: (N, E)."""
        w = self.config.crop_weight
        todo = [i for i, regions in enumerate(region_lists) if w > 0 and len(regions) > 1]
        if not todo:
            return region_lists
        scores = self._crop_scores(image, [region_lists[i] for i in todo], texts[todo])
        out = list(region_lists)
        for i, crop in zip(todo, scores, strict=True):
            mixed = [(1 - w) * r.score + w * c for r, c in zip(out[i], crop, strict=True)]
            out[i] = dense.rescore_regions(out[i], mixed, self.logit_scale)
        return out

    def _matte(
        self,
        rgb: np.ndarray,
        entry: _ImageEntry,
        kept: list[tuple[np.ndarray, float]],
        matting: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(alpha, trimap) at the photo's size from the chosen regions' probability maps
        (:func:`matting.matte_regions`), the trimap's band ``config.band`` patches wide."""
        band = max(2, round(self.config.band * entry.work[0] / entry.patches.shape[0]))
        return matte_regions(rgb, kept, entry.work, band, matting)

    def _crop_scores(
        self,
        image: EncodedImage[_ImageEntry],
        region_lists: list[list[dense.Region]],
        texts: torch.Tensor,
    ) -> list[list[float]]:
        """Per list, the cosine of its phrase (a row of ``texts``, (N, E)) to each region seen
        alone, as a whole image (after ReCLIP's isolation of proposals: a square crop around the
        region, everything outside the region blurred), through the CLIP's pooled image
        embedding (:func:`crops.crop_embeddings`: cached per photo by region, all lists' new
        crops in one batch). Regions past a list's first ``MAX_CROPS`` (lists come best first)
        get the lowest score measured in that list."""
        patch = self.backbone.patch_size
        side = min(self.image_size, CROP_SIDE) // patch * patch
        masks = [r.mask for regions in region_lists for r in regions[:MAX_CROPS]]
        emb = crops.crop_embeddings(
            self.backbone,
            image.photo.rgb,
            masks,
            image.features.crops,
            side=side,
            device=self.device,
            precision=self.precision,
        )
        out, first = [], 0
        for regions, text in zip(region_lists, texts, strict=True):
            n = min(len(regions), MAX_CROPS)
            scores = (emb[first : first + n] @ text.float().to(emb.device)).tolist()
            first += n
            out.append(scores + [min(scores)] * (len(regions) - n))
        return out

"""ZeroShotPredictor: referring matting from a CLIP with no training.

The image tower is made dense with ClearCLIP's training-free change of its last block
(query-query attention, no residual, no feed-forward; MaskCLIP and SCLIP variants selectable),
so every patch has an embedding in the text space. A phrase (its template ensemble) competes per
patch with the other phrases of a union, distractor and background prompts; the connected
regions where it wins are the candidates. When there are several, each is also scored whole,
after ReCLIP's isolation of proposals (a square crop around the region, the rest blurred, through
the pooled image embedding), since a patch knows less about an object's shape than the whole
crop does. The best candidate (or the one at a named position) is turned into a trimap at a
working resolution, matted in closed form, and upsampled to the photo's size with a guided
filter. Patch embeddings are cached per image, so a second phrase on the same photo costs
only the text tower, the candidates' crops and the matting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from clipmat import refine
from clipmat.model.backbone import DENSE_METHODS, CLIPBackbone
from clipmat.predictor import (
    Candidate,
    EncodedImage,
    MattingResult,
    Photo,
    PredictOptions,
    Predictor,
)
from clipmat.runtime import LRUCache, autocast
from clipmat.transforms import model_input_size, to_model_input
from clipmat.zeroshot import dense, prompts

TEXT_CACHE_SIZE = 256  # phrases whose ensembled embeddings are kept
MAX_FALLBACK_AREA = 0.5  # largest fallback candidate, as a fraction of the patch grid
CROP_FILL = 0.75  # a region's crop is a square whose side is its longest side / this
CROP_SIDE = 224  # crops are scored at most at this side (CLIP's pretraining resolution)
MAX_CROPS = 8  # regions cropped at most (the best by dense score; see _crop_scores)


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
class ZeroShotConfig:
    """How the zero-shot predictor reads a phrase and makes a matte."""

    image_size: int | None = None  # short side fed to the image tower; None: the CLIP's own
    method: str = "clearclip"  # dense-feature method: "clearclip", "sclip" or "maskclip"
    templates: tuple[str, ...] = prompts.PROMPT_TEMPLATES  # ensembled around every phrase
    background: tuple[str, ...] = prompts.BACKGROUND_PROMPTS  # stuff that competes per patch
    distractors: tuple[str, ...] = ()  # extra things that compete per patch
    logit_scale: float | None = None  # softmax inverse temperature; None: the CLIP's learned one
    threshold: float = 0.5  # a patch belongs to the phrase above this probability
    fallback: float = 0.5  # no patch above threshold: patches above this x the best one are
    # the candidates (a referring phrase presumes its object; confidence stays low). 0: empty
    min_patches: int = 2  # smaller regions are not candidates (unless nothing else is)
    matting_side: int = 768  # long side of the closed-form matting resolution
    band: float = 0.75  # half width of the trimap's unknown band, in patches
    crop_weight: float = 0.5  # weight of the whole-crop score in a region's score (0: dense only)
    matting: bool = True  # False: the alpha is the chosen region's patch probability, upsampled
    # bilinearly (a coarse map for ablations that measure what the matting step adds; no trimap)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes

    def __post_init__(self) -> None:
        if self.method not in DENSE_METHODS:
            raise ValueError(f"method must be one of {DENSE_METHODS}, got {self.method!r}")
        if not self.templates or any("{}" not in t for t in self.templates):
            raise ValueError("templates must be a non-empty tuple of strings holding '{}'")
        if not 0.0 < self.threshold < 1.0 or not 0.0 <= self.fallback < 1.0:
            raise ValueError(
                f"threshold must lie in (0, 1) and fallback in [0, 1), got {self.threshold} "
                f"and {self.fallback}"
            )
        if not 0.0 <= self.crop_weight <= 1.0:
            raise ValueError(f"crop_weight must lie in [0, 1], got {self.crop_weight}")
        if self.band <= 0 or self.matting_side < 32:
            raise ValueError("band must be > 0 patches and matting_side >= 32 pixels")


@dataclass
class _ImageEntry:
    patches: torch.Tensor  # (h, w, E) normalised patch embeddings
    work: tuple[int, int]  # matting resolution (h, w)


class ZeroShotPredictor(Predictor[_ImageEntry]):
    """Zero-shot referring matting with any open_clip CLIP held by a :class:`CLIPBackbone`.

    The common predictor interface (:class:`clipmat.predictor.Predictor`); honours ``refine``
    (default: ``config.matting``; False gives the chosen region's probability map, upsampled)
    and ``candidate`` (an index into a result's ``candidates``).

    Args:
        backbone: the CLIP (OpenAI ViT-B/16, a tiny pretrained one, or random for tests).
        config: prompts, dense method and matting resolution.
        name: shown in results and in the app.
        licence: licence of the CLIP weights.
        device: "auto", "cpu", "cuda", ...
        cache_size: how many photos' patch embeddings to keep.
        domain: what the CLIP was trained on.
    """

    honours = frozenset({"refine", "candidate"})

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
        scale = self.config.logit_scale
        self.logit_scale = float(scale if scale else backbone.clip.logit_scale.detach().exp())
        self._text_cache: LRUCache[torch.Tensor] = LRUCache(TEXT_CACHE_SIZE)
        self.stats["text_encodes"] = 0

    def clear_cache(self) -> None:
        """Forget every cached photo's patch embeddings and every phrase's text embedding."""
        super().clear_cache()
        self._text_cache.clear()

    def _encode(self, photo: Photo) -> _ImageEntry:
        height, width = photo.rgb.shape[:2]
        patch = self.backbone.patch_size
        size = model_input_size(height, width, short_side=self.image_size, multiple=patch)
        x = self.backbone.normalize(to_model_input(photo.rgb, size).to(self.device))
        with autocast(self.device):
            feats = self.backbone.encode_dense(x, method=self.config.method)[0]
        patches = torch.nn.functional.normalize(feats.float(), dim=-1)  # (h, w, E)
        return _ImageEntry(patches, refine.working_size(height, width, self.config.matting_side))

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
            self._predict_one(image, p, s, options.candidate, matting)
            for p, s in zip(phrases, settings, strict=True)
        ]

    def _class_embeddings(self, parts: list[str]) -> torch.Tensor:
        """Embeddings of the parts, then of the distractors that none of the parts names (a
        distractor "dog" must not compete with "the black dog"), then of the background."""
        words = [f" {p.lower()} " for p in parts]
        distractors = [
            d for d in self.config.distractors if not any(f" {d.lower()} " in w for w in words)
        ]
        return self.embed_phrases(parts + distractors + list(self.config.background))

    def _predict_one(
        self,
        image: EncodedImage[_ImageEntry],
        phrase: str,
        setting: str,
        select: int | None,
        matting: bool,
    ) -> MattingResult:
        parts = prompts.split_union(phrase)
        if select is not None and len(parts) > 1:
            raise ValueError("candidate= picks one region; it cannot be used with a phrase union")
        entry, rgb = image.features, image.photo.rgb
        classes = self._class_embeddings(parts)
        probs = dense.class_probabilities(entry.patches, classes, self.logit_scale)
        cosine = dense.cosine_map(entry.patches, classes[: len(parts)])
        candidates: list[Candidate] = []
        confidences: list[float] = []
        kept: list[tuple[np.ndarray, float]] = []  # chosen region probability, its threshold
        for i, part in enumerate(parts):
            prob, cos = probs[i].cpu().numpy(), cosine[i].cpu().numpy()
            regions, threshold = self._regions(rgb, prob, cos, classes[i])
            if not regions:
                confidences.append(0.0)
                continue
            chosen = dense.choose_region(regions, prompts.position_preference(part))
            if select is not None:
                if select >= len(regions):
                    raise ValueError(
                        f"candidate={select} is out of range: {len(regions)} candidates for "
                        f"{part!r}"
                    )
                chosen = select
            candidates += [
                _candidate(part, r, k == chosen, rgb.shape[:2]) for k, r in enumerate(regions)
            ]
            confidences.append(regions[chosen].share * regions[chosen].probability)
            kept.append((dense.region_probability(prob, regions, chosen), threshold))
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
        trimap at the working resolution matted in closed form, or (``matting`` False) the
        maps themselves upsampled bilinearly (then the trimap is all background)."""
        height, width = rgb.shape[:2]
        if not kept:
            return np.zeros((height, width), np.float32), np.zeros((height, width), np.uint8)
        if not matting:
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


def _candidate(part: str, region: dense.Region, chosen: bool, size: tuple[int, int]) -> Candidate:
    """A region on the patch grid as a :class:`Candidate` with its box in photo pixels."""
    grid = region.mask.shape
    sy, sx = size[0] / grid[0], size[1] / grid[1]
    x0, y0, x1, y1 = region.bbox
    return Candidate(
        phrase=part,
        score=region.share * region.probability,
        box=(round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy)),
        mask=region.mask.copy(),
        area=region.area / float(grid[0] * grid[1]),
        chosen=chosen,
        similarity=region.score,
    )

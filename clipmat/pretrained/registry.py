"""Names: weights as architecture plus tag, and the predictors built on them (data only, no I/O).

A set of weights is named like timm's pretrained models, ``<architecture>.<tag>``: the
architecture is a CLIPMat model config (``clipmat/model_configs/``) or an open_clip CLIP
architecture, the tag says what the weights were trained on. ``clipmat-mini.miniworld`` is the
bundled tiny CLIPMat, ``ViT-B-16.openai`` OpenAI's CLIP. Names used before this scheme still
resolve (:data:`ALIASES`).

A predictor name (``mini-world``, ``zeroshot-vitb16``, ...) is what users pick; it names one
set of weights and the kind of predictor that reads them. ``hf-hub:owner/repo`` names a trained
CLIPMat published on the Hugging Face hub (see :func:`hub_spec`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

HUB_REPO_ENV = "CLIPMAT_HUB_REPO"  # a hub repository hosting the paper's trained weights
HF_HUB_PREFIX = "hf-hub:"
HUB_TAG = "hf-hub"  # the tag of weights named by their hub repository
HUB_WEIGHTS_FILENAME = "model.safetensors"  # what `python -m clipmat.pretrained.push` uploads

CLIPMAT_LICENCE = "CC BY-NC 4.0 (trained on RefMatte)"
OPENAI_CLIP_LICENCE = "MIT (OpenAI CLIP)"
PROJECT_LICENCE = "the project's licence (trained on procedural scenes only)"

# The bundled mini-world checkpoint. Update both constants when the file is retrained.
MINIWORLD_FILENAME = "miniworld.safetensors"
MINIWORLD_SHA256: str | None = "c9ee7deb4bf1ace25c23ac39fa5ce02fb59af2a24271cc6637eff29098a493a2"

# open_clip publishes OpenAI CLIP as open_clip state dicts in these hub repositories
# (open_clip.get_pretrained_cfg(arch, "openai")["hf_hub"]); the safetensors file is preferred,
# the pickled one is what open_clip falls back to.
_OPEN_CLIP_SAFE_NAME = "open_clip_model.safetensors"
_OPEN_CLIP_BIN_NAME = "open_clip_pytorch_model.bin"

# What a predictor's weights know. A photo outside it gets a result that says so.
REAL_PHOTOS = "real photos"
SYNTHETIC_SCENES = "synthetic mini-world scenes (procedural shapes on textures)"


@dataclass(frozen=True)
class WeightSpec:
    """One set of weights, where it comes from and under which licence."""

    arch: str  # model config ("clipmat-vitb16", "clipmat-mini") or open_clip arch ("ViT-B-16")
    tag: str  # what they were trained on: "refmatte", "miniworld", "openai", ...
    kind: str  # "clipmat": a whole CLIPMat checkpoint; "clip": CLIP tower weights
    filename: str  # file name looked up in the weights folders
    licence: str
    description: str
    domain: str = REAL_PHOTOS  # the images the weights were trained on
    sha256: str | None = None  # expected hex digest, None when unknown
    hf_repo: str | None = None  # Hugging Face hub repository id, None when not hosted
    hf_filename: str | None = None  # file name inside hf_repo
    url: str | None = None  # direct download address, None when not hosted
    hf_fallback_filenames: tuple[str, ...] = ()  # tried in hf_repo after hf_filename
    hub_repo_env: str | None = None  # environment variable that may name hf_repo
    bundled: bool = False  # shipped with the package

    @property
    def name(self) -> str:
        """``<arch>.<tag>``, the registry key (``hf-hub:owner/repo`` for a hub repository)."""
        if self.tag == HUB_TAG:
            return f"{HF_HUB_PREFIX}{self.hf_repo}"
        return f"{self.arch}.{self.tag}"

    def hub_filenames(self) -> list[str]:
        """File names to try in ``hf_repo``, preferred first ([] when not hosted on the hub)."""
        if self.hf_repo is None or self.hf_filename is None:
            return []
        return [self.hf_filename, *self.hf_fallback_filenames]


def _clip(arch: str, size: str, timm_name: str) -> WeightSpec:
    return WeightSpec(
        arch=arch,
        tag="openai",
        kind="clip",
        filename=f"clip_{arch.lower().replace('-', '')}_openai.safetensors",
        hf_repo=f"timm/{timm_name}.openai",
        hf_filename=_OPEN_CLIP_SAFE_NAME,
        hf_fallback_filenames=(_OPEN_CLIP_BIN_NAME,),
        licence=OPENAI_CLIP_LICENCE,
        description=f"OpenAI CLIP {arch} (open_clip state dict, about {size})",
    )


def _trained(arch: str, what: str) -> WeightSpec:
    return WeightSpec(
        arch=arch,
        tag="refmatte",
        kind="clipmat",
        filename=f"{arch.replace('-', '_')}.safetensors",
        hf_filename=f"{arch.replace('-', '_')}.safetensors",
        licence=CLIPMAT_LICENCE,
        description=f"CLIPMat, {what}, trained on RefMatte with this package",
        hub_repo_env=HUB_REPO_ENV,
    )


PRETRAINED: dict[str, WeightSpec] = {
    s.name: s
    for s in (
        _trained("clipmat-vitb16", "ViT-B/16 backbone at 512 px"),
        _trained("clipmat-vitl14", "ViT-L/14 backbone at 448 px"),
        _clip("ViT-B-16", "600 MB", "vit_base_patch16_clip_224"),
        _clip("ViT-L-14", "1.7 GB", "vit_large_patch14_clip_224"),
        WeightSpec(
            arch="clipmat-mini",
            tag="miniworld",
            kind="clipmat",
            filename=MINIWORLD_FILENAME,
            sha256=MINIWORLD_SHA256,
            licence=PROJECT_LICENCE,
            description="tiny CLIPMat trained on the synthetic mini world, bundled",
            domain=SYNTHETIC_SCENES,
            bundled=True,
        ),
    )
}

# Names from before the <arch>.<tag> scheme (and predictor names) -> registry keys.
ALIASES: dict[str, str] = {
    "clipmat-vitb16": "clipmat-vitb16.refmatte",
    "clipmat-vitl14": "clipmat-vitl14.refmatte",
    "clip-vitb16-openai": "ViT-B-16.openai",
    "clip-vitl14-openai": "ViT-L-14.openai",
    "mini-world": "clipmat-mini.miniworld",
    "zeroshot-vitb16": "ViT-B-16.openai",
}


@dataclass(frozen=True)
class PredictorSpec:
    """A predictor users can pick: the kind of predictor and the weights it reads."""

    name: str
    kind: str  # "clipmat" (a trained CLIPMat) or "zeroshot" (public CLIP weights, no training)
    weights: str  # registry key
    description: str


PREDICTORS: dict[str, PredictorSpec] = {
    s.name: s
    for s in (
        PredictorSpec(
            "clipmat-vitl14",
            "clipmat",
            "clipmat-vitl14.refmatte",
            "CLIPMat, ViT-L/14 at 448 px (paper)",
        ),
        PredictorSpec(
            "clipmat-vitb16",
            "clipmat",
            "clipmat-vitb16.refmatte",
            "CLIPMat, ViT-B/16 at 512 px (paper)",
        ),
        PredictorSpec(
            "zeroshot-vitb16",
            "zeroshot",
            "ViT-B-16.openai",
            "training-free: dense CLIP text-patch similarity, trimap, closed-form matting",
        ),
        PredictorSpec(
            "mini-world",
            "clipmat",
            "clipmat-mini.miniworld",
            "tiny CLIPMat trained on the synthetic mini world; offline, for demos and tests",
        ),
    )
}
# "auto" takes the first of these that it can get: trained CLIPMat, zero-shot, the mini world.
AUTO_ORDER = ("clipmat-vitl14", "clipmat-vitb16", "zeroshot-vitb16", "mini-world")
MINIWORLD = "mini-world"


def list_pretrained() -> list[str]:
    """Registry keys of every set of weights (``<arch>.<tag>``; aliases not included)."""
    return list(PRETRAINED)


def canonical_name(name: str) -> str:
    """The registry key for ``name`` (a key, an alias or ``<arch>`` + ``.`` + tag).

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    key = ALIASES.get(name, name)
    if key not in PRETRAINED:
        known = ", ".join(list_pretrained() + list(ALIASES))
        raise ValueError(f"Unknown weights name {name!r}. Available: {known}.")
    return key


def get_weight_spec(name: str) -> WeightSpec:
    """The registry entry for ``name`` (see :func:`canonical_name`), with ``hf_repo`` taken
    from its environment variable when the entry names one.

    Raises:
        ValueError: unknown name; the message lists the available names.
    """
    if name.startswith(HF_HUB_PREFIX):
        return hub_spec(name)
    spec = PRETRAINED[canonical_name(name)]
    if spec.hub_repo_env and spec.hf_repo is None and os.environ.get(spec.hub_repo_env):
        spec = dataclasses.replace(spec, hf_repo=os.environ[spec.hub_repo_env].strip())
    return spec


def hub_spec(name: str) -> WeightSpec:
    """The weights of ``hf-hub:owner/repo``: a CLIPMat checkpoint published with
    ``python -m clipmat.pretrained.push`` (its architecture and licence are read from the file).

    Raises:
        ValueError: when the repository id is not ``owner/name``.
    """
    repo = name.removeprefix(HF_HUB_PREFIX).strip()
    owner, _, repo_name = repo.partition("/")
    if not owner or not repo_name or "/" in repo_name or " " in repo:
        raise ValueError(f"{name!r}: expected {HF_HUB_PREFIX}owner/name, e.g. hf-hub:me/clipmat")
    return WeightSpec(
        arch="clipmat",
        tag=HUB_TAG,
        kind="clipmat",
        filename=f"{repo.replace('/', '--')}.safetensors",
        hf_repo=repo,
        hf_filename=HUB_WEIGHTS_FILENAME,
        licence="as stated in the repository's model card",
        description=f"CLIPMat published on the Hugging Face hub as {repo}",
    )

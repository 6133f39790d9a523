"""Names: weights as architecture plus tag, and the predictors built on them (data only, no I/O).

A set of weights is named like timm's pretrained models, ``<architecture>.<tag>``: the
architecture is a CLIPMat model config (``clipmat/model_configs/``) or an open_clip CLIP
architecture, the tag says what the weights were trained on. ``clipmat-mini.miniworld`` is the
bundled tiny CLIPMat, ``ViT-B-16.openai`` OpenAI's CLIP.

:data:`PRETRAINED` is the one table: an entry per set of weights says what the file holds
(``contents``, which decides the predictor that reads it), the predictor name users pick
(``mini-world``, ``zeroshot-vitb16``, ...), older names that still resolve, and its place in
the "auto" policy. The lists of predictors, the "auto" order and name lookup are derived from
it by the functions below. ``hf-hub:owner/repo`` names a trained CLIPMat published on the
Hugging Face hub (see :func:`hub_spec`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

HUB_REPO_ENV = "CLIPMAT_HUB_REPO"  # a hub repository hosting the paper's trained weights
HF_HUB_PREFIX = "hf-hub:"
HUB_TAG = "hf-hub"  # the tag of weights named by their hub repository
HUB_WEIGHTS_FILENAME = "model.safetensors"  # what `clipmat push` uploads

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

# What a file holds, which decides the predictor that reads it.
CLIPMAT = "clipmat"  # a whole CLIPMat checkpoint: read by CLIPMatPredictor
CLIP = "clip"  # CLIP tower weights: read by the zero-shot predictor


@dataclass(frozen=True)
class WeightSpec:
    """One set of weights: what the file holds, where it comes from, under which licence, and
    the names users reach it by (a predictor name, older names, a place in the "auto" policy)."""

    arch: str  # model config ("clipmat-vitb16", "clipmat-mini") or open_clip arch ("ViT-B-16")
    tag: str  # what they were trained on: "refmatte", "miniworld", "openai", ...
    contents: str  # CLIPMAT (a whole CLIPMat checkpoint) or CLIP (CLIP tower weights)
    filename: str  # file name looked up in the weights folders
    licence: str
    description: str  # what the file is
    predictor: str | None = None  # the predictor name users pick; None: not offered as one
    predictor_description: str = ""  # what that predictor does, shown in predictor lists
    aliases: tuple[str, ...] = ()  # older names that still resolve to these weights
    auto_rank: int | None = None  # position in the "auto" policy (0 first); None: never picked
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

    @property
    def zero_shot(self) -> bool:
        """Whether the predictor reading these weights is the zero-shot one (CLIP weights), not
        :class:`~clipmat.predictors.clipmat.CLIPMatPredictor` (a CLIPMat checkpoint)."""
        return self.contents == CLIP

    def hub_filenames(self) -> list[str]:
        """File names to try in ``hf_repo``, preferred first ([] when not hosted on the hub)."""
        if self.hf_repo is None or self.hf_filename is None:
            return []
        return [self.hf_filename, *self.hf_fallback_filenames]


def _clip(arch: str, size: str, timm_name: str, alias: str) -> WeightSpec:
    return WeightSpec(
        arch=arch,
        tag="openai",
        contents=CLIP,
        filename=f"clip_{arch.lower().replace('-', '')}_openai.safetensors",
        hf_repo=f"timm/{timm_name}.openai",
        hf_filename=_OPEN_CLIP_SAFE_NAME,
        hf_fallback_filenames=(_OPEN_CLIP_BIN_NAME,),
        licence=OPENAI_CLIP_LICENCE,
        description=f"OpenAI CLIP {arch} (open_clip state dict, about {size})",
        aliases=(alias,),
    )


def _trained(arch: str, what: str) -> WeightSpec:
    return WeightSpec(
        arch=arch,
        tag="refmatte",
        contents=CLIPMAT,
        filename=f"{arch.replace('-', '_')}.safetensors",
        hf_filename=f"{arch.replace('-', '_')}.safetensors",
        licence=CLIPMAT_LICENCE,
        description=f"CLIPMat, {what}, trained on RefMatte with this package",
        hub_repo_env=HUB_REPO_ENV,
    )


def _offered(spec: WeightSpec, predictor: str, description: str, auto_rank: int) -> WeightSpec:
    """``spec`` offered as the predictor ``predictor``, at ``auto_rank`` in the "auto" policy."""
    return dataclasses.replace(
        spec, predictor=predictor, predictor_description=description, auto_rank=auto_rank
    )


# The one table of weights. Predictors are listed in table order; "auto" takes the first by
# auto_rank that it can get: a trained CLIPMat, then zero-shot, then the mini world.
PRETRAINED: dict[str, WeightSpec] = {
    s.name: s
    for s in (
        _offered(
            _trained("clipmat-vitl14", "ViT-L/14 backbone at 448 px"),
            "clipmat-vitl14",
            "CLIPMat, ViT-L/14 at 448 px (paper)",
            auto_rank=0,
        ),
        _offered(
            _trained("clipmat-vitb16", "ViT-B/16 backbone at 512 px"),
            "clipmat-vitb16",
            "CLIPMat, ViT-B/16 at 512 px (paper)",
            auto_rank=1,
        ),
        _offered(
            _clip("ViT-B-16", "600 MB", "vit_base_patch16_clip_224", alias="clip-vitb16-openai"),
            "zeroshot-vitb16",
            "training-free: dense CLIP text-patch similarity, trimap, closed-form matting",
            auto_rank=2,
        ),
        _clip("ViT-L-14", "1.7 GB", "vit_large_patch14_clip_224", alias="clip-vitl14-openai"),
        _offered(
            WeightSpec(
                arch="clipmat-mini",
                tag="miniworld",
                contents=CLIPMAT,
                filename=MINIWORLD_FILENAME,
                sha256=MINIWORLD_SHA256,
                licence=PROJECT_LICENCE,
                description="tiny CLIPMat trained on the synthetic mini world, bundled",
                domain=SYNTHETIC_SCENES,
                bundled=True,
            ),
            "mini-world",
            "tiny CLIPMat trained on the synthetic mini world; offline, for demos and tests",
            auto_rank=3,
        ),
    )
}


def list_pretrained() -> list[str]:
    """Registry keys of every set of weights (``<arch>.<tag>``; other names not included)."""
    return list(PRETRAINED)


def predictor_names() -> list[str]:
    """The names of the predictors users can pick, in table order."""
    return [s.predictor for s in PRETRAINED.values() if s.predictor is not None]


def predictor_weights(name: str) -> WeightSpec | None:
    """The weights the predictor ``name`` reads, or None when no predictor has that name."""
    return next((s for s in PRETRAINED.values() if s.predictor == name), None)


def auto_order() -> list[str]:
    """The predictors "auto" tries, first choice first (entries with an ``auto_rank``)."""
    ranked = [(s.auto_rank, s.predictor) for s in PRETRAINED.values() if s.auto_rank is not None]
    return [name for _, name in sorted(ranked, key=lambda pair: pair[0]) if name is not None]


def alias_map() -> dict[str, str]:
    """Every name other than a registry key that resolves to one: predictor names and older
    names -> registry keys."""
    names: dict[str, str] = {}
    for key, spec in PRETRAINED.items():
        for name in (spec.predictor, *spec.aliases):
            if name is not None:
                names[name] = key
    return names


def canonical_name(name: str) -> str:
    """The registry key for ``name`` (a key, a predictor name or an older name).

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    key = alias_map().get(name, name)
    if key not in PRETRAINED:
        known = ", ".join(list_pretrained() + list(alias_map()))
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
    ``clipmat push`` (its architecture and licence are read from the file).

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
        contents=CLIPMAT,
        filename=f"{repo.replace('/', '--')}.safetensors",
        hf_repo=repo,
        hf_filename=HUB_WEIGHTS_FILENAME,
        licence="as stated in the repository's model card",
        description=f"CLIPMat published on the Hugging Face hub as {repo}",
    )

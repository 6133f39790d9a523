"""Named weights: registry, local lookup, optional download and checksum.

Lookup order for a name (see `resolve_weights`): an explicit path, then `weights/<filename>`,
then the Hugging Face hub cache, then a download (only when allowed). Nothing here touches the
network unless a download is allowed and the file is found nowhere else. Reading and writing
state dicts lives in :mod:`clipmat.weights_io` (re-exported here).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

# Re-exported: callers read and write state dicts through hub.
from clipmat.weights_io import WeightsCorruptError, load_state_dict, save_state_dict  # noqa: F401

WEIGHTS_DIR_ENV = "CLIPMAT_WEIGHTS_DIR"
HUB_REPO_ENV = "CLIPMAT_HUB_REPO"
OFFLINE_ENV = "HF_HUB_OFFLINE"
TRUE_STRINGS = frozenset({"1", "true", "yes", "on"})
HASH_CHUNK_BYTES = 1 << 20

# The bundled mini-world checkpoint. Update both constants when the file is retrained.
MINIWORLD_FILENAME = "miniworld.safetensors"
MINIWORLD_SHA256: str | None = "c9ee7deb4bf1ace25c23ac39fa5ce02fb59af2a24271cc6637eff29098a493a2"
MINIWORLD_ARCH = "clipmat-mini"

CLIPMAT_LICENCE = "CC BY-NC 4.0 (trained on RefMatte)"
OPENAI_CLIP_LICENCE = "MIT (OpenAI CLIP)"
PROJECT_LICENCE = "the project's licence (trained on procedural scenes only)"

# open_clip publishes OpenAI CLIP as open_clip state dicts in these hub repositories
# (open_clip.get_pretrained_cfg(arch, "openai")["hf_hub"]); the safetensors file is preferred,
# the pickled one is what open_clip falls back to.
_OPEN_CLIP_SAFE_NAME = "open_clip_model.safetensors"
_OPEN_CLIP_BIN_NAME = "open_clip_pytorch_model.bin"


@dataclass(frozen=True)
class WeightSpec:
    """One named set of weights and where it comes from."""

    name: str  # registry key, e.g. "clip-vitb16-openai"
    arch: str  # model config ("clipmat-vitb16", "clipmat-mini") or open_clip arch ("ViT-B-16")
    kind: str  # "clipmat": a full CLIPMat checkpoint; "clip": CLIP tower weights
    filename: str  # file name looked up in weights_dir()
    licence: str
    description: str
    sha256: str | None = None  # expected hex digest, None when unknown
    hf_repo: str | None = None  # Hugging Face hub repository id, None when not hosted
    hf_filename: str | None = None  # file name inside hf_repo
    url: str | None = None  # direct download address, None when not hosted
    hf_fallback_filenames: tuple[str, ...] = ()  # tried in hf_repo after hf_filename
    hub_repo_env: str | None = None  # environment variable that may name hf_repo


PRETRAINED: dict[str, WeightSpec] = {
    "clipmat-vitb16": WeightSpec(
        name="clipmat-vitb16",
        arch="clipmat-vitb16",
        kind="clipmat",
        filename="clipmat_vitb16.safetensors",
        hf_filename="clipmat_vitb16.safetensors",
        licence=CLIPMAT_LICENCE,
        description="CLIPMat, ViT-B/16 backbone at 512 px, trained with this package",
        hub_repo_env=HUB_REPO_ENV,
    ),
    "clipmat-vitl14": WeightSpec(
        name="clipmat-vitl14",
        arch="clipmat-vitl14",
        kind="clipmat",
        filename="clipmat_vitl14.safetensors",
        hf_filename="clipmat_vitl14.safetensors",
        licence=CLIPMAT_LICENCE,
        description="CLIPMat, ViT-L/14 backbone at 448 px, trained with this package",
        hub_repo_env=HUB_REPO_ENV,
    ),
    "clip-vitb16-openai": WeightSpec(
        name="clip-vitb16-openai",
        arch="ViT-B-16",
        kind="clip",
        filename="clip_vitb16_openai.safetensors",
        hf_repo="timm/vit_base_patch16_clip_224.openai",
        hf_filename=_OPEN_CLIP_SAFE_NAME,
        licence=OPENAI_CLIP_LICENCE,
        description="OpenAI CLIP ViT-B/16 (open_clip state dict, about 600 MB)",
        hf_fallback_filenames=(_OPEN_CLIP_BIN_NAME,),
    ),
    "clip-vitl14-openai": WeightSpec(
        name="clip-vitl14-openai",
        arch="ViT-L-14",
        kind="clip",
        filename="clip_vitl14_openai.safetensors",
        hf_repo="timm/vit_large_patch14_clip_224.openai",
        hf_filename=_OPEN_CLIP_SAFE_NAME,
        licence=OPENAI_CLIP_LICENCE,
        description="OpenAI CLIP ViT-L/14 (open_clip state dict, about 1.7 GB)",
        hf_fallback_filenames=(_OPEN_CLIP_BIN_NAME,),
    ),
    "mini-world": WeightSpec(
        name="mini-world",
        arch=MINIWORLD_ARCH,
        kind="clipmat",
        filename=MINIWORLD_FILENAME,
        sha256=MINIWORLD_SHA256,
        licence=PROJECT_LICENCE,
        description="tiny CLIPMat trained on the synthetic mini world, bundled in weights/",
    ),
}

# Other names that resolve to a registry entry.
ALIASES: dict[str, str] = {"zeroshot-vitb16": "clip-vitb16-openai"}


class WeightsNotFoundError(FileNotFoundError):
    """The weights for a name are not on disk and could not be downloaded."""


class WeightsChecksumError(ValueError):
    """A weights file does not have the expected sha256 digest."""


def list_pretrained() -> list[str]:
    """Names of all registered weights (aliases not included)."""
    return list(PRETRAINED)


def get_weight_spec(name: str) -> WeightSpec:
    """The registry entry for `name` (or an alias), with `hf_repo` taken from its env variable.

    Raises:
        ValueError: unknown name; the message lists the available names.
    """
    key = ALIASES.get(name, name)
    if key not in PRETRAINED:
        known = ", ".join(list_pretrained() + list(ALIASES))
        raise ValueError(f"Unknown weights name {name!r}. Available: {known}.")
    spec = PRETRAINED[key]
    if spec.hub_repo_env and spec.hf_repo is None and os.environ.get(spec.hub_repo_env):
        spec = dataclasses.replace(spec, hf_repo=os.environ[spec.hub_repo_env].strip())
    return spec


def weights_dir() -> Path:
    """The folder searched for weights: `$CLIPMAT_WEIGHTS_DIR`, else the repository's `weights/`."""
    override = os.environ.get(WEIGHTS_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parent.parent / "weights"


def downloads_allowed(allow_download: bool | None = None) -> bool:
    """`allow_download` if given, else True unless `HF_HUB_OFFLINE` is set to a true value."""
    if allow_download is not None:
        return allow_download
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in TRUE_STRINGS


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime_ns are part of the cache key: a changed file is hashed again.
    return sha256_file(path)


def verify_sha256(path: str | os.PathLike, expected: str | None) -> None:
    """Check a file's sha256 digest (no-op when `expected` is None).

    The digest is cached per (path, size, mtime), so a large file is hashed once per process.

    Raises:
        WeightsChecksumError: the digest differs; the message names the file and both digests.
    """
    if expected is None:
        return
    path = Path(path).resolve()
    stat = path.stat()
    actual = _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns)
    if actual.lower() != expected.lower():
        raise WeightsChecksumError(
            f"Checksum mismatch for {path}: expected sha256 {expected.lower()}, got {actual}. "
            "The file is incomplete, corrupt or a different version; delete it and fetch it again."
        )


def locate_weights(name: str) -> Path | None:
    """Where the weights for `name` already are on disk (weights dir or hub cache), else None.

    Never downloads and never hashes; cheap enough for listing what is present.
    """
    spec = get_weight_spec(name)
    local = weights_dir() / spec.filename
    if local.is_file():
        return local
    for filename in hub_filenames(spec):
        cached = _hub_cached(spec.hf_repo, filename)
        if cached is not None:
            return cached
    return None


def resolve_weights(
    name: str, path: str | os.PathLike | None = None, allow_download: bool | None = None
) -> Path:
    """Find (or fetch) the weights file for a registered name.

    Order: `path` if given (trusted as is: your own checkpoint, no checksum), then
    `weights_dir()/<filename>`, then the Hugging Face hub cache, then a download from the hub
    or the spec's URL when downloads are allowed. Files found in the weights dir, the cache or
    downloaded are checked against the registry's sha256 when one is known.

    Args:
        name: registry name or alias (see `list_pretrained()`).
        path: explicit file to use instead of the registry's locations.
        allow_download: None means allowed unless `HF_HUB_OFFLINE` is true.

    Returns:
        Path of an existing, verified file.

    Raises:
        ValueError: unknown name.
        WeightsNotFoundError: nowhere to be found; the message says where it looked and how to
            get the file.
        WeightsChecksumError: a file was found but its digest is wrong.
    """
    spec = get_weight_spec(name)
    if path is not None:
        explicit = Path(path).expanduser()
        if explicit.is_file():
            return explicit
        raise WeightsNotFoundError(_not_found_message(spec, [f"{explicit} (given path; missing)"]))

    tried: list[str] = []
    local = weights_dir() / spec.filename
    if local.is_file():
        verify_sha256(local, spec.sha256)
        return local
    tried.append(f"{local} (missing)")

    if spec.hf_repo is None and spec.hub_repo_env:
        tried.append(
            f"Hugging Face hub: no repository known ({spec.hub_repo_env}=<owner/name> is not set)"
        )
    for filename in hub_filenames(spec):
        cached = _hub_cached(spec.hf_repo, filename)
        if cached is not None:
            verify_sha256(cached, spec.sha256)
            return cached
        tried.append(f"Hugging Face cache: {spec.hf_repo}/{filename} (not cached)")

    if spec.hf_repo is None and spec.url is None:
        pass  # nothing to download from
    elif not downloads_allowed(allow_download):
        why = f"{OFFLINE_ENV} is set" if allow_download is None else "allow_download=False"
        tried.append(f"download: not attempted ({why})")
    else:
        from clipmat.download import download_weights

        fetched = download_weights(spec, local, tried)
        if fetched is not None:
            return fetched
    raise WeightsNotFoundError(_not_found_message(spec, tried))


def hub_filenames(spec: WeightSpec) -> list[str]:
    """File names to try in `spec.hf_repo`, preferred first ([] when not hosted on the hub)."""
    if spec.hf_repo is None or spec.hf_filename is None:
        return []
    return [spec.hf_filename, *spec.hf_fallback_filenames]


def _hub_cached(repo: str | None, filename: str) -> Path | None:
    """Path of a file in the Hugging Face hub cache, never touching the network."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, filename, local_files_only=True))
    except Exception:  # not cached (or a broken cache entry): treated as absent
        return None


def _not_found_message(spec: WeightSpec, tried: list[str]) -> str:
    local = weights_dir() / spec.filename
    lines = [f"No weights file for {spec.name!r} ({spec.description}; licence: {spec.licence})."]
    lines += ["Looked in:"] + [f"  - {entry}" for entry in tried]
    lines.append("How to get it:")
    if spec.kind == "clipmat" and spec.name != "mini-world":
        lines.append(
            "  - No trained CLIPMat weights have been published yet. Train them with "
            f"`python -m clipmat.train --config FILE` (arch {spec.arch!r}) and save the result "
            f"as {local},"
        )
        lines.append(
            f"  - or, if a hub repository hosts them: {HUB_REPO_ENV}=<owner/name> "
            f"python -m clipmat.download {spec.name}"
        )
    elif spec.name == "mini-world":
        lines.append(
            f"  - It ships with the repository as {local}; restore it from version control "
            "(e.g. `git checkout -- weights/`) or retrain it with `python -m clipmat.train`."
        )
    else:
        lines.append(
            f"  - With network access, run once: python -m clipmat.download {spec.name} "
            f"(from the Hugging Face hub repository {spec.hf_repo}),"
        )
        lines.append(f"  - or put the file (an open_clip {spec.arch} state dict) at {local}.")
    lines.append(f"  - Set {WEIGHTS_DIR_ENV}=DIR to look in another folder.")
    lines.append("Or pass pretrained=None for random init.")
    return "\n".join(lines)

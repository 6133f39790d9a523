"""Where weights are on this machine, and fetching them when allowed.

Lookup order for a name (see :func:`resolve_weights`): an explicit path, then the weights
folder (:func:`weights_dir`), then the weights bundled with the package, then the Hugging Face
hub cache, then a download (only when allowed, through :mod:`clipmat.pretrained.remote`). The names
themselves are in :mod:`clipmat.pretrained.registry`; reading and writing state dicts and checksums in
:mod:`clipmat.pretrained.weights_io` (re-exported here for callers that read and write weights).
"""

from __future__ import annotations

import os
from pathlib import Path

from clipmat.pretrained import remote
from clipmat.pretrained.registry import CLIPMAT, HUB_REPO_ENV, WeightSpec, get_weight_spec
from clipmat.pretrained.weights_io import verify_sha256

WEIGHTS_DIR_ENV = "CLIPMAT_WEIGHTS_DIR"
OFFLINE_ENV = "HF_HUB_OFFLINE"
TRUE_STRINGS = frozenset({"1", "true", "yes", "on"})
_PACKAGE = Path(__file__).resolve().parents[1]  # the clipmat package


class WeightsNotFoundError(FileNotFoundError):
    """The weights for a name are not on disk and could not be downloaded."""


def _checkout() -> Path | None:
    """The source checkout this package runs from, or None when it is installed."""
    root = _PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() and (root / "weights").is_dir() else None


def weights_dir() -> Path:
    """The folder searched first and written to: ``$CLIPMAT_WEIGHTS_DIR``, else the checkout's
    ``weights/`` when running from one, else ``$XDG_CACHE_HOME/clipmat`` (``~/.cache/clipmat``).
    """
    override = os.environ.get(WEIGHTS_DIR_ENV)
    if override:
        return Path(override).expanduser()
    checkout = _checkout()
    if checkout is not None:
        return checkout / "weights"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "clipmat"


def bundled_dir() -> Path:
    """Where the weights shipped with the package are: ``clipmat/weights/`` in an installed
    package, the checkout's ``weights/`` in a source tree."""
    installed = _PACKAGE / "weights"
    if installed.is_dir():
        return installed
    checkout = _checkout()
    return checkout / "weights" if checkout is not None else installed


def downloads_allowed(allow_download: bool | None = None) -> bool:
    """``allow_download`` if given, else True unless ``HF_HUB_OFFLINE`` is set to a true value."""
    if allow_download is not None:
        return allow_download
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in TRUE_STRINGS


def _local_candidates(spec: WeightSpec) -> list[Path]:
    folders = [weights_dir()]
    if spec.bundled and bundled_dir() not in folders:
        folders.append(bundled_dir())
    return [folder / spec.filename for folder in folders]


def locate_weights(name: str) -> Path | None:
    """Where the weights for ``name`` already are on disk (weights folders or hub cache), else
    None. Never downloads and never hashes; cheap enough for listing what is present."""
    spec = get_weight_spec(name)
    for local in _local_candidates(spec):
        if local.is_file():
            return local
    for filename in spec.hub_filenames():
        cached = _hub_cached(spec.hf_repo, filename)
        if cached is not None:
            return cached
    return None


def resolve_weights(
    name: str, path: str | os.PathLike | None = None, allow_download: bool | None = None
) -> Path:
    """Find (or fetch) the weights file for a registered name.

    Order: ``path`` if given (trusted as is: your own checkpoint, no checksum), then the
    weights folder and the bundled weights, then the Hugging Face hub cache, then a download
    from the hub or the spec's URL when downloads are allowed. Files found or downloaded are
    checked against the registry's sha256 when one is known.

    Args:
        name: a registry key, an alias or ``hf-hub:owner/repo`` (see :mod:`clipmat.pretrained.registry`).
        path: explicit file to use instead of the registry's locations.
        allow_download: None means allowed unless ``HF_HUB_OFFLINE`` is true.

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
    for local in _local_candidates(spec):
        if local.is_file():
            verify_sha256(local, spec.sha256)
            return local
        tried.append(f"{local} (missing)")
    if spec.hf_repo is None and spec.hub_repo_env:
        tried.append(
            f"Hugging Face hub: no repository known ({spec.hub_repo_env}=<owner/name> is not set)"
        )
    for filename in spec.hub_filenames():
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
        fetched = remote.download_weights(spec, weights_dir() / spec.filename, tried)
        if fetched is not None:
            return fetched
    raise WeightsNotFoundError(_not_found_message(spec, tried))


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
    if spec.bundled:
        lines.append(
            f"  - It ships with the package as {bundled_dir() / spec.filename}; reinstall the "
            "package or restore the file from version control (`git checkout -- weights/`)."
        )
    elif spec.contents == CLIPMAT and spec.hub_repo_env is None:
        lines.append(f"  - With network access, run once: clipmat download {spec.name}")
    elif spec.contents == CLIPMAT:
        lines.append(
            "  - No trained CLIPMat weights have been published yet. Train them with "
            f"`clipmat train --config FILE` (arch {spec.arch!r}) and save the result "
            f"as {local},"
        )
        lines.append(
            f"  - or, if a hub repository hosts them: {HUB_REPO_ENV}=<owner/name> "
            f"clipmat download {spec.name}"
        )
    else:
        lines.append(
            f"  - With network access, run once: clipmat download {spec.name} "
            f"(from the Hugging Face hub repository {spec.hf_repo}),"
        )
        lines.append(f"  - or put the file (an open_clip {spec.arch} state dict) at {local}.")
    lines.append(f"  - Set {WEIGHTS_DIR_ENV}=DIR to look in another folder.")
    if not spec.bundled:
        lines.append("Or pass pretrained=None for random init.")
    return "\n".join(lines)

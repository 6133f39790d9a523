"""Everything that touches the network: a reachability probe, downloads, uploads to the hub.

Nothing else in the package opens a connection. Lookup of files already on disk is in
:mod:`clipmat.pretrained.hub`, which calls :func:`download_weights` only when a download is allowed.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from clipmat.pretrained.registry import WeightSpec
from clipmat.pretrained.weights_io import HASH_CHUNK_BYTES, verify_sha256

URL_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S = 3.0


def hub_reachable(timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub endpoint accepts a TCP connection within ``timeout_s``.

    A cheap probe that lets callers skip downloads (and the hub client's retries, tens of
    seconds) on a machine without network access.
    """
    from huggingface_hub import constants

    url = urllib.parse.urlsplit(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def download_weights(spec: WeightSpec, target: Path, tried: list[str]) -> Path | None:
    """Download the weights of ``spec``; None (with reasons appended to ``tried``) on failure.

    Tries the hub files in order (into the Hugging Face hub cache), then ``spec.url`` (to
    ``target``). Stops at the first network-level failure instead of retrying other file names.

    Raises:
        clipmat.pretrained.weights_io.WeightsChecksumError: a file arrived but its digest is wrong.
    """
    if spec.hub_filenames():
        if not hub_reachable():
            tried.append("download: the Hugging Face hub is unreachable (no network?)")
        else:
            fetched = _download_hub(spec, tried)
            if fetched is not None:
                return fetched
    if spec.url:
        try:
            return _download_url(spec, target)
        except OSError as err:
            tried.append(f"download {spec.url}: {_short(err)}")
    return None


def _download_hub(spec: WeightSpec, tried: list[str]) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    for filename in spec.hub_filenames():
        try:
            fetched = Path(hf_hub_download(spec.hf_repo, filename))
        except Exception as err:  # many hub error kinds; the reason goes in the message
            tried.append(f"download {spec.hf_repo}/{filename}: {_short(err)}")
            if isinstance(err, LocalEntryNotFoundError) or not isinstance(err, EntryNotFoundError):
                break  # the hub cannot be used at all; other names would fail alike
            continue
        verify_sha256(fetched, spec.sha256)
        return fetched
    return None


def _short(err: Exception) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _download_url(spec: WeightSpec, target: Path) -> Path:
    """Download ``spec.url`` to ``target`` through a temporary file, verifying sha256 if known."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(spec.url, timeout=URL_TIMEOUT_S) as r,
        ):
            shutil.copyfileobj(r, out, HASH_CHUNK_BYTES)
        verify_sha256(tmp, spec.sha256)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def upload_folder(folder: Path, repo: str, *, private: bool = False, api: Any = None) -> str:
    """Create (if needed) the model repository ``repo`` and upload every file of ``folder``.

    Args:
        api: a ``huggingface_hub.HfApi`` (or an object with its ``create_repo`` and
            ``upload_folder``); a new one, with the token of ``huggingface-cli login``, by
            default.

    Returns:
        The repository's address.
    """
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    api.create_repo(repo, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(
        folder_path=str(folder),
        repo_id=repo,
        repo_type="model",
        commit_message="Upload CLIPMat weights",
    )
    return f"https://huggingface.co/{repo}"

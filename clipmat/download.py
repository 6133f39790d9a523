"""Download registered weights: `python -m clipmat.download NAME [--dir DIR]`.

`python -m clipmat.download --list` prints every registered name with its licence and whether
the file is already on disk. Exit codes: 0 done, 1 unknown name or bad usage, 2 the file could
not be fetched or verified.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

from clipmat import hub

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_FAILED = 2
URL_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S = 3.0


def hub_reachable(timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub endpoint accepts a TCP connection within `timeout_s`.

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


def download_weights(spec: hub.WeightSpec, target: Path, tried: list[str]) -> Path | None:
    """Download the weights of `spec`; None (with reasons appended to `tried`) on failure.

    Tries the hub files in order (into the Hugging Face hub cache), then `spec.url` (to `target`).
    Stops at the first network-level failure instead of retrying other file names.

    Raises:
        WeightsChecksumError: a file arrived but its sha256 digest is wrong.
    """
    if spec.hf_repo is not None and spec.hf_filename is not None:
        if not hub_reachable():
            tried.append("download: the Hugging Face hub is unreachable (no network?)")
        else:
            from huggingface_hub import hf_hub_download
            from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

            for filename in hub.hub_filenames(spec):
                try:
                    fetched = Path(hf_hub_download(spec.hf_repo, filename))
                except Exception as err:  # many hub error kinds; the reason goes in the message
                    tried.append(f"download {spec.hf_repo}/{filename}: {_short(err)}")
                    if isinstance(err, LocalEntryNotFoundError) or not isinstance(
                        err, EntryNotFoundError
                    ):
                        break  # the hub cannot be used at all; other names would fail alike
                    continue
                hub.verify_sha256(fetched, spec.sha256)
                return fetched
    if spec.url:
        try:
            return _download_url(spec, target)
        except OSError as err:
            tried.append(f"download {spec.url}: {_short(err)}")
    return None


def _short(err: Exception) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _download_url(spec: hub.WeightSpec, target: Path) -> Path:
    """Download `spec.url` to `target` through a temporary file, verifying sha256 if known."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(spec.url, timeout=URL_TIMEOUT_S) as r,
        ):
            shutil.copyfileobj(r, out, hub.HASH_CHUNK_BYTES)
        hub.verify_sha256(tmp, spec.sha256)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def format_registry() -> str:
    """A plain-text table of the registry: name, kind, arch, licence, where the file is."""
    rows = [("name", "kind", "arch", "licence", "present")]
    for name in hub.list_pretrained():
        spec = hub.get_weight_spec(name)
        found = hub.locate_weights(name)
        rows.append((name, spec.kind, spec.arch, spec.licence, str(found) if found else "no"))
    aliases = ", ".join(f"{a} -> {t}" for a, t in hub.ALIASES.items())
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1] for row in rows
    ]
    return "\n".join(lines + [f"aliases: {aliases}"])


def fetch(name: str, target_dir: Path | None = None) -> Path:
    """Make the weights for `name` available locally and return their path.

    Without `target_dir` the file stays where it is found or where the Hugging Face hub cache
    puts it (`resolve_weights` finds it there later). With `target_dir` it is also written as
    `target_dir/<filename>` (a pickled hub file is converted to safetensors on the way).
    """
    spec = hub.get_weight_spec(name)
    path = hub.resolve_weights(name, allow_download=True)
    if target_dir is None:
        return path
    target = Path(target_dir).expanduser() / spec.filename
    if target.exists() and target.resolve() == path.resolve():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == target.suffix:
        shutil.copyfile(path, target)
    else:
        state, metadata = hub.load_state_dict(path)
        hub.save_state_dict(state, target, metadata={**metadata, "source": str(path)})
    return target


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m clipmat.download",
        description="Download registered weights ahead of time (needs network access).",
    )
    parser.add_argument("name", nargs="?", help="registry name, e.g. clip-vitb16-openai")
    parser.add_argument("--dir", type=Path, default=None, help="also copy the file into DIR")
    parser.add_argument("--list", action="store_true", help="list registered weights and exit")
    args = parser.parse_args(argv)

    if args.list:
        print(format_registry())
        return EXIT_OK
    if not args.name:
        print("error: give a NAME or --list.\n" + format_registry(), file=sys.stderr)
        return EXIT_USAGE
    try:
        spec = hub.get_weight_spec(args.name)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        path = fetch(args.name, args.dir)
    except (hub.WeightsNotFoundError, hub.WeightsChecksumError, hub.WeightsCorruptError) as err:
        print(f"error: {err}", file=sys.stderr)
        if not hub.downloads_allowed():
            print(f"note: {hub.OFFLINE_ENV} is set; unset it to download.", file=sys.stderr)
        return EXIT_FAILED
    except OSError as err:
        print(f"error: could not write the weights: {err}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{spec.name}: {path}")
    print(f"licence: {spec.licence}")
    if (
        args.dir is not None
        and Path(args.dir).expanduser().resolve() != hub.weights_dir().resolve()
    ):
        print(f"to use this folder: export {hub.WEIGHTS_DIR_ENV}={Path(args.dir).expanduser()}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

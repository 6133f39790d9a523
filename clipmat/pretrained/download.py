"""Download registered weights: `clipmat download NAME [--dir DIR]`.

NAME is a registry key (``ViT-B-16.openai``), an older alias or predictor name
(``zeroshot-vitb16``) or ``hf-hub:owner/repo``. `clipmat download --list` prints every
registered name with its licence and whether the file is already on disk. Exit codes: 0 done,
1 unknown name or bad usage, 2 the file could not be fetched or verified.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from clipmat.pretrained import hub, registry, weights_io

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_FAILED = 2


def format_registry() -> str:
    """A plain-text table of the registry: name, contents, arch, predictor, licence, where the
    file is; then the other names that resolve (predictor names and older names)."""
    rows = [("name", "contents", "arch", "predictor", "licence", "present")]
    for name in registry.list_pretrained():
        spec = registry.get_weight_spec(name)
        found = hub.locate_weights(name)
        present = str(found) if found else "no"
        rows.append((name, spec.contents, spec.arch, spec.predictor or "-", spec.licence, present))
    aliases = ", ".join(f"{a} -> {t}" for a, t in registry.alias_map().items())
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
    spec = registry.get_weight_spec(name)
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
        state, metadata = weights_io.load_state_dict(path)
        weights_io.save_state_dict(state, target, metadata={**metadata, "source": str(path)})
    return target


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog=prog or "clipmat download",
        description="Download registered weights ahead of time (needs network access).",
    )
    parser.add_argument(
        "name", nargs="?", help="weights name, e.g. ViT-B-16.openai, zeroshot-vitb16, hf-hub:o/r"
    )
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
        spec = registry.get_weight_spec(args.name)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        path = fetch(args.name, args.dir)
    except (
        hub.WeightsNotFoundError,
        weights_io.WeightsChecksumError,
        weights_io.WeightsCorruptError,
    ) as err:
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

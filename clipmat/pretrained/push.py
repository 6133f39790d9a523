"""Publish a trained CLIPMat on the Hugging Face hub: ``clipmat push CKPT owner/repo``.

Writes, then uploads, a folder with the weights as ``model.safetensors`` (fp16, the model
config, licence, training data and domain in the header), ``config.json`` and a model card
``README.md``. Anyone can then ``clipmat.load_predictor("hf-hub:owner/repo")``.
``--out DIR`` writes the folder only (to check it, or upload it another way).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from clipmat.factory import load_model_and_metadata, save_model
from clipmat.pretrained import registry, remote

LICENCES = {  # licence text -> the hub's licence identifier
    registry.CLIPMAT_LICENCE: "cc-by-nc-4.0",
    registry.PROJECT_LICENCE: "other",
}


def model_card(repo: str, config: dict[str, Any], meta: dict[str, str]) -> str:
    """The hub model card: front matter (licence, library, tags) and what the weights are."""
    licence = meta["licence"]
    lines = [
        "---",
        f"license: {LICENCES.get(licence, 'other')}",
        "library_name: clipmat",
        "pipeline_tag: image-segmentation",
        "tags: [image-matting, referring-image-matting, clip]",
        "---",
        "",
        f"# {repo.split('/')[-1]}: CLIPMat weights",
        "",
        "Referring image matting (CLIPMat, Li, Zhang and Tao, CVPR 2023): a phrase in, a soft "
        "alpha matte of the object it names out.",
        "",
        "```python",
        "import clipmat",
        f'p = clipmat.load_predictor("hf-hub:{repo}")',
        'r = p.predict(image, "the cat with white and black fur")  # r.alpha: (H, W) in [0, 1]',
        "```",
        "",
        f"- **Architecture:** `{config['name']}` (CLIP towers: "
        f"{config['clip']['vision'].get('layers')} image blocks of width "
        f"{config['clip']['vision'].get('width')}, patch {config['clip']['vision'].get('patch_size')},"
        f" short side {config['image_size']} px)",
        f"- **Training data:** {meta.get('training_data') or 'not stated'}",
        f"- **Images it knows:** {meta.get('domain') or registry.REAL_PHOTOS}",
        f"- **Licence:** {licence}",
    ]
    if meta.get("command"):
        lines.append(f"- **Trained with:** `{meta['command']}`")
    lines += ["", "The full model config is in `config.json`."]
    return "\n".join(lines) + "\n"


def export_folder(
    checkpoint: str | Path,
    folder: str | Path,
    repo: str,
    *,
    licence: str | None = None,
    training_data: str | None = None,
    domain: str | None = None,
) -> Path:
    """Write the folder that :func:`push` uploads; values not given come from the checkpoint's
    header (licence defaults to RefMatte's CC BY-NC 4.0)."""
    model, meta = load_model_and_metadata(checkpoint)
    meta = {
        **meta,
        "licence": licence or meta.get("licence") or registry.CLIPMAT_LICENCE,
        "training_data": training_data or meta.get("training_data", ""),
        "domain": domain or meta.get("domain") or registry.REAL_PHOTOS,
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keep = ("licence", "training_data", "domain", "command")
    save_model(
        model,
        folder / registry.HUB_WEIGHTS_FILENAME,
        half=True,
        **{k: meta[k] for k in keep if meta.get(k)},
    )
    config = model.cfg.to_dict()
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / "README.md").write_text(model_card(repo, config, meta))
    return folder


def push(
    checkpoint: str | Path, repo: str, *, private: bool = False, api: Any = None, **card: Any
) -> str:
    """Export ``checkpoint`` and upload it to the model repository ``repo``; its address.

    ``card``: ``licence``, ``training_data``, ``domain`` (see :func:`export_folder`).
    """
    registry.hub_spec(registry.HF_HUB_PREFIX + repo)  # checks the repository id
    with tempfile.TemporaryDirectory(prefix="clipmat-push-") as tmp:
        folder = export_folder(checkpoint, tmp, repo, **card)
        return remote.upload_folder(folder, repo, private=private, api=api)


def main(argv: list[str] | None = None, *, prog: str = "clipmat push") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a CLIPMat checkpoint (.safetensors)")
    parser.add_argument("repo", help="the hub model repository, owner/name")
    parser.add_argument("--licence", help=f"default: the file's, else {registry.CLIPMAT_LICENCE}")
    parser.add_argument("--training-data", help="what it was trained on, for the model card")
    parser.add_argument("--domain", help=f"the images it knows (default: {registry.REAL_PHOTOS})")
    parser.add_argument("--private", action="store_true", help="create a private repository")
    parser.add_argument("--out", type=Path, help="write the folder here and upload nothing")
    args = parser.parse_args(argv)
    card = {"licence": args.licence, "training_data": args.training_data, "domain": args.domain}
    try:
        if args.out:
            registry.hub_spec(registry.HF_HUB_PREFIX + args.repo)
            print(export_folder(args.checkpoint, args.out, args.repo, **card))
        else:
            print(push(args.checkpoint, args.repo, private=args.private, **card))
    except (ValueError, OSError) as err:  # bad arguments, missing file, the hub refusing
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

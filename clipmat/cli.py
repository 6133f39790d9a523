"""The ``clipmat`` command: one program, with verbs (``clipmat VERB [ARGS ...]``).

    clipmat matte PHOTO "the red star" -o matte.png     # one photo
    clipmat batch --input photos/ --text "the dog" --out mattes/
    clipmat app                                         # the web app, as python app.py
    clipmat VERB --help                                 # a verb's own options

``python -m clipmat`` is the same command. Each verb is a ``main(argv, prog=...)`` function
found by a "module:function" string (:data:`VERBS`) and imported only when that verb runs, so
``import clipmat.cli`` pulls in neither the web app (``clipmat_app``, gradio) nor ``editing``.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

PROG = "clipmat"
USAGE_ERROR = 2  # the exit status of a command line that cannot run (as argparse's)


@dataclass(frozen=True)
class Verb:
    """A verb: where its ``main(argv, prog=...)`` lives, and its line in ``clipmat --help``."""

    target: str  # "package.module:function"
    summary: str
    extra: str = ""  # the optional dependencies it needs (pip install 'clipmat[EXTRA]')


VERBS: dict[str, Verb] = {
    "matte": Verb(
        "clipmat.matte_cli:main",
        "matte one photo: a phrase (or a box, clicks) in, a matte, cutout or edit PNG out",
    ),
    "batch": Verb("clipmat.batch:main", "mattes for a folder of photos or a file of pairs"),
    "video": Verb("clipmat.video.cli:main", "a phrase through a video, the object followed"),
    "app": Verb("clipmat_app.cli:main", "the web app (Gradio), as `python app.py`", "app"),
    "figure": Verb("clipmat_app.figure:main", "mattes, edits and a figure grid for papers", "app"),
    "train": Verb("clipmat.training.cli:main", "train CLIPMat from a config file"),
    "evaluate": Verb(
        "clipmat.evaluation.evaluate:main", "matting metrics and grounding accuracy of a predictor"
    ),
    "generate": Verb("clipmat.data.generate:cli", "write synthetic scenes with their mattes"),
    "download": Verb("clipmat.pretrained.download:main", "fetch registered weights ahead of time"),
    "push": Verb("clipmat.pretrained.push:main", "publish a trained CLIPMat on the hub"),
}


def _parser(prog: str) -> argparse.ArgumentParser:
    """The top-level parser, used for its help text and its error messages only."""
    width = max(len(name) for name in VERBS) + 2
    verbs = "\n".join(f"  {name:<{width}}{verb.summary}" for name, verb in VERBS.items())
    parser = argparse.ArgumentParser(
        prog=prog,
        usage=f"{prog} [-h] VERB [ARGS ...]",
        description="CLIPMat: referring image matting. A phrase in, a soft alpha matte out.",
        epilog=f"verbs:\n{verbs}\n\nRun '{prog} VERB --help' for a verb's own options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("verb", metavar="VERB", help="what to do (see the list below)")
    parser.add_argument("args", metavar="ARGS", nargs="*", help="the verb's own arguments")
    return parser


def resolve(target: str) -> Callable[..., Any]:
    """The function a "module:function" string names, importing its module now."""
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def _unknown(name: str) -> str:
    """The error message for a verb that does not exist: the verbs, and the closest one."""
    close = difflib.get_close_matches(name, VERBS, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown verb {name!r}{hint}; choose one of: {', '.join(VERBS)}"


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """Run ``clipmat VERB [ARGS ...]``; returns the exit status.

    ``--help`` (or ``-h``) before the verb lists the verbs; ``VERB --help`` is the verb's own.
    An unknown verb, no verb or an option before the verb is a usage error (status 2, argparse's
    ``SystemExit``); a verb's own usage errors exit the same way.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(prog)
    if args and args[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    if not args:
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    name, rest = args[0], args[1:]
    if name.startswith("-"):
        parser.error(f"unrecognized option {name!r}: the verb comes first ({', '.join(VERBS)})")
    if name not in VERBS:
        parser.error(_unknown(name))
    verb = VERBS[name]
    try:
        function = resolve(verb.target)
    except ImportError as err:
        hint = f"; pip install 'clipmat[{verb.extra}]'" if verb.extra else ""
        parser.error(f"the verb {name!r} cannot run here: {err}{hint}")
    status = function(rest, prog=f"{prog} {name}")
    return status if isinstance(status, int) else 0

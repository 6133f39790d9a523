"""The ``clipmat`` command: its verbs and their help, ``clipmat matte`` on an example photo with
the bundled mini-world model, its errors, the one console script, and the command lines that the
README and docs/ show."""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
from PIL import Image

from clipmat import cli, matte_cli
from clipmat.predictors.loading import load_predictor

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "miniworld_furballs.jpg"
OTHER_PHOTO = ROOT / "examples" / "photo_cat.jpg"
EXPECTED_VERBS = {
    "matte",
    "batch",
    "video",
    "app",
    "train",
    "evaluate",
    "download",
    "push",
    "generate",
    "figure",
}
OLD_SCRIPTS = re.compile(r"\bclipmat-(app|demo|train|evaluate|batch|download|push|generate)\b")


def _phrase() -> str:
    """The examples' phrase for the furball photo's fur ball."""
    examples = json.loads((ROOT / "examples" / "phrases.json").read_text())["examples"]
    (entry,) = [e for e in examples if e["image"] == PHOTO.name]
    return entry["phrases"][1]["text"]  # "the brown and transparent fur ball"


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """``clipmat ARGV`` in this process: (exit status, stdout, stderr)."""
    try:
        status = cli.main(argv)
    except SystemExit as stop:  # argparse's --help and usage errors
        status = stop.code if isinstance(stop.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


# --- the dispatcher -----------------------------------------------------------------------


def test_help_lists_every_verb(capsys):
    assert set(cli.VERBS) == EXPECTED_VERBS
    status, out, _ = run_cli(["--help"], capsys)
    assert status == 0 and out.startswith("usage: clipmat ")
    listed = re.findall(r"^  ([a-z]+)  +\S", out.split("verbs:", 1)[1], flags=re.M)
    assert listed == list(cli.VERBS)


@pytest.mark.parametrize("verb", sorted(EXPECTED_VERBS))
def test_each_verb_has_its_own_help(verb, capsys):
    function = cli.resolve(cli.VERBS[verb].target)
    assert "prog" in inspect.signature(function).parameters
    status, out, err = run_cli([verb, "--help"], capsys)
    assert status == 0, err
    assert out.startswith(f"usage: clipmat {verb} "), out[:200]


def test_unknown_verb_lists_the_verbs(capsys):
    status, _, err = run_cli(["mate", "photo.jpg"], capsys)
    assert status == 2
    assert "clipmat: error: unknown verb 'mate' (did you mean 'matte'?)" in err
    assert all(verb in err for verb in EXPECTED_VERBS)
    assert run_cli([], capsys)[0] == 2
    assert run_cli(["--port", "80", "app"], capsys)[0] == 2


def test_python_m_clipmat_is_the_command():
    done = subprocess.run(
        [sys.executable, "-m", "clipmat", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: python -m clipmat ") and "  matte " in done.stdout


def test_importing_the_command_imports_no_app_and_no_editing():
    code = (
        "import sys, clipmat.cli, clipmat.matte_cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('gradio', 'clipmat_app', 'editing')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", (done.stdout, done.stderr[-2000:])


def test_the_only_console_script_is_clipmat():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"clipmat": "clipmat.cli:main"}
    assert cli.resolve(project["scripts"]["clipmat"]) is cli.main


# --- clipmat matte ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """The furball example cut to 256 x 200 (not square, so that a transposed output shows)."""
    path = tmp_path_factory.mktemp("photo") / "furballs.png"
    Image.fromarray(np.asarray(Image.open(PHOTO).convert("RGB"))[:200]).save(path)
    return path


@pytest.fixture(scope="module")
def predictors():
    """Loaded predictors, shared by the tests that patch them in (loading takes a second)."""
    return {}


@pytest.fixture
def cached(monkeypatch, predictors):
    """``clipmat matte`` loading each predictor once for the module (fp32 only)."""

    def load(name: str, **kwargs):
        if name not in predictors:
            predictors[name] = load_predictor(name, **kwargs)
        return predictors[name]

    monkeypatch.setattr(matte_cli, "load_predictor", load)


@pytest.fixture(scope="module")
def matte8(photo, tmp_path_factory) -> np.ndarray:
    """The default output, written by the real command (predictor loaded, precision auto),
    into a folder that does not exist yet."""
    out = tmp_path_factory.mktemp("matte") / "new" / "folder" / "matte.png"
    status = cli.main(["matte", str(photo), _phrase(), "-o", str(out), "--predictor", "mini-world"])
    assert status == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["matte.png"]  # no temporary file left
    image = Image.open(out)
    assert image.mode == "L" and image.size == (256, 200)
    return np.asarray(image)


def test_matte_writes_the_phrase_matte_at_the_photo_size(matte8):
    truth = np.asarray(Image.open(ROOT / "examples" / "miniworld_furballs_1.png"))[:200] > 128
    mine = matte8 > 128
    assert 0.01 < mine.mean() < 0.5
    assert (mine & truth).sum() / (mine | truth).sum() > 0.5  # the fur ball, not another object


def test_matte_reports_one_line_or_json(photo, tmp_path, cached, capsys):
    out = tmp_path / "m.png"
    args = [
        "matte",
        str(photo),
        _phrase(),
        "-o",
        str(out),
        "--predictor",
        "mini-world",
        "--precision",
        "fp32",
    ]
    status, stdout, err = run_cli(args, capsys)
    assert status == 0 and stdout == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("clipmat matte: mini-world: confidence ") and str(out) in line
    status, stdout, _ = run_cli([*args, "--json"], capsys)
    info = json.loads(stdout)
    assert info["predictor"] == "mini-world" and info["output"] == str(out)
    assert 0 <= info["confidence"] <= 1 and isinstance(info["unsure"], bool)
    assert isinstance(info["notes"], list) and info["seconds"] > 0
    assert (info["width"], info["height"]) == (256, 200)


@pytest.mark.parametrize("kind", ["cutout", "color", "depth16", "highlight", "background"])
def test_matte_outputs(kind, photo, tmp_path, cached, capsys):
    extra = {
        "cutout": ["--cutout"],
        "color": ["--edit", "color", "--color", "green"],
        "depth16": ["--depth", "16"],
        "highlight": ["--edit", "highlight", "--effect", "dim+blur", "--glow", "gold"],
        "background": ["--edit", "background", "--background", str(OTHER_PHOTO)],
    }[kind]
    common = ["matte", str(photo), _phrase(), "--predictor", "mini-world", "--precision", "fp32"]
    out = tmp_path / f"{kind}.png"
    status, _, err = run_cli([*common, "-o", str(out), *extra], capsys)
    assert status == 0, err
    assert run_cli([*common, "-o", str(tmp_path / "matte.png")], capsys)[0] == 0
    matte8 = np.asarray(Image.open(tmp_path / "matte.png")).astype(np.int64)
    image = Image.open(out)
    assert image.size == (256, 200)
    pixels = np.asarray(image).astype(np.int64)
    if kind == "cutout":
        assert image.mode == "RGBA" and np.abs(pixels[..., 3] - matte8).max() <= 1
    elif kind == "depth16":
        assert image.mode.startswith("I;16") and pixels.max() > 255
        assert np.abs(pixels / 257.0 - matte8).max() <= 1
    else:
        assert image.mode == "RGB"
    if kind == "color":  # CSS green is (0, 128, 0), wherever the matte is empty
        assert (pixels[matte8 == 0] == (0, 128, 0)).all()
    if kind in ("highlight", "background"):  # the object stays, the rest changes
        original = np.asarray(Image.open(photo)).astype(np.int64)
        changed = np.abs(pixels - original).max(axis=2) > 8
        assert changed[matte8 == 0].mean() > 0.5 and changed[matte8 == 255].mean() < 0.2


def test_matte_with_a_box_and_no_phrase(photo, tmp_path, cached, capsys):
    out = tmp_path / "box.png"
    argv = [
        "matte",
        str(photo),
        "",
        "-o",
        str(out),
        "--predictor",
        "mini-world",
        "--precision",
        "fp32",
        "--box",
        "20,20,150,180",
        "--points",
        "80,100;5,5,-",
        "--json",
    ]
    status, stdout, err = run_cli(argv, capsys)
    assert status == 0, err
    assert json.loads(stdout)["predictor"] == "box and clicks (no model)"
    alpha = np.asarray(Image.open(out)) > 128
    inside = np.zeros_like(alpha)
    inside[20:180, 20:150] = True
    assert alpha[inside].sum() > 10 * max(alpha[~inside].sum(), 1)


def test_matte_reads_the_exif_orientation(photo, tmp_path, cached, capsys):
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: upright it is 200 wide, 256 high
    Image.open(photo).save(rotated, exif=exif, quality=95)
    out = tmp_path / "r.png"
    argv = [
        "matte",
        str(rotated),
        "",
        "-o",
        str(out),
        "--box",
        "10,10,190,246",
        "--predictor",
        "mini-world",
        "--precision",
        "fp32",
    ]
    assert run_cli(argv, capsys)[0] == 0
    assert Image.open(out).size == (200, 256)


BAD = [
    (["missing.jpg", "the cat"], "no such photo: missing.jpg"),
    (["{photo}", "the cat", "--box", "1,2,3"], "argument --box: expected X0,Y0,X1,Y1"),
    (["{photo}", "the cat", "--box", "10,10,300,50"], "the box 10,10,300,50 is not inside"),
    (["{photo}", "the cat", "--points", "10,10,?"], "argument --points: expected clicks"),
    (["{photo}", "the cat", "--points", "10,250"], "the click 10,250 is not inside"),
    (["{photo}", "the cat", "--predictor", "nonesuch"], "unknown predictor 'nonesuch'"),
    (["{photo}", "the cat " * 60], "the phrase is too long"),
    (["{photo}", ""], "give a phrase, or a --box or --points"),
    (["{photo}", "the cat", "--cutout", "--depth", "16"], "--depth applies to the matte"),
    (["{photo}", "the cat", "--edit", "color"], "--edit color needs --color"),
    (["{photo}", "the cat", "--edit", "color", "--color", "nocolour"], "unknown colour"),
    (["{photo}", "the cat", "--color", "red"], "--color does not apply without --edit"),
    (["{photo}", "the cat", "--edit", "highlight", "--effect", "sparkle"], "unknown effect"),
    (
        ["{photo}", "the cat", "--strength", "2", "--edit", "highlight"],
        "--strength is a number in [0, 1]",
    ),
    (["{readme}", "the cat"], "cannot read the photo"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[m for _, m in BAD])
def test_matte_errors_are_one_line_and_status_2(argv, message, photo, tmp_path, cached, capsys):
    argv = [a.format(photo=photo, readme=ROOT / "README.md") for a in argv]
    out = tmp_path / "out.png"
    status, stdout, err = run_cli(["matte", *argv, "-o", str(out), "--precision", "fp32"], capsys)
    assert status == 2 and stdout == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("clipmat matte: error: ") and message in line, err
    assert not out.exists()


def test_matte_refuses_an_output_that_is_not_png(photo, tmp_path, capsys):
    status, _, err = run_cli(["matte", str(photo), "x", "-o", str(tmp_path / "a.jpg")], capsys)
    assert status == 2 and "name it *.png" in err


# --- the command lines in the README and docs/ ----------------------------------------------

FENCE = re.compile(r"^\s*(```|~~~)")
PROMPT = re.compile(r"^(?:\([^)]*\)\s*)?[$%>]\s+")  # "$ ", "(venv) $ ", "% ", "> "
ENV = re.compile(r"^(?:[A-Za-z_]\w*=\S*\s+)+")  # HF_HUB_OFFLINE=1 clipmat ...
# clipmat VERB, python -m clipmat VERB, python -m clipmat.MODULE (group 1), python app.py
COMMAND = re.compile(
    r"^(?:clipmat|python3? -m clipmat|python3? -m (clipmat[\w.]*)|python3? app\.py)(?=\s|$)"
)


def code_lines(markdown: str) -> list[str]:
    """The lines of fenced and indented code blocks and the inline code spans of a Markdown
    text, each stripped, its prompt taken off, continued lines (ending in a backslash)
    joined."""
    pieces, fenced = [], False
    for line in markdown.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif fenced or line.startswith(("    ", "\t")):
            pieces.append(line.strip())
        else:
            pieces += [span.strip() for span in re.findall(r"`([^`\n]+)`", line)]
    lines, held = [], ""
    for piece in pieces:
        piece = f"{held} {PROMPT.sub('', piece)}".strip()
        held = piece[:-1].rstrip() if piece.endswith("\\") else ""
        if not held:
            lines.append(piece)
    return lines


def documented(markdown: str) -> list[tuple[str, str]]:
    """(kind, name) of each command line: ("verb", VERB) for ``clipmat VERB`` and
    ``python -m clipmat VERB`` ("verb", "") with no verb, ("verb", "app") for ``python app.py``,
    ("module", NAME) for ``python -m clipmat.NAME``; placeholders such as VERB are left out."""
    found = []
    for line in code_lines(markdown):
        line = ENV.sub("", line)
        match = COMMAND.match(line)
        if match is None:
            continue
        if match.group(1):
            found.append(("module", match.group(1)))
            continue
        rest = line[match.end() :].split()
        if "app.py" in match.group(0):
            found.append(("verb", "app"))
        elif not rest or rest[0].startswith("-"):
            found.append(("verb", ""))
        elif re.fullmatch(r"[a-z][a-z0-9_-]*", rest[0]):
            found.append(("verb", rest[0]))
    return found


SAMPLE = """
Run `clipmat matte photo.jpg "the cat" -o out.png`, or `clipmat VERB --help`.

```bash
$ clipmat batch --input photos/ \\
    --text "the dog" --out mattes/
(venv) $ HF_HUB_OFFLINE=1 python -m clipmat evaluate --predictor mini-world
python -m clipmat --help
```

    python app.py --port 7860
    python -m clipmat.data.contact_sheet --mini-world   # a module, not a verb
    torchrun --nproc-per-node 2 -m clipmat.batch ...
~~~
clipmat-app is gone; clipmat.load_predictor is the library
~~~
"""


def test_the_docs_scan_finds_commands_in_every_form():
    assert documented(SAMPLE) == [
        ("verb", "matte"),
        ("verb", "batch"),
        ("verb", "evaluate"),
        ("verb", ""),
        ("verb", "app"),
        ("module", "clipmat.data.contact_sheet"),
    ]
    assert 'clipmat batch --input photos/ --text "the dog" --out mattes/' in code_lines(SAMPLE)


def _docs() -> dict[str, str]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return {str(p.relative_to(ROOT)): p.read_text() for p in files}


def test_the_docs_name_only_verbs_that_exist(capsys):
    verbs = {
        name: doc
        for doc, text in _docs().items()
        for kind, name in documented(text)
        if kind == "verb"
    }
    assert verbs, "no clipmat or python app.py command line found in README.md and docs/"
    for verb, doc in sorted(verbs.items()):
        status, out, err = run_cli([verb, "--help"] if verb else ["--help"], capsys)
        assert status == 0 and out.startswith("usage: "), f"{doc}: clipmat {verb}: {err}"


def test_the_docs_name_only_modules_and_commands_that_exist():
    missing, old = [], []
    for doc, text in _docs().items():
        for kind, name in documented(text):
            spec = importlib.util.find_spec(name) if kind == "module" else None
            if spec is not None and spec.submodule_search_locations is not None:
                spec = importlib.util.find_spec(f"{name}.__main__")  # python -m PACKAGE
            if kind == "module" and spec is None:
                missing.append(f"{doc}: python -m {name}")
        old += [f"{doc}: {m.group(0)}" for m in OLD_SCRIPTS.finditer("\n".join(code_lines(text)))]
    assert not missing, f"no such module: {missing}"
    assert not old, f"console scripts replaced by 'clipmat VERB': {sorted(set(old))}"

"""The package as a library: what it imports, no import circles, its requirements, and a wheel
installed into a fresh environment that works from another folder."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("clipmat", "editing", "clipmat_app")


def _modules() -> dict[str, Path]:
    """Every module of the project's packages: dotted name -> file (packages as their name)."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports, at module level or inside functions."""
    found = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        else:
            continue
        found |= {t for t in targets if t in modules}
    return found - {name}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle through modules (package __init__s are walked through), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_circle():
    modules = _modules()
    graph = {name: _imports(path, name, modules) for name, path in modules.items()}
    # A package's __init__ imports its children to re-export them; a child importing a sibling
    # through the package is that sibling. Drop child -> own-package edges, which are not circles.
    for name, deps in graph.items():
        graph[name] = {d for d in deps if not (d in PACKAGES or name.startswith(d + "."))}
    assert _cycle(graph) is None, f"import circle: {' -> '.join(_cycle(graph))}"


def test_library_imports_no_ui_code():
    """Every module of clipmat and editing imports, and none pulls in gradio, the app or (for
    clipmat) editing; editing never imports clipmat. In the source, no clipmat module imports
    the app, and only the matte verb (clipmat.matte_cli) imports editing, inside functions."""
    modules = _modules()
    reach = {n: {m.split(".")[0] for m in _imports(p, n, modules)} for n, p in modules.items()}
    library = {n for n in modules if n.split(".")[0] == "clipmat"}
    assert not [n for n in library if "clipmat_app" in reach[n]]
    assert {n for n in library if "editing" in reach[n]} <= {"clipmat.matte_cli"}
    names = [n for n in _modules() if n.split(".")[0] in ("clipmat", "editing")]
    code = (
        "import importlib, sys\n"
        f"for n in {names!r}: importlib.import_module(n)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('gradio', 'clipmat_app'))\n"
        "print('BAD', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "BAD []" in out.stdout, out.stdout
    library = [n for n in names if n.startswith("clipmat")]
    editing = [n for n in names if n.startswith("editing")]
    for group, forbidden in ((library, "editing"), (editing, "clipmat")):
        code = (
            "import importlib, sys\n"
            f"for n in {group!r}: importlib.import_module(n)\n"
            f"print('BAD', sorted(m for m in sys.modules if m.split('.')[0] == {forbidden!r}))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
        assert "BAD []" in out.stdout, (group[:3], out.stdout, out.stderr[-2000:])


def _requirement_names(lines: list[str]) -> set[str]:
    return {re.sub(r"\s+", "", line) for line in lines if line.strip() and not line.startswith("#")}


def test_requirements_files_follow_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    runtime = set(project["dependencies"]) | set(extras["app"]) | set(extras["train"])
    assert _requirement_names((ROOT / "requirements.txt").read_text().splitlines()) == runtime
    dev = {d for d in extras["dev"] if not d.startswith("clipmat")} | {"setuptools>=68"}
    assert _requirement_names((ROOT / "requirements-dev.txt").read_text().splitlines()) == dev


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed; its dependencies are borrowed
    from the test environment through a .pth file instead of being downloaded again."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a copy, so that the build leaves nothing in the checkout
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in (*PACKAGES, "weights", "examples"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next((tmp / "dist").glob("clipmat-*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)]
        if _pip_has_python_option()
        else [py, "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    return venv


def _pip_has_python_option() -> bool:
    out = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True)
    version = tuple(int(v) for v in out.stdout.split()[1].split(".")[:2])
    return version >= (22, 3)


def test_wheel_works_from_another_folder(installed, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    py = installed / "bin" / "python"
    code = (
        "import clipmat, editing, clipmat_app, numpy as np\n"
        "assert 'site-packages' in clipmat.__file__, clipmat.__file__\n"
        "p = clipmat.load_predictor('mini-world', device='cpu')\n"
        "r = p.predict(np.zeros((40, 60, 3), np.uint8), 'the red star')\n"
        "print('OK', r.alpha.shape, clipmat.pretrained.hub.locate_weights('mini-world'))\n"
    )
    out = subprocess.run([py, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK (40, 60)" in out.stdout and "site-packages/clipmat/weights" in out.stdout
    assert [p.name for p in (installed / "bin").glob("clipmat*")] == ["clipmat"]
    clipmat = installed / "bin" / "clipmat"
    run = subprocess.run([clipmat, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "usage: clipmat" in run.stdout, run.stderr[-800:]
    for verb in ("matte", "batch", "app", "figure", "train", "evaluate", "generate", "push"):
        assert f"\n  {verb} " in run.stdout, verb
    listed = subprocess.run(
        [clipmat, "download", "--list"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert "site-packages/clipmat/weights/miniworld.safetensors" in listed.stdout
    photo = ROOT / "examples" / "miniworld_furballs.jpg"
    matte = subprocess.run(
        [
            clipmat,
            "matte",
            photo,
            "the brown and transparent fur ball",
            "-o",
            "out/matte.png",
            "--predictor",
            "mini-world",
            "--precision",
            "fp32",
            "--json",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert matte.returncode == 0, matte.stderr[-2000:]
    assert '"predictor": "mini-world"' in matte.stdout and (tmp_path / "out/matte.png").is_file()

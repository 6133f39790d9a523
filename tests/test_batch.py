"""python -m clipmat.batch: mattes for a folder or a pairs file with the bundled mini-world model;
a corrupt file reported and skipped, a second run skipping what is written, two gloo processes
writing each output once."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

import clipmat
from clipmat import batch
from clipmat.evaluation.evaluate import miniworld_items

BASE = ["--predictor", "mini-world", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def predictor() -> clipmat.CLIPMatPredictor:
    return clipmat.load_predictor("mini-world", device="cpu")


def _photos(folder: Path, count: int = 3) -> list[tuple[Path, str]]:
    """``count`` held-out mini-world scenes saved in ``folder`` (the first as PNG, the others
    as JPEG, the third in a subfolder), each with a keyword of the scene."""
    out = []
    scenes = list(miniworld_items("keyword", images=count + 5))[:count]
    for i, (image, pairs) in enumerate(scenes):
        path = folder / ("sub" if i == 2 else "") / f"scene{i}.{'jpg' if i else 'png'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        out.append((path, pairs[0][0]))
    return out


def _run(args: list[str]) -> tuple[int, str]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = batch.main([*BASE, *args])
    return code, printed.getvalue()


def test_folder_batch_writes_mattes_reports_bad_files_and_resumes(tmp_path):
    photos = _photos(tmp_path / "in")
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    (tmp_path / "in" / "notes.txt").write_text("not an image: ignored")
    out = tmp_path / "out"
    args = ["--input", str(tmp_path / "in"), "--text", "the red star", "--out", str(out)]
    code, printed = _run([*args, "--cutout"])
    assert code == 1  # a pair failed; the others were written
    summary = json.loads((out / batch.SUMMARY_FILE).read_text())
    assert (summary["done"], summary["skipped"], summary["failed"]) == (3, 0, 1)
    assert summary["failures"][0]["image"].endswith("broken.jpg")
    assert "not a readable image" in summary["failures"][0]["reason"]
    assert "3 done, 0 skipped (already written), 1 failed" in printed and "broken.jpg" in printed
    for path, _ in photos:
        key = path.relative_to(tmp_path / "in").with_suffix("").as_posix()
        stem = f"{key}.{batch.phrase_slug('the red star')}"
        matte = np.asarray(Image.open(out / f"{stem}.matte.png"))
        rgba = np.asarray(Image.open(out / f"{stem}.cutout.png"))
        photo = np.asarray(Image.open(path).convert("RGB"))
        assert matte.dtype == np.uint16 and matte.shape == photo.shape[:2]
        assert rgba.shape == (*photo.shape[:2], 4) and np.array_equal(rgba[..., :3], photo)
        assert np.abs(rgba[..., 3].astype(int) - np.round(matte / 257)).max() <= 1
    assert matte.max() > 0  # the last scene's matte is not empty
    written = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert len(written) == 6

    code, printed = _run([*args, "--cutout"])  # everything written is skipped
    summary = json.loads((out / batch.SUMMARY_FILE).read_text())
    assert (code, summary["done"], summary["skipped"], summary["failed"]) == (1, 0, 3, 1)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == written
    next(out.rglob("*.cutout.png")).unlink()  # one output missing: only its pair is redone
    _run([*args, "--cutout"])
    summary = json.loads((out / batch.SUMMARY_FILE).read_text())
    assert (summary["done"], summary["skipped"]) == (1, 2)


def test_skipped_pairs_are_not_even_read(tmp_path, predictor):
    photos = _photos(tmp_path, 2)
    jobs = batch.group_jobs([(str(p), t) for p, t in photos], tmp_path)
    rows = batch.run_batch(predictor, jobs, tmp_path / "out", progress=False)
    assert [r["status"] for r in rows] == ["done", "done"]
    encodes = predictor.stats["image_encodes"]
    photos[0][0].write_bytes(b"corrupt now")  # a skipped pair's photo is not opened
    rows = batch.run_batch(predictor, jobs, tmp_path / "out", progress=False)
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert predictor.stats["image_encodes"] == encodes


def test_pairs_files_in_every_form(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "a.csv").write_text('image,text\nimg/x.png,the cat\nimg/y.png,"the dog, left"\n')
    (tmp_path / "b.csv").write_text("image,phrase\nimg/x.png,the cat\n")
    (tmp_path / "c.json").write_text(json.dumps([{"image": "img/x.png", "phrase": "the cat"}]))
    layout = {"examples": [{"image": "img/x.png", "phrases": [{"text": "a"}, {"text": "b"}]}]}
    (tmp_path / "d.json").write_text(json.dumps(layout))
    x, y = str(tmp_path / "img" / "x.png"), str(tmp_path / "img" / "y.png")
    assert batch.read_pairs(tmp_path / "a.csv") == [(x, "the cat"), (y, "the dog, left")]
    assert batch.read_pairs(tmp_path / "b.csv") == [(x, "the cat")]
    assert batch.read_pairs(tmp_path / "c.json") == [(x, "the cat")]
    assert batch.read_pairs(tmp_path / "d.json") == [(x, "a"), (x, "b")]
    (tmp_path / "e.json").write_text(json.dumps([{"image": "x.png"}]))
    (tmp_path / "f.txt").write_text("x")
    (tmp_path / "g.csv").write_text("image,text\n")
    cases = [
        ("e.json", "needs 'image' and 'text'"),
        ("f.txt", ".csv or .json"),
        ("g.csv", "no pairs"),
    ]
    for name, message in cases:
        with pytest.raises(ValueError, match=message):
            batch.read_pairs(tmp_path / name)


def test_pairs_run_encodes_each_photo_once_and_names_outputs_apart(tmp_path, predictor):
    [(path, keyword)] = _photos(tmp_path, 1)
    (tmp_path / "other").mkdir()
    photo = Image.open(path)
    photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "other" / "scene0.png")
    photo.save(tmp_path / "scene0.jpg")  # same stem as scene0.png
    pairs = [
        (str(path), keyword),
        (str(path), "The red star!"),
        (str(path), "the red star"),
        (str(tmp_path / "scene0.jpg"), keyword),
        (str(tmp_path / "other/scene0.png"), keyword),
        (str(tmp_path / "missing.png"), keyword),
    ]
    jobs = batch.group_jobs(pairs, tmp_path)
    assert [j.key for j in jobs] == ["scene0.png", "scene0.jpg", "other/scene0", "missing"]
    predictor.clear_cache()
    encodes = predictor.stats["image_encodes"]
    rows = batch.run_batch(predictor, jobs, tmp_path / "out", progress=False)
    assert predictor.stats["image_encodes"] == encodes + 3  # three photos; three phrases on one
    assert [r["status"] for r in rows] == ["done"] * 5 + ["failed"]
    assert "FileNotFoundError" in rows[-1]["reason"]
    outputs = [r["outputs"]["matte"] for r in rows]
    assert len(set(outputs)) == 6 and all((tmp_path / "out" / o).is_file() for o in outputs[:5])


def test_command_line_refuses_bad_requests(tmp_path, capsys):
    for args, message in [
        (["--input", str(tmp_path), "--out", "o"], "--input needs --text"),
        (["--input", str(tmp_path), "--text", "x", "--out", "o"], "holds no image files"),
        (["--pairs", str(tmp_path / "p.txt"), "--out", "o"], ".csv or .json"),
    ]:
        with pytest.raises(SystemExit):
            batch.main([*BASE, *args])
        assert message in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, pairs: str, out: str) -> None:
    """One rank as torchrun starts it; every file it writes is logged to OUT/../written.RANK."""
    torch.set_num_threads(1)
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world)}
    os.environ.update(env, RANK=str(rank), LOCAL_RANK=str(rank))
    write = batch.write_png
    log = Path(out).parent / f"written.{rank}"

    def logged(path: Path, image: np.ndarray) -> None:
        with log.open("a") as f:
            f.write(f"{path}\n")
        write(path, image)

    batch.write_png = logged
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        batch.main([*BASE, "--pairs", pairs, "--out", out, "--cutout"])
    (Path(out).parent / f"printed.{rank}").write_text(printed.getvalue())


def test_two_gloo_processes_write_each_output_once(tmp_path, monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    photos = _photos(tmp_path, 3)
    lines = ["image,text"] + [f"{p.relative_to(tmp_path)},{t}" for p, t in photos]
    lines += [f"{photos[0][0].relative_to(tmp_path)},the red star", "nothing.png,a cat"]
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "pairs.csv"), str(out)), nprocs=2)
    written = [(tmp_path / f"written.{r}").read_text().split() for r in range(2)]
    assert all(written)  # both ranks worked
    assert len(written[0] + written[1]) == len(set(written[0] + written[1])) == 2 * 4
    assert set(written[0] + written[1]) == {str(p) for p in out.rglob("*.png")}
    summary = json.loads((out / batch.SUMMARY_FILE).read_text())
    assert (summary["world_size"], summary["done"], summary["failed"]) == (2, 4, 1)
    assert [p["text"] for p in summary["pairs"]] == [t for _, t in photos[:1]] + [
        "the red star",
        photos[1][1],
        photos[2][1],
        "a cat",
    ]  # one row per pair, grouped by photo, in the file's order
    assert "4 done" in (tmp_path / "printed.0").read_text()
    assert (tmp_path / "printed.1").read_text() == ""  # only rank 0 reports

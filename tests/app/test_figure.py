"""The paper-figure demo script: mattes, edits and the figure grid on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import editing
from clipmat.imageio import load_image
from clipmat_app import figure as demo
from clipmat_app.pool import create_random_tiny

CAT = Path(__file__).resolve().parents[2] / "examples" / "photo_cat.jpg"


def test_one_image_several_phrases(tmp_path):
    out = tmp_path / "out"
    phrases = ["the cat", "the cat's left ear"]
    args = ["--image", str(CAT), "--out", str(out), "--predictor", "random-tiny"]
    demo.main([*args, "--text", phrases[0], "--text", phrases[1], "--color", "orange"])
    figure = Image.open(out / "figure.png")
    rows = (figure.height - demo.HEADER_HEIGHT - demo.GAP) / (
        demo.CELL_HEIGHT + demo.CAPTION_HEIGHT + demo.GAP
    )
    assert rows == len(phrases) and figure.width > 5 * demo.CELL_HEIGHT
    summary = json.loads((out / "results.json").read_text())
    assert [p["text"] for p in summary["pairs"]] == phrases
    photo = load_image(CAT)
    alpha = create_random_tiny("cpu").predict(photo, phrases[1]).alpha
    np.testing.assert_allclose(editing.load_matte(out / "photo_cat_1_matte.png"), alpha, atol=2e-5)
    colour = np.asarray(Image.open(out / "photo_cat_1_colour.png"))
    assert np.abs(colour.astype(int) - editing.fill_color(photo, alpha, "orange")).max() <= 1
    for view in ("highlight", "new_background", "cutout"):
        assert (out / f"photo_cat_0_{view}.png").is_file()


def test_pairs_from_csv_and_json(tmp_path):
    (tmp_path / "pairs.csv").write_text(f"image,phrase\n{CAT},the cat\n{CAT},the whiskers\n")
    demo.main(
        [
            "--pairs",
            str(tmp_path / "pairs.csv"),
            "--out",
            str(tmp_path / "a"),
            "--predictor",
            "random-tiny",
        ]
    )
    assert len(json.loads((tmp_path / "a" / "results.json").read_text())["pairs"]) == 2
    (tmp_path / "pairs.json").write_text(json.dumps([{"image": CAT.name, "text": "the nose"}]))
    assert demo.read_pairs(tmp_path / "pairs.json") == [(str(tmp_path / CAT.name), "the nose")]
    rows = demo.read_pairs(CAT.parent / "phrases.json")
    assert len(rows) >= 10 and all(Path(image).is_file() for image, _ in rows)


def test_bad_arguments_stop_with_a_message(tmp_path):
    (tmp_path / "bad.csv").write_text("picture,words\na.jpg,the cat\n")
    with pytest.raises(SystemExit, match="needs 'image' and 'text'"):
        demo.main(["--pairs", str(tmp_path / "bad.csv"), "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        demo.main(["--image", str(CAT), "--out", str(tmp_path)])  # no --text
    with pytest.raises(SystemExit, match="unknown colour"):
        demo.main(
            [
                "--image",
                str(CAT),
                "--text",
                "x",
                "--out",
                str(tmp_path),
                "--predictor",
                "random-tiny",
                "--color",
                "plaid",
            ]
        )

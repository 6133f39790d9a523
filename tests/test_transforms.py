"""The resize policy survives every aspect ratio: photos of 1 pixel, 1 x 4000, 90 x 1500."""

from __future__ import annotations

import numpy as np
import pytest

from clipmat.transforms import MIN_PATCHES, model_input_size

EXTREME = [(90, 1500), (1500, 90), (1, 1), (1, 4000), (4000, 1), (3, 7)]


def test_ordinary_photos_keep_the_policy():
    # Short side to 128, aspect kept, floored to multiples of 8.
    assert model_input_size(480, 640, short_side=128, multiple=8) == (128, 168)  # 170.7
    assert model_input_size(640, 480, short_side=512, multiple=16) == (672, 512)  # 682.7
    # The long side is capped at twice the short side.
    assert model_input_size(100, 400, short_side=128, multiple=8) == (64, 256)
    assert model_input_size(100, 400, short_side=128, multiple=8, max_long_side=512) == (128, 512)
    # Tiny photos are enlarged.
    assert model_input_size(3, 7, short_side=128, multiple=8) == (104, 256)  # 109.7 -> 104


@pytest.mark.parametrize("size", EXTREME + [(1, 2), (7, 100000), (16, 16)])
@pytest.mark.parametrize(("short_side", "patch"), [(128, 8), (96, 8), (512, 16), (448, 16)])
def test_every_photo_gets_a_valid_size(size, short_side, patch):
    h, w = model_input_size(*size, short_side=short_side, multiple=patch)
    assert h % patch == 0 and w % patch == 0
    assert min(h, w) >= MIN_PATCHES * patch and max(h, w) <= 2 * short_side


def test_the_aspect_ratio_gives_way_not_the_cap():
    # 90 x 1500 at 128 px: the cap (256) allows a short side of 15 -> 8, under two patches.
    assert model_input_size(90, 1500, short_side=128, multiple=8) == (16, 256)
    assert model_input_size(4000, 1, short_side=512, multiple=16) == (1024, 32)
    assert model_input_size(1, 4000, short_side=128, multiple=8, min_side=20) == (24, 256)
    assert model_input_size(1, 4000, short_side=224, multiple=14) == (28, 448)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="positive"):
        model_input_size(0, 10, short_side=128, multiple=8)
    with pytest.raises(ValueError, match="positive"):
        model_input_size(10, 10, short_side=128, multiple=0)
    with pytest.raises(ValueError, match="below the smallest side"):
        model_input_size(10, 10, short_side=128, multiple=8, max_long_side=8)


@pytest.mark.parametrize("size", EXTREME)
def test_the_tiny_model_mattes_extreme_photos(tiny_predictor, size):
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    r = tiny_predictor.predict(photo, "the cat")
    assert r.alpha.shape == size and np.isfinite(r.alpha).all()


@pytest.mark.parametrize("size", EXTREME)
def test_the_bundled_model_mattes_extreme_photos(mini_world, size):
    r = mini_world.predict(np.zeros((*size, 3), np.uint8), "the red star")
    assert r.alpha.shape == size and r.alpha.dtype == np.float32

"""Trimap -> alpha machinery on constructed inputs whose right answer is known."""

import cv2
import numpy as np
import pytest

from clipmat import refine


def _soft_disk(size: int, centre: tuple[float, float], radius: float, ramp: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    r = np.hypot(yy - centre[1], xx - centre[0])
    return np.clip((radius - r) / ramp + 0.5, 0.0, 1.0).astype(np.float32)


def _composite(alpha: np.ndarray, rng: np.random.Generator, noise: float = 2.0) -> np.ndarray:
    fg = np.array([220.0, 60.0, 30.0], np.float32)
    bg = np.array([25.0, 70.0, 190.0], np.float32)
    img = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    img += rng.normal(0.0, noise, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_trimap_from_probability_has_the_expected_regions():
    prob = np.zeros((8, 8), np.float32)
    prob[2:6, 2:6] = 1.0  # a block of 4x4 patches, upsampled 8x
    tri = refine.trimap_from_probability(prob, (64, 64), band=4)
    assert tri.shape == (64, 64) and tri.dtype == np.uint8
    assert tri[32, 32] == refine.TRIMAP_FG and tri[2, 2] == refine.TRIMAP_BG
    assert tri[60, 32] == refine.TRIMAP_BG
    # The 0.5 contour of the bilinear upsampling sits at pixel 16 (and 48); +-4 is unknown.
    contour_row = tri[32]
    unknown = np.nonzero(contour_row == refine.TRIMAP_UNKNOWN)[0]
    assert unknown.min() >= 16 - 5 and unknown.max() <= 48 + 5
    assert {13, 16, 18, 46, 50} <= set(unknown.tolist())
    assert contour_row[24] == refine.TRIMAP_FG and contour_row[8] == refine.TRIMAP_BG


def test_trimap_from_probability_edge_cases():
    assert (refine.trimap_from_probability(np.zeros((4, 4)), (16, 16)) == 0).all()
    assert (refine.trimap_from_probability(np.ones((4, 4)), (16, 16)) == 255).all()
    thin = np.zeros((16, 16), np.float32)
    thin[:, 7:9] = 1.0  # thinner than twice the band: its core stays foreground
    tri = refine.trimap_from_probability(thin, band=6)
    assert (tri == 255).any() and (tri == 128).any() and (tri == 0).any()
    with pytest.raises(ValueError, match="band"):
        refine.trimap_from_probability(thin, band=0)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        refine.trimap_from_probability(np.zeros((4, 4, 3)))


def test_trimap_from_alpha_marks_the_transition():
    alpha = _soft_disk(64, (32, 32), 16, 6)
    tri = refine.trimap_from_alpha(alpha, band=2)
    soft = (alpha > 0.05) & (alpha < 0.95)
    assert (tri[soft] == refine.TRIMAP_UNKNOWN).all()
    assert tri[32, 32] == refine.TRIMAP_FG and tri[0, 0] == refine.TRIMAP_BG
    hard = np.zeros((32, 32), np.float32)
    hard[8:24, 8:24] = 1.0  # a hard step still gets an unknown band at its edge
    assert (refine.trimap_from_alpha(hard, band=1)[16, 6:10] == refine.TRIMAP_UNKNOWN).all()


def test_closed_form_recovers_a_known_soft_matte(rng):
    truth = _soft_disk(96, (48, 44), 28, 10)
    image = _composite(truth, rng)
    tri = refine.trimap_from_alpha(truth, band=2)
    alpha = refine.closed_form_alpha(image, tri)
    unknown = tri == refine.TRIMAP_UNKNOWN
    assert alpha.dtype == np.float32 and alpha.shape == truth.shape
    assert (alpha[tri == 255] == 1).all() and (alpha[tri == 0] == 0).all()
    err = np.abs(alpha - truth)[unknown].mean()
    mask_err = np.abs((truth > 0.5) - truth)[unknown].mean()
    assert err < 0.03 and err < 0.2 * mask_err


def test_closed_form_degenerate_trimaps(rng):
    image = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    tri = np.full((20, 20), 255, np.uint8)
    assert (refine.closed_form_alpha(image, tri) == 1).all()
    tri[:] = 128
    tri[0, 0] = 0
    assert (refine.closed_form_alpha(image, tri) == 0).all()
    with pytest.raises(ValueError, match="0, 128 or 255"):
        refine.closed_form_alpha(image, np.full((20, 20), 7, np.uint8))
    with pytest.raises(ValueError, match="uint8 RGB"):
        refine.closed_form_alpha(image.astype(np.float32), tri)
    with pytest.raises(ValueError, match="sizes differ"):
        refine.closed_form_alpha(image, tri[:10])


def test_guided_upsampling_beats_bilinear_on_a_sharp_edge():
    size = 256
    truth = np.zeros((size, size), np.float32)
    cv2.circle(truth, (130, 120), 70, 1.0, -1)
    cv2.rectangle(truth, (20, 200), (90, 240), 1.0, -1)
    image = np.where(truth[..., None] > 0, [200, 180, 40], [30, 40, 90]).astype(np.uint8)
    low = cv2.resize(truth, (64, 64), interpolation=cv2.INTER_AREA)
    bilinear = cv2.resize(low, (size, size), interpolation=cv2.INTER_LINEAR)
    guided = refine.guided_upsample(low, image)
    assert guided.shape == truth.shape and guided.dtype == np.float32
    assert 0 <= guided.min() and guided.max() <= 1
    assert np.abs(guided - truth).sum() < 0.25 * np.abs(bilinear - truth).sum()


def test_guided_upsampling_in_strips_matches_one_pass(monkeypatch, rng):
    image = rng.integers(0, 256, (70, 50, 3), dtype=np.uint8)
    low = rng.random((20, 15)).astype(np.float32)
    whole = refine.guided_upsample(low, image)
    monkeypatch.setattr(refine, "STRIP_ROWS", 16)
    np.testing.assert_allclose(refine.guided_upsample(low, image), whole, atol=1e-5)
    with pytest.raises(ValueError, match="larger than the image"):
        refine.guided_upsample(rng.random((80, 60)), image)


def test_matte_from_trimap_at_a_working_resolution(rng):
    truth = _soft_disk(192, (96, 90), 60, 12)
    image = _composite(truth, rng)
    small = cv2.resize(truth, (96, 96), interpolation=cv2.INTER_AREA)
    alpha = refine.matte_from_trimap(image, refine.trimap_from_alpha(small, band=2))
    assert alpha.shape == truth.shape
    assert np.abs(alpha - truth).mean() < 0.01


def test_refine_alpha_sharpens_a_blurred_coarse_matte(rng):
    truth = np.zeros((160, 200), np.float32)
    cv2.ellipse(truth, (100, 80), (60, 45), 0, 0, 360, 1.0, -1)
    truth = cv2.GaussianBlur(truth, (0, 0), 1.0)
    image = _composite(truth, rng)
    coarse = cv2.GaussianBlur(truth, (0, 0), 5.0)
    refined, tri = refine.refine_alpha(image, coarse, max_side=100, band=3)
    assert refined.shape == truth.shape and tri.shape == truth.shape
    assert np.abs(refined - truth).sum() < 0.5 * np.abs(coarse - truth).sum()
    known = tri != refine.TRIMAP_UNKNOWN
    np.testing.assert_array_equal(refined[known], coarse[known])
    with pytest.raises(ValueError, match="sizes differ"):
        refine.refine_alpha(image, coarse[:10])


def test_refine_alpha_leaves_a_matte_with_no_sure_core_as_it_was(rng):
    """A soft-all-over matte (peak 0.8) has no sure foreground to anchor closed-form matting;
    solving it anyway would erase the object. A sure object beside it is still refined."""
    truth = np.zeros((120, 200), np.float32)
    cv2.circle(truth, (50, 60), 30, 1.0, -1)
    cv2.circle(truth, (150, 60), 30, 1.0, -1)
    image = _composite(cv2.GaussianBlur(truth, (0, 0), 1.0), rng)
    coarse = cv2.GaussianBlur(truth, (0, 0), 4.0)
    coarse[:, :100] *= 0.8  # the left object: never sure
    refined, tri = refine.refine_alpha(image, coarse, band=3)
    np.testing.assert_array_equal(refined[:, :100], coarse[:, :100])
    assert (tri[:, :100] == refine.TRIMAP_UNKNOWN).any()  # its transition was found, not solved
    right = (slice(None), slice(100, None))
    assert (
        np.abs(refined[right] - truth[right]).sum()
        < 0.6 * np.abs(coarse[right] - truth[right]).sum()
    )


def test_working_size():
    assert refine.working_size(3000, 4000, 1000) == (750, 1000)
    assert refine.working_size(300, 400, 1000) == (300, 400)
    with pytest.raises(ValueError, match="max_side"):
        refine.working_size(10, 10, 0)


def test_clipmat_predictor_refine_option(tiny_predictor):
    predictor = tiny_predictor
    photo = np.random.default_rng(1).integers(0, 256, (75, 101, 3), dtype=np.uint8)
    plain = predictor.predict(photo, "the red star")
    refined = predictor.predict(photo, "the red star", refine=True)
    assert refined.alpha.shape == (75, 101) and refined.alpha.dtype == np.float32
    assert 0 <= refined.alpha.min() and refined.alpha.max() <= 1
    assert set(np.unique(refined.trimap)) <= {0, 128, 255}
    known = refined.trimap != refine.TRIMAP_UNKNOWN
    np.testing.assert_array_equal(refined.alpha[known], plain.alpha[known])


def test_trimap_reach_keeps_far_soft_noise_out_of_the_unknown_band():
    from clipmat.refine import TRIMAP_BG, TRIMAP_UNKNOWN, trimap_from_alpha

    alpha = np.zeros((60, 60), np.float32)
    alpha[20:40, 5:25] = 1.0  # the object
    alpha[20:40, 45:58] = 0.2  # faint noise on another object far away
    wide = trimap_from_alpha(alpha, band=2)
    near = trimap_from_alpha(alpha, band=2, reach=5)
    assert (wide[25:35, 48:55] == TRIMAP_UNKNOWN).all()
    assert (near[25:35, 48:55] == TRIMAP_BG).all()
    # the object's own contour stays unknown either way
    assert near[30, 25] == TRIMAP_UNKNOWN and wide[30, 25] == TRIMAP_UNKNOWN

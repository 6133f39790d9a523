"""Matting metrics against hand-computed values and slow direct reference loops."""

import math
from collections import deque

import numpy as np
import pytest

from clipmat import metrics


def _slow_gradient_magnitude(a: np.ndarray, sigma: float = 1.4) -> np.ndarray:
    """Derivative-of-Gaussian gradient by explicit loops: true convolution, borders replicated."""
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * 0.01)))
    size = 2 * half + 1

    def gauss(x):
        return math.exp(-x * x / (2 * sigma * sigma)) / (sigma * math.sqrt(2 * math.pi))

    kx = [
        [gauss(i - half) * (-(j - half) * gauss(j - half) / sigma**2) for j in range(size)]
        for i in range(size)
    ]
    norm = math.sqrt(sum(v * v for row in kx for v in row))
    kx = [[v / norm for v in row] for row in kx]
    h, w = a.shape
    out = np.zeros_like(a)
    for y in range(h):
        for x in range(w):
            gx = gy = 0.0
            for i in range(size):
                for j in range(size):
                    # convolution: kernel offset (i - half, j - half) reads the mirrored pixel
                    yy = min(max(y - (i - half), 0), h - 1)
                    xx = min(max(x - (j - half), 0), w - 1)
                    gx += kx[i][j] * a[yy, xx]
                    yy = min(max(y - (j - half), 0), h - 1)
                    xx = min(max(x - (i - half), 0), w - 1)
                    gy += kx[i][j] * a[yy, xx]  # kernel transposed: derivative along rows
            out[y, x] = math.hypot(gx, gy)
    return out


def _slow_largest_component(binary: np.ndarray) -> np.ndarray:
    """Breadth-first flood fill with 4-neighbours; the first largest component in raster order."""
    h, w = binary.shape
    seen = np.zeros_like(binary)
    best: list[tuple[int, int]] = []
    for sy in range(h):
        for sx in range(w):
            if not binary[sy, sx] or seen[sy, sx]:
                continue
            seen[sy, sx] = True
            queue, comp = deque([(sy, sx)]), []
            while queue:
                y, x = queue.popleft()
                comp.append((y, x))
                for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                    if 0 <= ny < h and 0 <= nx < w and binary[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        queue.append((ny, nx))
            if len(comp) > len(best):
                best = comp
    out = np.zeros_like(binary)
    for y, x in best:
        out[y, x] = True
    return out


def _slow_conn(p: np.ndarray, g: np.ndarray) -> float:
    level = np.full(p.shape, -1.0)
    for k in range(1, 11):
        t, t_prev = k / 10, (k - 1) / 10
        omega = _slow_largest_component((p >= t) & (g >= t))
        for (y, x), value in np.ndenumerate(level):
            if value == -1.0 and not omega[y, x]:
                level[y, x] = t_prev
    level[level == -1.0] = 1.0
    total = 0.0
    for (y, x), lv in np.ndenumerate(level):
        dp, dg = p[y, x] - lv, g[y, x] - lv
        phi_p = 1 - dp if dp >= 0.15 else 1.0
        phi_g = 1 - dg if dg >= 0.15 else 1.0
        total += abs(phi_p - phi_g)
    return total / 1000


@pytest.fixture
def pair(rng):
    gt = np.zeros((12, 15))
    gt[3:9, 4:11] = 1.0
    gt[2:10, 3:12] = np.maximum(gt[2:10, 3:12], 0.5)
    pred = np.clip(gt + rng.normal(0.0, 0.2, gt.shape), 0.0, 1.0)
    return pred, gt


def test_perfect_prediction_scores_zero(pair):
    _, gt = pair
    scores = metrics.compute_all(gt, gt)
    assert {k: scores[k] for k in ("sad", "mse", "mad", "grad", "conn")} == dict.fromkeys(
        ("sad", "mse", "mad", "grad", "conn"), 0.0
    )
    assert scores["iou"] == 1.0 and scores["grounding_hit"] == 1.0


def test_constant_error_gives_known_sad_mse_mad():
    gt = np.zeros((20, 50))
    pred = np.full((20, 50), 0.2)
    assert metrics.sad(pred, gt) == pytest.approx(1000 * 0.2 / 1000)
    assert metrics.mse(pred, gt) == pytest.approx(0.04)
    assert metrics.mad(pred, gt) == pytest.approx(0.2)


def test_mask_restricts_sums_and_means():
    gt = np.zeros((4, 5))
    pred = np.zeros((4, 5))
    pred[0, :] = 1.0  # 5 wrong pixels, error 1
    pred[1, :2] = 0.5  # 2 pixels, error 0.5
    mask = np.zeros((4, 5), bool)
    mask[:2, :] = True  # 10 pixels
    assert metrics.sad(pred, gt, mask) == pytest.approx(6.0 / 1000)
    assert metrics.mad(pred, gt, mask) == pytest.approx(6.0 / 10)
    assert metrics.mse(pred, gt, mask) == pytest.approx((5 + 2 * 0.25) / 10)
    assert metrics.mad(pred, gt) == pytest.approx(6.0 / 20)
    assert metrics.mse(pred, gt, mask.astype(np.uint8)) == metrics.mse(pred, gt, mask)


def test_uint8_input_matches_float():
    gt8 = np.array([[0, 255], [255, 51]], np.uint8)
    pred8 = np.array([[0, 0], [255, 102]], np.uint8)
    assert metrics.sad(pred8, gt8) == pytest.approx((1.0 + 0.2) / 1000)
    assert metrics.sad(pred8, gt8) == pytest.approx(metrics.sad(pred8 / 255.0, gt8 / 255.0))


def test_grad_kernel_size_and_norm():
    kernel = metrics.gaussian_derivative_kernel(1.4)
    assert kernel.shape == (9, 9)
    assert np.sum(kernel**2) == pytest.approx(1.0)
    assert np.allclose(kernel, -kernel[:, ::-1])  # odd along x
    assert np.allclose(kernel, kernel[::-1, :])  # even along y


def test_grad_matches_slow_reference(pair):
    pred, gt = pair
    expected = np.sum((_slow_gradient_magnitude(pred) - _slow_gradient_magnitude(gt)) ** 2) / 1000
    assert metrics.grad(pred, gt) == pytest.approx(expected, rel=1e-9)
    assert expected > 0


def test_grad_properties():
    gt = np.zeros((16, 16))
    gt[:, 8:] = 1.0  # vertical edge
    assert metrics.grad(np.full_like(gt, 0.3), np.full_like(gt, 0.8)) == pytest.approx(
        0.0, abs=1e-15
    )
    full = metrics.grad(np.zeros_like(gt), gt)  # all of gt's gradient energy
    assert full == pytest.approx(np.sum(metrics.gradient_magnitude(gt) ** 2) / 1000)
    assert metrics.grad(0.5 * gt, gt) == pytest.approx(0.25 * full)  # half-height edge
    assert metrics.grad(gt + 0.0, gt.T) > 0


def test_conn_hand_computed_one_row():
    gt = np.array([[1.0, 1.0, 1.0]])
    # The third pixel drops out at t = 0.1 (level 0): gt's phi there is 1 - 1 = 0, pred's is 1.
    assert metrics.conn(np.array([[1.0, 1.0, 0.0]]), gt) == pytest.approx(1.0 / 1000)
    # With pred 0.5 it stays until t = 0.5 (level 0.5): phi_gt = 0.5, phi_pred = 1 (d = 0 < theta).
    assert metrics.conn(np.array([[1.0, 1.0, 0.5]]), gt) == pytest.approx(0.5 / 1000)
    # Theta: pred 0.7 drops out at t = 0.8 (level 0.7); gt 1.0 has d = 0.3 >= 0.15 -> phi 0.7.
    assert metrics.conn(np.array([[1.0, 1.0, 0.7]]), gt) == pytest.approx(0.3 / 1000)
    # ... but gt 0.8 has d = 0.1 < 0.15 -> phi 1, the same as pred's.
    assert metrics.conn(np.array([[1.0, 1.0, 0.7]]), np.array([[1.0, 1.0, 0.8]])) == 0.0


def test_conn_disconnected_island_is_penalised():
    gt = np.zeros((5, 9))
    gt[1:4, 1:4] = 1.0  # main body (9 px)
    gt[2, 7] = 1.0  # island that only gt has
    pred = gt.copy()
    pred[2, 7] = 0.0
    # island: level 0 for both; phi_gt = 0, phi_pred = 1 -> 1 / 1000
    assert metrics.conn(pred, gt) == pytest.approx(1.0 / 1000)
    both = gt.copy()  # an island both share still falls out of the largest component
    assert metrics.conn(both, gt) == 0.0


def test_conn_matches_slow_reference(pair):
    pred, gt = pair
    assert metrics.conn(pred, gt) == pytest.approx(_slow_conn(pred, gt), rel=1e-12)
    assert metrics.conn(gt, pred) == pytest.approx(_slow_conn(gt, pred), rel=1e-12)


def test_conn_matches_slow_reference_on_noise(rng):
    pred, gt = rng.random((9, 11)), rng.random((9, 11))
    assert metrics.conn(pred, gt) == pytest.approx(_slow_conn(pred, gt), rel=1e-12)


def test_iou_and_grounding_hit():
    gt = np.zeros((10, 10))
    gt[:, :5] = 1.0  # 50 px
    pred = np.zeros((10, 10))
    pred[:, :4] = 0.9  # 40 px inside gt
    assert metrics.iou(pred, gt) == pytest.approx(40 / 50)
    assert metrics.grounding_hit(pred, gt)
    pred[:, :] = 0.0
    pred[:, 7:] = 1.0
    assert metrics.iou(pred, gt) == 0.0 and not metrics.grounding_hit(pred, gt)
    assert metrics.iou(np.full((4, 4), 0.5), np.zeros((4, 4))) == 1.0  # both empty at > 0.5
    assert metrics.iou(pred, gt, threshold=-1.0) == 1.0


def test_compute_all_keys_and_consistency(pair):
    pred, gt = pair
    scores = metrics.compute_all(pred, gt)
    assert set(scores) == {"sad", "mse", "mad", "grad", "conn", "iou", "grounding_hit"}
    assert scores["sad"] == pytest.approx(metrics.mad(pred, gt) * pred.size / 1000)
    assert all(isinstance(v, float) for v in scores.values())


@pytest.mark.parametrize(
    ("pred", "gt", "error", "match"),
    [
        (np.zeros((3, 3)), np.zeros((3, 4)), ValueError, "differ in shape"),
        (np.zeros((3, 3, 3)), np.zeros((3, 3, 3)), ValueError, r"\(H, W\)"),
        (np.zeros((0, 3)), np.zeros((0, 3)), ValueError, "non-empty"),
        (np.full((2, 2), np.nan), np.zeros((2, 2)), ValueError, "NaN"),
        (np.full((2, 2), 255.0), np.zeros((2, 2)), ValueError, r"\[0, 1\].*uint8"),
        (np.zeros((2, 2), np.int32), np.zeros((2, 2)), TypeError, "int32"),
    ],
)
def test_bad_inputs_raise_clear_errors(pred, gt, error, match):
    with pytest.raises(error, match=match):
        metrics.sad(pred, gt)


def test_bad_masks_raise():
    a = np.zeros((3, 3))
    with pytest.raises(ValueError, match="shape"):
        metrics.mse(a, a, np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="no pixel"):
        metrics.mse(a, a, np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="boolean"):
        metrics.mse(a, a, np.full((3, 3), 0.5))


def test_tiny_float_overshoot_is_clipped():
    assert metrics.sad(np.full((2, 2), 1.0 + 1e-9), np.ones((2, 2))) == 0.0
    assert metrics.mse(np.zeros((2, 2, 1)), np.zeros((2, 2))) == 0.0

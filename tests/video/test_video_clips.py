"""The mini world's clips: deterministic per seed, and every frame's alpha is the right one."""

import numpy as np
import pytest

from clipmat.data.clips import KINDS, make_clip
from clipmat.data.composition import composite_layers


def test_a_clip_is_deterministic_per_seed():
    a, b = make_clip("pass", 3, size=64, length=6), make_clip("pass", 3, size=64, length=6)
    assert a.phrase == b.phrase
    for t in (0, 2, 5):
        fa, fb = a.frame(t), b.frame(t)
        np.testing.assert_array_equal(fa.image, fb.image)
        np.testing.assert_array_equal(fa.alphas, fb.alphas)
    np.testing.assert_array_equal(list(a.images())[4], b.frame(4).image)
    other = make_clip("pass", 4, size=64, length=6)
    assert not np.array_equal(a.frame(0).image, other.frame(0).image)
    assert not np.array_equal(a.frame(1).image, a.frame(2).image)  # noise and motion


@pytest.mark.parametrize("kind", KINDS)
def test_each_frame_is_the_composite_of_its_alphas(kind):
    """Without noise a frame is the background with each mover's colours blended back to front,
    and a mover's alpha is its sprite where it lies, cut by the movers in front of it."""
    clip = make_clip(kind, 1, size=64, length=8, noise=0.0)
    order = sorted(range(len(clip.movers)), key=lambda k: clip.movers[k].depth)
    for t in range(clip.length):
        frame = clip.frame(t)
        layers = []
        for k in order:
            m = clip.movers[k]
            rgb = np.zeros((64, 64, 3), np.float32)
            alpha = np.zeros((64, 64), np.float32)
            x0, y0 = m.corner(t)
            ys, xs = np.mgrid[0 : m.alpha.shape[0], 0 : m.alpha.shape[1]]
            inside = (ys + y0 >= 0) & (ys + y0 < 64) & (xs + x0 >= 0) & (xs + x0 < 64)
            ys, xs = ys[inside], xs[inside]
            rgb[ys + y0, xs + x0], alpha[ys + y0, xs + x0] = m.rgb[ys, xs], m.alpha[ys, xs]
            layers.append((rgb, alpha))
        np.testing.assert_array_equal(frame.image, composite_layers(clip.background, layers))
        cover = np.ones((64, 64), np.float32)
        for k, (_, alpha) in zip(order[::-1], layers[::-1]):
            np.testing.assert_allclose(frame.alphas[k], alpha * cover, atol=1e-6)
            cover = cover * (1.0 - alpha)
        assert frame.alphas.sum(axis=0).max() <= 1.0 + 1e-5
        np.testing.assert_array_equal(frame.target, frame.alphas[clip.target])


def test_the_kinds_move_as_described():
    passing = make_clip("pass", 0, size=96, length=16)
    roles = [m.role for m in passing.movers]
    assert roles == ["target", "look-alike", "other"]
    target, twin = passing.movers[0], passing.movers[1]
    assert (target.category, target.colour) == (twin.category, twin.colour)
    assert passing.phrase == f"the {target.colour} {target.category}"
    frames = list(passing)
    assert frames[0].alphas[1].max() == 0  # the look-alike comes in after the first frame
    assert frames[-1].alphas[1].max() > 0.5

    def box(m, t):
        x, y = m.corner(t)
        return x, y, x + m.alpha.shape[1], y + m.alpha.shape[0]

    def overlap(a, b):
        return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])

    assert any(overlap(box(target, t), box(twin, t)) for t in range(16))  # they cross
    assert box(target, 1)[0] < box(twin, 1)[0] and box(target, 15)[0] > box(twin, 15)[0]

    leaving = list(make_clip("leave", 0, size=64, length=12))
    visible = [f.target.max() > 0.5 for f in leaving]
    assert visible[0] and visible[-1] and not visible[len(visible) // 2]

    still = list(make_clip("static", 0, size=64, length=5))
    for f in still[1:]:
        np.testing.assert_array_equal(f.alphas, still[0].alphas)
        assert not np.array_equal(f.image, still[0].image)  # the sensor noise


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="kind"):
        make_clip("dance")
    with pytest.raises(ValueError, match="at least"):
        make_clip("pass", size=16)
    with pytest.raises(IndexError):
        make_clip("pass", size=48, length=4).frame(4)

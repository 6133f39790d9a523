"""Image input normalisation: every source kind, mode and dtype, and the errors."""

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from clipmat.imageio import ImageInputError, limit_size, load_image, load_image_with_alpha

EXIF_ORIENTATION = 0x0112


@pytest.fixture
def rgb(rng) -> np.ndarray:
    return rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)


def _encode(im: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def test_sources_path_bytes_file_pil_array_agree(tmp_path, rgb):
    path = tmp_path / "x.png"
    Image.fromarray(rgb).save(path)
    data = path.read_bytes()
    loaded = [
        load_image(path),
        load_image(str(path)),
        load_image(data),
        load_image(bytearray(data)),
        load_image(io.BytesIO(data)),
        load_image(Image.fromarray(rgb)),
        load_image(rgb),
    ]
    with open(path, "rb") as f:
        loaded.append(load_image(f))
    for out in loaded:
        assert out.dtype == np.uint8 and out.shape == (20, 30, 3) and out.flags.c_contiguous
        np.testing.assert_array_equal(out, rgb)
    assert not np.shares_memory(loaded[-2], rgb)


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        (3, lambda a: a[::-1, ::-1]),  # rotated 180
        (6, lambda a: np.rot90(a, k=-1)),  # viewer rotates 90 clockwise
        (8, lambda a: np.rot90(a, k=1)),  # viewer rotates 90 counter-clockwise
    ],
)
def test_exif_orientation_is_applied(orientation, expected):
    stored = np.zeros((16, 32, 3), np.uint8)
    stored[:8, :8] = (255, 0, 0)  # red block top-left as stored
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    data = _encode(Image.fromarray(stored), "JPEG", quality=100, exif=exif.tobytes())
    out = load_image(data)
    want = expected(stored)
    assert out.shape == want.shape
    want_red = want[..., 0] > 200
    assert out[want_red, 0].mean() > 200 and out[want_red, 1].mean() < 40  # JPEG: edges blur
    assert out[~want_red, 0].mean() < 30


def test_rgba_keeps_colour_under_alpha_and_returns_alpha(rgb):
    alpha = np.tile(np.linspace(0, 255, 30).astype(np.uint8), (20, 1))
    rgba = np.dstack([rgb, alpha])
    for src in (_encode(Image.fromarray(rgba, "RGBA"), "PNG"), rgba, Image.fromarray(rgba, "RGBA")):
        out, a = load_image_with_alpha(src)
        np.testing.assert_array_equal(out, rgb)  # not composited on white
        np.testing.assert_array_equal(a, alpha)
    assert load_image_with_alpha(rgb)[1] is None


def test_la_and_grayscale_inputs(rng):
    gray = rng.integers(0, 256, size=(9, 7), dtype=np.uint8)
    want = np.repeat(gray[..., None], 3, axis=2)
    la = Image.merge("LA", [Image.fromarray(gray), Image.fromarray(np.full_like(gray, 128))])
    out, a = load_image_with_alpha(_encode(la, "PNG"))
    np.testing.assert_array_equal(out, want)
    assert (a == 128).all()
    for src in (
        gray,
        gray[..., None],
        Image.fromarray(gray),
        _encode(Image.fromarray(gray), "PNG"),
    ):
        np.testing.assert_array_equal(load_image(src), want)
    binary = Image.fromarray(gray > 127).convert("1")
    np.testing.assert_array_equal(load_image(binary)[..., 0], np.where(gray > 127, 255, 0))


def test_sixteen_bit_png_is_scaled_not_clipped():
    values = np.array([[0, 257, 32896, 65535]], np.uint16)  # 0, 1, 128, 255 in 8 bit
    out = load_image(_encode(Image.fromarray(values), "PNG"))
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 128, 255])
    np.testing.assert_array_equal(load_image(values)[0, :, 1], [0, 1, 128, 255])
    rgb16 = np.zeros((2, 2, 3), np.uint16)
    rgb16[..., 0] = 65535
    rgb16[..., 1] = 32896
    ok, encoded = cv2.imencode(".png", rgb16[..., ::-1])  # Pillow cannot write 16-bit RGB
    assert ok
    out = load_image(encoded.tobytes())
    assert out[0, 0, 0] == 255 and 127 <= out[0, 0, 1] <= 128 and out[0, 0, 2] == 0


def test_cmyk_jpeg_and_palette():
    cmyk = Image.new("CMYK", (6, 4), (0, 255, 255, 0))  # pure red in CMYK
    out = load_image(_encode(cmyk, "JPEG", quality=100))
    assert out.shape == (4, 6, 3)
    assert out[..., 0].min() > 230 and out[..., 1:].max() < 25
    palette = Image.new("P", (5, 3))
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.putpixel((2, 1), 1)
    out = load_image(_encode(palette, "PNG"))
    assert tuple(out[1, 2]) == (10, 200, 30) and tuple(out[0, 0]) == (0, 0, 0)
    palette.info["transparency"] = 0
    rgb, alpha = load_image_with_alpha(palette)
    assert alpha is not None and alpha[1, 2] == 255 and alpha[0, 0] == 0


def test_float_bool_and_int_arrays():
    f = np.array([[0.0, 0.5, 1.0]], np.float32)
    np.testing.assert_array_equal(load_image(f)[0, :, 0], [0, 128, 255])
    np.testing.assert_array_equal(load_image(np.array([[True, False]]))[0, :, 2], [255, 0])
    np.testing.assert_array_equal(load_image(np.array([[3, 200]], np.int64))[0, :, 0], [3, 200])
    float_image = Image.fromarray(np.array([[0.25, 1.0]], np.float32), "F")
    np.testing.assert_array_equal(load_image(float_image)[0, :, 0], [64, 255])


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        (np.zeros((3, 16, 16), np.uint8), "channels-first"),
        (np.zeros((4, 4, 5), np.uint8), "expected"),
        (np.zeros((2, 2, 2, 3), np.uint8), "expected"),
        (np.full((2, 2, 3), np.nan), "NaN"),
        (np.full((2, 2, 3), 200.0), r"\[0, 1\].*astype\(np.uint8\)"),
        (np.full((2, 2), 300, np.int32), "0..255"),
        (np.full((2, 2), 1 + 1j), "dtype complex"),
    ],
)
def test_bad_arrays_raise_image_input_error(array, match):
    with pytest.raises(ImageInputError, match=match):
        load_image(array)


def test_corrupt_truncated_and_non_image_data(tmp_path, rgb):
    jpeg = _encode(Image.fromarray(rgb), "JPEG")
    with pytest.raises(ImageInputError, match="not a readable image"):
        load_image(jpeg[: len(jpeg) // 2])
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    with pytest.raises(ImageInputError, match="notes.png"):
        load_image(text)
    with pytest.raises(ImageInputError, match="empty"):
        load_image(b"")
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(TypeError, match="PIL.Image or a numpy array"):
        load_image(12345)


def test_max_pixels_guard_reads_header_only(rgb):
    data = _encode(Image.fromarray(rgb), "PNG")
    with pytest.raises(ImageInputError, match=r"600 pixels .*limit of 599"):
        load_image(data, max_pixels=599)
    with pytest.raises(ImageInputError, match="max_pixels"):
        load_image(rgb, max_pixels=100)
    assert load_image(data, max_pixels=600).shape == (20, 30, 3)
    assert load_image(data, max_pixels=None).shape == (20, 30, 3)
    for side in (12_000, 20_000):  # 144 MP: over our limit; 400 MP: over Pillow's own
        with pytest.raises(ImageInputError, match="limit|too large"):
            load_image(_png_header_only(side, side))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size but holds almost no pixel data (a decompression bomb stub)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def test_limit_size(rgb):
    same, scale = limit_size(rgb, 30)
    assert same is rgb and scale == 1.0
    small, scale = limit_size(rgb, 15)
    assert small.shape == (10, 15, 3) and scale == pytest.approx(0.5)
    with pytest.raises(ValueError, match="positive"):
        limit_size(rgb, 0)

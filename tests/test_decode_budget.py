"""Decoding under a memory budget: the header check, exact 16-bit and float conversion, strips."""

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from clipmat import imageio
from clipmat.imageio import (
    ImageInputError,
    estimate_decode_bytes,
    load_image,
    load_image_with_alpha,
)

EXIF_ORIENTATION = 0x0112
IMAGEIO_FILE = Path(imageio.__file__)


def _png_header_only(width: int, height: int, bit_depth: int, colour_type: int) -> bytes:
    """A PNG that claims a size but holds almost no pixel data: it cannot decode fully."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def _png16(values: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", values, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok
    return encoded.tobytes()


def test_small_16_bit_png_over_the_budget_is_refused_before_decoding():
    stub = _png_header_only(4000, 4000, 16, 0)  # 16-bit gray, 16 MP, a few dozen bytes
    assert len(stub) < 120
    # 2 bytes a pixel decoded + 3 of output + one strip: 80 MB + 12.6 MB
    assert estimate_decode_bytes(Image.open(io.BytesIO(stub))) == 16_000_000 * 5 + (1 << 18) * 48
    with pytest.raises(ImageInputError) as info:
        load_image(stub, max_bytes=50_000_000)
    message = str(info.value)
    for part in ("4000 x 4000", "16-bit grayscale", "about 93 MB", "limit of 50 MB", "max_bytes"):
        assert part in message
    assert "I;16" not in message  # no internal mode names
    # the stub really cannot be decoded: without the budget the decoder itself fails
    with pytest.raises(ImageInputError, match="not a readable image"):
        load_image(stub, max_bytes=None)


def test_a_real_16_bit_png_decodes_under_the_budget_and_is_refused_over_it(rng):
    values = rng.integers(0, 65536, size=(300, 400), dtype=np.uint16)
    data = _png16(values)
    need = estimate_decode_bytes(Image.open(io.BytesIO(data)))
    assert need == 300 * 400 * 5 + 300 * 400 * 48  # the whole image fits one strip
    with pytest.raises(ImageInputError, match=r"400 x 300 pixels of 16-bit grayscale"):
        load_image(data, max_bytes=need - 1)
    out = load_image(data, max_bytes=need)
    want = np.round(values / 257.0).astype(np.uint8)  # the float64 formula used before
    np.testing.assert_array_equal(out, np.repeat(want[..., None], 3, axis=2))
    np.testing.assert_array_equal(load_image(data, max_bytes=None), out)


def test_budget_counts_bytes_per_pixel_of_the_mode():
    size = (1000, 1000)
    gray8 = _png_header_only(*size, 8, 0)
    rgba8 = _png_header_only(*size, 8, 6)
    gray16 = _png_header_only(*size, 16, 0)
    strip = (1 << 18) * 48
    # decoded + output bytes a pixel: gray 1 + 3, 16-bit gray 2 + 3, RGBA 4 + 4 (alpha kept)
    for data, per_pixel in ((gray8, 4), (gray16, 5), (rgba8, 8)):
        assert estimate_decode_bytes(Image.open(io.BytesIO(data))) == 10**6 * per_pixel + strip
    budget = 10**6 * 5 + strip
    with pytest.raises(ImageInputError, match="8-bit RGBA"):
        load_image(rgba8, max_bytes=budget)
    with pytest.raises(ImageInputError, match="not a readable image"):  # passed the budget
        load_image(gray16, max_bytes=budget)


def test_pil_images_are_budgeted_and_arrays_are_not():
    im = Image.open(io.BytesIO(_png_header_only(2000, 2000, 16, 0)))  # opened, not decoded
    with pytest.raises(ImageInputError, match="PIL image is 2000 x 2000"):
        load_image(im, max_bytes=10_000_000)
    array = np.zeros((2000, 2000), np.uint16)  # already in memory: only max_pixels applies
    assert load_image(array, max_bytes=1).shape == (2000, 2000, 3)


def test_16_bit_conversion_is_round_of_v_over_257_exactly():
    # v / 257 rounds up from a remainder of 129: 129 -> 1, 385 -> 1, 386 -> 2, 65407 -> 255
    values = np.array([[0, 1, 128, 129, 385, 386, 32896, 65406, 65407, 65535]], np.uint16)
    want = [0, 0, 0, 1, 1, 2, 128, 254, 255, 255]
    sources = {
        "array": values,
        "PIL I;16": Image.fromarray(values),
        "PNG": _png16(values),
        "PIL I": Image.fromarray(values.astype(np.int32)),
    }
    for name, src in sources.items():
        np.testing.assert_array_equal(load_image(src)[0, :, 0], want, err_msg=name)
    every = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    expected = np.round(every.astype(np.float64) / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(load_image(every)[..., 1], expected)
    clipped = Image.fromarray(np.array([[-5, 70000]], np.int32))  # 32-bit: clipped to 16 bits
    np.testing.assert_array_equal(load_image(clipped)[0, :, 0], [0, 255])


def test_float32_sources_are_scaled_in_float32_not_float64():
    # 255 * v is 131.49999... in float64 but rounds to 131.5 (then to even, 132) in float32:
    # a float32 photo gives 132, as it always did; a promotion to float64 would give 131.
    v = np.float32(0.5156862735748291)
    assert round(float(v) * 255) == 131
    for src in (np.full((2, 2), v, np.float32), Image.fromarray(np.full((2, 2), v), "F")):
        assert load_image(src)[0, 0, 0] == 132
    assert load_image(np.full((2, 2), float(v), np.float64))[0, 0, 0] == 131


_PEAK_SCRIPT = """
import importlib.util, sys
def peak():  # this process's own high-water mark (ru_maxrss would include the parent's)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))
spec = importlib.util.spec_from_file_location("imageio_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
data = open(sys.argv[2], "rb").read()
before = peak()
module.load_image(data)
print(peak() - before)
"""


def _peak_bytes(path: Path) -> int:
    """The rise of peak RSS while load_image decodes `path`, in a fresh process."""
    run = [sys.executable, "-c", _PEAK_SCRIPT, str(IMAGEIO_FILE), str(path)]
    done = subprocess.run(run, capture_output=True, text=True, timeout=120, check=True)
    return int(done.stdout.strip())


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
@pytest.mark.parametrize("kind", ["16-bit PNG", "float TIFF"])
def test_peak_memory_stays_within_the_estimate(tmp_path, kind):
    side = 2500  # 6.25 MP; with float64 copies of the photo the peak was 4 times the estimate
    values = np.full((side, side), 30000, np.uint16)
    values[500:900, 200:2200] = 60000
    path = tmp_path / ("x.png" if kind == "16-bit PNG" else "x.tif")
    if kind == "16-bit PNG":
        path.write_bytes(_png16(values))
    else:
        floats = Image.fromarray(values.astype(np.float32) / 65535.0, "F")
        floats.save(path, compression="tiff_deflate")
    assert path.stat().st_size < 500_000  # a small file
    need = estimate_decode_bytes(Image.open(path))
    peak = _peak_bytes(path)
    assert peak <= need * 1.1, (peak, need)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow_with_many_strips(monkeypatch, rng, orientation):
    monkeypatch.setattr(imageio, "STRIP_PIXELS", 64)  # several rows per strip, many strips
    rgba = rng.integers(0, 256, size=(21, 13, 4), dtype=np.uint8)
    deep = rng.integers(0, 65536, size=(21, 13), dtype=np.uint16)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    for im in (Image.fromarray(rgba, "RGBA"), Image.fromarray(deep)):
        buffer = io.BytesIO()
        im.save(buffer, "PNG", exif=exif.tobytes())
        upright = ImageOps.exif_transpose(Image.open(io.BytesIO(buffer.getvalue())))
        rgb, alpha = load_image_with_alpha(buffer.getvalue())
        if im.mode == "RGBA":
            np.testing.assert_array_equal(rgb, np.asarray(upright.convert("RGB")))
            np.testing.assert_array_equal(alpha, np.asarray(upright.getchannel("A")))
        else:
            want = np.round(np.asarray(upright) / 257.0).astype(np.uint8)
            np.testing.assert_array_equal(rgb, np.repeat(want[..., None], 3, axis=2))
            assert alpha is None
        assert rgb.flags.c_contiguous and rgb.shape[:2] == np.asarray(upright).shape[:2]

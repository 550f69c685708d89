"""One way to read an image: orientation, every mode, the first frame, a pixel limit checked before decoding."""

import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

from qaconv.data.readable import problem
from qaconv.image_reader import DEFAULT_MAX_PIXELS, TooManyPixels, UnreadableImage, read_image


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming width x height RGB pixels, with one tiny IDAT: a few bytes that
    would decode to width * height * 3 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def noise_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_exif_orientation_is_applied_so_a_phone_photo_reads_upright(tmp_path):
    pixels = np.zeros((40, 20, 3), dtype=np.uint8)
    pixels[:5] = 255  # a white band at the top of the stored (sideways) picture
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: viewers rotate by 90 degrees clockwise
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    image = read_image(tmp_path / "phone.jpg")
    assert image.size == (40, 20)  # width and height swapped: upright
    upright = np.asarray(image)
    assert upright[:, -5:].mean() > 200 and upright[:, :-5].mean() < 30  # the band is now on the right


@pytest.mark.parametrize(
    ("mode", "make"),
    [
        ("I;16", lambda: Image.fromarray(np.full((8, 6), 30000, dtype=np.uint16))),
        ("L", lambda: Image.new("L", (6, 8), 117)),
        ("1", lambda: Image.new("1", (6, 8), 1)),
        ("P", lambda: Image.new("RGB", (6, 8), (10, 200, 30)).convert("P")),
        ("RGBA", lambda: Image.new("RGBA", (6, 8), (10, 200, 30, 0))),
        ("LA", lambda: Image.new("LA", (6, 8), (90, 128))),
        ("CMYK", lambda: Image.new("CMYK", (6, 8), (0, 255, 255, 0))),
    ],
)
def test_every_mode_becomes_8_bit_rgb_the_same_way_from_a_file_and_from_bytes(tmp_path, mode, make):
    original = make()
    fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode == "I;16" else "PNG"
    buffer = io.BytesIO()
    original.save(buffer, format=fmt)
    (tmp_path / f"x.{fmt.lower()}").write_bytes(buffer.getvalue())
    from_file = read_image(tmp_path / f"x.{fmt.lower()}")
    from_bytes = read_image(buffer.getvalue(), name="upload")
    assert from_file.mode == "RGB" and from_file.size == (6, 8)
    assert np.array_equal(np.asarray(from_file), np.asarray(from_bytes))
    if mode == "I;16":  # 30000 of 65535, not clipped to white as Pillow's own conversion does
        assert np.asarray(from_file).max() == round(30000 * 255 / 65535)


def test_an_animated_image_reads_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (6, 8), colour) for colour in ((250, 0, 0), (0, 0, 250))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=50)
    pixels = np.asarray(read_image(tmp_path / "a.gif"))
    assert pixels[..., 0].mean() > 200 and pixels[..., 2].mean() < 50


@pytest.mark.parametrize("side", [12_000, 20_000, 60_000])
def test_a_decompression_bomb_is_refused_from_its_header_without_allocating_the_image(tmp_path, side):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(side, side))
    assert path.stat().st_size < 200
    tracemalloc.start()
    with pytest.raises(TooManyPixels, match=rf"bomb.png: {side} x {side} pixels .* more than the limit of 50 M"):
        read_image(path)
    assert tracemalloc.get_traced_memory()[1] < 2**20  # peak under 1 MiB: nothing was decoded
    tracemalloc.stop()
    assert problem(path).startswith(f"{side} x {side} pixels") and "--max-image-pixels" in problem(path)


def test_the_pixel_limit_can_be_raised_and_lowered():
    small = io.BytesIO()
    Image.new("RGB", (100, 100)).save(small, format="PNG")
    assert read_image(small.getvalue(), max_pixels=10_000).size == (100, 100)
    with pytest.raises(TooManyPixels, match="more than the limit of 0.009999 M"):
        read_image(small.getvalue(), max_pixels=9_999)
    assert DEFAULT_MAX_PIXELS < Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else True


@pytest.mark.parametrize(
    ("write", "message", "reason"),
    [
        (None, "image file not found: {path}", "file not found"),
        (lambda p: p.mkdir(), "cannot read image {path}: a folder, not an image file", "a folder"),
        (lambda p: p.write_bytes(b"not an image"), "not an image file (or a format Pillow cannot read): {path}",
         "not an image file"),
        (lambda p: p.write_bytes(noise_png()[:-200]), "cannot read image {path}: ", None),
    ],
)  # fmt: skip
def test_an_unreadable_file_is_one_line_naming_it(tmp_path, write, message, reason):
    path = tmp_path / "x.png"
    if write:
        write(path)
    with pytest.raises(UnreadableImage) as err:
        read_image(path)
    assert str(err.value).startswith(message.format(path=path)) and "\n" not in str(err.value)
    assert problem(path) == (reason or err.value.reason)

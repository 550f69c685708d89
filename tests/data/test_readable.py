"""qaconv.data.readable: damaged image files are found before work, by a header parse and a decode of suspects."""

from __future__ import annotations

import io

from PIL import Image

from qaconv.data.readable import describe, problem, unreadable_images


def jpeg_bytes(fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 32), (200, 40, 40)).save(buffer, format=fmt)
    return buffer.getvalue()


def test_good_images_pass_and_damaged_ones_are_named_with_a_reason(tmp_path):
    files = {
        "good.jpg": jpeg_bytes(),
        "good.png": jpeg_bytes("PNG"),
        "good.bmp": jpeg_bytes("BMP"),
        "padded.jpg": jpeg_bytes() + b"\0" * 10,  # bytes after the end marker: decoded in full, and fine
        "cut.jpg": jpeg_bytes()[:300],
        "cut.png": jpeg_bytes("PNG")[:60],
        "empty.jpg": b"",
        "text.jpg": b"hello, not an image\n",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "folder.jpg").mkdir()
    paths = [tmp_path / name for name in [*files, "folder.jpg", "gone.jpg"]]
    bad = dict(unreadable_images(paths, workers=2))
    assert sorted(bad) == sorted(
        str(tmp_path / n) for n in ("cut.jpg", "cut.png", "empty.jpg", "text.jpg", "folder.jpg", "gone.jpg")
    )
    assert bad[str(tmp_path / "empty.jpg")] == "not an image file"
    assert bad[str(tmp_path / "gone.jpg")] == "file not found"
    assert "truncated" in bad[str(tmp_path / "cut.jpg")].lower()
    assert problem(tmp_path / "good.jpg") is None


def test_describe_names_a_few_files_and_counts_the_rest():
    bad = [(f"/d/{i}.jpg", "not an image file") for i in range(7)]
    text = describe(bad, 100, "training images")
    assert text.startswith("7 of 100 training images cannot be read: /d/0.jpg (not an image file), /d/1.jpg")
    assert text.endswith("/d/4.jpg (not an image file) and 2 more")

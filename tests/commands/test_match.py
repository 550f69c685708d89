"""`qaconv match` with the images users have: every mode and format read one way, EXIF orientation applied, a
decompression bomb refused from its header (audit cases A1-A14 of docs/reliability.md)."""

from __future__ import annotations

import time

import pytest
from PIL import Image

from qaconv.cli import main
from tests.commands.images import png_bomb, sideways_with_exif, variants


def score(capsys, *args: str) -> float:
    assert main(["match", *map(str, args)]) == 0
    out = capsys.readouterr().out
    return float(out.split("score:")[1].split()[0])


def test_a1_a_photo_stored_sideways_with_its_exif_orientation_matches_as_it_is_shown(checkpoint, query_images,
                                                                                      tmp_path, capsys):  # fmt: skip
    upright = tmp_path / "upright.png"
    Image.open(query_images[0]).save(upright)
    phone = sideways_with_exif(query_images[0], tmp_path / "phone.png")
    with Image.open(phone) as stored:
        assert stored.size[::-1] == Image.open(upright).size  # the pixels are stored turned
    same = score(capsys, upright, query_images[1], "--checkpoint", checkpoint, "--device", "cpu")
    assert score(capsys, phone, query_images[1], "--checkpoint", checkpoint, "--device", "cpu") == same


KINDS = ["16-bit.png", "16-bit.tif", "float.tif", "palette.png", "transparent.png", "grey-alpha.png", "one-bit.png",
         "cmyk.jpg", "picture.webp", "picture.bmp", "animated.gif"]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_a2_to_a12_every_mode_and_format_is_read(checkpoint, query_images, tmp_path, capsys, kind):
    path = variants(query_images[0], tmp_path)[kind]
    value = score(capsys, path, query_images[1], "--checkpoint", checkpoint, "--device", "cpu")
    assert value == value and abs(value) < 1e4  # a finite score, not a traceback


def test_a2_a_16_bit_picture_is_not_read_as_white(checkpoint, query_images, tmp_path, capsys):
    grey = tmp_path / "grey.png"
    Image.open(query_images[0]).convert("L").save(grey)
    expected = score(capsys, grey, query_images[1], "--checkpoint", checkpoint, "--device", "cpu")
    deep = variants(query_images[0], tmp_path)["16-bit.png"]
    assert score(capsys, deep, query_images[1], "--checkpoint", checkpoint, "--device", "cpu") == pytest.approx(
        expected, abs=1e-3
    )


@pytest.mark.parametrize("side", [12_000, 20_000])
def test_a13_a_decompression_bomb_is_one_line_naming_the_file_and_the_limit(checkpoint, query_images, tmp_path,
                                                                            capsys, side):  # fmt: skip
    bomb = png_bomb(tmp_path / "bomb.png", side)
    start = time.perf_counter()
    assert main(["match", str(bomb), str(query_images[1]), "--checkpoint", str(checkpoint), "--device", "cpu"]) == 2
    assert time.perf_counter() - start < 20  # the model's loading, not the decoding
    err = capsys.readouterr().err
    assert f"{bomb}: {side} x {side} pixels" in err and "--max-image-pixels" in err and err.count("\n") == 1


def test_a14_a_folder_or_a_text_file_given_as_an_image_is_named(checkpoint, query_images, tmp_path, capsys):
    (tmp_path / "folder.jpg").mkdir()
    (tmp_path / "notes.png").write_text("not a picture")
    for bad, words in (
        (tmp_path / "folder.jpg", "a folder, not an image file"),
        (tmp_path / "notes.png", "not an image"),
    ):
        assert main(["match", str(bad), str(query_images[1]), "--checkpoint", str(checkpoint)]) == 2
        err = capsys.readouterr().err
        assert str(bad) in err and words in err and err.count("\n") == 1

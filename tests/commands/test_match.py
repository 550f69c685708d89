"""`qaconv match` with the images users have: every mode and format read one way, EXIF orientation applied, a
decompression bomb refused from its header (audit cases A1-A14 of docs/reliability.md); the score printed, the
picture and the JSON written, outputs checked before scoring, NaN weights refused."""

from __future__ import annotations

import json
import re
import time

import numpy as np
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


# --------------------------------------------------------------------------- the score, the picture and the JSON


def test_match_command_prints_score_and_writes_picture_and_json(
    reid, checkpoint, query_images, gallery_images, tmp_path, capsys
):
    a, b = query_images[0], gallery_images[2]
    out, record = tmp_path / "match.png", tmp_path / "match.json"
    rc = main(
        [
            "match",
            str(a),
            str(b),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(out),
            "--json",
            str(record),
            "--max-lines",
            "5",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    expected = reid.matcher(*reid.extract([a, b]).split(1)).item()  # the matcher's own forward, eval mode
    printed = capsys.readouterr().out.splitlines()[0]
    assert printed == f"score: {expected:.4f}"
    data = json.loads(record.read_text())
    assert data["score"] == pytest.approx(expected, abs=1e-5)
    contribs = sum(r["contribution"] for r in data["probe_to_gallery"] + data["gallery_to_probe"])
    rebuilt = data["logit_scale"] * (contribs + 2 * data["fc_bias"]) + data["logit_offset"]
    assert rebuilt == pytest.approx(expected, abs=1e-4)
    assert len(data["probe_to_gallery"]) == reid.matcher.locations
    from PIL import Image

    assert Image.open(out).size == (600, 700)


def test_match_command_names_a_file_that_is_not_an_image(checkpoint, query_images, tmp_path, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    rc = main(["match", str(query_images[0]), str(bad), "--checkpoint", str(checkpoint), "--device", "cpu"])
    assert rc == 2
    assert f"not an image file (or a format Pillow cannot read): {bad}" in capsys.readouterr().err


def test_match_command_rejects_an_unknown_picture_format(checkpoint, query_images, tmp_path, capsys):
    rc = main(
        [
            "match",
            str(query_images[0]),
            str(query_images[1]),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(tmp_path / "match.xyz"),
            "--device",
            "cpu",
        ]
    )
    assert rc == 2
    assert "--out" in capsys.readouterr().err


def test_match_command_takes_images_of_any_mode_and_size(checkpoint, query_images, tmp_path, capsys):
    from PIL import Image

    rgb = Image.open(query_images[0]).convert("RGB")
    palette = tmp_path / "palette.png"
    rgb.resize((50, 17)).convert("P").save(palette)
    deep = tmp_path / "deep.png"
    Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257).resize((200, 333)).save(deep)
    assert Image.open(deep).mode.startswith("I")
    rc = main(["match", str(palette), str(deep), "--checkpoint", str(checkpoint), "--device", "cpu"])
    assert rc == 0
    assert capsys.readouterr().out.startswith("score: ")


def test_match_command_checks_its_outputs_before_scoring(checkpoint, query_images, tmp_path, capsys):
    a, b = str(query_images[0]), str(query_images[1])
    base = ["match", a, b, "--checkpoint", str(checkpoint), "--device", "cpu"]
    (tmp_path / "file").write_text("x")
    for extra, message in (
        (["--json", str(tmp_path / "file" / "m.json")], "--json .*: cannot create the folder"),
        (["--out", str(tmp_path / "m.xyz")], "--out .*m.xyz: unknown file extension"),
        (["--threshold", "nan"], "--threshold must be a finite number, got nan"),
        (["--threshold", "inf"], "--threshold must be a finite number, got inf"),
    ):
        assert main([*base, *extra]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""  # refused before any score was computed or printed
        assert re.search(message, captured.err), captured.err
    picture, record = tmp_path / "new" / "sub" / "m.png", tmp_path / "other" / "m.json"
    assert main([*base, "--out", str(picture), "--json", str(record)]) == 0  # missing folders are created
    assert picture.is_file() and json.loads(record.read_text())["score"] == pytest.approx(
        float(capsys.readouterr().out.split()[1]), abs=1e-4
    )


def test_match_command_refuses_a_checkpoint_with_nan_weights(nan_checkpoint, query_images, capsys):
    rc = main(["match", str(query_images[0]), str(query_images[1]), "--checkpoint", str(nan_checkpoint)])
    assert rc == 2
    captured = capsys.readouterr()
    assert "score" not in captured.out
    assert f"{nan_checkpoint} holds non-finite weights (NaN or inf, first in matcher.fc.weight)" in captured.err

"""Image files of the kinds users meet, made from one picture: other modes, EXIF orientation, animation, a bomb."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def png_bomb(path: Path, side: int) -> Path:
    """A PNG of a few dozen bytes whose header claims side x side RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))  # fmt: skip
    return path


def sideways_with_exif(source: Path, path: Path) -> Path:
    """`source` stored turned by 90 degrees, with the EXIF orientation that tells viewers to turn it back."""
    exif = Image.Exif()
    exif[0x0112] = 6  # shown after a 90-degree clockwise turn
    with Image.open(source) as image:
        image.convert("RGB").transpose(Image.ROTATE_90).save(path, exif=exif.tobytes())
    return path


def variants(source: Path, folder: Path) -> dict[str, Path]:
    """`source` saved in other modes and formats: {kind: path}."""
    with Image.open(source) as opened:
        rgb = opened.convert("RGB")
    out = {}
    grey = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257
    makers = {
        "16-bit.png": lambda: Image.fromarray(grey),
        "16-bit.tif": lambda: Image.fromarray(grey),
        "float.tif": lambda: Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.float32) / 255.0),
        "palette.png": lambda: rgb.convert("P"),
        "transparent.png": lambda: rgb.convert("RGBA"),
        "grey-alpha.png": lambda: rgb.convert("LA"),
        "one-bit.png": lambda: rgb.convert("1"),
        "cmyk.jpg": lambda: rgb.convert("CMYK"),
        "picture.webp": lambda: rgb,
        "picture.bmp": lambda: rgb,
    }
    for name, make in makers.items():
        out[name] = folder / name
        make().save(out[name])
    frames = [rgb, rgb.transpose(Image.FLIP_LEFT_RIGHT)]
    out["animated.gif"] = folder / "animated.gif"
    frames[0].save(out["animated.gif"], save_all=True, append_images=frames[1:], duration=40)
    return out


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()

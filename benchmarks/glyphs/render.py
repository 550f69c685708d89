"""Drawing one syllable in one face: ink on paper, centred by its outline, with a little jitter of size,
position, slant and ink and paper tones (a camera's shot of a person is never the same twice either)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

DRAW_SIZE = 128  # pixels per em of the high-resolution drawing that is then scaled down
_MISSING = "\uffff"  # a noncharacter: every face draws its "no glyph" shape for it


@lru_cache(maxsize=128)
def load_face(path: str) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, DRAW_SIZE)


def outline(face: ImageFont.FreeTypeFont, char: str) -> Image.Image | None:
    """The glyph's ink as a greyscale mask cropped to its outline; None where the face draws nothing."""
    canvas = Image.new("L", (2 * DRAW_SIZE, 2 * DRAW_SIZE), 0)
    ImageDraw.Draw(canvas).text((DRAW_SIZE // 2, DRAW_SIZE // 2), char, font=face, fill=255)
    box = canvas.getbbox()
    return canvas.crop(box) if box else None


@lru_cache(maxsize=128)
def _missing_mark(path: str) -> bytes | None:
    mask = outline(load_face(path), _MISSING)
    return mask.tobytes() if mask is not None else None


def draws(path: str, char: str) -> bool:
    """Whether the face at `path` draws `char` (not blank, not its "no glyph" box)."""
    mask = outline(load_face(path), char)
    return mask is not None and mask.tobytes() != _missing_mark(path)


def render(path: str, char: str, size: int, rng: np.random.Generator) -> Image.Image:
    """`char` in the face at `path` as a size x size RGB image: the outline's longer side fills 78-92% of the
    image, shifted up to 3% of the size, turned up to 3 degrees, dark ink on light paper."""
    mask = outline(load_face(path), char)
    if mask is None:
        raise ValueError(f"{path} draws nothing for {char!r}")
    fill, angle = rng.uniform(0.78, 0.92), rng.uniform(-3.0, 3.0)
    shift = rng.uniform(-0.03, 0.03, size=2) * size
    ink, paper = rng.uniform(0, 70), rng.uniform(200, 255)
    scale = fill * size / max(mask.size)
    glyph = mask.resize((max(1, round(mask.width * scale)), max(1, round(mask.height * scale))), Image.LANCZOS)
    glyph = glyph.rotate(angle, resample=Image.BILINEAR, expand=True)
    canvas = Image.new("L", (size, size), 0)
    left = round((size - glyph.width) / 2 + shift[0])
    top = round((size - glyph.height) / 2 + shift[1])
    canvas.paste(glyph, (left, top))
    coverage = np.asarray(canvas, dtype=np.float32) / 255.0
    grey = paper - (paper - ink) * coverage
    return Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8)).convert("RGB")

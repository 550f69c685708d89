"""One way to read an image, for every path that reads one: training, evaluation, index building, search,
matching, the Python API and the web server.

`read_image(source, max_pixels=...)` opens a file path, bytes or a file object and returns an 8-bit RGB
PIL image the same way everywhere:

- the pixel count is checked from the header before anything is decoded (`max_pixels`, default
  `DEFAULT_MAX_PIXELS`, well below Pillow's own bomb limit, which this module replaces), so a 48 KB PNG that
  claims 20000 x 20000 pixels is refused in microseconds and without memory;
- the first frame of an animated image is read;
- the EXIF orientation is applied, so a phone photo is matched the way every viewer shows it;
- every mode is converted by `to_rgb`: 16-bit and 32-bit integer images scaled from their full range, float
  images from [0, 1], palette, CMYK, grey and alpha images to RGB (alpha dropped).

Any failure is a one-line `QAConvError` naming the file and the reason. `qaconv.data.readable` checks many
files the same way before work (a header parse each, a full decode only where the end looks incomplete).
"""

from __future__ import annotations

import io
import os
import warnings
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from qaconv.errors import QAConvError

DEFAULT_MAX_PIXELS = 50_000_000  # an 8160 x 6120 (50 MP) phone photo; Pillow warns at 89 M and refuses at 179 M
Image.MAX_IMAGE_PIXELS = None  # every read goes through `max_pixels` below, checked before decoding

Source = str | os.PathLike | bytes | IO[bytes]


class UnreadableImage(QAConvError):
    """An image that cannot be read; `reason` says why without the file's name (for lists of bad files)."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message  # one argument: as a DataLoader worker's error is raised again


class TooManyPixels(UnreadableImage):
    """An image whose header claims more pixels than the limit (refused before decoding)."""


def _name(source: Source, name: str | None) -> str:
    if name is not None:
        return name
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the image"


def check_pixels(size: tuple[int, int], max_pixels: int, name: str) -> None:
    """Refuse an image whose header says it has more than `max_pixels` pixels (nothing decoded yet)."""
    width, height = size
    if width * height > max_pixels:
        reason = (
            f"{width} x {height} pixels ({width * height / 1e6:.0f} M) is more than the limit of "
            f"{max_pixels / 1e6:g} M (raise it with --max-image-pixels if the image is genuine)"
        )
        raise TooManyPixels(f"{name}: {reason}", reason)


def read_image(
    source: Source, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None, for_size: int | None = None
) -> Image.Image:
    """`source` (a path, bytes or a binary file) as an 8-bit RGB image, upright; see the module docstring.

    `name` is how errors call the image (default: its path). `for_size`: the longest side the image will be
    resized to (a model's input); a JPEG much larger than that is decoded at 1/2, 1/4 or 1/8 of its size,
    keeping at least twice `for_size` on each side (libjpeg's scaled decoding: a 12 MP photo then costs a
    sixteenth of the memory and time). Every path that reads for one model passes the same, so they agree."""
    label = _name(source, name)
    try:
        opened = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except FileNotFoundError:
        raise UnreadableImage(f"image file not found: {label}", "file not found") from None
    except IsADirectoryError:
        raise UnreadableImage(f"cannot read image {label}: a folder, not an image file", "a folder") from None
    except UnidentifiedImageError:
        raise UnreadableImage(
            f"not an image file (or a format Pillow cannot read): {label}", "not an image file"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UnreadableImage(f"cannot read image {label}: {reason_of(exc)}", reason_of(exc)) from None
    with opened as image:
        check_pixels(image.size, max_pixels, label)
        if for_size is not None and image.format == "JPEG":
            image.draft("RGB", (2 * for_size, 2 * for_size))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Pillow's notes on odd EXIF or palettes; the image is still read
                image.seek(0)
                image.load()
                upright = ImageOps.exif_transpose(image)
        except (OSError, ValueError, SyntaxError, EOFError, ZeroDivisionError) as exc:
            raise UnreadableImage(f"cannot read image {label}: {reason_of(exc)}", reason_of(exc)) from None
        return to_rgb(upright if upright is not None else image)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB. Alpha is dropped; 16-bit and 32-bit integer images are scaled
    from [0, 65535] (not clipped at 255, as PIL's own conversion does); float images in [0, 1]
    are scaled by 255, others clipped to [0, 255]."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        a = np.asarray(img, dtype=np.float64)
        if img.mode == "F" and a.size and np.nanmax(a) <= 1.0:
            a = a * 255.0
        elif img.mode != "F" and a.size and (img.mode.startswith("I;16") or a.max() > 255):
            a = a * (255.0 / max(65535.0, float(a.max())))
        img = Image.fromarray(np.clip(np.nan_to_num(a) + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "La":  # premultiplied alpha: Pillow converts it only to LA
        img = img.convert("LA")
    elif img.mode in ("RGBa", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
    return img.convert("RGB")


def reason_of(exc: BaseException) -> str:
    """The short reason of an error reading an image, without the file name (for lists of bad files)."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__

"""Which image files cannot be read, found before any work: a header parse per file, a decode only for suspects.

Training opens its images only when a batch needs them, so one damaged file used to end a run in whatever
epoch first drew it. `unreadable_images(paths)` finds such files up front, fast: every file's header is
parsed (format and size, checked against the pixel limit of `qaconv.image_reader`), and only a file whose end
does not look complete (a JPEG without its end marker, a PNG without its IEND chunk, any other format) is
decoded in full, by `read_image`, to be sure.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from qaconv.image_reader import DEFAULT_MAX_PIXELS, UnreadableImage, check_pixels, read_image

_ENDS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}
_SHOWN = 5


def _complete(f: object, fmt: str | None) -> bool:
    """Whether the file ends as a complete image of format `fmt` should (JPEG end marker, PNG IEND)."""
    end = _ENDS.get(fmt or "")
    if end is None:
        return False
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - len(end)))
    return f.read() == end


def problem(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """Why `path` cannot be read as an image (as `read_image` reads it), or None when it can."""
    try:
        try:
            with open(path, "rb") as f, Image.open(f) as image:
                check_pixels(image.size, max_pixels, os.fspath(path))
                complete = _complete(f, image.format)
        except (OSError, ValueError, SyntaxError):  # read_image below names the reason as every path does
            complete = False
        if not complete:
            read_image(path, max_pixels=max_pixels)
    except UnreadableImage as exc:
        return exc.reason
    return None


def unreadable_images(
    paths: Sequence[str | os.PathLike], workers: int = 8, max_pixels: int = DEFAULT_MAX_PIXELS
) -> list[tuple[str, str]]:
    """(path, reason) of every file of `paths` that cannot be read, in the order given."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        reasons = list(pool.map(lambda path: problem(path, max_pixels), paths))
    return [(str(path), reason) for path, reason in zip(paths, reasons, strict=True) if reason is not None]


def describe(bad: Sequence[tuple[str, str]], total: int, what: str) -> str:
    """'N of TOTAL WHAT cannot be read: path (reason), ...' naming the first few files."""
    shown = ", ".join(f"{path} ({reason})" for path, reason in bad[:_SHOWN])
    more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    return f"{len(bad)} of {total} {what} cannot be read: {shown}{more}"

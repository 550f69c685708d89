"""Which image files cannot be read, found before any work: a header parse per file, a decode only for suspects.

Training opens its images only when a batch needs them, so one damaged file used to end a run in whatever
epoch first drew it. `unreadable_images(paths)` finds such files up front, fast: every file's header is
parsed (format and size), and only a file whose end does not look complete (a JPEG without its end
marker, a PNG without its IEND chunk, any other format) is decoded in full to be sure.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from PIL import Image, UnidentifiedImageError

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


def problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be read as an image, or None when it can."""
    try:
        with open(path, "rb") as f, Image.open(f) as image:
            if not _complete(f, image.format):
                f.seek(0)
                with Image.open(f) as full:
                    full.load()
    except FileNotFoundError:
        return "file not found"
    except IsADirectoryError:
        return "a folder"
    except UnidentifiedImageError:
        return "not an image file"
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt data, permissions
        return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return None


def unreadable_images(paths: Sequence[str | os.PathLike], workers: int = 8) -> list[tuple[str, str]]:
    """(path, reason) of every file of `paths` that cannot be read, in the order given."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        reasons = list(pool.map(problem, paths))
    return [(str(path), reason) for path, reason in zip(paths, reasons, strict=True) if reason is not None]


def describe(bad: Sequence[tuple[str, str]], total: int, what: str) -> str:
    """'N of TOTAL WHAT cannot be read: path (reason), ...' naming the first few files."""
    shown = ", ".join(f"{path} ({reason})" for path, reason in bad[:_SHOWN])
    more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    return f"{len(bad)} of {total} {what} cannot be read: {shown}{more}"

"""A sha256 checksum sealed into the files that torch.save writes, checked when they are loaded.

torch.save writes a zip archive, and torch.load does not check the archive's CRCs: a checkpoint with
flipped bytes loads, and a resumed run or an evaluation then works on damaged weights without a word.
`seal(f)` stores the sha256 of the whole archive in the archive's own comment field (the last bytes of
the file, which zip readers, torch.load included, skip), so the checksum travels with the file when it
is copied. `verify(path)` recomputes it; files saved without one (older checkpoints) load as before.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path
from typing import IO

from qaconv.errors import QAConvError

_END = b"PK\x05\x06"  # signature of the zip archive's end record (22 bytes, then the comment)
_END_SIZE = 22
_PREFIX = b"qaconv-sha256:"
_COMMENT_SIZE = len(_PREFIX) + 64


def _digest(f: IO[bytes], size: int) -> str:
    """sha256 of the first `size` bytes of `f`, followed by a zero comment length (the unsealed file)."""
    digest = hashlib.sha256()
    f.seek(0)
    left = size
    while left:
        block = f.read(min(left, 1 << 22))
        if not block:
            raise QAConvError(f"{getattr(f, 'name', 'file')} is shorter than expected")
        digest.update(block)
        left -= len(block)
    digest.update(b"\0\0")
    return digest.hexdigest()


def seal(f: IO[bytes]) -> bool:
    """Append the sha256 of the zip archive just written to `f` (opened for reading and writing) as the
    archive's comment; returns False (and leaves the file alone) when `f` does not end like a zip archive
    without a comment."""
    f.flush()
    size = f.seek(0, os.SEEK_END)
    if size < _END_SIZE:
        return False
    f.seek(size - _END_SIZE)
    end = f.read(_END_SIZE)
    if end[:4] != _END or end[-2:] != b"\0\0":
        return False
    comment = _PREFIX + _digest(f, size - 2).encode()
    f.seek(size - 2)
    f.write(struct.pack("<H", len(comment)) + comment)
    return True


def verify(path: str | os.PathLike) -> bool:
    """True when `path` carries a checksum that matches, False when it carries none; a QAConvError naming
    the file when its bytes changed since it was sealed."""
    path = Path(path)
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size < _END_SIZE + _COMMENT_SIZE:
            return False
        f.seek(size - _END_SIZE - _COMMENT_SIZE)
        tail = f.read()
        comment = tail[_END_SIZE:]
        if tail[:4] != _END or tail[20:22] != struct.pack("<H", _COMMENT_SIZE) or not comment.startswith(_PREFIX):
            return False
        if _digest(f, size - _COMMENT_SIZE - 2) != comment[len(_PREFIX) :].decode("ascii", "replace"):
            raise QAConvError(
                f"{path} is damaged: its bytes no longer match the sha256 checksum saved with it (a disk or copy "
                "error); use another copy of it, or an earlier checkpoint"
            )
    return True

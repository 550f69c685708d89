"""Files on disk: atomic writes, output files checked before any work, folders swapped into place, image listing.

A file is written to a hidden temporary file beside it, flushed to disk and renamed over the
target, so a crash or Ctrl-C leaves either the old file or the new one, never half of one. A
folder (a gallery index, an export) is written under the hidden name `.NAME.partial-PID` and
swapped into place when complete; partial folders of processes that no longer run (killed
builds) are removed by the next build of the same folder.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from qaconv.checksum import seal
from qaconv.errors import QAConvError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
_PARTIAL, _OLD = "partial", "old"
_UMASK = os.umask(0o022)  # read once (os.umask can only be read by setting it), then restored
os.umask(_UMASK)


# ----------------------------------------------------------------------------------------- images
def list_images(folder: str | os.PathLike, *, recursive: bool = False) -> list[str]:
    """Sorted paths, relative to `folder`, of its image files (by extension; hidden files and folders skipped).

    Not recursive: the file names of `folder` itself (one scandir, no stat). Recursive: paths with "/"
    separators, sorted folder by folder; a folder reached again through a symbolic link (a loop, or a
    second link to a folder already listed) is skipped with a warning naming the link, and a folder that
    cannot be read is a QAConvError naming it.
    """
    return _list_images(Path(folder), recursive, set())


def _list_images(folder: Path, recursive: bool, seen: set[tuple[int, int]]) -> list[str]:
    if recursive:
        try:
            info = folder.stat()
        except OSError as exc:
            raise QAConvError(f"cannot read the folder {folder} ({exc.strerror or exc})") from None
        if (info.st_dev, info.st_ino) in seen:
            warnings.warn(f"{folder} leads back to a folder already listed (a symbolic link); skipped", stacklevel=3)
            return []
        seen.add((info.st_dev, info.st_ino))
    names = []
    try:
        with os.scandir(folder) as found:
            entries = sorted(found, key=lambda entry: entry.name)  # the first name wins where links meet
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.name.lower().endswith(IMAGE_EXTENSIONS) and _is_file(entry):
                    names.append(entry.name)
                elif recursive and _is_dir(entry):
                    names += [f"{entry.name}/{sub}" for sub in _list_images(Path(entry.path), True, seen)]
    except OSError as exc:
        raise QAConvError(f"cannot read the folder {folder} ({exc.strerror or exc})") from None
    return sorted(names, key=lambda name: name.split("/"))


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:  # a link whose target cannot be reached (a loop of links)
        return False


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


# ----------------------------------------------------------------------------------------- files
def _free_space(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB free there"
    except OSError:
        return "free space unknown"


def _out_of_space(exc: BaseException, folder: Path) -> bool:
    """Whether a failed write ran out of disk space: ENOSPC or EDQUOT somewhere in the exception's chain
    (torch reports it as a RuntimeError about an "unexpected pos"), or, for errors that name no cause,
    under 1 MiB left in `folder` (call this before removing what the write left)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    try:
        return isinstance(exc, (OSError, RuntimeError)) and shutil.disk_usage(folder).free < 2**20
    except OSError:
        return False


def _write_error(exc: BaseException, path: Path, full: bool) -> QAConvError:
    """The one-line error for a failed write of `path` (a file or folder, `full`: out of disk space)."""
    if full:
        kept = f"; the previous {path.name} is kept" if path.exists() else ""
        return QAConvError(f"cannot write {path}: the disk is full ({_free_space(path.parent)}){kept}")
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
    return QAConvError(f"cannot write {path}: {reason} ({_free_space(path.parent)})")


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call write(file) on a temporary file beside `path`, flush it to disk, then rename it over `path`.

    A crash or Ctrl-C leaves the previous file intact. A failed write raises QAConvError naming the
    file and the reason; a full disk is called that (torch's message for it does not say "disk").
    The file is opened for reading too, so `write` may read back what it wrote.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_UMASK)  # the permissions of a file opened the usual way, not mkstemp's 0600
        with os.fdopen(fd, "w+b") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        handled = isinstance(exc, (OSError, RuntimeError, ValueError)) and not isinstance(exc, QAConvError)
        full = handled and _out_of_space(exc, path.parent)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if handled:
            raise _write_error(exc, path, full) from exc
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write `data` as indented JSON (plus a final newline) to `path` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save `obj` to `path` atomically, sealed with its sha256 checksum (`qaconv.checksum`)."""
    import torch

    def write(f: IO[bytes]) -> None:
        torch.save(obj, f)
        seal(f)

    return atomic_write(path, write)


# ----------------------------------------------------------------------------------------- output paths
def _create_folder(folder: Path, option: str, path: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if isinstance(exc, (FileExistsError, NotADirectoryError)) or exc.errno in (errno.EEXIST, errno.ENOTDIR):
            reason = "a file is in the way of a folder on that path"
        else:
            reason = exc.strerror or str(exc)
        raise QAConvError(f"{option} {path}: cannot create the folder {folder} ({reason})") from None


def make_parent(path: str | os.PathLike, option: str) -> Path:
    """Create the folder that will hold output file `path` now, before any work (QAConvError naming `option`)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise QAConvError(f"{option} {path} is a folder; give a file name")
    _create_folder(path.parent, option, path)
    return path


def check_free_space(folder: str | os.PathLike, needed: int, what: str) -> None:
    """Refuse, before the work that would write it, an output of `needed` bytes that the disk holding `folder`
    (or its nearest existing parent) has no room for; `what` names the output in the message."""
    place = Path(folder).absolute()
    while not place.exists():
        place = place.parent
    try:
        free = shutil.disk_usage(place).free
    except OSError:
        return
    if needed > free:
        raise QAConvError(
            f"{what} will need about {needed / 2**20:,.0f} MiB in {place}, which has {free / 2**20:,.0f} MiB free; "
            "free some space or write elsewhere"
        )


# ----------------------------------------------------------------------------------------- folders
def _hidden(out: Path, kind: str, pid: int) -> Path:
    return out.with_name(f".{out.name}.{kind}-{pid}")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_partials(out: str | os.PathLike) -> list[Path]:
    """Remove the hidden partial (and set-aside) folders of `out` left by processes that no longer run."""
    out = Path(out)
    removed = []
    if not out.parent.is_dir():
        return removed
    for kind in (_PARTIAL, _OLD):
        prefix = f".{out.name}.{kind}-"
        for path in out.parent.glob(f"{prefix}*"):
            pid = path.name[len(prefix) :]
            if pid.isdigit() and (int(pid) == os.getpid() or not _running(int(pid))):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


@contextmanager
def folder_swap(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh hidden folder beside `out` to write into; it replaces `out` when the block ends normally.

    On an exception (or Ctrl-C) the hidden folder is removed and `out` is left as it was. Stale partial
    folders of killed processes are removed first.
    """
    out = Path(os.path.abspath(out))  # "." or "x/" have no name to derive the hidden names from
    remove_stale_partials(out)
    tmp = _hidden(out, _PARTIAL, os.getpid())
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if out.exists():
            old = _hidden(out, _OLD, os.getpid())
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except (OSError, RuntimeError) as exc:
        if not _out_of_space(exc, out.parent):
            raise
        raise _write_error(exc, out, full=True) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

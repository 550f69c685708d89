"""A lock on a folder that one qaconv process writes (a run folder, an index, an export).

`with FolderLock(path, "qaconv train"):` holds an exclusive `flock` on `path/.lock` for as long as the block
runs. A second writer refuses at once with a one-line error that names the holder (pid, command, start
time). The operating system drops the lock when its process ends, however it ends (kill -9 included), so a
lock left by a killed process is simply taken over by the next writer. A folder that is replaced as a whole
(a gallery index, an export) is locked with `FolderLock.beside(path, ...)`: the lock file `.NAME.lock` sits
next to it. The lock file is removed when the lock is released.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from types import TracebackType

from qaconv.errors import QAConvError

LOCK_NAME = ".lock"


class FolderLock:
    """Exclusive lock on `folder` (created if missing) for the duration of a `with` block."""

    def __init__(self, folder: str | os.PathLike, command: str, lock_file: str | os.PathLike | None = None) -> None:
        self.folder = Path(folder)
        self.path = Path(lock_file) if lock_file is not None else self.folder / LOCK_NAME
        self.command = command
        self._fd: int | None = None

    @classmethod
    def beside(cls, folder: str | os.PathLike, command: str) -> FolderLock:
        """A lock on `folder` whose lock file `.NAME.lock` is next to it (for folders replaced as a whole)."""
        folder = Path(os.path.abspath(folder))
        return cls(folder, command, lock_file=folder.with_name(f".{folder.name}.lock"))

    def acquire(self) -> FolderLock:
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _describe(fd)
                os.close(fd)
                raise QAConvError(
                    f"{self.folder} is in use by another qaconv process ({holder}); wait for it to finish, "
                    "or write somewhere else"
                ) from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder released and removed the file while we waited for it: take the new one
        info = {"pid": os.getpid(), "command": self.command, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise QAConvError(f"cannot write in {self.path.parent}: {exc.strerror or exc}") from None

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)  # while still held, so nobody locks a file that is going away
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the file at `path`."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _describe(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']}, {info['command']}, since {info['started']}"
    except (ValueError, KeyError, OSError):
        return "holder unknown"

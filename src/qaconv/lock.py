"""A lock on a folder that one qaconv process writes (a run folder, an index, an export).

`with FolderLock(path, "qaconv train"):` holds an exclusive `flock` on `path/.lock` for as long as the block
runs. A second writer refuses at once with a one-line error that names the holder (pid, command, start
time). The operating system drops the lock when its process ends, however it ends (kill -9 included), so a
lock left by a killed process is simply taken over by the next writer.
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

    def __init__(self, folder: str | os.PathLike, command: str) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise QAConvError(f"cannot write in {self.folder}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(fd)
            os.close(fd)
            raise QAConvError(
                f"{self.folder} is in use by another qaconv process ({holder}); wait for it to finish, "
                "or write somewhere else"
            ) from None
        info = {"pid": os.getpid(), "command": self.command, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


def _describe(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']}, {info['command']}, since {info['started']}"
    except (ValueError, KeyError, OSError):
        return "holder unknown"

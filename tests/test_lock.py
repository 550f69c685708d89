"""qaconv.lock: one writer per folder; a second one refuses at once; a killed holder's lock is taken over."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qaconv.errors import QAConvError
from qaconv.lock import FolderLock


def hold(lock_code: str, path) -> subprocess.Popen:
    """A process that takes a lock (`lock_code` evaluates to a FolderLock of sys.argv[1]) and keeps it."""
    code = f"import sys, time; from qaconv.lock import FolderLock; {lock_code}.acquire(); print('locked', flush=True); "
    holder = subprocess.Popen(
        [sys.executable, "-c", code + "time.sleep(60)", str(path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_writer_refuses_and_a_killed_holder_is_taken_over(tmp_path):
    out = tmp_path / "run"
    holder = hold("FolderLock(sys.argv[1], 'qaconv train')", out)
    try:
        with pytest.raises(QAConvError, match=rf"run is in use by another qaconv process \(pid {holder.pid}, qaconv"):
            FolderLock(out, "qaconv train").acquire()
    finally:
        holder.kill()  # kill -9: the operating system drops the lock
        holder.wait()
    with FolderLock(out, "qaconv train"):
        assert (out / ".lock").is_file()
    assert not (out / ".lock").exists()  # released locks leave no file behind


def test_a_folder_replaced_as_a_whole_is_locked_from_beside_it(tmp_path):
    out = tmp_path / "idx"
    with FolderLock.beside(out, "qaconv index build") as lock:
        assert lock.path == tmp_path / ".idx.lock" and not out.exists()
        with pytest.raises(QAConvError, match="idx is in use by another qaconv process .*qaconv index build"):
            FolderLock.beside(out, "qaconv export").acquire()
    assert sorted(p.name for p in tmp_path.iterdir()) == []

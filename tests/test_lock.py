"""FolderLock: one qaconv process writes a folder at a time; a dead holder's lock is taken over."""

import json
import os
import signal
import subprocess
import sys

import pytest

from qaconv.errors import QAConvError
from qaconv.lock import LOCK_NAME, FolderLock

HOLD = "import sys, time; from qaconv.lock import FolderLock; FolderLock(sys.argv[1], 'qaconv index').acquire(); "
HOLD += "print('locked', flush=True); time.sleep(60)"


def holder_info(folder):
    return json.loads((folder / LOCK_NAME).read_text())


def test_the_holder_is_recorded_while_held_and_the_lock_released_on_exit(tmp_path):
    folder = tmp_path / "new" / "run"
    with FolderLock(folder, "qaconv train") as lock:
        assert lock.path == folder / LOCK_NAME  # the folder is created
        info = holder_info(folder)
        assert info["pid"] == os.getpid() and info["command"] == "qaconv train" and info["started"]
    assert not (folder / LOCK_NAME).exists()  # released locks leave no file behind
    with FolderLock(folder, "qaconv index"):
        assert holder_info(folder)["command"] == "qaconv index"


def test_released_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError), FolderLock(tmp_path, "qaconv train"):
        raise RuntimeError("boom")
    with FolderLock(tmp_path, "qaconv train"):
        pass


def test_a_second_holder_is_refused_with_one_line_naming_the_first(tmp_path):
    with FolderLock(tmp_path, "qaconv train"):
        started = holder_info(tmp_path)["started"]
        with pytest.raises(QAConvError) as refused:
            FolderLock(tmp_path, "qaconv evaluate").acquire()
    message = str(refused.value)
    assert message == (
        f"{tmp_path} is in use by another qaconv process (pid {os.getpid()}, qaconv train, since {started}); "
        "wait for it to finish, or write somewhere else"
    )
    assert "\n" not in message


def test_a_holder_without_a_readable_record_is_still_refused(tmp_path):
    with FolderLock(tmp_path, "qaconv train"):
        (tmp_path / LOCK_NAME).write_text("not json")
        with pytest.raises(QAConvError, match=r"in use by another qaconv process \(holder unknown\)"):
            FolderLock(tmp_path, "qaconv train").acquire()


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(QAConvError, match=rf"pid {holder.pid}, qaconv index, since "):
            FolderLock(tmp_path, "qaconv index").acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    assert holder_info(tmp_path)["pid"] == holder.pid  # it never released: its record is stale
    with FolderLock(tmp_path, "qaconv index"):
        assert holder_info(tmp_path)["pid"] == os.getpid()


def test_a_folder_that_cannot_be_written_is_a_one_line_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(QAConvError, match=f"cannot write in {tmp_path / 'file' / 'sub'}: "):
        FolderLock(tmp_path / "file" / "sub", "qaconv train").acquire()


def test_a_folder_replaced_as_a_whole_is_locked_from_beside_it(tmp_path):
    out = tmp_path / "idx"
    with FolderLock.beside(out, "qaconv index build") as lock:
        assert lock.path == tmp_path / ".idx.lock" and not out.exists()
        with pytest.raises(QAConvError, match="idx is in use by another qaconv process .*qaconv index build"):
            FolderLock.beside(out, "qaconv export").acquire()
    assert sorted(p.name for p in tmp_path.iterdir()) == []

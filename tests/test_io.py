"""qaconv.io: atomic writes, output paths checked before work, folder swaps, stale partial folders, image listing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from qaconv.errors import QAConvError
from qaconv.io import (
    atomic_torch_save,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    folder_swap,
    list_images,
    make_parent,
    remove_stale_partials,
)


def dead_pid() -> int:
    """The PID of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_atomic_writes_replace_the_file_and_keep_it_on_failure(tmp_path):
    path = tmp_path / "sub" / "r.json"
    atomic_write_json(path, {"a": 1})
    assert path.read_text() == '{\n  "a": 1\n}\n'  # parents created, indented, final newline
    atomic_write_text(path, "new")
    assert path.read_text() == "new"

    def fail(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(
        QAConvError, match=r"cannot write .*r.json: the disk is full \(\d+ MiB free there\); the previous"
    ):
        atomic_write(path, fail)
    assert path.read_text() == "new"

    def fail_like_torch(f):  # torch.save reports a full disk as a RuntimeError about positions
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None

    with pytest.raises(QAConvError, match=r"cannot write .*r.json: the disk is full"):
        atomic_write(path, fail_like_torch)
    with pytest.raises(QAConvError, match=r"cannot write .*r.json: Permission denied"):
        atomic_write(path, lambda f: (_ for _ in ()).throw(OSError(13, "Permission denied")))
    assert path.read_text() == "new" and sorted(p.name for p in path.parent.iterdir()) == ["r.json"]
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, lambda f: (_ for _ in ()).throw(KeyboardInterrupt))
    assert path.read_text() == "new" and sorted(p.name for p in path.parent.iterdir()) == ["r.json"]


def test_atomic_torch_save_loads_back(tmp_path):
    import torch

    atomic_torch_save({"x": torch.arange(3)}, tmp_path / "c.pt")
    assert torch.load(tmp_path / "c.pt")["x"].tolist() == [0, 1, 2]


def test_list_images_by_extension_sorted_without_hidden_files(tmp_path):
    for name in ("b.JPG", "a.png", "c.gif", "d.ppm", "notes.txt", ".hidden.jpg", "sub/x.jpg", "sub/a/y.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "z.jpg").write_bytes(b"")
    (tmp_path / "folder.jpg").mkdir()  # a folder with an image name is not an image
    assert list_images(tmp_path) == ["a.png", "b.JPG", "c.gif", "d.ppm"]
    assert list_images(tmp_path, recursive=True) == ["a.png", "b.JPG", "c.gif", "d.ppm", "sub/a/y.png", "sub/x.jpg"]


def test_make_parent_creates_folders_before_any_work(tmp_path):
    assert make_parent(tmp_path / "new" / "deep" / "m.png", "--out") == tmp_path / "new" / "deep" / "m.png"
    assert (tmp_path / "new" / "deep").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(QAConvError, match="--json .*file/m.json: cannot create the folder .*a file is in the way"):
        make_parent(tmp_path / "file" / "m.json", "--json")
    with pytest.raises(QAConvError, match="--out .* is a folder; give a file name"):
        make_parent(tmp_path / "new", "--out")


def test_folder_swap_replaces_on_success_and_keeps_the_old_folder_on_error(tmp_path):
    out = tmp_path / "idx"
    with folder_swap(out) as folder:
        (folder / "v").write_text("1")
    assert (out / "v").read_text() == "1"
    with pytest.raises(RuntimeError), folder_swap(out) as folder:
        (folder / "v").write_text("2")
        raise RuntimeError("boom")
    assert (out / "v").read_text() == "1"
    with folder_swap(out) as folder:
        (folder / "v").write_text("3")
    assert (out / "v").read_text() == "3" and sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_a_full_disk_during_a_folder_swap_says_so_and_keeps_the_old_folder(tmp_path):
    out = tmp_path / "idx"
    with folder_swap(out) as folder:
        (folder / "v").write_text("1")
    full = pytest.raises(QAConvError, match=r"cannot write .*idx: the disk is full .*; the previous idx is kept")
    with full, folder_swap(out) as folder:
        (folder / "v").write_text("2")
        raise OSError(28, "No space left on device")
    assert (out / "v").read_text() == "1" and sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_stale_partial_folders_of_dead_processes_are_removed(tmp_path):
    out = tmp_path / "idx"
    dead = tmp_path / f".idx.partial-{dead_pid()}"
    alive = tmp_path / f".idx.partial-{os.getppid()}"  # the process that started the tests still runs
    other = tmp_path / ".other.partial-1"
    for folder in (dead, alive, other):
        folder.mkdir()
    assert remove_stale_partials(out) == [dead]
    assert not dead.exists() and alive.exists() and other.exists()
    dead.mkdir()
    with folder_swap(out) as folder:  # a build removes them first
        (folder / "manifest.json").write_text(json.dumps({}))
    assert not dead.exists() and alive.exists()


def test_an_output_the_disk_has_no_room_for_is_refused_before_the_work(tmp_path, monkeypatch):
    import shutil

    from qaconv.io import check_free_space

    check_free_space(tmp_path / "not" / "yet", 1, "--save-scores")  # the nearest existing folder is asked
    usage = shutil.disk_usage(tmp_path)
    with pytest.raises(QAConvError, match=r"--save-scores will need about .* MiB in .*, which has .* MiB free"):
        check_free_space(tmp_path, usage.free + 2**30, "--save-scores")

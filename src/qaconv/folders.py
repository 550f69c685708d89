"""Folders that know what they are: a data set, a run, an index, an export, an evaluation or a demo.

Every folder qaconv writes carries a small marker, `.qaconv-folder` (JSON: its kind and the qaconv version
that wrote it). `check_output` is the one check of an output folder, done before any work by every command
that writes one: the path must be a folder (or creatable), writable, and not a folder of another kind; a
folder of the same kind is replaced only with `overwrite`, and only when it holds nothing but that kind's
files, so replacing it loses nothing the user put there. `kind_of` says what a folder is, also for folders
written before markers existed (by the files that only that kind writes), and `expect_kind` refuses an
input folder of the wrong kind, saying what it is.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from qaconv.errors import QAConvError
from qaconv.io import atomic_write_json, make_parent
from qaconv.rundir import BEST, CHECKPOINT, METRICS, RESULTS
from qaconv.version import __version__

MARKER = ".qaconv-folder"


@dataclass(frozen=True)
class FolderKind:
    """A kind of folder: its name, and the files that tell an unmarked one of this kind (written before markers)."""

    name: str
    signs: tuple[str, ...]

    @property
    def a(self) -> str:
        return f"{'an' if self.name[0] in 'aeiou' else 'a'} {self.name}"


DATASET = FolderKind("data set", ("meta.json", "bounding_box_train", "list_train.txt", "train.csv"))
RUN = FolderKind("run", (CHECKPOINT, METRICS, BEST))
INDEX = FolderKind("index", ("manifest.json",))
EXPORT = FolderKind("export", ("export.json",))
EVALUATION = FolderKind("evaluation", (RESULTS,))
DEMO = FolderKind("demo", ("full", "quick", "run", "run-quick"))
KINDS = (DATASET, RUN, INDEX, EXPORT, DEMO, EVALUATION)  # unmarked folders: the first kind whose files it holds
_BY_NAME = {kind.name: kind for kind in KINDS}


def kind_of(folder: str | os.PathLike) -> FolderKind | None:
    """What kind of qaconv folder `folder` is: its marker's, else the first kind whose files it holds; None for
    a missing, empty or unrelated folder (or a file)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    marker = folder / MARKER
    if marker.is_file():
        try:
            return _BY_NAME.get(json.loads(marker.read_text()).get("kind"))
        except (OSError, ValueError, AttributeError):
            return None
    names = set(os.listdir(folder))
    return next((kind for kind in KINDS if names & set(kind.signs)), None)


def mark(folder: str | os.PathLike, kind: FolderKind) -> None:
    """Write `folder`'s marker (the folder must exist)."""
    atomic_write_json(Path(folder) / MARKER, {"kind": kind.name, "qaconv": __version__})


def check_output(
    out: str | os.PathLike,
    kind: FolderKind,
    option: str,
    *,
    overwrite: bool = False,
    own: Iterable[str] = (),
    accepts: Iterable[FolderKind] = (),
) -> Path:
    """Refuse, before any work, an output folder that `kind` may not be written to; returns it as a Path.

    Fine: a path that can be created (its parent is made now), an empty folder, a folder of `kind` (or of one
    of `accepts`, which hold `kind`'s files too, as a run holds its evaluation) when `overwrite` is given or
    `own` is empty (a kind that adds to its folder rather than replacing it). With `own` (the files and folders
    `kind` consists of), a folder that holds others is refused: replacing it would lose them."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise QAConvError(f"{option} {out} exists and is not a folder")
    if not out.exists():
        _create_parent(out, option)
        return out
    entries = sorted(name for name in os.listdir(out) if name not in (MARKER, ".lock"))
    found = kind_of(out)
    if found is not None and found is not kind and found not in tuple(accepts):
        raise QAConvError(f"{option} {out} is a qaconv {found.name} folder, not {kind.a}; choose another {option}")
    if not entries:
        _check_writable(out, option)
        return out
    own = set(own)
    if found is None and own:
        raise QAConvError(
            f"{option} {out} is a non-empty folder that is not a qaconv {kind.name}; choose another {option}"
        )
    if own and not overwrite:
        how = "--overwrite" if option.startswith("--") else "overwrite=True"  # a flag, or a Python argument
        raise QAConvError(f"{option} {out} already holds {kind.a}; pass {how} to replace it")
    others = [name for name in entries if own and name not in own and not name.startswith(".")]
    if others:
        raise QAConvError(
            f"{option} {out} holds files that are not part of {kind.a} ({', '.join(others[:5])}); move them away "
            "or choose another folder"
        )
    _check_writable(out, option)
    return out


def expect_kind(path: str | os.PathLike, option: str, kinds: Iterable[FolderKind], what: str) -> None:
    """Refuse an input folder of another qaconv kind than `kinds`, saying what it is (`what`: what was wanted)."""
    found = kind_of(path)
    if found is not None and found not in tuple(kinds):
        raise QAConvError(f"{option} {path} is a qaconv {found.name} folder, not {what}")


def _create_parent(out: Path, option: str) -> None:
    make_parent(out, option)
    _check_writable(out.parent, option, out)


def _check_writable(folder: Path, option: str, out: Path | None = None) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise QAConvError(f"{option} {out or folder} cannot be written ({exc.strerror or exc} in {folder})") from None

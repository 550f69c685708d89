"""Test sets given on the command line: loaded before any work, each with a label of its own.

A registered name is labelled by its canonical name (`market` -> `market1501`), a folder by its name.
Two folders with one name (`syn/sb,other/sb`) are labelled by the shortest ends of their paths that
tell them apart (`syn/sb`, `other/sb`), so their results.json entries and files do not overwrite each
other. A label with a slash names files with a dash instead (`syn-sb_score.npz`).
"""

from __future__ import annotations

import os
from collections import Counter

from qaconv.data.datasets import ReIDDataset, open_dataset
from qaconv.errors import QAConvError


def load_testset(name: str, data_dir: str | os.PathLike) -> tuple[str, ReIDDataset]:
    """(label, data set) for a registered name found under data_dir, or a folder (Market-style or csv
    lists; labelled by the folder's name)."""
    try:
        dataset = open_dataset(name, data_dir)
    except QAConvError as exc:
        raise QAConvError(f"--testset {name}: {exc}") from None
    parts = _path_parts(name)
    return (parts[-1] if parts else dataset.name), dataset


def load_testsets(names: list[str], data_dir: str | os.PathLike) -> list[tuple[str, ReIDDataset]]:
    """(label, data set) for every name, with distinct labels (see the module docstring)."""
    if not names:
        raise QAConvError("--testset: give at least one test set name or Market-style folder")
    loaded = [load_testset(name, data_dir) for name in names]
    parts = [_path_parts(name) for name in names]
    labels = [label for label, _ in loaded]
    depth = [1] * len(names)
    while len(set(labels)) < len(labels):
        repeated = {label for label, count in Counter(labels).items() if count > 1}
        grown = False
        for i, label in enumerate(labels):
            if label in repeated and parts[i] and depth[i] < len(parts[i]):
                depth[i] += 1
                labels[i] = "/".join(parts[i][-depth[i] :])
                grown = True
        if not grown:
            same = [names[i] for i, label in enumerate(labels) if label in repeated][:2]
            raise QAConvError(f"--testset: {same[0]} and {same[1]} are the same test set; give it once")
    return [(label, ds) for label, (_, ds) in zip(labels, loaded, strict=True)]


def file_stem(label: str) -> str:
    """The label as a file or folder name (a slash becomes a dash)."""
    return label.replace("/", "-")


def _path_parts(name: str) -> list[str]:
    """The components of the absolute path when `name` is an existing path, else [] (a registered name)."""
    path = os.path.expanduser(name)
    if not os.path.exists(path):
        return []
    return [p for p in os.path.abspath(path).split(os.sep) if p]

"""Records, the data set container, the registry of loaders and the parsing helpers they share.

A loader is a function `loader(root, *, combine_all, skip_unparsable) -> ReIDDataset` registered with
`@register_dataset(name, ...)`. `create_dataset` finds the folder that holds the data set's layout (the
given root, a known sub-folder of it, or a sub-folder one level down), checks `combine_all`, and calls it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from qaconv.errors import QAConvError
from qaconv.folders import DATASET, expect_kind

DOCS = "docs/datasets.md"
SPLITS = ("train", "query", "gallery")


class Record(NamedTuple):
    """One image: absolute path, person id, 0-based camera id and time in seconds (0 without time info)."""

    path: str
    pid: int
    camid: int
    time: float = 0.0


class SplitStats(NamedTuple):
    """Counts for one split: distinct ids, images and distinct cameras."""

    ids: int
    images: int
    cams: int


class ReIDDataset:
    """A re-identification data set: `train`, `query` and `gallery` lists of `Record`.

    Train pids are relabelled 0..N-1 (in sorted order of the original ids) by the built-in loaders;
    query and gallery keep the original ids, so 0 (Market-1501 distractors) stays a valid id.
    """

    def __init__(
        self,
        name: str,
        train: Iterable[Record] = (),
        query: Iterable[Record] = (),
        gallery: Iterable[Record] = (),
        *,
        root: str | None = None,
        has_time: bool = False,
    ) -> None:
        self.name = name
        self.root = root
        self.train: list[Record] = list(train)
        self.query: list[Record] = list(query)
        self.gallery: list[Record] = list(gallery)
        self.has_time = bool(has_time)

    def split(self, name: str) -> list[Record]:
        if name not in SPLITS:
            raise QAConvError(f"unknown split {name!r}; valid: {', '.join(SPLITS)}")
        return getattr(self, name)

    @property
    def num_train_ids(self) -> int:
        return len({r.pid for r in self.train})

    @property
    def num_cams(self) -> int:
        """1 + the largest camera id over all splits (camera ids are 0-based); 0 for an empty data set."""
        return 1 + max((r.camid for s in SPLITS for r in self.split(s)), default=-1)

    def stats(self) -> dict[str, SplitStats]:
        """Distinct ids, images and distinct cameras of each split."""
        out = {}
        for split in SPLITS:
            recs = self.split(split)
            out[split] = SplitStats(len({r.pid for r in recs}), len(recs), len({r.camid for r in recs}))
        return out

    def summary(self) -> str:
        """A small table: ids / images / cameras per split."""
        lines = [
            f"{self.name} ({self.root or 'in memory'}): {self.num_cams} cameras, "
            f"time info: {'yes' if self.has_time else 'no'}",
            "  split   |   ids |  images | cams",
        ]
        for split, st in self.stats().items():
            lines.append(f"  {split:<7} | {st.ids:5d} | {st.images:7d} | {st.cams:4d}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}={len(self.split(s))}" for s in SPLITS)
        return f"ReIDDataset({self.name!r}, {counts}, has_time={self.has_time})"


# --------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class DatasetSpec:
    """How to find and load one data set (see `register_dataset`)."""

    name: str
    loader: Callable[..., ReIDDataset]
    layout: str
    required: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()
    scan_children: bool = False
    combine_all: bool = False
    discoverable: bool = True


_REGISTRY: dict[str, DatasetSpec] = {}
MARKET_SPLITS = ("bounding_box_train", "query", "bounding_box_test")
_ALIASES: dict[str, str] = {}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def register_dataset(
    name: str,
    *,
    layout: str,
    required: Sequence[str] = (),
    aliases: Sequence[str] = (),
    folders: Sequence[str] = (),
    variants: Sequence[str] = (),
    scan_children: bool = False,
    combine_all: bool = False,
    discoverable: bool = True,
) -> Callable[[Callable[..., ReIDDataset]], Callable[..., ReIDDataset]]:
    """Register `loader(root, *, combine_all, skip_unparsable) -> ReIDDataset` under `name`.

    layout: one line describing the expected files (used in error messages).
    required: paths relative to the data set folder that must exist (a trailing "/" means a folder).
    aliases: other names accepted by `create_dataset` (case-insensitive, "-" equals "_").
    folders: folder names tried under a data dir by `find_dataset_root`.
    variants: sub-folders of a given root that may hold the layout (tried in the root and one level down).
    scan_children: also accept any sub-folder of the root that holds the layout.
    combine_all: whether `combine_all=True` is supported.
    discoverable: listed by `qaconv datasets` (the custom formats are not).
    """

    def decorator(loader: Callable[..., ReIDDataset]) -> Callable[..., ReIDDataset]:
        spec = DatasetSpec(
            name=name,
            loader=loader,
            layout=layout,
            required=tuple(required),
            aliases=tuple(aliases),
            folders=tuple(folders),
            variants=tuple(variants),
            scan_children=scan_children,
            combine_all=combine_all,
            discoverable=discoverable,
        )
        for key in (name, *aliases):
            k = _key(key)
            if k in _ALIASES and _ALIASES[k] != name:
                raise ValueError(f"data set name {key!r} is already registered for {_ALIASES[k]!r}")
            _ALIASES[k] = name
        _REGISTRY[name] = spec
        return loader

    return decorator


def dataset_names(discoverable_only: bool = False) -> list[str]:
    """Canonical names of the registered data sets, in registration order."""
    return [n for n, s in _REGISTRY.items() if s.discoverable or not discoverable_only]


def get_dataset_spec(name: str) -> DatasetSpec:
    """The registry entry for a canonical name or an alias; QAConvError listing the valid names otherwise."""
    canonical = _ALIASES.get(_key(str(name)))
    if canonical is None:
        aliases = sorted(a for a, n in _ALIASES.items() if a != n)
        raise QAConvError(
            f"unknown data set {name!r}; valid names: {', '.join(dataset_names())} (aliases: {', '.join(aliases)})"
        )
    return _REGISTRY[canonical]


def _has_layout(folder: str, required: Sequence[str]) -> bool:
    return all(_exists(folder, rel) for rel in required)


def _exists(folder: str, rel: str) -> bool:
    path = os.path.join(folder, rel)
    return os.path.isdir(path) if rel.endswith("/") else os.path.isfile(path)


def _subdirs(folder: str) -> list[str]:
    try:
        with os.scandir(folder) as it:
            return sorted(e.path for e in it if not e.name.startswith(".") and e.is_dir())
    except OSError:
        return []


def _candidates(spec: DatasetSpec, root: str) -> Iterator[str]:
    yield root
    for v in spec.variants:
        yield os.path.join(root, v)
    if spec.variants or spec.scan_children:
        for child in _subdirs(root):
            for v in spec.variants:
                yield os.path.join(child, v)
            if spec.scan_children:
                yield child


def _find_layout(spec: DatasetSpec, root: str) -> str | None:
    if not spec.required:
        return root if os.path.exists(root) else None
    return next((c for c in _candidates(spec, root) if _has_layout(c, spec.required)), None)


def closest_layout(spec: DatasetSpec, root: str) -> tuple[str, list[str]]:
    """The folder under `root` that comes closest to `spec`'s layout (root itself on ties) and the required
    paths it lacks (all of them when no folder holds any)."""
    best, best_missing = root, list(spec.required)
    for cand in _candidates(spec, root):
        missing = [rel for rel in spec.required if not _exists(cand, rel)]
        if len(missing) < len(best_missing):
            best, best_missing = cand, missing
    return best, best_missing


def locate_dataset(spec: DatasetSpec, root: str | os.PathLike) -> str:
    """The absolute folder that holds `spec`'s layout, starting from `root`; QAConvError if there is none."""
    root = os.path.abspath(os.path.expanduser(os.fspath(root)))
    if not os.path.exists(root):
        raise QAConvError(f"{spec.name} data set folder not found: {root}; expected {spec.layout} (see {DOCS})")
    found = _find_layout(spec, root)
    if found is not None:
        return found
    best, best_missing = closest_layout(spec, root)
    raise QAConvError(
        f"no {spec.name} data set in {root}: {best} lacks {', '.join(best_missing)}; "
        f"expected {spec.layout} (see {DOCS})"
    )


def create_dataset(
    name: str, root: str | os.PathLike, combine_all: bool = False, *, skip_unparsable: bool = False
) -> ReIDDataset:
    """Load a data set by name (or alias) from its folder.

    `root` is the data set's own folder (e.g. DATA/market1501); common wrappers are accepted too
    (Market-1501-v15.09.15/ one level down, cuhk03-np/ holding detected/ and labeled/, MSMT17_V1/...).
    combine_all (MSMT17 only): train on train+val+query+gallery; query and gallery are then empty.
    skip_unparsable: warn about and skip image files whose names do not parse, instead of raising.
    """
    spec = get_dataset_spec(name)
    if combine_all and not spec.combine_all:
        supported = ", ".join(n for n, s in _REGISTRY.items() if s.combine_all)
        raise QAConvError(f"{spec.name} does not support combine_all (supported by: {supported})")
    folder = locate_dataset(spec, root)
    return spec.loader(folder, combine_all=combine_all, skip_unparsable=skip_unparsable)


def find_dataset_root(name: str, data_dir: str | os.PathLike) -> str | None:
    """The folder of data set `name` under `data_dir` (tries its usual folder names), or None."""
    spec = get_dataset_spec(name)
    data_dir = os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
    for folder in spec.folders:
        path = os.path.join(data_dir, folder)
        if os.path.isdir(path):
            found = _find_layout(spec, path)
            if found is not None:
                return found
    return None


def _layout_of(folder: str) -> str:
    """The format of a data set folder given by path: Market-1501-style split folders (`folder`), or the public
    layout whose required files it holds (MSMT17's lists, ...), or `folder` (whose error then says what is
    missing)."""
    if any(os.path.isdir(os.path.join(folder, split)) for split in MARKET_SPLITS):
        return "folder"
    public = (spec.name for spec in _REGISTRY.values() if spec.required and _has_layout(folder, spec.required))
    return next(public, "folder")


def open_dataset(
    name_or_path: str, data_dir: str | os.PathLike = "data", combine_all: bool = False, *, skip_unparsable: bool = False
) -> ReIDDataset:
    """A data set given on the command line: a registered name found under `data_dir`, or a path.

    A path (an existing folder) is read in the layout it holds: the `csv` format when it holds
    train/query/gallery .csv files or is a .csv file itself, a public layout whose required files it holds
    (the MSMT17 list files, CUHK03-NP's folders...), else a Market-1501-style folder (`folder` format). A
    qaconv folder of another kind (a run, an index...) is refused, saying what it is.
    """
    path = os.path.expanduser(os.fspath(name_or_path))
    options = {"combine_all": combine_all, "skip_unparsable": skip_unparsable}
    if os.path.isdir(path) or os.path.isfile(path):
        expect_kind(path, "data set", [DATASET], "a data set")
        is_csv = path.endswith(".csv") or any(
            os.path.isfile(os.path.join(path, f"{split}.csv")) for split in ("train", "query", "gallery")
        )
        return create_dataset("csv" if is_csv else _layout_of(path), path, **options)
    if os.sep in path or "/" in path or path.startswith(".") or path.lower().endswith((".csv", ".txt")):
        raise QAConvError(
            f"data set not found: {os.path.abspath(path)} does not exist (give a folder, a CSV file or the name "
            f"of a data set under the data dir; see {DOCS})"
        )
    spec = get_dataset_spec(name_or_path)
    root = find_dataset_root(spec.name, data_dir)
    if root is None:
        raise QAConvError(
            f"data set {spec.name} not found under {os.path.abspath(os.fspath(data_dir))} "
            f"(looked for {', '.join(spec.folders)}); expected {spec.layout} (see {DOCS})"
        )
    return create_dataset(spec.name, root, **options)


# --------------------------------------------------------------------------------------- parse helpers


def relabel_sorted(pids: Iterable[int]) -> dict[int, int]:
    """Map each distinct pid to its rank in sorted order (deterministic: every process agrees)."""
    return {pid: i for i, pid in enumerate(sorted(set(pids)))}


def report_unparsable(dataset: str, bad: Sequence[str], expected: str, skip: bool) -> None:
    """Raise (or, with skip, warn) about file names that do not parse; lists the first few."""
    if not bad:
        return
    shown = ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "")
    msg = f"{dataset}: {len(bad)} file name(s) do not match {expected}: {shown}"
    if skip:
        warnings.warn(f"{msg}; skipped", UserWarning, stacklevel=3)
        return
    raise QAConvError(
        f"{msg}; rename or remove them, or skip them (qaconv train --skip-unparsable; skip_unparsable=True in "
        f"Python; see {DOCS})"
    )

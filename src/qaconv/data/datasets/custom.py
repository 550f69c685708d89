"""Users' own data: a Market-style folder (`folder`) or CSV lists (`csv`).

folder: bounding_box_train/, bounding_box_test/ (gallery) and query/ under any name, files named
  PID_cCAM... like Market-1501 (camera numbered from 1). A missing split folder gives an empty split.
  Times come from Market's `cCsS_FRAME` pattern (25 fps) when every file name has it, else they are 0.

csv: a folder with train.csv, query.csv and gallery.csv (any of them; .txt also accepted), or one CSV
  file, which is then the train split. Columns `path,pid,camid[,time]`: path relative to the CSV's folder
  (or absolute), camid 0-based, time in seconds. A header row is optional; with one, the columns may come in
  any order (`cam` is accepted for `camid`). Commas, tabs or spaces separate the fields. pid -1 rows are
  dropped (junk, as in Market-1501).

In both formats train pids are relabelled 0..N-1 in sorted order; query and gallery pids are kept.
"""

from __future__ import annotations

import csv
import os

from qaconv.data.datasets.base import DOCS, Record, ReIDDataset, register_dataset, relabel_sorted
from qaconv.data.datasets.market1501 import MARKET_SPLITS, load_market_style
from qaconv.errors import QAConvError
from qaconv.io import list_images


@register_dataset(
    "folder",
    layout="at least one of bounding_box_train/, bounding_box_test/ and query/ with Market-style names "
    "like 0002_c1_0001.jpg (pid_cCAMERA...)",
    aliases=("market_style", "custom_folder"),
    discoverable=False,
)
def load_folder(root: str, *, combine_all: bool = False, skip_unparsable: bool = False) -> ReIDDataset:
    if not os.path.isdir(root) or not any(os.path.isdir(os.path.join(root, s)) for s in MARKET_SPLITS.values()):
        raise QAConvError(
            f"no Market-style split folder in {root}: expected at least one of "
            f"{', '.join(s + '/' for s in MARKET_SPLITS.values())} (see {DOCS})"
        )
    _refuse_nested_images(root)
    ds = load_market_style(root, "folder", time_mode="auto", skip_unparsable=skip_unparsable, optional_splits=True)
    ds.name = os.path.basename(root.rstrip(os.sep)) or "folder"
    return ds


def _refuse_nested_images(root: str) -> None:
    """A split folder with no images of its own but images in sub-folders (one folder per person, the
    ImageFolder layout) would silently give an empty split: say so."""
    for sub in MARKET_SPLITS.values():
        folder = os.path.join(root, sub)
        if not os.path.isdir(folder) or list_images(folder):
            continue
        nested = sorted(e.name for e in os.scandir(folder) if e.is_dir() and list_images(e.path))
        if nested:
            shown = ", ".join(nested[:3]) + (", ..." if len(nested) > 3 else "")
            raise QAConvError(
                f"{folder} holds images only in sub-folders ({shown}), which are not read: put the files directly "
                f"in {sub}/, named like 0002_c1_0001.jpg "
                f"(pid_cCAMERA...); one folder per person (the ImageFolder layout) is not supported (see {DOCS})"
            )


_COLUMNS = ("path", "pid", "camid", "time")
_SPLIT_FILES = {s: (f"{s}.csv", f"{s}.txt") for s in ("train", "query", "gallery")}


def read_csv_split(csv_path: str) -> tuple[list[Record], bool]:
    """Records of one CSV list and whether it has a time column; malformed rows name the file and line."""
    base = os.path.dirname(os.path.abspath(csv_path))
    with open(csv_path, encoding="utf-8", newline="") as f:
        lines = f.read().splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    if ";" in first and not any(sep in first for sep in ",\t"):
        raise QAConvError(
            f"{csv_path}:1: the fields are separated by ';'; separate path,pid,camid[,time] with commas, tabs or "
            f"spaces (see {DOCS})"
        )
    if "," in first:
        reader = csv.reader(lines, delimiter=",", skipinitialspace=True)
    elif "\t" in first:
        reader = csv.reader(lines, delimiter="\t")
    else:
        reader = csv.reader(lines, delimiter=" ", skipinitialspace=True)
    index = {name: i for i, name in enumerate(_COLUMNS)}
    has_time: bool | None = None
    out: list[Record] = []
    header_seen = False
    for row in reader:
        lineno = reader.line_num
        row = [c.strip() for c in row]
        while row and row[-1] == "":
            row.pop()
        if not row:
            continue
        if not header_seen:
            header_seen = True
            if len(row) > 1 and not _is_int(row[1]):  # a header row names the columns
                names = ["camid" if c.lower() in ("cam", "camera", "camid") else c.lower() for c in row]
                missing = [c for c in ("path", "pid", "camid") if c not in names]
                if missing:
                    raise QAConvError(
                        f"{csv_path}:{lineno}: header {row} lacks column(s) {', '.join(missing)}; "
                        f"expected path,pid,camid[,time] (see {DOCS})"
                    )
                index = {c: names.index(c) for c in _COLUMNS if c in names}
                has_time = "time" in index
                continue
        try:
            path = row[index["path"]]
            pid = int(row[index["pid"]])
            camid = int(row[index["camid"]])
            if camid < 0 or not path:
                raise ValueError
            t = index.get("time")
            row_has_time = t is not None and t < len(row)
            time = float(row[t]) if row_has_time else 0.0
        except (ValueError, IndexError):
            raise QAConvError(
                f"{csv_path}:{lineno}: expected path,pid,camid[,time] (camid from 0), got {','.join(row)!r}"
            ) from None
        if has_time is None:
            has_time = row_has_time
        elif has_time != row_has_time:
            raise QAConvError(f"{csv_path}:{lineno}: some rows have a time column and some do not")
        if pid != -1:
            out.append(Record(os.path.normpath(os.path.join(base, path)), pid, camid, time))
    return out, bool(has_time)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


@register_dataset(
    "csv",
    layout="a folder with train.csv, query.csv and/or gallery.csv (or one .csv file for train), "
    "columns path,pid,camid[,time]",
    aliases=("list", "lists"),
    discoverable=False,
)
def load_csv(root: str, *, combine_all: bool = False, skip_unparsable: bool = False) -> ReIDDataset:
    files: dict[str, str] = {}
    if os.path.isfile(root):
        files["train"] = root
        name = os.path.splitext(os.path.basename(root))[0]
    else:
        for split, candidates in _SPLIT_FILES.items():
            for fname in candidates:
                if os.path.isfile(os.path.join(root, fname)):
                    files[split] = os.path.join(root, fname)
                    break
        if not files:
            raise QAConvError(
                f"no train.csv, query.csv or gallery.csv in {root}; expected CSV lists with columns "
                f"path,pid,camid[,time] (see {DOCS})"
            )
        name = os.path.basename(root.rstrip(os.sep)) or "csv"
    splits: dict[str, list[Record]] = {"train": [], "query": [], "gallery": []}
    time_flags = []
    for split, path in files.items():
        splits[split], has_time = read_csv_split(path)
        time_flags.append(has_time)
    mapping = relabel_sorted(r.pid for r in splits["train"])
    train = [r._replace(pid=mapping[r.pid]) for r in splits["train"]]
    return ReIDDataset(name, train, splits["query"], splits["gallery"], root=root, has_time=all(time_flags))

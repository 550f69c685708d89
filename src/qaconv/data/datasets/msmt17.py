"""MSMT17 (V1 release): list files plus train/ and test/ image folders.

Each list line is `<path relative to train/ or test/> <pid>`; the camera is the third `_` field of the
file name (0000_000_01_0303morning_0015_0.jpg -> camera 1 -> camid 0). train = list_train + list_val (val
ids are a subset of train ids), query/gallery from list_query/list_gallery. Query/gallery pids are used as
listed; train pids are relabelled 0..N-1 in sorted order, which leaves V1's 0..1040 unchanged. No time
information.

combine_all ("MSMT (all)"): train = list_train + list_val + list_gallery + list_query, with the test pids
shifted by (largest train pid + 1) so they cannot collide; query and gallery are then empty, since every
test image is in train.
"""

from __future__ import annotations

import os

from qaconv.data.datasets.base import Record, ReIDDataset, register_dataset, relabel_sorted
from qaconv.errors import QAConvError

LIST_FILES = {
    "train": "list_train.txt",
    "val": "list_val.txt",
    "query": "list_query.txt",
    "gallery": "list_gallery.txt",
}
IMAGE_DIRS = {"train": "train", "val": "train", "query": "test", "gallery": "test"}


def read_msmt_list(list_path: str, image_dir: str) -> list[Record]:
    """Records of one MSMT17 list file; a malformed line raises QAConvError naming the file and line."""
    prefix = image_dir + os.sep
    out = []
    with open(list_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rsplit(maxsplit=1)
            if not parts:
                continue
            try:
                if len(parts) != 2:
                    raise ValueError
                rel, pid = parts[0].strip(), int(parts[1])
                camid = int(rel.rsplit("/", 1)[-1].split("_")[2]) - 1
                if camid < 0:
                    raise ValueError
            except (ValueError, IndexError):
                raise QAConvError(
                    f"{list_path}:{lineno}: expected '<pid folder>/<pid>_<index>_<camera>_<...>.jpg <pid>' "
                    f"(camera from 1), got {line.strip()!r}"
                ) from None
            out.append(Record(prefix + rel, pid, camid, 0.0))
    return out


@register_dataset(
    "msmt17",
    layout="list_train.txt, list_val.txt, list_query.txt, list_gallery.txt, train/ and test/ (MSMT17_V1)",
    required=(*LIST_FILES.values(), "train/", "test/"),
    aliases=("msmt", "msmt17_v1"),
    folders=("MSMT17_V1", "msmt17", "msmt", "MSMT17", "msmt17_v1", "MSMT17-V1"),
    variants=("MSMT17_V1", "msmt17_v1"),
    scan_children=True,
    combine_all=True,
)
def load_msmt17(root: str, *, combine_all: bool = False, skip_unparsable: bool = False) -> ReIDDataset:
    parts = {
        split: read_msmt_list(os.path.join(root, fname), os.path.join(root, IMAGE_DIRS[split]))
        for split, fname in LIST_FILES.items()
    }
    train = parts["train"] + parts["val"]
    query, gallery = parts["query"], parts["gallery"]
    if combine_all:
        shift = 1 + max((r.pid for r in train), default=-1)
        train = train + [Record(r.path, r.pid + shift, r.camid, r.time) for r in gallery + query]
        query, gallery = [], []
    # V1 train pids (and the combined ones) are already 0..N-1, so this changes nothing there; it keeps
    # the invariant of every loader for edited lists.
    mapping = relabel_sorted(r.pid for r in train)
    if any(k != v for k, v in mapping.items()):
        train = [Record(r.path, mapping[r.pid], r.camid, r.time) for r in train]
    return ReIDDataset("msmt17", train, query, gallery, root=root, has_time=False)

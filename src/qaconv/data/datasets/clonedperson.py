"""ClonedPerson: train/, test/query/ and test/gallery/ with files named PID_sSCENE_cCAM_fFRAME.jpg.

As in the official protocol (the data set authors' loader and QAConv's), the scene is ignored for the
camera id: camid = camera number as written (0-based), so cameras of different scenes share ids.
time = frame / 24 fps. pid -1 is dropped. Train pids are relabelled, query/gallery pids are kept.
"""

from __future__ import annotations

import os

from qaconv.data.datasets.base import (
    Record,
    ReIDDataset,
    register_dataset,
    relabel_sorted,
    report_unparsable,
)
from qaconv.data.datasets.names import SCENE_NAME
from qaconv.io import list_images

SPLITS = {"train": "train", "query": "test/query", "gallery": "test/gallery"}
FPS = 24.0


@register_dataset(
    "clonedperson",
    layout="train/, test/query/ and test/gallery/ with images named like 000000_s00_c00_f000000.jpg",
    required=("train/", "test/query/", "test/gallery/"),
    aliases=("cloned_person",),
    folders=("clonedperson", "ClonedPerson", "cloned_person"),
    variants=("ClonedPerson", "clonedperson"),
    scan_children=True,
)
def load_clonedperson(root: str, *, combine_all: bool = False, skip_unparsable: bool = False) -> ReIDDataset:
    parsed, bad = {}, []
    for split, sub in SPLITS.items():
        folder = os.path.join(root, sub)
        prefix = folder + os.sep
        rows = []
        for fname in list_images(folder):
            m = SCENE_NAME.search(fname)
            if m is None:
                bad.append(f"{sub}/{fname}")
                continue
            pid, _scene, cam, frame = map(int, m.groups())
            if pid != -1:
                rows.append((prefix + fname, pid, cam, frame / FPS))
        parsed[split] = rows
    report_unparsable("clonedperson", bad, "PID_sSCENE_cCAM_fFRAME.jpg", skip_unparsable)
    mapping = relabel_sorted(r[1] for r in parsed["train"])
    train = [Record(p, mapping[pid], cam, t) for p, pid, cam, t in parsed["train"]]
    query = [Record(*r) for r in parsed["query"]]
    gallery = [Record(*r) for r in parsed["gallery"]]
    return ReIDDataset("clonedperson", train, query, gallery, root=root, has_time=True)

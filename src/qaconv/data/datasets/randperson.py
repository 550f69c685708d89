"""RandPerson (the official 8,000-id subset): training only.

Files `randperson_subset/PPPPPP_sSS_cCC_fFFFFFF.jpg` (pid, scene 0..10, camera within the scene, frame).
The 11 scenes have 2,2,2,2,1,1,2,1,1,1,4 cameras: camid = first camid of the scene + camera (19 in all).
The camera number is not checked against its scene's count (the reference code does not either).
time = (frame offset of the scene + frame) / 24 fps, so scenes do not overlap in time.
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

SCENE_CAMERAS = (2, 2, 2, 2, 1, 1, 2, 1, 1, 1, 4)
CAMERA_OFFSET = tuple(sum(SCENE_CAMERAS[:i]) for i in range(len(SCENE_CAMERAS)))  # 0,2,4,6,8,9,10,12,...
FRAME_OFFSET = (0, 160000, 340000, 490000, 640000, 1070000, 1330000, 1590000, 1890000, 3190000, 3490000)
FPS = 24.0
IMAGE_DIR = "randperson_subset"


@register_dataset(
    "randperson",
    layout=f"{IMAGE_DIR}/ with images named like 000000_s00_c00_f000264.jpg (pid_scene_camera_frame)",
    required=(f"{IMAGE_DIR}/",),
    aliases=("rand_person",),
    folders=("randperson", "RandPerson", "rand_person"),
    variants=("RandPerson", "randperson"),
    scan_children=True,
    combine_all=True,  # accepted and ignored: every image is already in train
)
def load_randperson(root: str, *, combine_all: bool = False, skip_unparsable: bool = False) -> ReIDDataset:
    folder = os.path.join(root, IMAGE_DIR)
    prefix = folder + os.sep
    rows, bad = [], []
    for fname in list_images(folder):
        m = SCENE_NAME.match(fname)
        if m is None:
            bad.append(f"{IMAGE_DIR}/{fname}")
            continue
        pid, scene, cam, frame = map(int, m.groups())
        if scene >= len(SCENE_CAMERAS):
            bad.append(f"{IMAGE_DIR}/{fname}")
            continue
        rows.append((prefix + fname, pid, CAMERA_OFFSET[scene] + cam, (FRAME_OFFSET[scene] + frame) / FPS))
    report_unparsable("randperson", bad, "PPPPPP_sSS_cCC_fFFFFFF.jpg with a scene from 0 to 10", skip_unparsable)
    mapping = relabel_sorted(r[1] for r in rows)
    train = [Record(path, mapping[pid], camid, t) for path, pid, camid, t in rows]
    return ReIDDataset("randperson", train, root=root, has_time=True)

"""Identity and camera as the public data sets write them in image file names.

    Market-1501, DukeMTMC-reID, CUHK03-NP   0002_c1s1_000451_03.jpg, 0001_c2_f0046182.jpg
    RandPerson, ClonedPerson                0001_s1_c3_f000123.jpg
    MSMT17                                  0001_012_05_0303morning_0015_0.jpg (camera: the third field)

`label_from_name` is what the gallery browser and sharding by camera use; the layout readers
(qaconv.data.datasets.*) parse their own folders with the same patterns.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Market-1501 style: pid, camera, and optionally session and frame (0002_c1s1_000451_03.jpg).
MARKET_NAME = re.compile(r"(-?\d+)_c(\d+)(?:s(\d+)_(\d+))?(?=[_.])")
#: RandPerson / ClonedPerson: pid, scene, camera, frame (0001_s1_c3_f000123.jpg).
SCENE_NAME = re.compile(r"(-?\d+)_s(\d+)_c(\d+)_f(\d+)")
#: MSMT17: pid, index, camera (0001_012_05_0303morning_0015_0.jpg).
MSMT_NAME = re.compile(r"(\d{4})_\d{3}_(\d{2})_")


def label_from_name(path: str | Path) -> tuple[int, int] | None:
    """(pid, camera) written in an image's file name in one of the public layouts, or None."""
    name = os.path.basename(path)
    for pattern, pid_group, camera_group in ((MARKET_NAME, 1, 2), (SCENE_NAME, 1, 3), (MSMT_NAME, 1, 2)):
        found = pattern.match(name)
        if found:
            return int(found.group(pid_group)), int(found.group(camera_group))
    return None

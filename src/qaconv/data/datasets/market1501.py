"""Market-1501 and the Market-style folder parser (also used by CUHK03-NP and the custom `folder` format).

File names: `PPPP_cCsS_FFFFFF_NN.jpg` (pid, camera from 1, session from 1, frame, box index).
pid -1 (junk boxes) is dropped; pid 0 (distractors) stays in the gallery.
Time: per camera, the sessions are laid end to end; each session starts where the previous non-empty one
ended on the continuous axis, i.e. offset(next) = offset(prev) + (max frame of prev + offset(prev)), with the
maxima taken over train+query+gallery. This is the published code's rule (its offsets compound), kept so
that times equal the reference records; frames are converted to seconds at 25 fps.
"""

from __future__ import annotations

import os
from collections import defaultdict

from qaconv.data.datasets.base import (
    Record,
    ReIDDataset,
    register_dataset,
    relabel_sorted,
    report_unparsable,
)
from qaconv.data.datasets.names import MARKET_NAME
from qaconv.io import list_images

MARKET_SPLITS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
MARKET_FPS = 25.0


MARKET_LAYOUT = "bounding_box_train/, bounding_box_test/ and query/ with images named like 0002_c1s1_000451_03.jpg"


def session_offsets(keys: dict[tuple[int, int], int]) -> dict[tuple[int, int], int]:
    """Frame offset of each (camera, session) given the max frame of each; see the module docstring."""
    sessions: dict[int, list[int]] = defaultdict(list)
    for cam, sess in keys:
        sessions[cam].append(sess)
    offsets = {}
    for cam, sess_list in sessions.items():
        running = 0
        for sess in sorted(sess_list):
            offsets[(cam, sess)] = running
            running += keys[(cam, sess)] + running
    return offsets


def load_market_style(
    root: str,
    name: str,
    *,
    time_mode: str,
    skip_unparsable: bool,
    splits: dict[str, str] = MARKET_SPLITS,
    optional_splits: bool = False,
) -> ReIDDataset:
    """Parse the three Market-style split folders under `root`.

    time_mode: "market" (session and frame required, times from the session offsets at 25 fps),
    "none" (time 0), or "auto" (Market times if every file name has the session and frame, else 0).
    optional_splits: a missing split folder gives an empty split (else the caller checked them).
    """
    if time_mode == "market":
        expected = "PPPP_cCsS_FFFFFF_NN.jpg (e.g. 0002_c1s1_000451_03.jpg, camera from 1)"
    else:
        expected = "PID_cCAMERA... (e.g. 0001_c1_1.png, camera from 1)"
    parsed: dict[str, list[tuple[str, int, int, int, int]]] = {}
    bad: list[str] = []
    for split, sub in splits.items():
        folder = os.path.join(root, sub)
        if optional_splits and not os.path.isdir(folder):
            parsed[split] = []
            continue
        prefix = folder + os.sep
        rows = []
        for fname in list_images(folder):
            m = MARKET_NAME.match(fname)  # anchored: IMG_0001_c1.jpg does not parse
            if m is None or int(m.group(2)) < 1 or (time_mode == "market" and m.group(3) is None):
                bad.append(f"{sub}/{fname}")
                continue
            pid = int(m.group(1))
            if pid == -1:
                continue
            sess = int(m.group(3)) if m.group(3) is not None else -1
            frame = int(m.group(4)) if m.group(4) is not None else -1
            rows.append((prefix + fname, pid, int(m.group(2)) - 1, sess, frame))
        parsed[split] = rows
    report_unparsable(name, bad, expected, skip_unparsable)

    all_rows = [r for rows in parsed.values() for r in rows]
    has_time = time_mode == "market" or (time_mode == "auto" and bool(all_rows) and all(r[3] >= 0 for r in all_rows))
    times: dict[tuple[int, int], int] = {}
    if has_time:
        max_frame: dict[tuple[int, int], int] = {}
        for _, _, cam, sess, frame in all_rows:
            key = (cam, sess)
            if frame > max_frame.get(key, -1):
                max_frame[key] = frame
        times = session_offsets(max_frame)

    def records(rows, relabel):
        mapping = relabel_sorted(r[1] for r in rows) if relabel else None
        out = []
        for path, pid, cam, sess, frame in rows:
            t = (frame + times[(cam, sess)]) / MARKET_FPS if has_time else 0.0
            out.append(Record(path, mapping[pid] if relabel else pid, cam, t))
        return out

    return ReIDDataset(
        name,
        records(parsed["train"], True),
        records(parsed["query"], False),
        records(parsed["gallery"], False),
        root=root,
        has_time=has_time,
    )


@register_dataset(
    "market1501",
    layout=MARKET_LAYOUT,
    required=("bounding_box_train/", "bounding_box_test/", "query/"),
    aliases=("market", "market_1501", "market1501_v15.09.15"),
    folders=("market1501", "Market-1501-v15.09.15", "market", "Market-1501", "Market1501", "market-1501"),
    variants=("Market-1501-v15.09.15", "Market-1501", "market1501"),
    scan_children=True,
)
def load_market1501(root: str, *, combine_all: bool = False, skip_unparsable: bool = False) -> ReIDDataset:
    return load_market_style(root, "market1501", time_mode="market", skip_unparsable=skip_unparsable)

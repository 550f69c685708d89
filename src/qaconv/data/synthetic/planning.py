"""The plan of a data set: cameras, identities and families, the train/test split, and one `Shot` per
image (who, which camera, which frame, which folder, which file name), before any pixel is drawn.

Each part draws from its own stream (streams.py), so e.g. one identity's walk past the cameras
does not depend on how many images the others have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qaconv.config.tree import SynthConfig
from qaconv.data.synthetic.cameras import sample_camera
from qaconv.data.synthetic.identities import population
from qaconv.data.synthetic.streams import (
    KIND_DISTRACTOR,
    KIND_JUNK,
    STYLE_CODE,
    T_CAMERA,
    T_EXTRA,
    T_FAMILY,
    T_IMAGE,
    T_SPLIT,
    T_TRACK,
    stream,
)

TRAIN, GALLERY, QUERY = "bounding_box_train", "bounding_box_test", "query"
SPLIT_DIRS = (TRAIN, GALLERY, QUERY)
FPS = 25  # Market-1501 frame rate: time = frame / 25 s
MAX_FRAME = 999_999  # six digits in the file name


@dataclass
class Shot:
    """One image of the plan. pid 0 is a distractor, -1 junk; cam is 0-based; key names its random stream."""

    pid: int
    cam: int
    frame: int
    split: str = ""
    key: tuple[int, ...] = ()
    misaligned: bool = False  # a badly framed box (extra images only)
    name: str = ""


@dataclass(frozen=True)
class Plan:
    cameras: tuple[dict[str, Any], ...]
    identities: dict[int, dict[str, Any]]  # by pid, 1..num_ids
    families: list[list[int]]  # pids
    train: set[int]  # train pids
    shots: list[Shot]  # sorted by camera, frame, pid, key


def market_name(pid: int, cam: int, frame: int, index: int) -> str:
    """Market-1501 file name; cam is 0-based here and 1-based in the name, session is always 1."""
    pid_text = "-1" if pid < 0 else f"{pid:04d}"
    return f"{pid_text}_c{cam + 1}s1_{frame:06d}_{index:02d}.jpg"


def split_families(rng: np.random.Generator, families: list[list[int]], num_train: int) -> set[int]:
    """Train pids: whole families (so twins stay together) until exactly num_train ids."""
    train: set[int] = set()
    order = rng.permutation(len(families))
    for i in order:
        if len(train) + len(families[i]) <= num_train:
            train.update(families[i])
    for i in order:  # top up by splitting a family only when whole ones cannot fill the quota
        for pid in families[i]:
            if len(train) < num_train:
                train.add(pid)
    return train


def _walk(
    rng: np.random.Generator,
    cameras: tuple[dict[str, Any], ...],
    pid: int,
    cams: list[int],
    counts: np.ndarray,
    session_s: float,
) -> list[list[Shot]]:
    """A person walking past `cams` in order of their position (either way), at walking speed from a random
    moment of the session, leaving a short tracklet of counts[j] frames in cams[j]; one list of shots per
    camera, in walking order."""
    order = np.argsort([cameras[c]["position"] for c in cams])
    if rng.random() < 0.5:
        order = order[::-1]
    t, speed, pos = rng.uniform(0, session_s), rng.uniform(1.0, 1.6), None
    tracklets: list[list[Shot]] = []
    for j in order:
        cam = cams[j]
        if pos is not None:
            t += abs(cameras[cam]["position"] - pos) / speed + rng.uniform(0, 5)
        pos = cameras[cam]["position"]
        frame = int(t * FPS)
        tracklet = []
        for _ in range(int(counts[j])):
            tracklet.append(Shot(pid, cam, min(frame, MAX_FRAME)))
            frame += int(rng.integers(4, 30))
        t = frame / FPS
        tracklets.append(tracklet)
    return tracklets


def _identity_shots(
    config: SynthConfig, cameras: tuple[dict[str, Any], ...], pid: int, is_train: bool, session_s: float
) -> list[Shot]:
    """The images of one identity: how many, in which cameras and frames; a test identity gives one query
    per camera and the rest to the gallery."""
    rng = stream(config.seed, STYLE_CODE[config.style], T_TRACK, pid)
    num_cams = config.num_cams
    n = max(4, round(config.images_per_id * rng.uniform(0.6, 1.4)))
    k = int(rng.integers(2, min(num_cams, n // 2) + 1))
    cams = [int(c) for c in rng.choice(num_cams, k, replace=False)]
    counts = 2 + rng.multinomial(n - 2 * k, rng.dirichlet(np.ones(k)))
    tracklets = _walk(rng, cameras, pid, cams, counts, session_s)
    for tracklet in tracklets:
        query = -1 if is_train else int(rng.integers(len(tracklet)))
        for i, shot in enumerate(tracklet):
            shot.split = TRAIN if is_train else (QUERY if i == query else GALLERY)
    shots = [shot for tracklet in tracklets for shot in tracklet]
    for i, shot in enumerate(shots):
        shot.key = (T_IMAGE, pid, i)
    return shots


def _extra_shots(config: SynthConfig, gallery: int, session_s: float) -> list[Shot]:
    """Distractors (pid 0) and junk (pid -1) for the gallery, at random cameras and frames."""
    rng = stream(config.seed, STYLE_CODE[config.style], T_EXTRA)
    shots = []
    for kind, pid, fraction in (
        (KIND_DISTRACTOR, 0, config.distractor_fraction),
        (KIND_JUNK, -1, config.junk_fraction),
    ):
        for j in range(round(gallery * fraction)):
            cam = int(rng.integers(config.num_cams))
            frame = int(rng.integers(0, int(session_s * FPS)))
            shots.append(Shot(pid, cam, frame, GALLERY, (T_EXTRA, kind, j), bool(rng.random() < 0.6)))
    return shots


def _name_shots(shots: list[Shot]) -> None:
    """Sort the shots and give each its file name; Market's last field numbers the detections of one frame
    of one camera: 01, 02, ..."""
    shots.sort(key=lambda s: (s.cam, s.frame, s.pid, s.key))
    seen: dict[tuple[int, int], int] = {}
    for s in shots:
        index = seen.get((s.cam, s.frame), 0) + 1
        seen[(s.cam, s.frame)] = index
        s.name = market_name(s.pid, s.cam, s.frame, min(index, 99))


def make_plan(config: SynthConfig) -> Plan:
    """Everything about the data set but the pixels."""
    seed, code, style = config.seed, STYLE_CODE[config.style], config.style
    cam_rng = stream(seed, code, T_CAMERA)
    cameras = tuple(sample_camera(cam_rng, style, c) for c in range(config.num_cams))
    identities, families = population(stream(seed, code, T_FAMILY), style, config.num_ids)
    train = split_families(stream(seed, code, T_SPLIT), families, config.num_ids // 2)
    session_s = min(MAX_FRAME / FPS - 600, max(1800.0, 20.0 * config.num_ids))
    shots = []
    for pid in range(1, config.num_ids + 1):
        shots += _identity_shots(config, cameras, pid, pid in train, session_s)
    gallery = sum(s.split == GALLERY for s in shots)
    shots += _extra_shots(config, gallery, session_s)
    _name_shots(shots)
    return Plan(cameras, identities, families, train, shots)

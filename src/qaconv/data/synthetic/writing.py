"""Writing a data set: the output folder's checks, rendering in worker processes, JPEG files, meta.json.

The work goes to the workers as self-contained batches (the render job, one camera's background
and up to BATCH_IMAGES shots of it), so no state is shared between processes or kept between calls.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qaconv.config.tree import SynthConfig
from qaconv.cpus import usable_cpus
from qaconv.data.synthetic.backgrounds import background
from qaconv.data.synthetic.planning import FPS, GALLERY, SPLIT_DIRS, Plan, Shot, make_plan
from qaconv.data.synthetic.rendering import RenderJob, render_image
from qaconv.errors import QAConvError
from qaconv.folders import DATASET, check_output, mark
from qaconv.io import atomic_write_json, folder_swap

GENERATOR_VERSION = "1.0"
BATCH_IMAGES = 32  # images per task: enough to make sending a background to a worker cheap
_POOL_MIN_IMAGES = 200  # smaller sets render in this process


def check_dataset_out(out_dir: str | os.PathLike, overwrite: bool, option: str = "out_dir") -> Path:
    """Make sure a data set can be written to `out_dir` before any work (qaconv.folders.check_output): not a
    file, not another kind of qaconv folder, not a data set already unless `overwrite`, and nothing but a data
    set's files in a folder it replaces."""
    return check_output(out_dir, DATASET, option, overwrite=overwrite, own=(*SPLIT_DIRS, "meta.json"))


@dataclass(frozen=True)
class _Batch:
    """One task: shots of one camera, with the camera's background scene, and where to write them."""

    job: RenderJob
    out_dir: str
    quality: int
    background: np.ndarray
    shots: tuple[tuple[Shot, dict[str, Any] | None], ...]  # each with its identity (None for extra images)


def _batches(plan: Plan, job: RenderJob, out: Path, quality: int) -> list[_Batch]:
    by_camera: dict[int, list[tuple[Shot, dict[str, Any] | None]]] = {}
    for shot in plan.shots:
        by_camera.setdefault(shot.cam, []).append((shot, plan.identities.get(shot.pid)))
    batches = []
    for cam, shots in sorted(by_camera.items()):
        scene = background(job.style, job.cameras[cam], job.height, job.width)
        for i in range(0, len(shots), BATCH_IMAGES):
            batches.append(_Batch(job, str(out), quality, scene, tuple(shots[i : i + BATCH_IMAGES])))
    return batches


def _write_batch(batch: _Batch) -> int:
    """Render and write the images of one batch (runs in a worker process); returns how many."""
    for shot, ident in batch.shots:
        image = render_image(batch.job, batch.background, shot.cam, shot.key, ident, shot.misaligned)
        image.save(os.path.join(batch.out_dir, shot.split, shot.name), format="JPEG", quality=batch.quality)
    return len(batch.shots)


def _write_images(batches: list[_Batch], workers: int) -> None:
    """Render and write every batch: in this process (workers 0 or 1, or a small set), else in a pool."""
    if workers <= 1 or sum(len(b.shots) for b in batches) < _POOL_MIN_IMAGES:
        for batch in batches:
            _write_batch(batch)
        return
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ctx.Pool(workers) as pool:
        for _ in pool.imap_unordered(_write_batch, batches):
            pass


def _meta(plan: Plan, config: SynthConfig) -> dict[str, Any]:
    """The content of meta.json: options, counts per split folder, train pids and families (no timestamp)."""
    counts: dict[str, dict[str, int]] = {}
    for d in SPLIT_DIRS:
        shots = [s for s in plan.shots if s.split == d]
        counts[d] = {
            "images": len(shots),
            "ids": len({s.pid for s in shots if s.pid > 0}),
            "cameras": len({s.cam for s in shots}),
        }
    counts[GALLERY]["distractors"] = sum(s.pid == 0 for s in plan.shots)
    counts[GALLERY]["junk"] = sum(s.pid == -1 for s in plan.shots)
    return {
        "generator": "qaconv.data.synthetic",
        "version": GENERATOR_VERSION,
        "layout": "market1501",
        "seed": config.seed,
        "style": config.style,
        "num_ids": config.num_ids,
        "num_cams": config.num_cams,
        "images_per_id": config.images_per_id,
        "height": config.height,
        "width": config.width,
        "jpeg_quality": config.quality,
        "junk_fraction": config.junk_fraction,
        "distractor_fraction": config.distractor_fraction,
        "fps": FPS,
        "counts": counts,
        "train_ids": sorted(plan.train),
        "families": [f for f in plan.families if len(f) > 1],
    }


def generate(
    out_dir: str | os.PathLike,
    config: SynthConfig | None = None,
    *,
    workers: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the synthetic Market-1501-layout data set that `config` describes (default: `SynthConfig()`) to
    out_dir and return its meta.json content.

    config.num_ids identities (half train, half test, like Market), seen by config.num_cams cameras; each
    identity has about images_per_id images (uniform in [0.6, 1.4] x, at least 4) spread over 2..num_cams
    cameras, at least 2 per camera. Test identities give one query image per camera they appear in; the rest
    go to the gallery (bounding_box_test), which also gets round(gallery x distractor_fraction) distractors
    (pid 0000) and round(gallery x junk_fraction) junk images (pid -1). style 'A' or 'B' picks the domain.
    Images are height x width JPEGs. workers: rendering processes (None: every usable CPU; 0: in this
    process; the output does not depend on it). overwrite: replace a data set already in out_dir (a folder
    holding anything else is refused). The data set is written under a hidden name beside out_dir and
    renamed when complete (qaconv.io.folder_swap).
    """
    config = SynthConfig() if config is None else config
    if not isinstance(config, SynthConfig):
        raise QAConvError(f"config must be a SynthConfig, got {type(config).__name__}")
    if workers is not None and int(workers) < 0:
        raise QAConvError(f"workers must be >= 0 (0: in this process; None: every CPU), got {workers}")
    out = check_dataset_out(out_dir, overwrite)
    plan = make_plan(config)
    job = RenderJob(config.seed, config.style, config.height, config.width, plan.cameras)
    meta = _meta(plan, config)
    try:
        with folder_swap(out) as folder:  # an interrupted run leaves `out` as it was, never half a data set
            for split in SPLIT_DIRS:
                (folder / split).mkdir()
            _write_images(_batches(plan, job, folder, config.quality), usable_cpus() if workers is None else workers)
            atomic_write_json(folder / "meta.json", meta)
            mark(folder, DATASET)
    except OSError as exc:
        raise QAConvError(f"writing the data set to {out} failed: {exc}") from None
    return meta

"""Held-out Rank-1 and mAP while a run trains: the number that shows learning on graph-sampled batches.

On graph-sampled batches the triplet loss stays near its margin and the batch-hard accuracy low while the
model improves, because each batch holds a class's nearest classes (docs/training.md); only a held-out
ranking shows the progress. `Validator` scores the current model on held-out sets every `every` epochs
(and wherever the trainer asks: the last epoch, the switch to graph sampling): identities held out of
the training set (`hold_out_identities`, `--val-share`) or test sets (`--val-sets`). The trainer writes the
numbers into each epoch's statistics (log line, metrics.jsonl, TensorBoard, curves) and keeps best.pt by
their mean mAP.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from qaconv.config import EvaluationConfig
from qaconv.data.datasets import ReIDDataset
from qaconv.engine.evaluate import evaluate_dataset
from qaconv.engine.features import extract_feature_maps
from qaconv.errors import QAConvError

HELD_OUT = "held-out"


def hold_out_identities(records: Sequence[Any], share: float, seed: int) -> tuple[list[Any], ReIDDataset]:
    """(training records without the held-out identities, a query/gallery set of them).

    `share` of the identities (at least 2, leaving at least 2 to train on) is drawn with `seed`, the same on
    every process. Each held-out identity gives one query, an image of a camera that another of its images
    is not from (so it has a true match that the protocol keeps), and the rest of its images to the
    gallery; an identity seen by one camera only goes to the gallery whole, as a distractor."""
    pids = np.array(sorted({r.pid for r in records}))
    count = max(2, round(share * len(pids)))
    if len(pids) - count < 2:
        raise QAConvError(
            f"--val-share {share:g} leaves {len(pids) - count} of {len(pids)} training identities to train on "
            "(at least 2 are needed); lower it"
        )
    rng = np.random.default_rng([seed, 7])
    held = set(rng.permutation(pids)[:count].tolist())
    train = [r for r in records if r.pid not in held]
    by_pid: dict[int, list[Any]] = {}
    for r in records:
        if r.pid in held:
            by_pid.setdefault(r.pid, []).append(r)
    query, gallery = [], []
    for pid in sorted(by_pid):
        mine = by_pid[pid]
        cameras = {r.camid for r in mine}
        candidates = [i for i, r in enumerate(mine) if cameras - {r.camid}]
        pick = candidates[rng.integers(len(candidates))] if candidates else None
        query += [mine[pick]] if pick is not None else []
        gallery += [r for i, r in enumerate(mine) if i != pick]
    if not query:
        raise QAConvError(
            f"--val-share {share:g}: no held-out identity has images from two cameras, so none can be a query "
            "(the protocol ignores same-camera matches); use --val-sets instead"
        )
    return train, ReIDDataset(HELD_OUT, [], query, gallery, root="", has_time=False)


class Validator:
    """Rank-1 and mAP of the current model on each held-out set, every `every` epochs.

    Args:
        sets: {label: data set with query and gallery}.
        every: epochs between validations (`due`); the trainer also asks at the last epoch.
        height, width: the model's input size.
        batch_size, workers: feature extraction.
        device: where the model runs.
        dtype: scoring precision ('float32', 'bfloat16', 'float16' on CUDA, or 'auto').
    """

    def __init__(self, sets: dict[str, ReIDDataset], every: int, *, height: int, width: int, batch_size: int = 64,
                 workers: int = 0, device: torch.device | str = "cpu", dtype: str = "auto") -> None:  # fmt: skip
        if not sets:
            raise QAConvError("a Validator needs at least one held-out set")
        if every < 1:
            raise QAConvError(f"--val-every must be at least 1, got {every}")
        self.sets = sets
        self.every = every
        self.extract = {"height": height, "width": width, "batch_size": batch_size, "num_workers": workers}
        self.device = torch.device(device)
        self.options = EvaluationConfig(batch_size=batch_size, dtype=dtype)

    def due(self, epoch: int) -> bool:
        """Whether the schedule of validations includes epoch `epoch` (1-based)."""
        return epoch % self.every == 0

    def __call__(self, model: nn.Module, matcher: nn.Module) -> dict[str, Any]:
        """{"val": {label: {"rank1", "mAP"}}, "val_mAP": mean mAP over the sets, "val_seconds"}."""
        start = time.perf_counter()
        scores = {}
        for label, ds in self.sets.items():
            q_maps, g_maps = (
                extract_feature_maps(model, records, device=self.device, **self.extract)
                for records in (ds.query, ds.gallery)
            )
            raw = evaluate_dataset(matcher, q_maps, g_maps, ds, options=self.options, name=label, device=self.device)
            scores[label] = {"rank1": raw.metrics["raw"].rank(1), "mAP": float(raw.metrics["raw"].mAP)}
        return {
            "val": scores,
            "val_mAP": float(np.mean([s["mAP"] for s in scores.values()])),
            "val_seconds": time.perf_counter() - start,
        }

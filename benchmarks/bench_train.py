"""Training throughput with graph sampling (GS) and PK sampling, and the share of an epoch spent on the graph.

CPU: the demo's setting scaled to this CPU: ResNet-18 IBN-b to layer3 at 128x64, B=32, K=2, on
synthetic style A. CUDA (`--device cuda`): the paper's setting: ResNet-50 IBN-b to layer3 at 384x128,
B=64, K=2, float16 AMP. One full GS epoch has one iteration per class, as in the paper; the graph
(one image per class embedded, all class pairs scored with QAConv, running top-k) is built once at
its start.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import torch

from benchmarks.common import parse_args, results_name, save
from qaconv.commands.demo import demo_config, ensure_data
from qaconv.engine.train import Trainer

PAPER_MODEL = dict(arch="resnet50", ibn="b", final_layer="layer3", neck=128, height=384, width=128, batch_size=64)


def main() -> None:
    args = parse_args(__doc__, "fewer classes and a capped epoch")
    cuda = args.device.type == "cuda"
    num_ids = (1000 if cuda else 120) if args.quick else (1500 if cuda else 300)
    workers = min(12, os.cpu_count() or 2) if cuda else 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ensure_data(Path(tmp), num_ids, seed=0)
        base = demo_config(Path(tmp), quick=False, device=str(args.device), workers=workers, seed=0)
        base = dataclasses.replace(base, max_iters_per_epoch=0, testsets=[], **(PAPER_MODEL if cuda else {}))
        for sampler in ("gs", "pk"):
            trainer = Trainer(dataclasses.replace(base, sampler=sampler), Path(tmp) / sampler, quiet=True)
            trainer.train_epoch(1)  # warm-up: worker start, allocator, cuDNN autotuning, first graph
            stats = trainer.train_epoch(2)
            rows.append(
                {
                    "sampler": sampler,
                    "classes": trainer.sampler.num_classes,
                    "iterations": stats["batches"],
                    "images/s": stats["images_per_s"],
                    "epoch s": stats["seconds"],
                    "graph s": stats["graph_seconds"],
                    "graph share": stats["graph_seconds"] / stats["seconds"],
                }
            )
    rows.append(
        {
            "sampler": "gs vs pk",
            "images/s": rows[0]["images/s"] / rows[1]["images/s"],
            "graph share": rows[0]["graph share"],
        }
    )
    setting = (
        "ResNet-50 IBN-b, 384x128, B=64, K=2, float16 AMP"
        if cuda
        else f"ResNet-18 IBN-b, 128x64, B=32, K=2, {torch.get_num_threads()} threads"
    )
    save(
        results_name("train", args.device),
        rows,
        notes=f"{setting}, {num_ids // 2} synthetic classes, {workers} loader workers; second epoch of each run; "
        "target: graph share <= 15%",
    )


if __name__ == "__main__":
    main()

"""Data loading: images/s of the training pipeline (the paper's augmentation at 384 x 128) from JPEGs.

The images are a synthetic set (qaconv.data.synthetic, style A, 128 x 64 JPEGs at quality 90)
written to a temporary folder first. Cases, all in one run on the same files:

- decode only (baseline): PIL open + convert('RGB'), no transform, one process;
- train transform in-process: decode + the 8 augmentation steps + ToTensor, no DataLoader;
- the same with a generator made per image from its seed, as training's `SeededBatches` keys do;
- DataLoader (`make_loader`, batch 64, train transform) with 0 and 2 workers;
- DataLoader with the test transform (resize + ToTensor) and 0 workers.

ratio = images/s of the case / images/s of decode only. Loaders with workers are timed on their
second epoch (persistent workers already started). Run: `python -m benchmarks.bench_loading`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import best_time, save
from qaconv.data.loader import ImageDataset, load_image, make_loader, seed_everything
from qaconv.data.synthetic import SynthConfig, generate
from qaconv.data.transforms import build_test_transform, build_train_transform

HEIGHT, WIDTH = 384, 128


def images_per_second(fn, count: int, repeat: int) -> float:
    return count / best_time(fn, repeat=repeat, warmup=1)


def loader_rate(records, transform, workers: int, repeat: int) -> float:
    loader = make_loader(
        ImageDataset(records, transform), batch_size=64, shuffle=True, num_workers=workers, device="cpu"
    )

    def epoch():
        for batch in loader:
            assert batch[0].shape[1:] == (3, HEIGHT, WIDTH)

    return images_per_second(epoch, len(records), repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", type=int, default=100, help="synthetic identities (about 10 images each)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="40 ids, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.ids, args.repeat = 40, 1
    seed_everything(0)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate(tmp, SynthConfig(num_ids=args.ids, seed=0, style="A"))
        gen_s = time.perf_counter() - start
        paths = sorted(str(p) for p in Path(tmp).rglob("*.jpg"))
        records = [(p, 0, 0) for p in paths]
        n = len(paths)
        train = build_train_transform(HEIGHT, WIDTH, seed=0)

        def decode():
            for p in paths:
                load_image(p)

        def transform_only():
            for p in paths:
                train(load_image(p))

        def transform_seeded():
            for i, p in enumerate(paths):
                train(load_image(p), np.random.default_rng((0, 1, i // 64, i % 64)))

        rates = [
            ("decode only (baseline)", 0, images_per_second(decode, n, args.repeat)),
            ("decode + train transform, no DataLoader", 0, images_per_second(transform_only, n, args.repeat)),
            ("the same, per-image seeded generator", 0, images_per_second(transform_seeded, n, args.repeat)),
        ]
        for workers in (0, 2):
            rates.append(("DataLoader, train transform", workers, loader_rate(records, train, workers, args.repeat)))
        rates.append(
            ("DataLoader, test transform", 0, loader_rate(records, build_test_transform(HEIGHT, WIDTH), 0, args.repeat))
        )
    base = rates[0][2]
    rows = [
        {"case": case, "workers": w, "images": n, "images_per_s": round(rate, 1), "ratio": round(rate / base, 3)}
        for case, w, rate in rates
    ]
    save(
        "loading",
        rows,
        notes=f"{n} synthetic 128x64 JPEGs (generated in {gen_s:.1f} s), output {HEIGHT}x{WIDTH}, "
        f"batch 64, torch threads {torch.get_num_threads()}; ratio = images/s over decode only",
    )


if __name__ == "__main__":
    main()

"""Feature extraction: images/s of `extract_feature_maps` from JPEG files against the model alone.

Cases, one run on the same synthetic JPEGs (style A, 128 x 64): the model's forward on a batch
already in memory (the upper bound: no decoding, no transfer), `extract_feature_maps` with 0 and
N loader workers, and a naive loop that reads and embeds one image at a time (the baseline).
CPU: ResNet-18 IBN-b to layer3 at 128x64 (the demo's model), float32. CUDA (`--device cuda`): the
paper's ResNet-50 IBN-b to layer3 at 384x128 under float16 autocast (extraction's default there).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from benchmarks.common import best_time, parse_args, results_name, save
from qaconv.config import ModelConfig, SynthConfig
from qaconv.data import ImageDataset, build_test_transform, generate, open_dataset
from qaconv.engine.checkpoint import build_model
from qaconv.engine.features import autocast_context, extract_feature_maps


def main() -> None:
    args = parse_args(__doc__, "fewer images")
    device = args.device
    cuda = device.type == "cuda"
    if cuda:
        config = ModelConfig(arch="resnet50", ibn="b", final_layer="layer3", neck=128, height=384, width=128)
        amp, batch, workers = torch.float16, 128, min(12, os.cpu_count() or 2)
    else:
        config = ModelConfig(arch="resnet18", ibn="b", final_layer="layer3", neck=64, height=128, width=64)
        amp, batch, workers = None, 64, 2
    model, _ = build_model(config, pretrained=None)
    model = model.eval().to(device)
    num_ids = (400 if cuda else 40) if args.quick else (1000 if cuda else 100)
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "A", SynthConfig(num_ids=num_ids, num_cams=4, seed=0, style="A"))
        records = open_dataset(str(Path(tmp) / "A"), tmp).gallery
        count = len(records)
        resident = torch.rand(batch, 3, config.height, config.width, device=device)

        @torch.no_grad()
        def forward_only() -> None:
            for start in range(0, count, batch):
                with autocast_context(device, amp):
                    model(resident[: count - start]).cpu()

        def extract(num_workers: int):
            return lambda: extract_feature_maps(
                model, records, height=config.height, width=config.width, batch_size=batch,
                num_workers=num_workers, device=device, autocast_dtype=amp,
            )  # fmt: skip

        dataset = ImageDataset(records[: count // 4], build_test_transform(config.height, config.width))

        @torch.no_grad()
        def one_at_a_time() -> None:
            for i in range(len(dataset)):
                with autocast_context(device, amp):
                    model(dataset[i][0][None].to(device)).cpu()

        naive = len(dataset) / best_time(one_at_a_time, repeat=1, device=device)
        cases = [("forward only, batch in memory (upper bound)", forward_only, count)]
        cases += [(f"extract_feature_maps, {w} workers", extract(w), count) for w in (0, workers)]
        rows = [{"case": "one image at a time (baseline)", "images/s": naive, "vs baseline": 1.0}]
        for name, fn, n in cases:
            rate = n / best_time(fn, repeat=1 if args.quick else 2, device=device)
            rows.append({"case": name, "images/s": rate, "vs baseline": rate / naive})
    model_text = f"{config.arch} IBN-{config.ibn} to {config.final_layer}, {config.height}x{config.width}"
    save(
        results_name("features", device),
        rows,
        notes=f"{model_text}, {'float16 autocast' if cuda else 'float32'}, batch {batch}, {count} gallery JPEGs "
        f"of {num_ids} synthetic identities; maps returned to the CPU",
    )


if __name__ == "__main__":
    main()

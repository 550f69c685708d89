"""The demo's run: sizes, training config and synthetic data (two styles), shared by `qaconv demo` and the
benchmarks that reuse its setting.

The demo trains on style B and tests on the unseen style A, as a re-id researcher trains on MSMT17 and tests on
Market-1501: B is the harder style (darker, blurrier, lower-resolution cameras with more colour cast and
occlusion; docs/synthetic.md), and a model trained on the harder domain carries over better than the other
way round (measured in docs/training.md, "The demo").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from qaconv.config import TrainConfig, recipe_config
from qaconv.config.presets import DEMO


@dataclass(frozen=True)
class DemoSize:
    """How big a demo run is: identities of the training style and of the unseen one (half of each set are
    its training identities, half its test split), P x K warm-up epochs (one pass over the training images
    each), graph-sampling epochs after them (one iteration per class, at most `iters_per_epoch`), and how many
    of the last ones run at a tenth of the learning rate."""

    train_style_ids: int
    unseen_style_ids: int
    warmup_epochs: int
    gs_epochs: int
    iters_per_epoch: int
    decayed_epochs: int = 0

    @property
    def epochs(self) -> int:
        return self.warmup_epochs + self.gs_epochs


#: Full: 300 training identities, a warm-up epoch of 94 iterations: 17 x 94 + 6 x 150 = 2,498 iterations. Quick:
#: 150 training identities, a warm-up epoch of 47 iterations: 11 x 47 + 150 = 667. The unseen style's test split
#: holds 150 identities in both. docs/training.md ("The demo") has the measurements behind them.
SIZES = {"full": DemoSize(train_style_ids=600, unseen_style_ids=300, warmup_epochs=17, gs_epochs=6,
                          iters_per_epoch=150, decayed_epochs=2),
         "quick": DemoSize(train_style_ids=300, unseen_style_ids=300, warmup_epochs=11, gs_epochs=1,
                           iters_per_epoch=150)}  # fmt: skip


TRAIN_STYLE, UNSEEN_STYLE = "B", "A"
VALIDATE_EVERY = 3  # epochs; also after the warm-up and at the end (a few seconds each on 2 cores)


def demo_config(data: Path, size: DemoSize, device: str = "auto", workers: int = 1, seed: int = 0) -> TrainConfig:
    """The demo's training run on `data`/synth-B, tested on synth-B's own test split and on the unseen synth-A,
    which it also validates on every `VALIDATE_EVERY` epochs, so the unseen style's number is seen climbing."""
    trained, unseen = str(data / f"synth-{TRAIN_STYLE}"), str(data / f"synth-{UNSEEN_STYLE}")
    return recipe_config(
        {
            **DEMO,
            "data.dataset": trained,
            "evaluation.testsets": [trained, unseen],
            "validation.sets": [unseen],
            "validation.every": VALIDATE_EVERY,
            "sampler.gs_warmup": size.warmup_epochs,
            "schedule.max_epochs": size.epochs,
            "schedule.step_factor": size.epochs - size.decayed_epochs,  # fixed: decay after this epoch
            "schedule.max_iters_per_epoch": size.iters_per_epoch,
            "run.device": device,
            "run.workers": workers,
            "run.seed": seed,
        }
    )


def ensure_demo_data(
    data: Path, train_style_ids: int, unseen_style_ids: int, seed: int, height: int, width: int
) -> None:
    """Generate both styles once (the training style with seed + 1); later runs reuse them while their
    meta.json matches."""
    for style, num_ids in ((UNSEEN_STYLE, unseen_style_ids), (TRAIN_STYLE, train_style_ids)):
        ensure_synthetic_set(data / f"synth-{style}", num_ids, style, seed + (style == TRAIN_STYLE), height, width)


def ensure_synthetic_set(folder: Path, num_ids: int, style: str, seed: int, height: int, width: int) -> Path:
    """A synthetic set with 4 cameras in `folder`, generated unless its meta.json already records these options."""
    from qaconv.config import SynthConfig
    from qaconv.data.synthetic import generate

    meta = folder / "meta.json"
    wanted = {"num_ids": num_ids, "style": style, "seed": seed, "height": height, "width": width}
    if not meta.is_file() or any(json.loads(meta.read_text()).get(k) != v for k, v in wanted.items()):
        print(f"generating synthetic style {style}: {num_ids} identities -> {folder}", flush=True)
        config = SynthConfig(num_ids=num_ids, num_cams=4, seed=seed, style=style, height=height, width=width)
        generate(folder, config, overwrite=True)
    return folder

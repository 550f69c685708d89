"""Named recipes: the paper's (an ImageNet start), the warm start's, the from-scratch one, and the demo's.

A preset is a set of {dotted path: value} that replaces the paper's defaults; options the user gives (in a
config file or on the command line) win over the preset. `resolve_recipe` picks `warm` for a warm start,
`scratch` when a run has no pretrained weights, and the paper's recipe otherwise; docs/training.md gives
the reason and the measurement behind every departure from the paper.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from qaconv.config.files import flatten
from qaconv.config.flags import TRAIN_FLAGS, flag_names, namer
from qaconv.config.tree import TrainConfig, apply, get_path, validate

PAPER: dict[str, Any] = {}

#: A warm start from a trained model that is not an ImageNet backbone (`--init-from`, typically a qaconv run):
#: the paper's recipe with the matcher's logit scale kept at least 1, since graph-sampled batches put most
#: anchors of such a model back on the wrong side and the free scale then collapses to 0 (docs/training.md).
WARM: dict[str, Any] = {
    "optimization.logit_scale_floor": 1.0,
}

SCRATCH: dict[str, Any] = {
    "optimization.lr": 0.01,
    "optimization.loss": "pairwise",
    "optimization.freeze_bn": False,
    "optimization.backbone_lr_mult": 1.0,
    "optimization.logit_scale_floor": 1.0,
    "optimization.warmup_loss": "pairwise",
    "sampler.gs_warmup": "auto",
}

RECIPES = {"paper": PAPER, "warm": WARM, "scratch": SCRATCH}

#: `qaconv demo`'s run (with the scratch recipe): a small ResNet-18 IBN-b at 64 x 32 on a 2-core CPU.
DEMO: dict[str, Any] = {
    "recipe": "scratch",
    "model.arch": "resnet18",
    "model.ibn": "b",
    "model.final_layer": "layer2",
    "model.neck": 64,
    "model.height": 64,
    "model.width": 32,
    "model.pretrained": None,
    "sampler.batch_size": 32,
    "sampler.num_instances": 2,
    "evaluation.dtype": "float32",
}


def resolve_recipe(recipe: str, pretrained: str | None, init_from: str | None) -> str:
    """The recipe a run uses: `auto` is warm for a warm start (--init-from), scratch without pretrained
    weights, and the paper's from ImageNet (or a backbone weights file)."""
    if recipe != "auto":
        return recipe
    if init_from is not None:
        return "warm"
    return "scratch" if pretrained is None else "paper"


def departures(config: TrainConfig) -> str:
    """The values `config` uses for the options its recipe changes from the paper's, as one line (empty for
    the paper's recipe); an option the user set is shown with the user's value."""
    return ", ".join(f"{path.rsplit('.', 1)[-1]} {get_path(config, path)}" for path in RECIPES[config.recipe])


def recipe_config(values: Mapping[str, Any], name: Callable[[str], str] | None = None) -> TrainConfig:
    """A validated TrainConfig from the user's options ({dotted path, or `qaconv train` flag name: value}):
    the defaults of the recipe they choose (auto: scratch without pretrained weights), then their values.
    `config.recipe` records the recipe used."""
    values = flatten(TrainConfig, dict(values), "options")
    defaults = TrainConfig()
    recipe = resolve_recipe(
        str(values.get("recipe", "auto")),
        _none(values.get("model.pretrained", defaults.model.pretrained)),
        _none(values.get("model.init_from", defaults.model.init_from)),
    )
    name = name or namer(flag_names(TrainConfig, TRAIN_FLAGS))
    config = apply(TrainConfig(), RECIPES.get(recipe, {}))
    apply(config, values)
    config.recipe = recipe
    return validate(config, name)


def _none(value: Any) -> Any:
    return None if isinstance(value, str) and value.strip().lower() in ("none", "null", "") else value

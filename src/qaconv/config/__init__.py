"""Run configuration: a tree of dataclasses (tree), its flags (flags), files (files) and recipes (presets).

`ModelConfig` describes the network and input size (stored in every checkpoint, so a run folder rebuilds
its model). `TrainConfig` holds every option of `qaconv train` in sections; every option is a YAML key
(`optimization: {lr: 0.005}`) and a flag (`--lr`). docs/training.md describes the recipes.
"""

from qaconv.config.files import config_from_dict, config_to_dict, read_yaml, save_config
from qaconv.config.flags import SYNTH_FLAGS, TRAIN_FLAGS, TRAIN_NAMES, add_flags, flag, flag_names, given, namer
from qaconv.config.presets import RECIPES, departures, recipe_config, resolve_recipe
from qaconv.config.tree import (
    ComputeConfig,
    DataConfig,
    EvaluateConfig,
    EvaluationConfig,
    IndexConfig,
    InferenceConfig,
    ModelConfig,
    ModelOptions,
    OptimizationConfig,
    RunConfig,
    SamplerConfig,
    ScheduleConfig,
    SearchConfig,
    SynthConfig,
    TrainConfig,
    get_path,
    leaves,
    set_path,
    validate,
)

__all__ = [
    "RECIPES",
    "TRAIN_FLAGS",
    "TRAIN_NAMES",
    "DataConfig",
    "ComputeConfig",
    "EvaluateConfig",
    "EvaluationConfig",
    "IndexConfig",
    "InferenceConfig",
    "ModelConfig",
    "ModelOptions",
    "OptimizationConfig",
    "RunConfig",
    "SamplerConfig",
    "ScheduleConfig",
    "SearchConfig",
    "SYNTH_FLAGS",
    "SynthConfig",
    "TrainConfig",
    "add_flags",
    "config_from_dict",
    "config_to_dict",
    "departures",
    "flag",
    "flag_names",
    "get_path",
    "given",
    "leaves",
    "namer",
    "read_yaml",
    "recipe_config",
    "resolve_recipe",
    "save_config",
    "set_path",
    "validate",
]

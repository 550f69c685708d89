"""`qaconv train`: train QAConv-GS; every option of the config tree is a flag (qaconv.config).

The command turns its flags, a config file or a resumed run's options into a TrainConfig and calls
`qaconv.engine.run.run_training`, which checks everything before the first epoch (options, the device, the
output folder, the training images and the test sets), locks the run folder, trains and tests. `--resume
RUN` always works: it continues from the last finished epoch, starts again from RUN/config.yaml when no
epoch finished, and only evaluates when training had finished.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from qaconv.config import TRAIN_NAMES, TrainConfig, add_flags, given, namer, read_yaml
from qaconv.config.files import flatten
from qaconv.config.presets import recipe_config
from qaconv.config.tree import coerce_options
from qaconv.errors import QAConvError
from qaconv.folders import RUN, check_output
from qaconv.rundir import RunDir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train QAConv with graph sampling (the paper's recipe by default)")
    parser.add_argument("--out", help="run folder for checkpoints, logs and results")
    parser.add_argument("--config", help="YAML file of options (flags given on the command line win)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR where it stopped")
    parser.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    add_flags(parser, TrainConfig, TRAIN_NAMES)
    parser.set_defaults(func=run)


# ------------------------------------------------------------------------------------------------- options


def user_options(args: argparse.Namespace) -> dict[str, object]:
    """{dotted path: value} the user chose: the config file (or a resumed run's options), then the flags."""
    from qaconv.engine.run import saved_options

    values: dict[str, object] = {}
    if args.resume:
        mapping, name = saved_options(RunDir(args.resume))
        values["recipe"] = "paper"  # compat(0.2) unrecorded-recipe: runs made before recipes existed
    elif args.config:
        mapping, name = read_yaml(args.config), str(args.config)
    else:
        mapping, name = {}, ""
    values.update(coerce_options(TrainConfig, flatten(TrainConfig, mapping, name), lambda path: f"{name}: {path}"))
    values.update(coerce_options(TrainConfig, given(args), namer(TRAIN_NAMES)))
    return values


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """The recipe's defaults (auto: by where the first weights come from), then the user's options, validated."""
    return recipe_config(user_options(args), namer(TRAIN_NAMES))


def run(args: argparse.Namespace) -> int:
    from qaconv.engine.run import run_training

    if args.resume and args.out and Path(args.out) != Path(args.resume):
        raise QAConvError("--resume RUN_DIR continues in RUN_DIR; leave out --out or give the same folder")
    if not args.resume and not args.out:
        raise QAConvError("--out RUN_DIR is required (or --resume RUN_DIR)")
    out = Path(args.resume or args.out)
    check_output(out, RUN, "--resume" if args.resume else "--out")  # before the options are read
    run_training(out, resolve_config(args), resume=bool(args.resume), overwrite=args.overwrite)
    return 0

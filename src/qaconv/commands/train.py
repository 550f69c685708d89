"""`qaconv train`: train QAConv-GS; every TrainConfig key is a flag (underscores become dashes)."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import typing
from pathlib import Path

from qaconv.commands import comma_list
from qaconv.config import TrainConfig
from qaconv.errors import QAConvError

HELP = {
    "dataset": "training data set: a registered name found under --data-dir, or a folder/CSV path",
    "data_dir": "folder holding the data sets under their usual names (see docs/datasets.md)",
    "combine_all": "MSMT17 only: train on train+val+query+gallery ('MSMT (all)')",
    "testsets": "comma-separated test sets evaluated at the end ('' for none)",
    "workers": "data loading processes",
    "arch": "backbone: resnet18, resnet34, resnet50, resnet101 or resnet152",
    "ibn": "IBN-Net variant: a, b or none",
    "final_layer": "where the backbone is cut: layer2, layer3 or layer4",
    "neck": "channels of the 3x3 neck conv (0: no neck)",
    "height": "input height in pixels",
    "width": "input width in pixels",
    "pretrained": "'imagenet' (public checkpoint from the torch hub cache), a file, or 'none'",
    "sampler": "gs (graph sampling, the paper) or pk (P classes x K images)",
    "batch_size": "images per batch (B)",
    "num_instances": "images per class in a batch (K); B/K classes per batch",
    "loss": "triplet (batch-hard, QAConv 2.1) or pairwise (binary cross-entropy, QAConv 2.0)",
    "margin": "triplet margin on the matcher's logits",
    "lr": "learning rate of the neck (the backbone and matcher use multiples of it)",
    "backbone_lr_mult": "backbone learning rate as a multiple of --lr",
    "matcher_lr_mult": "matcher learning rate as a multiple of --lr (1 in the paper; small values keep the logit "
    "scale from collapsing when training without ImageNet weights)",
    "momentum": "SGD momentum (nesterov)",
    "weight_decay": "SGD weight decay, on every parameter",
    "clip_value": "gradient-norm clip, separately for backbone+neck and matcher (0: no clipping)",
    "step_factor": "adaptive schedule: decay once the loss is below this fraction of epoch 2's; >= 1: fixed step epoch",
    "max_epochs": "most epochs (the adaptive schedule usually stops earlier)",
    "max_iters_per_epoch": "cap on iterations per epoch (0: all; GS has one per class)",
    "accumulate": "average the gradients of N batches per SGD step (N processes of batch B = 1 process "
    "with --accumulate N)",
    "freeze_bn": "backbone in eval mode while training (frozen BN statistics), as in the paper",
    "min_size": "random occlusion: smallest square side as a fraction of the image width",
    "max_size": "random occlusion: largest square side as a fraction of the image width (0: off)",
    "device": "cpu, cuda, cuda:N, mps or auto",
    "amp": "auto (fp16 on CUDA, off on CPU), off, fp16 or bf16",
    "seed": "seed of every RNG (Python, NumPy, torch, samplers, augmentation)",
    "deterministic": "ask torch for deterministic kernels (slower on CUDA)",
    "eval_batch": "images per batch when extracting feature maps (GS graph and evaluation)",
    "prob_block": "query maps per scoring block at evaluation",
    "gal_block": "gallery maps per scoring block at evaluation",
    "eval_dtype": "scoring precision at evaluation: auto, float32, bfloat16 or float16",
    "rerank": "also report k-reciprocal re-ranking at the end",
    "tlift": "also report TLift (data sets with time information)",
}
RUN_FILES = ("checkpoint.pt", "best.pt", "config.yaml", "metrics.jsonl", "results.json", "training_curves.png")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One --flag per TrainConfig field; defaults are left unset so only given flags override."""
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(TrainConfig(), field.name)
        default = ",".join(default) if isinstance(default, list) else default
        text = f"{HELP.get(field.name, field.name.replace('_', ' '))} (default: {default})"
        kind = hints[field.name]
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text)
        elif kind == list[str]:
            parser.add_argument(flag, type=comma_list, default=argparse.SUPPRESS, help=text)
        else:
            base = {int: int, float: float}.get(kind, str)
            parser.add_argument(flag, type=base, default=argparse.SUPPRESS, help=text)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train QAConv with graph sampling (the paper's recipe by default)")
    parser.add_argument("--out", help="run folder for checkpoints, logs and results")
    parser.add_argument("--config", help="YAML file of options (flags given on the command line win)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR where it stopped")
    parser.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    parser.add_argument("--init-from", metavar="FILE", help="start from the published code's checkpoint.pth.tar")
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """The config file (or a resumed run's config.yaml), then the flags given on the command line."""
    from qaconv.config import config_from_dict, load_config

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    if overrides.get("pretrained", "").lower() == "none":
        overrides["pretrained"] = None
    if args.resume:
        base = load_config(TrainConfig, Path(args.resume) / "config.yaml")
    elif args.config:
        base = load_config(TrainConfig, args.config)
    else:
        base = TrainConfig()
    return config_from_dict(TrainConfig, {**dataclasses.asdict(base), **overrides}, source="command line")


def prepare_run_dir(out: Path, overwrite: bool) -> None:
    """Refuse to mix two runs in one folder unless --overwrite, which removes the old run's files."""
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise QAConvError(f"{out} already holds a run ({', '.join(existing)}); use --resume {out} or --overwrite")
    for name in existing:
        (out / name).unlink()
    if (out / "tensorboard").is_dir():
        shutil.rmtree(out / "tensorboard")


def run(args: argparse.Namespace) -> int:
    from qaconv.engine.distributed import init_distributed, shutdown
    from qaconv.engine.train import Trainer, evaluate_run

    if args.resume and args.out and Path(args.out) != Path(args.resume):
        raise QAConvError("--resume RUN_DIR continues in RUN_DIR; leave out --out or give the same folder")
    out = Path(args.resume or args.out or "")
    if not args.resume and not args.out:
        raise QAConvError("--out RUN_DIR is required (or --resume RUN_DIR)")
    config = resolve_config(args)
    ctx = init_distributed(config.device)
    try:
        if ctx.is_main and not args.resume:
            prepare_run_dir(out, args.overwrite)
        trainer = Trainer(config, out, ctx, resume=bool(args.resume), init_from=args.init_from)
        try:
            trainer.fit()
        except KeyboardInterrupt:
            if ctx.is_main:
                print(f"interrupted; the last finished epoch is saved: qaconv train --resume {out}")
            raise
        if ctx.is_main:
            evaluate_run(trainer)
    finally:
        shutdown(ctx)
    return 0

"""The config tree: one nested dataclass per concern, each field an `option` with its help and checks.

    TrainConfig
      recipe          paper | warm | scratch | auto (by where the first weights come from)
      model           ModelOptions: the network (ModelConfig) plus where its first weights come from
      data            training data and augmentation
      sampler         P x K or Graph Sampling batches
      optimization    loss, SGD, clipping, AMP, the from-scratch safeguards
      schedule        epochs and the adaptive learning-rate decay
      evaluation      how test sets are scored (shared with `qaconv evaluate`)
      validation      held-out Rank-1 / mAP during training
      run             device, loader processes, seed, the collapse guard

`ModelConfig` (the network alone) is what checkpoints store to rebuild a model. Defaults are the paper's
recipe (QAConv 2.1: the published code's main.py, docs/training.md); `qaconv.config.presets` holds the
other recipes and the demo.
`validate(config)` coerces every value to its field's type and checks its range, in one pass.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from qaconv.config.options import check, coerce, option, spec_of
from qaconv.cpus import default_workers
from qaconv.errors import QAConvError
from qaconv.image_reader import DEFAULT_MAX_PIXELS

RECIPE_NAMES = ("auto", "paper", "warm", "scratch")
INDEX_FIRST_STAGES = ("auto", "locations", "none")
SEARCH_FIRST_STAGES = ("auto", "none", "descriptors")
SHARD_BY = ("folder", "camera", "size")
EVAL_DTYPES = ("auto", "float32", "bfloat16", "float16")
RERANK_DISTS = ("neg_score", "sigmoid")


@dataclass
class ModelConfig:
    """The feature-map network and its input size; defaults are the paper's (QAConv 2.1)."""

    arch: str = option("resnet50", "backbone", choices=("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"))
    ibn: str | None = option("b", "IBN-Net variant: a, b or none", choices=("a", "b"))
    final_layer: str = option("layer3", "where the backbone is cut", choices=("layer2", "layer3", "layer4"))
    neck: int = option(128, "channels of the 3x3 neck conv (0: no neck)", low=0)
    height: int = option(384, "input height in pixels", low=16, high=4096)
    width: int = option(128, "input width in pixels", low=16, high=4096)

    def network(self) -> ModelConfig:
        """The network fields alone (what a checkpoint stores)."""
        return ModelConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ModelConfig)})


@dataclass
class ModelOptions(ModelConfig):
    """The network plus where its first weights come from."""

    pretrained: str | None = option(
        "imagenet", "'imagenet' (public checkpoint from the torch hub cache), a weights file, or 'none'"
    )
    init_from: str | None = option(
        None,
        "start from a trained model: a run folder or checkpoint of qaconv, or the published code's "
        "checkpoint.pth.tar (instead of --pretrained)",
    )


@dataclass
class DataConfig:
    """The training data and its augmentation (the published code's, docs/training.md)."""

    dataset: str = option("market1501", "training data set: a registered name under --data-dir, or a folder/CSV")
    data_dir: str = option("data", "folder holding the data sets under their usual names (docs/datasets.md)")
    combine_all: bool = option(False, "MSMT17 only: train on train+val+query+gallery ('MSMT (all)')")
    min_size: float = option(0.0, "random occlusion: smallest square side as a fraction of the width", low=0, high=1)
    max_size: float = option(
        0.8, "random occlusion: largest square side as a fraction of the width (0: off)", low=0, high=1
    )
    skip_bad_images: bool = option(
        False,
        "leave out training images that cannot be read, with a warning naming them (default: refuse to start, "
        "naming them)",
    )
    skip_unparsable: bool = option(
        False, "leave out training images whose file names do not parse, with a warning (default: refuse to start)"
    )


@dataclass
class SamplerConfig:
    """How batches are drawn: P = batch_size / num_instances classes of num_instances images each."""

    name: str = option("gs", "gs (graph sampling, the paper) or pk (P classes x K images)", choices=("gs", "pk"))
    batch_size: int = option(64, "images per batch (B)", low=2)
    num_instances: int = option(2, "images per class in a batch (K); B/K classes per batch", low=1)
    gs_warmup: str = option(
        "0",
        "graph sampling: epochs of random P x K batches before the graph is used (QAConv 2.0's pre-epochs), or "
        "auto: until an epoch's batch-hard accuracy reaches --gs-warmup-accuracy, at most --gs-warmup-share of "
        "--max-epochs",
        choices=("auto",),
        or_int=True,
        low=0,
    )
    gs_warmup_accuracy: float = option(
        0.5, "--gs-warmup auto: the batch-hard accuracy of a P x K epoch that starts graph sampling", above=0, high=1
    )
    gs_warmup_share: float = option(
        1.0,
        "--gs-warmup auto: the most warm-up epochs, as a share of --max-epochs (1: until the threshold, however "
        "long; a run that ends before it trained on P x K batches only)",
        above=0,
        high=1,
    )

    @property
    def warmup_epochs(self) -> int | None:
        """The fixed number of warm-up epochs, or None for an automatic switch."""
        return None if self.gs_warmup == "auto" else int(self.gs_warmup)


@dataclass
class OptimizationConfig:
    """Loss, SGD and its safeguards."""

    loss: str = option(
        "triplet",
        "triplet (batch-hard, QAConv 2.1) or pairwise (binary cross-entropy, QAConv 2.0)",
        choices=("triplet", "pairwise"),
    )
    margin: float = option(16.0, "triplet margin on the matcher's logits", above=0)
    warmup_loss: str = option(
        "same",
        "loss of the graph-sampling warm-up epochs (--gs-warmup): same (as --loss), triplet or pairwise",
        choices=("same", "triplet", "pairwise"),
    )
    lr: float = option(
        0.005, "learning rate of the neck (the backbone and matcher use multiples of it)", above=0, high=1
    )
    backbone_lr_mult: float = option(0.1, "backbone learning rate as a multiple of --lr", low=0, high=100)
    matcher_lr_mult: float = option(1.0, "matcher learning rate as a multiple of --lr", low=0, high=100)
    momentum: float = option(0.9, "SGD momentum (nesterov)", low=0, high=0.999)
    weight_decay: float = option(5e-4, "SGD weight decay, on every parameter", low=0, high=0.1)
    clip_value: float = option(
        8.0, "gradient-norm clip, separately for backbone+neck and matcher (0: no clipping)", low=0
    )
    accumulate: int = option(
        1,
        "average the gradients of N batches per SGD step (N processes of batch B = 1 process with --accumulate N)",
        low=1,
    )
    freeze_bn: bool = option(True, "backbone in eval mode while training (frozen BN statistics), as in the paper")
    amp: str = option(
        "auto", "auto (fp16 on CUDA, off on CPU), off, fp16 or bf16", choices=("auto", "off", "fp16", "bf16")
    )
    logit_scale_floor: float = option(
        0.0,
        "keep the matcher's logit scale (logit_bn weight) at least this after every step (0: free, the paper)",
        low=0,
        high=100,
    )
    lr_warmup_iters: int = option(0, "raise the learning rates linearly over this many first steps (0: none)", low=0)
    collapse_patience: int = option(
        200, "stop when the batch's scores have been constant for this many iterations in a row (0: never)", low=0
    )


@dataclass
class ScheduleConfig:
    """QAConv 2.1's adaptive epochs and learning-rate decay (docs/training.md#schedule-and-budget)."""

    step_factor: float = option(
        0.7,
        "adaptive schedule: decay once the loss is below this fraction of epoch 2's; >= 1: fixed step epoch",
        above=0,
    )
    max_epochs: int = option(60, "most epochs (the adaptive schedule usually stops earlier)", low=1)
    max_iters_per_epoch: int = option(0, "cap on iterations per epoch (0: all; GS has one per class)", low=0)


@dataclass
class EvaluationConfig:
    """How test sets are scored: `qaconv evaluate`'s options, and those of the test at the end of `qaconv train`
    (docs/evaluation.md). `testsets` are names of data sets under the data folder or folders."""

    testsets: list[str] = option(
        ["cuhk03_np_detected", "msmt17"],
        "comma-separated test sets: names under the data folder (qaconv datasets) or folders ('' for none)",
    )
    batch_size: int = option(64, "images per feature-extraction batch", low=1)
    prob_block: int = option(256, "query maps per scoring block", low=1)
    gal_block: int = option(4096, "gallery maps per scoring block", low=1)
    dtype: str = option(
        "auto",
        "precision of the forward, the stored maps and the scoring: auto (float16 on CUDA, as the published "
        "code; float32 elsewhere), float32, bfloat16 or float16 (CUDA only)",
        choices=EVAL_DTYPES,
    )
    rerank: bool = option(False, "also report k-reciprocal re-ranking")
    tlift: bool = option(False, "also report TLift (test sets with time information only; after re-ranking if given)")
    rerank_dist: str = option(
        "neg_score",
        "distance fed to re-ranking: neg_score (-score, the published code) or sigmoid (1 - sigmoid(score / 10))",
        choices=RERANK_DISTS,
    )
    k1: int = option(20, "re-ranking: k-reciprocal neighbours", low=1)
    k2: int = option(6, "re-ranking: query-expansion neighbours", low=1)
    lambda_value: float = option(0.3, "re-ranking: weight of the original distance", low=0, high=1)
    tau: float = option(100.0, "TLift: co-occurrence window in seconds", above=0)
    sigma: float = option(200.0, "TLift: time-difference scale in seconds", above=0)
    K: int = option(10, "TLift: top-K retrievals that define the pivots", low=1, high=100)
    alpha: float = option(0.2, "TLift: fusion regulariser ((w + alpha) * score)", low=0)
    save_scores: bool = option(False, "write <test>_score.npz and .mat (dense query x gallery scores)")
    report: int = option(
        0, "HTML + PNG report of the top-N ranked lists of the best and worst queries (0: none)", low=0
    )
    cache_dir: str | None = option(
        None,
        "keep extracted feature maps here, keyed by the weights, input size, dtype and each image's path, size "
        "and modification time",
    )


@dataclass
class ValidationConfig:
    """Held-out Rank-1 and mAP while training: the signal that shows learning on graph-sampled batches, whose
    loss stays near its margin while the model improves (docs/training.md)."""

    share: float = option(
        0.0, "hold out this share of the training identities and validate on them (0: none)", low=0, high=0.5
    )
    sets: list[str] = option([], "test sets to validate on, named as for --testsets ('' for none)")
    every: int = option(1, "epochs between validations (the last epoch and the switch to graph sampling too)", low=1)

    @property
    def enabled(self) -> bool:
        return self.share > 0 or bool(self.sets)


@dataclass
class ComputeConfig:
    """Where a command computes and how many processes read its images: the same flags, meaning the same, in
    every command."""

    device: str = option("auto", "cpu, cuda, cuda:N, mps or auto (CUDA when there is one)")
    workers: int = option(
        default_workers, "data loading processes (0: in this process)", low=0, high=256, shown="4, at most the CPUs"
    )


@dataclass
class RunConfig(ComputeConfig):
    """Where and how a training run executes."""

    seed: int = option(0, "seed of every RNG (Python, NumPy, torch, samplers, augmentation)", low=0, high=2**32 - 1)
    deterministic: bool = option(False, "ask torch for deterministic kernels (slower on CUDA)")


@dataclass
class EvaluateConfig:
    """Every option of `qaconv evaluate` besides its inputs and output (checkpoint, data folder, --out)."""

    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    run: ComputeConfig = field(default_factory=ComputeConfig)


@dataclass
class InferenceConfig(ComputeConfig):
    """The shared options of the commands that use a trained model on images (match, index, search, serve)."""

    workers: int = option(0, "image-decoding processes (0: in this process)", low=0, high=256)
    batch_size: int = option(64, "images per forward pass", low=1)
    max_image_pixels: int = option(
        DEFAULT_MAX_PIXELS, "largest image accepted, in pixels, checked from its header before decoding", low=1
    )


@dataclass
class IndexConfig(InferenceConfig):
    """`qaconv index build`'s options: the shared ones, the first stage, and shards."""

    first_stage: str = option(
        "auto",
        "locations: also give the index a first stage (each location vector as its nearest centroid) for fast "
        "search (docs/inference.md); none; auto: locations from 50,000 images when faiss is installed",
        choices=INDEX_FIRST_STAGES,
    )
    shard_by: str | None = option(
        None,
        "split the index into shards: one per top-level folder, per camera, or per --shard-size images",
        choices=SHARD_BY,
    )
    shard_size: int | None = option(None, "images per shard with --shard-by size", low=1)


@dataclass
class SearchConfig(InferenceConfig):
    """`qaconv search`'s options: the shared ones, and how many hits and how they are found."""

    topk: int = option(20, "results per query", low=1)
    first_stage: str = option(
        "auto",
        "how candidates are found: auto (the index's location first stage when it has one, else every entry), "
        "none (exhaustive QAConv over every entry), descriptors (the --shortlist nearest by global descriptor)",
        choices=SEARCH_FIRST_STAGES,
    )
    shortlist: int | None = option(
        None,
        "how many candidates of the first stage QAConv re-scores (default: the location first stage's own; with "
        "an index without one, N by global descriptor)",
        low=1,
    )


@dataclass
class TrainConfig:
    """Every option of `qaconv train`, as a tree of sections; defaults reproduce QAConv 2.1."""

    recipe: str = option(
        "auto",
        "paper (ImageNet start), warm (--init-from a trained model), scratch (random weights) or auto (the one "
        "that fits --pretrained and --init-from)",
        choices=RECIPE_NAMES,
    )
    model: ModelOptions = field(default_factory=ModelOptions)
    data: DataConfig = field(default_factory=DataConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    optimization: OptimizationConfig = field(default_factory=OptimizationConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    run: RunConfig = field(default_factory=RunConfig)


SYNTH_STYLES = ("A", "B")  # the generator's styles (qaconv.data.synthetic.styles; a test checks they agree)


@dataclass(frozen=True)
class SynthConfig:
    """Everything the bytes of a synthetic data set depend on: `qaconv synth`'s options (docs/synthetic.md,
    "Options"), with `qaconv.data.synthetic.generate(out_dir, config)`.

    How it is written (worker processes, replacing an earlier set) is up to `generate` and changes
    no byte. `style` is stored upper-case; a value of the wrong type or out of its range raises a one-line
    QAConvError naming the option.
    """

    num_ids: int = option(100, "identities, half train, half test (4-digit Market pids)", low=2, high=9999)
    num_cams: int = option(6, "cameras (one digit in Market file names)", low=2, high=9)
    seed: int = option(0, "random seed; the same seed writes the same bytes", low=0, high=2**32 - 1)
    style: str = option("A", "domain: A or B", choices=SYNTH_STYLES, any_case=True)
    images_per_id: int = option(10, "mean images per identity (2 cameras x 2 images at least)", low=4)
    height: int = option(128, "image height in pixels", low=32, high=4096)
    width: int = option(64, "image width in pixels", low=16, high=4096)
    quality: int = option(90, "JPEG quality", low=1, high=100)
    junk_fraction: float = option(0.1, "junk images (pid -1) per gallery image", low=0, high=1)
    distractor_fraction: float = option(0.1, "distractor images (pid 0000) per gallery image", low=0, high=1)

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name, value in coerce_options(SynthConfig, values, lambda path: path).items():
            object.__setattr__(self, name, value)


# ------------------------------------------------------------------------------------------------ walking


def is_section(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def leaves(cls: type, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field, Any]]:
    """(dotted path, field, type hint) of every option in the tree `cls`, in declaration order."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        if is_section(hints[f.name]):
            yield from leaves(hints[f.name], path + ".")
        else:
            yield path, f, hints[f.name]


def get_path(config: Any, path: str) -> Any:
    for part in path.split("."):
        config = getattr(config, part)
    return config


def set_path(config: Any, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        config = getattr(config, part)
    setattr(config, last, value)


def apply(config: Any, values: dict[str, Any]) -> Any:
    """Set {dotted path: value} on `config` in place (unvalidated); returns it."""
    for path, value in values.items():
        set_path(config, path, value)
    return config


def coerce_options(cls: type, values: dict[str, Any], name: Any) -> dict[str, Any]:
    """{dotted path: value} of the tree `cls` with every value coerced to its option's type and checked;
    `name(path)` is how an option is called in messages."""
    fields = {path: (f, kind) for path, f, kind in leaves(cls)}
    out = {}
    for path, value in values.items():
        f, kind = fields[path]
        out[path] = coerce(value, kind, name(path), spec_of(f))
        check(out[path], spec_of(f), name(path))
    return out


def validate(config: Any, name: Any = None) -> Any:
    """Coerce every option of `config` to its type and check its range and the rules that tie options
    together, in place; returns `config`. `name(path)` is how an option is called in messages."""
    name = name or (lambda path: path)
    values = coerce_options(type(config), {path: get_path(config, path) for path, _, _ in leaves(type(config))}, name)
    for path, value in values.items():
        set_path(config, path, value)
    if isinstance(config, TrainConfig):
        _check_train(config, name)
    return config


def _check_train(config: TrainConfig, name: Any) -> None:
    s, d = config.sampler, config.data
    if s.batch_size % s.num_instances:
        raise QAConvError(
            f"{name('sampler.batch_size')}: batch_size {s.batch_size} must be a positive multiple of "
            f"num_instances (K) {s.num_instances}"
        )
    if s.batch_size < 2 * s.num_instances:
        raise QAConvError(
            f"{name('sampler.batch_size')}: a batch of {s.batch_size} with {s.num_instances} images per class holds "
            f"one class, so no negatives; use at least {2 * s.num_instances}"
        )
    if d.max_size > 0 and d.min_size >= d.max_size:
        raise QAConvError(f"{name('data.min_size')} ({d.min_size:g}) must be below --max-size ({d.max_size:g})")

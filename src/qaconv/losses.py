"""Losses on the QAConv score matrix of a batch against itself, registered by their `--loss` name.

`TripletLoss` is QAConv 2.1's batch-hard triplet loss on raw logits (margin 16; the matcher's
logit batch norm learns the scale). `PairwiseMatchingLoss` is QAConv 2.0's binary cross-entropy
over all B x B pairs. Both return per-anchor losses and accuracies (the trainer averages the
finite losses) and keep the spread (standard deviation) of the batch's scores in `last_spread`,
which the training guard watches for a collapse. `WarmupLoss` trains with one of them during the
graph-sampling warm-up epochs and the other after them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qaconv.errors import QAConvError

# The published code's mask value: finite, so an anchor without positives or negatives gets loss 0.
_FAR = 1e15

LOSSES: dict[str, type] = {}


def register_loss(name: str) -> Callable[[type], type]:
    """Class decorator: make the loss available as `--loss name`; the class builds itself with
    `from_options(matcher, margin=...)` (a loss without a margin ignores it)."""

    def decorator(cls: type) -> type:
        LOSSES[name] = cls
        cls.name = name
        return cls

    return decorator


def build_loss(name: str, matcher: nn.Module, *, margin: float = 16.0) -> Criterion:
    """The registered loss `name` on `matcher` (`margin`: the triplet loss's, on the matcher's logits)."""
    if name not in LOSSES:
        raise QAConvError(f"--loss must be one of {', '.join(LOSSES)}, got {name!r}")
    return LOSSES[name].from_options(matcher, margin=margin)


def _hardest_pairs(score: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """(lowest score of another same-label sample, highest score of a different-label sample) per anchor."""
    score = score.float()
    same = labels[:, None] == labels[None, :]
    self_pair = torch.eye(len(labels), dtype=torch.bool, device=score.device)
    min_pos = score.masked_fill(~same | self_pair, _FAR).min(dim=1).values
    max_neg = score.masked_fill(same, -_FAR).max(dim=1).values
    return min_pos, max_neg


def _check_batch(features: Tensor, labels: Tensor) -> None:
    if labels.dim() != 1 or len(labels) != len(features):
        raise QAConvError(
            f"labels must be a 1-D tensor with one label per feature map; got {list(labels.shape)} "
            f"for {len(features)} feature maps"
        )


class Criterion(nn.Module):
    """What the Trainer trains with: forward(feature maps [B,C,H,W], labels [B]) -> (loss [B], accuracy [B]).

    `matcher` is the QAConv matcher it scores pairs with (the Trainer optimises and checkpoints it), `name`
    how logs call the loss, `last_spread` the standard deviation of the last batch's scores (the training
    guard watches it for a collapse; None when unknown), and `set_epoch(epoch, warmup)` is called before
    every epoch (1-based; `warmup`: whether it is a warm-up epoch of the graph sampler).
    """

    name = ""
    last_spread: Tensor | None = None

    def __init__(self, matcher: nn.Module) -> None:
        super().__init__()
        self.matcher = matcher

    def set_epoch(self, epoch: int, warmup: bool) -> None:
        """Epoch `epoch` is about to start; a loss that changes over training overrides this."""


class _ScoreLoss(Criterion):
    """A loss on `matcher(features, features)`; remembers the spread of the last score matrix."""

    def scores(self, features: Tensor, labels: Tensor) -> Tensor:
        _check_batch(features, labels)
        score = self.matcher(features, features).float()
        self.last_spread = score.detach().std()
        return score


@register_loss("triplet")
class TripletLoss(_ScoreLoss):
    """Batch-hard triplet loss on matcher logits: max(0, hardest negative - hardest positive + margin).

    forward(features [B,C,H,W], labels [B]) -> (loss [B], accuracy [B]); accuracy is 1 where the
    hardest positive scores at least as high as the hardest negative.
    """

    def __init__(self, matcher: nn.Module, margin: float = 16.0) -> None:
        super().__init__(matcher)
        self.margin = margin

    @classmethod
    def from_options(cls, matcher: nn.Module, *, margin: float = 16.0) -> TripletLoss:
        return cls(matcher, margin)

    def forward(self, features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        min_pos, max_neg = _hardest_pairs(self.scores(features, labels), labels)
        loss = F.relu(max_neg - min_pos + self.margin)
        return loss, (min_pos >= max_neg).float().detach()


@register_loss("pairwise")
class PairwiseMatchingLoss(_ScoreLoss):
    """QAConv 2.0's loss: binary cross-entropy with logits over all B x B pairs, summed per anchor.

    Same-label pairs (the diagonal included) are positives. Returns (loss [B], accuracy [B]) with
    the accuracy of `TripletLoss`.
    """

    @classmethod
    def from_options(cls, matcher: nn.Module, *, margin: float = 16.0) -> PairwiseMatchingLoss:
        """No margin: binary cross-entropy needs none."""
        return cls(matcher)

    def forward(self, features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        score = self.scores(features, labels)
        target = (labels[:, None] == labels[None, :]).float()
        loss = F.binary_cross_entropy_with_logits(score, target, reduction="none").sum(dim=1)
        min_pos, max_neg = _hardest_pairs(score.detach(), labels)
        return loss, (min_pos >= max_neg).float()


class WarmupLoss(Criterion):
    """`warmup` in the graph sampler's P x K warm-up epochs, `main` after them.

    From random weights the batch-hard triplet loss learns slowly while most anchors are wrong: only
    the hardest pair of each anchor gives a gradient. QAConv 2.0's pairwise loss uses all B x B pairs,
    so a warm-up with it gives graph sampling better features to start from (docs/training.md). The
    trainer calls `set_epoch` before every epoch; both losses share one matcher.
    """

    def __init__(self, warmup: Criterion, main: Criterion) -> None:
        if warmup.matcher is not main.matcher:
            raise QAConvError("the warm-up loss and the main loss must share one matcher")
        super().__init__(main.matcher)
        self.warmup, self.main = warmup, main
        self.in_warmup = True

    def set_epoch(self, epoch: int, warmup: bool) -> None:
        self.in_warmup = warmup

    @property
    def active(self) -> Criterion:
        return self.warmup if self.in_warmup else self.main

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.active.name

    @property
    def last_spread(self) -> Tensor | None:  # type: ignore[override]
        return self.active.last_spread

    def forward(self, features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return self.active(features, labels)

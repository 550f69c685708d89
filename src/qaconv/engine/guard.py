"""A guard that stops a training run which has collapsed or diverged, before it wastes hours or saves garbage.

Collapse: with logits = g * z + b (the matcher's logit batch norm), the batch-hard triplet loss of a
violated anchor is g * (z_neg - z_pos) + margin. While most anchors are violated (random features, hard
batches) its gradient in g is positive, so SGD drives g to 0: every pair gets the same score, the loss
sits at the margin and every gradient vanishes. The guard watches the spread (standard deviation) of
the batch's score matrix and stops the run when its mean over the last `collapse_patience` iterations
is below `min_spread` (a healthy run starts at about 1, the logit batch norm's unit scale, and grows).

Divergence: a run whose losses are not finite for `max_skipped` batches in a row, or whose weights are
no longer finite (checked every `check_every` steps and before every checkpoint), stops at once, so no
checkpoint ever holds non-finite weights.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from qaconv.errors import QAConvError

COLLAPSE_FIX = (
    "without ImageNet weights use the from-scratch recipe (--recipe scratch, the default with --pretrained none) "
    "or keep the logit scale up with --logit-scale-floor 1; --collapse-patience 0 turns this check off"
)
DIVERGENCE_FIX = "lower --lr (or --matcher-lr-mult), or lengthen --lr-warmup-iters; the last checkpoint is kept"


def all_finite(modules: Iterable[nn.Module]) -> bool:
    """Whether every parameter and buffer of `modules` is finite (one fused reduction, one sync)."""
    tensors = [t for m in modules for t in (*m.parameters(), *m.buffers()) if t.is_floating_point()]
    if not tensors:
        return True
    norms = torch._foreach_norm([t.detach() for t in tensors], 1)
    return bool(torch.isfinite(torch.stack([n.float() for n in norms]).sum()))


class TrainingGuard:
    """Raises a one-line QAConvError naming the cause and the options that fix it.

    Args:
        collapse_patience: iterations over which the mean score spread must stay below `min_spread` to stop
            the run (0: never).
        min_spread: the score spread (std of the batch's score matrix) below which scores count as constant.
        max_skipped: batches in a row without a finite loss that stop the run.
        check_every: SGD steps between two checks that the weights are finite.
    """

    def __init__(
        self, collapse_patience: int = 200, min_spread: float = 0.05, max_skipped: int = 50, check_every: int = 10
    ) -> None:
        self.collapse_patience = collapse_patience
        self.min_spread = min_spread
        self.max_skipped = max_skipped
        self.check_every = check_every
        self.spreads: deque[float] = deque(maxlen=max(collapse_patience, 1))
        self.skipped = 0

    def after_batch(self, trainer: Any, epoch: int, iteration: int, loss: float, skipped: bool) -> None:
        """Called by the Trainer after every batch."""
        where = f"epoch {epoch}, iteration {iteration}"
        self.skipped = self.skipped + 1 if skipped else 0
        if self.skipped >= self.max_skipped:
            raise QAConvError(
                f"training diverged: the loss was not finite for {self.skipped} batches in a row ({where}); "
                "lower --lr, or use --amp off"
            )
        if skipped or trainer.iteration % self.check_every == 0:
            self.check_weights(trainer.model, trainer.matcher, epoch, where)
        spread = trainer.criterion.last_spread
        if self.collapse_patience and spread is not None and not skipped:
            self.spreads.append(float(spread))
            mean = sum(self.spreads) / len(self.spreads)
            if len(self.spreads) == self.collapse_patience and mean < self.min_spread:
                raise QAConvError(
                    f"training collapsed ({where}): the matcher gives every pair of a batch nearly the same score "
                    f"(mean spread {mean:.2g} < {self.min_spread:g} over {len(self.spreads)} iterations), so the "
                    f"loss ({loss:.3f}) no longer teaches anything; {COLLAPSE_FIX}"
                )

    def check_weights(self, model: nn.Module, matcher: nn.Module, epoch: int, where: str | None = None) -> None:
        """Raise when a weight or buffer of the model or matcher is not finite."""
        if not all_finite([model, matcher]):
            raise QAConvError(
                f"training diverged ({where or f'epoch {epoch}'}): the weights are no longer finite; {DIVERGENCE_FIX}"
            )

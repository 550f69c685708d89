"""When graph sampling starts: the random P x K epochs that come first (QAConv 2.0's pre-epochs).

From random weights a class's nearest classes under the model are noise, and batches of near classes are
too hard to learn from; random P x K batches teach faster until the features separate people. `GraphWarmup`
says which epochs are warm-up epochs, in one of two ways:

- fixed (`GraphWarmup(epochs=N)`): epochs 1..N, as `--gs-warmup N` (0: none, the paper);
- automatic (`GraphWarmup.auto(...)`, `--gs-warmup auto`): every epoch until one ends with the batch-hard
  accuracy on its P x K batches at `accuracy` or above (random batches are mostly solved: harder ones are
  needed), or at `max_epochs` (its share of the budget); graph sampling starts with the next epoch.

The sampler asks `in_warmup(epoch)` when it builds an epoch; the trainer reports each epoch's accuracy to
`end_epoch` and saves `state_dict()` with its checkpoints, so a resumed run keeps the switch it made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from qaconv.errors import QAConvError


@dataclass
class GraphWarmup:
    """The warm-up epochs before graph sampling: `epochs` of them, or None while an automatic switch is due.

    Epochs are 1-based; `reason` says why an automatic warm-up ended."""

    epochs: int | None = 0
    accuracy: float = 0.5
    max_epochs: int = 0
    reason: str = ""

    def __post_init__(self) -> None:
        if self.epochs is not None and self.epochs < 0:
            raise QAConvError(f"warm-up epochs must be >= 0, got {self.epochs}")

    @classmethod
    def auto(cls, accuracy: float = 0.5, max_epochs: int = 1) -> GraphWarmup:
        """An automatic switch (see the module's docstring); at least one warm-up epoch."""
        if not 0 < accuracy <= 1 or max_epochs < 1:
            raise QAConvError(
                f"automatic warm-up: accuracy must be in (0, 1] and max_epochs >= 1, got {accuracy} and {max_epochs}"
            )
        return cls(epochs=None, accuracy=accuracy, max_epochs=max_epochs)

    @property
    def decided(self) -> bool:
        return self.epochs is not None

    def in_warmup(self, epoch: int) -> bool:
        """Whether epoch `epoch` (1-based) trains on random P x K batches."""
        return self.epochs is None or epoch <= self.epochs

    def end_epoch(self, epoch: int, accuracy: float) -> str | None:
        """Record a finished epoch's batch-hard accuracy; returns why graph sampling starts with the next epoch
        when this epoch ended the warm-up (a fixed one's last epoch, or an automatic one's switch), else None."""
        if self.decided:
            return f"after its {_epochs(self.epochs)}" if self.epochs and epoch == self.epochs else None
        if accuracy >= self.accuracy:
            reason = f"batch-hard accuracy {accuracy:.0%} reached {self.accuracy:.0%}"
        elif epoch >= self.max_epochs:
            reason = f"at its bound of {_epochs(self.max_epochs)}, batch-hard accuracy {accuracy:.0%}"
        else:
            return None
        self.epochs, self.reason = epoch, reason
        return reason

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the switch a run made (its criterion comes from the run's options, not from `state`)."""
        self.epochs = state.get("epochs")
        self.reason = state.get("reason", "")


def _epochs(count: int) -> str:
    return f"{count} epoch{'s' if count != 1 else ''}"

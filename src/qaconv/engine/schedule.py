"""QAConv 2.1's adaptive learning-rate and epoch schedule (the paper's, docs/training.md#schedule-and-budget).

Adaptive (step_factor < 1): the mean loss of epoch 2 is the reference; after the first epoch whose
loss falls below step_factor x reference, every learning rate is multiplied by 0.1 once and training
stops e // 2 epochs later (capped at max_epochs). After graph-sampling warm-up epochs the reference is
the second epoch of the paper's method (`start_method` tells where it starts; `reference_epoch` 0: not
known yet). Fixed (step_factor >= 1): one decay after epoch int(step_factor) and max_epochs epochs in all
(`--step-factor 10 --max-epochs 15` is QAConv 2.0's).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from qaconv.errors import QAConvError

DECAY = 0.1


@dataclass
class AdaptiveSchedule:
    step_factor: float = 0.7
    max_epochs: int = 60
    base_loss: float | None = None
    lr_stepped: bool = False
    final_epochs: int = 0
    reference_epoch: int = 2

    def __post_init__(self) -> None:
        if self.step_factor <= 0:
            raise QAConvError(f"--step-factor must be positive, got {self.step_factor}")
        if self.max_epochs < 1:
            raise QAConvError(f"--max-epochs must be at least 1, got {self.max_epochs}")
        if not self.final_epochs:
            self.final_epochs = self.max_epochs

    @property
    def fixed(self) -> bool:
        return self.step_factor >= 1

    def end_epoch(self, epoch: int, loss: float) -> bool:
        """Record epoch `epoch`'s (1-based) mean loss; True when the learning rates must decay now."""
        if self.lr_stepped:
            return False
        if self.fixed:
            self.lr_stepped = epoch >= int(self.step_factor)
            return self.lr_stepped
        if epoch == self.reference_epoch:
            self.base_loss = float(loss)
        if self.base_loss is not None and loss < self.step_factor * self.base_loss:
            self.lr_stepped = True
            self.final_epochs = min(self.max_epochs, epoch + epoch // 2)
        return self.lr_stepped

    def start_method(self, epoch: int) -> None:
        """The paper's method (graph sampling) starts at epoch `epoch`: its second epoch is the reference."""
        self.reference_epoch = epoch + 1

    def finished(self, epoch: int) -> bool:
        """True when epoch `epoch` (1-based) was the last one."""
        return epoch >= self.final_epochs

    def set_max_epochs(self, max_epochs: int) -> None:
        """A new cap (a resumed run given another --max-epochs): an end set by the cap moves with it,
        an end the adaptive rule chose stays."""
        if max_epochs < 1:
            raise QAConvError(f"--max-epochs must be at least 1, got {max_epochs}")
        if self.final_epochs == self.max_epochs:
            self.final_epochs = max_epochs
        self.max_epochs = max_epochs

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)

"""`Side`: the labels of one side of an evaluation (queries or gallery) travelling together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from qaconv.errors import QAConvError


@dataclass(frozen=True)
class Side:
    """Person ids, camera ids and (when the test set has them) times in seconds of the query or the
    gallery images, as 1-D arrays of one length. `Side.of` checks them against the number of maps."""

    pids: np.ndarray
    cams: np.ndarray
    times: np.ndarray | None = None

    @classmethod
    def of(cls, name: str, size: int, pids: Any, cams: Any, times: Any = None) -> Side:
        """Arrays (lists, NumPy or torch) for `size` feature maps; `name` ('q' or 'g') prefixes the
        array names in the error raised when a length disagrees."""
        arrays = [_array(pids, f"{name}_pids", size), _array(cams, f"{name}_camids", size)]
        return cls(*arrays, None if times is None else _array(times, f"{name}_times", size))

    @classmethod
    def from_records(cls, records: Sequence[Any], with_times: bool) -> Side:
        """The labels of data-set records (`.pid`, `.camid`, `.time`)."""
        return cls(
            np.array([r.pid for r in records]),
            np.array([r.camid for r in records]),
            np.array([r.time for r in records], dtype=np.float64) if with_times else None,
        )

    def __len__(self) -> int:
        return len(self.pids)

    def rows(self, start: int, stop: int) -> Side:
        """The labels of items start..stop-1."""
        times = None if self.times is None else self.times[start:stop]
        return Side(self.pids[start:stop], self.cams[start:stop], times)


def _array(values: Any, name: str, length: int) -> np.ndarray:
    arr = np.asarray(values.detach().cpu() if isinstance(values, Tensor) else values).reshape(-1)
    if arr.size != length:
        raise QAConvError(f"{name} has {arr.size} entries but there are {length} feature maps")
    return arr

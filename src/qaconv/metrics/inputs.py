"""Input handling shared by the metrics: arrays from tensors or lists, and label lengths against a matrix."""

from __future__ import annotations

from typing import Any

import numpy as np

from qaconv.errors import QAConvError


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy array from a torch tensor (any device), an array or a sequence."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def flat_labels(matrix: str, shape: tuple[int, int], rows: dict[str, Any], cols: dict[str, Any]) -> list[np.ndarray]:
    """1-D label arrays (rows' then cols', in the given order), each checked against the matrix's
    rows or columns; a mismatch names the label, the matrix and its shape."""
    arrays = []
    for labels, size, what in ((rows, shape[0], "rows"), (cols, shape[1], "columns")):
        for label, values in labels.items():
            arr = to_numpy(values).reshape(-1)
            if arr.size != size:
                raise QAConvError(
                    f"{label} has {arr.size} entries but {matrix} has {size} {what} (shape {tuple(shape)})"
                )
            arrays.append(arr)
    return arrays

"""Data: public re-id data sets (records of path, pid, camid, time), transforms, samplers and loaders."""

# --- data sets (qaconv.data.datasets) ---
from qaconv.data.datasets import (
    Record,
    ReIDDataset,
    create_dataset,
    dataset_names,
    find_dataset_root,
    register_dataset,
)

# --- synthetic data, transforms, loaders and samplers: exports to be merged here by the lead ---

__all__ = [
    "Record",
    "ReIDDataset",
    "create_dataset",
    "dataset_names",
    "find_dataset_root",
    "register_dataset",
]

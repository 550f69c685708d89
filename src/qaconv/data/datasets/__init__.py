"""Public re-id data set loaders: one module per data set, registered by name in `base`.

>>> ds = create_dataset("market1501", "DATA/market1501")     # or an alias such as "market"
>>> ds.train[0]                                                # Record(path, pid, camid, time)
"""

import importlib

from qaconv.data.datasets.base import (
    DatasetSpec,
    Record,
    ReIDDataset,
    SplitStats,
    closest_layout,
    create_dataset,
    dataset_names,
    find_dataset_root,
    get_dataset_spec,
    locate_dataset,
    open_dataset,
    register_dataset,
)

# Importing a module registers its data sets; this order is the order of `dataset_names()`.
_MODULES = ("market1501", "cuhk03", "msmt17", "randperson", "clonedperson", "custom")
for _module in _MODULES:
    importlib.import_module(f"{__name__}.{_module}")

__all__ = [
    "DatasetSpec",
    "Record",
    "ReIDDataset",
    "SplitStats",
    "closest_layout",
    "create_dataset",
    "dataset_names",
    "find_dataset_root",
    "get_dataset_spec",
    "locate_dataset",
    "open_dataset",
    "register_dataset",
]

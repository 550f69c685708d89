"""CUHK03-NP (the new 767/700 protocol release), detected and labeled boxes.

Each variant has the Market-style folders (bounding_box_train/, bounding_box_test/, query/) with PNG files
named like 0001_c1_1.png (pid, camera 1 or 2, index). No time information. The release ships both variants
under one folder (cuhk03-np/detected/..., cuhk03-np/labeled/...); either that folder or the variant's own
folder is accepted as root.
"""

from __future__ import annotations

from qaconv.data.datasets.base import ReIDDataset, register_dataset
from qaconv.data.datasets.market1501 import load_market_style

_REQUIRED = ("bounding_box_train/", "bounding_box_test/", "query/")
_WRAPPERS = ("cuhk03-np", "cuhk03_np", "CUHK03-NP", "CUHK03_NP", "cuhk03np", "cuhk03")


def _layout(variant: str) -> str:
    return (
        f"bounding_box_train/, bounding_box_test/ and query/ with images named like 0001_c1_1.png "
        f"(in the folder itself or in its {variant}/ sub-folder, as in cuhk03-np/{variant}/)"
    )


@register_dataset(
    "cuhk03_np_detected",
    layout=_layout("detected"),
    required=_REQUIRED,
    aliases=("cuhk03np_detected", "cuhk03_detected"),
    folders=("cuhk03_np_detected", "cuhk03-np-detected", *_WRAPPERS),
    variants=("detected",),
)
def load_cuhk03_np_detected(root: str, *, combine_all: bool = False, skip_unparsable: bool = False) -> ReIDDataset:
    return load_market_style(root, "cuhk03_np_detected", time_mode="none", skip_unparsable=skip_unparsable)


@register_dataset(
    "cuhk03_np_labeled",
    layout=_layout("labeled"),
    required=_REQUIRED,
    aliases=("cuhk03np_labeled", "cuhk03_labeled"),
    folders=("cuhk03_np_labeled", "cuhk03-np-labeled", *_WRAPPERS),
    variants=("labeled",),
)
def load_cuhk03_np_labeled(root: str, *, combine_all: bool = False, skip_unparsable: bool = False) -> ReIDDataset:
    return load_market_style(root, "cuhk03_np_labeled", time_mode="none", skip_unparsable=skip_unparsable)

"""The gallery's catalog: labels and folders from paths, filters, facets, and the protocol's judged images."""

import numpy as np
import pytest

from qaconv.serve.catalog import Catalog, first_rank_and_ap

PATHS = [
    "/g/cam1/0001_c1s1_000001_01.jpg",
    "/g/cam2/0001_c2s1_000002_01.jpg",
    "/g/cam2/0002_c2s1_000003_01.jpg",
    "/g/-1_c1s1_000004_01.jpg",
    "/elsewhere/photo.jpg",
]


def test_labels_and_folders_come_from_the_paths():
    catalog = Catalog.of(PATHS, "/g")
    assert [catalog.item(i)["pid"] for i in range(5)] == [1, 1, 2, -1, None]
    assert [catalog.item(i)["camid"] for i in range(5)] == [1, 2, 2, 1, None]
    assert [catalog.item(i)["folder"] for i in range(5)] == ["cam1", "cam2", "cam2", ".", "elsewhere"]
    assert not catalog.labelled and Catalog.of(PATHS[:4], "/g").labelled
    assert Catalog.of(PATHS[:2], None).item(0)["folder"] == "cam1"  # no gallery folder: the parent's name


def test_filters_combine_and_facets_count():
    catalog = Catalog.of(PATHS, "/g")
    assert catalog.select(camera=2).tolist() == [1, 2]
    assert catalog.select(camera=2, pid=1).tolist() == [1]
    assert catalog.select(folder="cam2", pid=2).tolist() == [2]
    assert catalog.select(folder="nowhere").tolist() == []
    facets = catalog.facets()
    assert facets["cameras"] == [{"value": 1, "images": 2}, {"value": 2, "images": 2}]
    assert {f["value"]: f["images"] for f in facets["folders"]} == {"cam1": 1, "cam2": 2, ".": 1, "elsewhere": 1}
    assert facets["identities"] == 2


def test_true_matches_exclude_the_query_camera_and_junk():
    truth, ignored = Catalog.of(PATHS[:4], "/g").judged(pid=1, camera=1)
    assert truth.tolist() == [1] and ignored.tolist() == [0, 3]


@pytest.mark.parametrize(
    ("ranks", "first", "ap"),
    [([1, 2], 1, 1.0), ([2, 5], 2, (1 / 2 + 2 / 5) / 2), ([3], 3, 1 / 3), ([], None, 0.0)],
)
def test_first_rank_and_average_precision(ranks, first, ap):
    got_first, got_ap = first_rank_and_ap(np.array(ranks, dtype=np.int64))
    assert got_first == first and got_ap == pytest.approx(ap)

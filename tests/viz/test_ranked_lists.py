"""The ranked-list report: framed thumbnails of the best and worst queries, as a PNG and an HTML page."""

from collections import namedtuple

import numpy as np
from PIL import Image

from qaconv.viz.ranked_lists import (
    BLUE,
    BORDER,
    GAP,
    GREEN,
    LABEL_HEIGHT,
    RED,
    THUMB,
    WHITE,
    ranked_list_strip,
    select_queries,
    write_ranked_lists,
)

Record = namedtuple("Record", "path pid camid")
CELL = THUMB[0] + 2 * BORDER
STRIP_HEIGHT = THUMB[1] + 2 * BORDER + 2 * LABEL_HEIGHT


def picture(folder, name, colour):
    path = folder / name
    Image.new("RGB", (32, 64), colour).save(path)
    return str(path)


def records(folder):
    query = [Record(picture(folder, f"q{i}.png", (200, 200, 0)), pid, 0) for i, pid in enumerate([1, 2, 3])]
    gallery = [Record(picture(folder, f"g{i}.png", (0, 200, 200)), pid, 1) for i, pid in enumerate([1, 2, 3, 1])]
    return query, gallery


def test_a_strip_frames_the_query_blue_and_each_match_green_or_red(tmp_path):
    query, gallery = records(tmp_path)
    strip = ranked_list_strip(query[0], gallery, [3, 1, -1, 0], "caption")
    assert strip.size == (CELL * 5 + GAP * 5, STRIP_HEIGHT)
    assert strip.getpixel((1, 1)) == BLUE
    assert strip.getpixel((BORDER + THUMB[0] // 2, BORDER + THUMB[1] // 2)) == (200, 200, 0)
    frames = [strip.getpixel((CELL * rank + GAP * (rank + 1) + 1, 1)) for rank in range(1, 5)]
    assert frames == [GREEN, RED, WHITE, GREEN]  # pid 1, pid 2, no item, pid 1
    x = CELL + 2 * GAP + BORDER + THUMB[0] // 2
    assert strip.getpixel((x, BORDER + THUMB[1] // 2)) == (0, 200, 200)  # the gallery image inside its frame


def test_select_queries_breaks_ties_by_index_and_can_show_none():
    ap = np.array([0.5, 0.5, 0.9, np.nan, 0.5])
    assert select_queries(ap, 1) == ([2], [0])
    assert select_queries(ap, 2) == ([2, 0], [1, 4])
    assert select_queries(ap, 0) == ([], [])


def test_the_report_shows_the_best_and_worst_valid_queries(tmp_path):
    query, gallery = records(tmp_path)
    top = np.array([[0, 1], [1, -1], [2, 3]])
    ap = np.array([0.25, np.nan, 1.0])
    files = write_ranked_lists(tmp_path / "report" / "market", "market", query, gallery, top, ap, num_show=1)
    assert files == [tmp_path / "report" / "market" / "index.html", tmp_path / "report" / "market" / "ranked_lists.png"]
    page = files[0].read_text()
    assert "market: top-2 ranked lists (raw)" in page
    assert "best queries (highest AP)" in page and "worst queries (lowest AP)" in page
    assert "#2 pid 3 cam 1 AP 100.0%" in page and "#0 pid 1 cam 1 AP 25.0%" in page
    assert "#1 pid" not in page  # no true match: not shown
    with Image.open(files[1]) as png:
        width, height = png.size
    assert width == CELL * 3 + GAP * 3  # one strip of a query and two ranks
    assert height == 2 * LABEL_HEIGHT + 2 * (LABEL_HEIGHT + GAP + STRIP_HEIGHT + GAP)


def test_select_queries_best_and_worst_by_ap():
    ap = np.array([0.5, np.nan, 1.0, 0.2, 0.5, 0.9])
    assert select_queries(ap, 2) == ([2, 5], [3, 0])
    assert select_queries(ap, 4) == ([2, 5, 0, 4], [3])  # never in both lists; NaN never shown

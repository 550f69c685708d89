"""Ranked-list report: for the best and the worst queries (by AP), the query and its top-N gallery images,
framed green (same identity) or red, as one PNG and one self-contained HTML page per test set (the
page is a `qaconv.viz.thumbnail_page`).

The evaluation keeps only the top-N gallery indices per query (`EvalResult.top`), so a report costs
Q x N integers, never the Q x G matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from qaconv.image_reader import read_image
from qaconv.viz.thumbnail_page import Thumb, ThumbRow, thumbnail_page

THUMB = (64, 128)  # width, height of one thumbnail
BORDER = 4
GAP = 6
LABEL_HEIGHT = 14
GREEN, RED, BLUE, WHITE, GREY = (30, 160, 60), (210, 40, 40), (40, 90, 200), (255, 255, 255), (120, 120, 120)


def select_queries(ap: np.ndarray, num_show: int) -> tuple[list[int], list[int]]:
    """(best, worst) query indices by AP among the valid (non-NaN) ones: highest first, lowest first.

    Ties go to the lower index; a query is never in both lists.
    """
    valid = np.flatnonzero(~np.isnan(ap))
    order = valid[np.lexsort((valid, -ap[valid]))]  # AP descending, then index
    best = order[:num_show].tolist()
    rest = order[len(best) :]
    worst = rest[np.lexsort((rest, ap[rest]))][:num_show].tolist()
    return best, worst


def _thumb(path: str, colour: tuple[int, int, int]) -> Image.Image:
    framed = Image.new("RGB", (THUMB[0] + 2 * BORDER, THUMB[1] + 2 * BORDER), colour)
    framed.paste(read_image(path).resize(THUMB, Image.BILINEAR), (BORDER, BORDER))
    return framed


def ranked_list_strip(query: Any, gallery: Sequence[Any], ranked: Sequence[int], caption: str = "") -> Image.Image:
    """One row: the query (blue frame) then the gallery items `ranked` (green: same pid, red: other; -1: empty).

    `query` and `gallery` items are records with .path and .pid. Rank numbers and `caption` go below.
    """
    cell = THUMB[0] + 2 * BORDER
    width = cell * (len(ranked) + 1) + GAP * len(ranked) + GAP
    strip = Image.new("RGB", (width, THUMB[1] + 2 * BORDER + 2 * LABEL_HEIGHT), WHITE)
    draw = ImageDraw.Draw(strip)
    strip.paste(_thumb(query.path, BLUE), (0, 0))
    draw.text((2, THUMB[1] + 2 * BORDER + 1), "query", fill=BLUE)
    for rank, g in enumerate(ranked, start=1):
        x = cell * rank + GAP * (rank + 1)
        if g < 0:
            continue
        same = gallery[g].pid == query.pid
        strip.paste(_thumb(gallery[g].path, GREEN if same else RED), (x, 0))
        draw.text((x + 2, THUMB[1] + 2 * BORDER + 1), str(rank), fill=GREEN if same else RED)
    draw.text((2, THUMB[1] + 2 * BORDER + LABEL_HEIGHT + 1), caption, fill=GREY)
    return strip


def _stack(title: str, sections: list[tuple[str, list[Image.Image]]]) -> Image.Image:
    width = max((s.width for _, strips in sections for s in strips), default=200)
    height = 2 * LABEL_HEIGHT + sum(LABEL_HEIGHT + GAP + sum(s.height + GAP for s in strips) for _, strips in sections)
    page = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(page)
    draw.text((2, 2), title, fill=(0, 0, 0))
    y = 2 * LABEL_HEIGHT
    for heading, strips in sections:
        draw.text((2, y), heading, fill=(0, 0, 0))
        y += LABEL_HEIGHT + GAP
        for s in strips:
            page.paste(s, (0, y))
            y += s.height + GAP
    return page


def write_ranked_lists(
    out_dir: str | Path,
    name: str,
    query: Sequence[Any],
    gallery: Sequence[Any],
    top: np.ndarray,
    ap: np.ndarray,
    *,
    stage: str = "raw",
    num_show: int = 8,
) -> list[Path]:
    """Write out_dir/ranked_lists.png and out_dir/index.html for the `num_show` best and worst queries.

    top: [Q, N] gallery indices per query, nearest first, same-id-same-camera items left out (-1: none).
    ap: [Q] average precision per query (NaN for queries without a true match; they are not shown).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    best, worst = select_queries(np.asarray(ap, dtype=np.float64), num_show)
    title = f"{name}: top-{top.shape[1]} ranked lists ({stage}); green = same identity, red = other"
    sections, pages = [], []
    for heading, chosen in (("best queries (highest AP)", best), ("worst queries (lowest AP)", worst)):
        strips, rows = [], []
        for q in chosen:
            rec = query[q]
            caption = f"#{q} pid {rec.pid} cam {rec.camid + 1} AP {100 * ap[q]:.1f}%"
            strips.append(ranked_list_strip(rec, gallery, top[q].tolist(), caption))
            rows.append(_page_row(rec, gallery, top[q].tolist(), caption))
        sections.append((heading, strips))
        pages.append((heading, rows))
    png = out_dir / "ranked_lists.png"
    _stack(title, sections).save(png)
    page = out_dir / "index.html"
    page.write_text(thumbnail_page(title, pages))
    return [page, png]


def _page_row(query: Any, gallery: Sequence[Any], ranked: Sequence[int], caption: str) -> ThumbRow:
    """The row of the HTML page: the query (blue frame), then its ranked gallery images (green or red)."""
    thumbs = [Thumb(query.path, ["query"], BLUE)]
    for rank, g in enumerate(ranked, start=1):
        if g >= 0:
            same = gallery[g].pid == query.pid
            thumbs.append(Thumb(gallery[g].path, [str(rank), Path(gallery[g].path).name], GREEN if same else RED))
    return ThumbRow(f"{caption} \u2014 {Path(query.path).name}", thumbs)

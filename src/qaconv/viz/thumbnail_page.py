"""A self-contained HTML page of ranked thumbnails: rows of a query and its ranked images, in sections.

Every thumbnail is inlined as a small JPEG, so the page stays whole when the images move; a frame
colour marks a thumbnail (the query, a true or a false match) and a label goes below it. The
evaluation report (`qaconv.viz.ranked_lists`) and `qaconv search --html` write their pages with it.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

from qaconv.errors import QAConvError
from qaconv.image_reader import read_image

THUMB_HEIGHT = 128
STYLE = (
    "body{font-family:sans-serif;margin:1em} .row{display:flex;gap:6px;margin:6px 0 14px;align-items:flex-start}"
    " .caption{margin:.6em 0 .2em;font-size:90%} .cell{text-align:center;font-size:11px;max-width:90px;"
    "overflow-wrap:anywhere} .cell img{border:3px solid transparent} .missing{width:64px;height:128px;"
    "background:#eee}"
)


@dataclass(frozen=True)
class Thumb:
    """One image of a row: its path, the lines below it, its frame colour (RGB; None: no frame), and its
    encoded bytes when it is not a file (an uploaded query)."""

    path: str
    label: Sequence[str] = ()
    frame: tuple[int, int, int] | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class ThumbRow:
    """A caption line and the thumbnails below it, left to right."""

    caption: str
    thumbs: Sequence[Thumb] = field(default_factory=list)


def _image_tag(thumb: Thumb) -> str:
    try:
        image = read_image(thumb.data if thumb.data is not None else thumb.path, name=thumb.path)
    except QAConvError:
        return '<div class="missing">image not found</div>'
    width = max(1, round(image.width * THUMB_HEIGHT / image.height))
    buffer = io.BytesIO()
    image.resize((width, THUMB_HEIGHT)).save(buffer, format="JPEG", quality=85)
    data = base64.b64encode(buffer.getvalue()).decode()
    style = f' style="border-color:rgb{tuple(thumb.frame)}"' if thumb.frame else ""
    return f'<img src="data:image/jpeg;base64,{data}" title="{html.escape(thumb.path)}"{style}>'


def _row(row: ThumbRow) -> str:
    cells = [
        f'<div class="cell">{_image_tag(t)}<br>{"<br>".join(html.escape(line) for line in t.label)}</div>'
        for t in row.thumbs
    ]
    caption = f'<p class="caption">{html.escape(row.caption)}</p>' if row.caption else ""
    return f'{caption}<div class="row">{"".join(cells)}</div>'


def thumbnail_page(title: str, sections: Sequence[tuple[str, Sequence[ThumbRow]]], intro: str = "") -> str:
    """The page: `title`, an `intro` line, then per section its heading (if any) and its rows ("(none)" if empty)."""
    parts = [
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if intro:
        parts.append(f"<p>{html.escape(intro)}</p>")
    for heading, rows in sections:
        if heading:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts += [_row(row) for row in rows] or ["<p>(none)</p>"]
    parts.append("</body></html>\n")
    return "\n".join(parts)

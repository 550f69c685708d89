"""The thumbnail page shared by the evaluation report and `qaconv search --html`."""

from __future__ import annotations

import base64
import io
import re

from PIL import Image

from qaconv.viz.thumbnail_page import THUMB_HEIGHT, Thumb, ThumbRow, thumbnail_page


def test_page_inlines_thumbnails_with_frames_labels_and_escaped_text(tmp_path):
    picture = tmp_path / "a.png"
    Image.new("RGB", (32, 64), (200, 10, 10)).save(picture)
    query, hit = Thumb(str(picture), ["query"], (40, 90, 200)), Thumb(str(picture), ["#1 2.50", "a.png"])
    rows = [
        ThumbRow("query <1>", [query, hit]),
        ThumbRow("", [Thumb(str(tmp_path / "moved.jpg"), ["#2"])]),
    ]
    page = thumbnail_page("search & find", [("best", rows), ("worst", [])], intro="index x")
    assert page.startswith("<!DOCTYPE html>") and "<title>search &amp; find</title>" in page
    assert "query &lt;1&gt;" in page and "<p>index x</p>" in page and "<p>(none)</p>" in page
    assert "border-color:rgb(40, 90, 200)" in page and "#1 2.50<br>a.png" in page
    assert 'class="missing">image not found' in page  # a gallery image that moved since
    images = re.findall(r"data:image/jpeg;base64,([^\"]+)", page)
    assert len(images) == 2
    thumb = Image.open(io.BytesIO(base64.b64decode(images[0])))
    assert thumb.size == (THUMB_HEIGHT // 2, THUMB_HEIGHT)  # the aspect ratio is kept

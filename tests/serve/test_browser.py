"""The page of `qaconv serve` in a real browser: headless Chromium uploads a query, reads the hits, opens a match.

Needs the Debian packages chromium and chromium-driver (`.ci/run` installs them); without them the
test is skipped on a developer's machine and fails in CI (CI=true), where they must be present.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from qaconv.serve import GalleryService
from qaconv.serve.app import create_app
from qaconv.serve.server import BackgroundServer
from qaconv.serve.service import identity
from tests.serve.chromium import chromium, find_chromium

TOPK = 5

if find_chromium() is None:
    reason = "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser test: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


@pytest.fixture(scope="module")
def page(service):
    """A browser session on the page of a server over the test index."""
    with BackgroundServer(create_app(service)) as server, chromium() as browser:
        browser.get(server.url)
        browser.origin = server.url.rstrip("/")
        wait(browser, lambda b: "gallery images" in b.find_element(By.ID, "summary").text)
        yield browser


def wait(browser, condition, timeout: float = 60):
    """`condition`'s first truthy value; an element replaced while it was read (the page re-rendered) retries."""
    return WebDriverWait(
        browser, timeout, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
    ).until(condition)


def pick_names(browser) -> list[str]:
    """The file names of the gallery browser's thumbnails, in order."""
    return [e.get_attribute("title").split(" ")[0] for e in browser.find_elements(By.CSS_SELECTOR, ".pick")]


def hits_of(browser, name: str) -> list:
    """The hit cards once the search for the query file `name` has finished."""
    wait(browser, lambda b: b.find_element(By.ID, "query-name").text.startswith(name))
    wait(browser, lambda b: not b.find_element(By.ID, "progress").is_displayed())
    return browser.find_elements(By.CSS_SELECTOR, ".hit")


def framed(cards: list, kind: str = "same-id") -> list[bool]:
    """Which hit cards are framed as the query's identity from another camera ("same-id") or from the query's own
    camera ("same-camera")."""
    return [kind in c.get_attribute("class").split() for c in cards]


def expected_frames(query: str, hits: list[dict]) -> tuple[list[bool], list[bool]]:
    """(a true match: the query's identity from another camera, the query's identity from its own camera) per hit."""
    pid, camid = identity(query)
    same = [identity(h["path"])[0] == pid for h in hits]
    same_camera = [s and identity(h["path"])[1] == camid for s, h in zip(same, hits, strict=True)]
    return [s and not c for s, c in zip(same, same_camera, strict=True)], same_camera


def expected_hits(service, path: Path) -> list[dict]:
    return service.search(path.read_bytes(), path.name, TOPK)["hits"]


def test_upload_search_and_match_picture(page, service, query_images):
    topk = page.find_element(By.ID, "topk")
    topk.clear()
    topk.send_keys(str(TOPK))
    query = query_images[0]
    page.find_element(By.ID, "file").send_keys(str(query))
    cards = hits_of(page, query.name)
    expected = expected_hits(service, query)
    titles = [c.find_element(By.TAG_NAME, "button").get_attribute("title").split("\n")[0] for c in cards]
    assert titles == [h["path"] for h in expected]
    assert [c.find_element(By.CLASS_NAME, "score").text for c in cards] == [f"{h['score']:.2f}" for h in expected]
    pid, camid = identity(expected[0]["path"])
    assert cards[0].find_element(By.CLASS_NAME, "meta").text == f"id {pid} · cam {camid}"
    pid, camid = identity(query.name)
    assert page.find_element(By.ID, "query-name").text == f"{query.name} · id {pid} · cam {camid}"
    true_match, own_camera = expected_frames(query.name, expected)
    assert framed(cards) == true_match and framed(cards, "same-camera") == own_camera
    assert f"{TOPK} best of {len(service.gallery)}" in page.find_element(By.ID, "result-info").text
    legend = page.find_element(By.ID, "legend").text
    assert "comparable only between results of this one model" in legend and "protocol ignores" in legend
    assert page.execute_script("return document.querySelectorAll('.hit img')[0].naturalWidth") > 0

    cards[1].find_element(By.TAG_NAME, "button").click()
    picture = page.find_element(By.ID, "match-img")
    wait(page, lambda b: picture.is_displayed())
    width = page.execute_script("return arguments[0].naturalWidth", picture)
    png, _ = service.match(service.search(query.read_bytes(), query.name, TOPK)["query"], expected[1]["path"])
    assert width == int.from_bytes(png[16:20], "big")  # the PNG header's width
    title = page.find_element(By.ID, "match-title").text
    assert title.startswith(f"#2 · score {expected[1]['score']:.3f}") and Path(expected[1]["path"]).name in title
    assert not page.find_element(By.ID, "match-error").is_displayed()
    page.find_element(By.ID, "match-close").click()
    wait(page, lambda b: not b.find_element(By.ID, "match").is_displayed())
    assert not page.find_element(By.ID, "error").is_displayed()


def test_pick_a_gallery_image_as_query(page, service):
    page.find_element(By.CSS_SELECTOR, "#picker summary").click()
    picks = wait(page, lambda b: b.find_elements(By.CSS_SELECTOR, ".pick"))
    assert len(picks) == min(24, len(service.gallery))
    chosen = Path(service.gallery.paths[2])
    picks[2].click()
    cards = hits_of(page, chosen.name)
    expected = expected_hits(service, chosen)
    true_match, own_camera = expected_frames(chosen.name, expected)
    assert framed(cards) == true_match and framed(cards, "same-camera") == own_camera
    assert any(own_camera)  # the image itself is in the gallery: its own camera, framed apart


def test_drop_a_file_and_see_a_refusal(page, query_images):
    """A dropped image is searched; a dropped non-image shows the server's error on the page."""
    drop = """
        const [name, text, done] = arguments;
        const blob = text === null ? await (await fetch(document.querySelector('.hit img').src)).blob()
                                   : new Blob([text], {type: 'text/plain'});
        const transfer = new DataTransfer();
        transfer.items.add(new File([blob], name, {type: blob.type}));
        document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: transfer}));
    """
    page.execute_script(f"(async () => {{ {drop} }})()", "dropped.jpg", None)
    cards = hits_of(page, "dropped.jpg")
    assert len(cards) == TOPK and not any(framed(cards)) and not any(framed(cards, "same-camera"))  # no identity
    page.execute_script(f"(async () => {{ {drop} }})()", "notes.txt", "not a picture")
    error = wait(page, lambda b: b.find_element(By.ID, "error").is_displayed() and b.find_element(By.ID, "error"))
    message = "not an image file (or a format Pillow cannot read): notes.txt"
    assert error.text == message
    assert page.find_element(By.ID, "result-info").text == message  # where the hits were, which are gone
    assert page.find_elements(By.CSS_SELECTOR, ".hit") == []


def test_a_new_query_cancels_the_search_in_flight(page, service, query_images, monkeypatch):
    """A photo chosen while the previous one is still being searched: only its hits are shown, never the first
    photo's hits beside it (the first search is made slow, so it is surely in flight)."""
    first, second = query_images[1], query_images[2]
    real_search = service.search

    def slow_for_the_first(data, name, *args, **kwargs):
        if name == first.name:
            time.sleep(1.5)
        return real_search(data, name, *args, **kwargs)

    monkeypatch.setattr(service, "search", slow_for_the_first)
    page.find_element(By.ID, "file").send_keys(str(first))
    wait(page, lambda b: b.find_element(By.ID, "progress").is_displayed())
    page.find_element(By.ID, "file").send_keys(str(second))
    cards = hits_of(page, second.name)
    titles = [c.find_element(By.TAG_NAME, "button").get_attribute("title").split("\n")[0] for c in cards]
    assert titles == [h["path"] for h in expected_hits(service, second)]
    assert not page.find_element(By.ID, "error").is_displayed()


def test_browse_with_filters_then_rank_ap_and_export(page, service):
    """The gallery browser filters by camera and identity; a picked image's search gives its rank and AP and
    exports its results."""
    if not page.find_element(By.ID, "picker").get_attribute("open"):
        page.find_element(By.CSS_SELECTOR, "#picker summary").click()
    Select(page.find_element(By.ID, "filter-camera")).select_by_value("2")
    camera2 = [p for p in service.gallery.paths if identity(p)[1] == 2]
    first_page = [Path(p).name for p in camera2[:24]]
    assert wait(page, lambda b: pick_names(b) == first_page)  # the camera's first page, in the gallery's order
    pid = next(identity(p)[0] for p in camera2 if identity(p)[0] > 0)
    page.find_element(By.ID, "filter-pid").send_keys(str(pid), Keys.TAB)
    wanted = [Path(p).name for p in camera2 if identity(p)[0] == pid]
    wait(page, lambda b: pick_names(b) == wanted)
    wait(page, lambda b: b.find_element(By.CSS_SELECTOR, ".pick").click() or True)  # retried if re-rendered
    cards = hits_of(page, wanted[0])
    page.find_element(By.ID, "evaluate").click()
    text = wait(
        page, lambda b: "AP" in b.find_element(By.ID, "evaluation").text and b.find_element(By.ID, "evaluation").text
    )
    picked = next(Path(p) for p in camera2 if Path(p).name == wanted[0])
    expected = service.evaluate(service.search(picked.read_bytes(), picked.name, TOPK)["query"])
    assert f"first true match at rank {expected['first_true_match_rank']}" in text
    assert f"AP {100 * expected['average_precision']:.1f}%" in text
    csv_text = page.execute_script("return fetch(arguments[0]).then(r => r.text())",
                                   page.find_element(By.ID, "export-csv").get_attribute("href"))  # fmt: skip
    titles = [c.find_element(By.TAG_NAME, "button").get_attribute("title").split("\n")[0] for c in cards]
    assert [line.split(",")[2] for line in csv_text.strip().splitlines()[1:]] == titles
    report = page.execute_script("return fetch(arguments[0]).then(r => r.text())",
                                 page.find_element(By.ID, "export-html").get_attribute("href"))  # fmt: skip
    assert report.startswith("<!DOCTYPE html>") and report.count("data:image/jpeg;base64,") == len(cards) + 1


def test_add_images_from_the_page(reid, gallery_dir, tmp_path, query_images):
    """With --add-to, the page adds chosen files to the gallery; they are indexed and the next search finds them."""
    gallery = tmp_path / "gallery"
    shutil.copytree(gallery_dir, gallery)
    reid.build_index(gallery, tmp_path / "gallery.idx", first_stage="none")
    service = GalleryService.open(tmp_path / "gallery.idx", reid.checkpoint, add_to=gallery / "new")
    before = len(service.gallery)
    with BackgroundServer(create_app(service)) as server, chromium() as browser:
        browser.get(server.url)
        wait(browser, lambda b: "gallery images" in b.find_element(By.ID, "summary").text)
        browser.find_element(By.CSS_SELECTOR, "#add summary").click()
        browser.find_element(By.ID, "add-files").send_keys(str(query_images[0]))
        browser.find_element(By.ID, "add-button").click()
        status = wait(browser, lambda b: "added 1" in b.find_element(By.ID, "add-status").text and
                      b.find_element(By.ID, "add-status").text)  # fmt: skip
        assert f"holds {before + 1}" in status
        wait(browser, lambda b: f"{before + 1} gallery images" in b.find_element(By.ID, "summary").text)
    assert (gallery / "new" / query_images[0].name).is_file() and len(service.gallery) == before + 1


def test_nothing_came_from_elsewhere_and_no_script_failed(page):
    """Runs last: every resource the page loaded came from the server, and the console shows no error."""
    sources = page.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert sources and all(s.startswith(page.origin + "/") or s.startswith("blob:") for s in sources), sources
    severe = [e for e in page.get_log("browser") if e["level"] == "SEVERE"]
    # the one failure: the refused upload of the drop test (so the console is read, and shows nothing else)
    assert len(severe) == 1 and "api/search" in severe[0]["message"] and "400" in severe[0]["message"], severe

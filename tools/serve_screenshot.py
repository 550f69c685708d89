"""Take the screenshots of docs/serve.md: the page of `qaconv serve` after a search, and a hit's match picture.

    python tools/serve_screenshot.py --index runs/demo/run/gallery.idx --checkpoint runs/demo/run \\
        --query runs/demo/full/synth-A/query/0301_c1s1_000018_00.jpg

Serves the index on a free local port, drives headless Chromium (tests/serve/chromium.py) through an
upload, and writes docs/serve.png (the ranked hits) and docs/serve-match.png (the dialog of one hit).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from tests.serve.chromium import chromium  # noqa: E402

from qaconv.serve import GalleryService  # noqa: E402
from qaconv.serve.app import create_app  # noqa: E402
from qaconv.serve.server import BackgroundServer  # noqa: E402

# every image shown in the window has arrived (lazy thumbnails below it never load)
VISIBLE_IMAGES_LOADED = """return [...document.images].every(
    i => !i.offsetParent || i.getBoundingClientRect().top > innerHeight || (i.complete && i.naturalWidth > 0))"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--query", required=True, help="image to upload")
    parser.add_argument("--topk", type=int, default=12)
    parser.add_argument("--hit", type=int, default=2, help="rank of the hit whose match picture is taken (2)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "serve.png"))
    parser.add_argument("--match-out", default=str(ROOT / "docs" / "serve-match.png"))
    args = parser.parse_args()
    service = GalleryService.open(args.index, args.checkpoint, device="cpu")
    with BackgroundServer(create_app(service)) as server, chromium(1280, 760) as browser:
        wait = WebDriverWait(browser, 120, poll_frequency=0.1).until
        browser.get(server.url)
        wait(lambda b: "gallery images" in b.find_element(By.ID, "summary").text)
        topk = browser.find_element(By.ID, "topk")
        topk.clear()
        topk.send_keys(str(args.topk))
        browser.find_element(By.ID, "file").send_keys(str(Path(args.query).resolve()))
        wait(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".hit")) == args.topk)
        wait(lambda b: b.execute_script(VISIBLE_IMAGES_LOADED))
        browser.execute_script("document.activeElement.blur()")
        browser.save_screenshot(args.out)
        print(f"wrote {args.out}")
        browser.find_elements(By.CSS_SELECTOR, ".hit button")[args.hit - 1].click()
        wait(lambda b: b.find_element(By.ID, "match-img").is_displayed())
        browser.save_screenshot(args.match_out)
        print(f"wrote {args.match_out}")


if __name__ == "__main__":
    main()

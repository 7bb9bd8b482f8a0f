"""The search page in a real browser: Debian's chromium (never a downloaded one) driven by
playwright, against the real API server over the real test lake (api_support.py).

Type a query, give the API key when asked, see keyframe thumbnails, time ranges and the
matched words highlighted; click through to the media page, whose player lands on the
matching second. Screenshots go to the test's tmp dir (and to docs/img/ with UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

import api_support
from api_support import corpus, srv  # noqa: F401 - the shared module fixtures
from api_support import KEYS
from conftest import REPO

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing (apt-get install -y chromium): the page test must run in CI")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium); playwright never downloads a browser here")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def assert_real_screenshot(path: Path) -> None:
    w, h = png_size(path)
    assert w >= 800 and h >= 400 and path.stat().st_size > 20_000, (w, h, path.stat().st_size)


def test_search_then_media_page_plays_from_the_match(browser, srv, corpus, tmp_path):
    volcano = corpus["media_of"]["volcano"]
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{srv.url}/")
    page.fill("#q", "ash cloud")
    page.press("#q", "Enter")
    # The server asks for a key: the page shows the key box; the key goes in once.
    page.wait_for_selector("#key-box:not([hidden])", timeout=30_000)
    page.fill("#api-key", KEYS[0])
    page.click("#key-save")
    page.wait_for_selector("#results li.hit", timeout=60_000)

    hit = page.locator(f"#results li.hit[data-media-id='{volcano}'][data-kind='ocr']").first
    hit.wait_for()
    marks = [m.lower() for m in hit.locator("mark").all_inner_texts()]
    assert "ash" in marks, marks
    assert "2.4" in hit.locator(".time").inner_text()  # 0:02.4–0:04.8
    # the thumbnail is the shot's keyframe, really loaded (the cookie carries the key)
    img = hit.locator("img.thumb")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle(), timeout=30_000)
    assert img.get_attribute("src") == f"/v1/media/{volcano}/keyframes/1"
    assert img.evaluate("i => i.naturalWidth") >= 100
    shot = tmp_path / "search.png"
    page.screenshot(path=str(shot), full_page=True)
    assert_real_screenshot(shot)

    hit.locator("a.title").click()
    page.wait_for_url(f"**/media/{volcano}#t=2.40", timeout=30_000)
    page.wait_for_selector("#shots li img", timeout=30_000)
    assert page.locator("#shots li").count() == 3
    assert "volcano" in page.locator("#transcript").inner_text().lower()
    video = page.locator("video#player-media")
    assert video.get_attribute("src") == f"/v1/media/{volcano}/file"
    page.wait_for_function("() => { const v = document.querySelector('#player-media'); "
                           "return v && v.readyState >= 1 && Math.abs(v.currentTime - 2.4) < 0.15; }", timeout=30_000)
    assert abs(video.evaluate("v => v.currentTime") - 2.4) < 0.15
    assert video.evaluate("v => v.duration") > 7  # the file itself played: three 2.4 s shots
    # the shot under the play position is marked
    assert page.locator("#shots li.current").count() == 1
    assert page.locator("#shots li").nth(1).get_attribute("class") == "current"
    # clicking a shot seeks there
    page.locator("#shots li").nth(2).click()
    page.wait_for_function("() => document.querySelector('#player-media').currentTime >= 4.7", timeout=30_000)
    page.wait_for_selector("#similar li", timeout=30_000)
    shot2 = tmp_path / "media.png"
    page.screenshot(path=str(shot2), full_page=True)
    assert_real_screenshot(shot2)
    assert not errors, errors
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":  # the README's pictures, refreshed on request only
        docs = REPO / "docs" / "img"
        docs.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, docs / "search-page.png")
        shutil.copy(shot2, docs / "media-page.png")
    page.close()


def test_page_puts_text_in_as_text(browser, srv):
    """Highlighting builds DOM nodes: a transcript holding markup shows it, never runs it."""
    page = browser.new_page()
    page.goto(f"{srv.url}/")
    html = page.evaluate("() => { const s = mediaintel.highlighted('<img src=x onerror=alert(1)> ash <b>cloud</b>', "
                         "['ash', 'cloud']); return s.innerHTML; }")
    assert "<img" not in html and "&lt;img" in html and "<mark>ash</mark>" in html and "<mark>cloud</mark>" in html
    page.close()


def test_unknown_media_page_says_so(browser, srv):
    page = browser.new_page()
    page.context.add_cookies([{"name": "mediaintel_api_key", "value": KEYS[0], "url": srv.url}])
    page.add_init_script(f"localStorage.setItem('mediaintel_api_key', '{KEYS[0]}')")
    page.goto(f"{srv.url}/media/{'0' * 16}")
    page.wait_for_function("() => document.querySelector('#status').textContent.includes('no media')", timeout=30_000)
    page.close()

"""The web console in a real headless Chromium (Debian's, driven by Playwright) against a real
server on 127.0.0.1 port 0: collections listed, a search and a hybrid query with a filter, a
question answered with the answer streaming in and its sources listed, a screenshot that is
not blank."""

import base64
import json
from pathlib import Path

import pytest

import llm
from tests.conftest import fixture_file
from tests.helpers.http_client import HANDBOOK
from tests.rpc import serving
from vdb import rag
from vdb.database import DEFAULT_EMBEDDER

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"the console test needs Debian's chromium at {CHROMIUM} (apt-get install chromium)",
)
pytest.importorskip("uvicorn")
playwright = pytest.importorskip("playwright.sync_api")

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
KEY = "console-key"
DOCS = HANDBOOK
# Distinct colours of a PNG (given as base64), counted by the browser's own decoder.
COLOURS = """async (png) => {
  const img = new Image();
  img.src = "data:image/png;base64," + png;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.width; canvas.height = img.height;
  const g = canvas.getContext("2d");
  g.drawImage(img, 0, 0);
  const px = g.getImageData(0, 0, img.width, img.height).data;
  const seen = new Set();
  for (let i = 0; i < px.length; i += 4) seen.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
  return seen.size;
}"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    options = dict(
        http_port=0, api_keys=(KEY,), model=str(fixture_file("models", "stories260K.gguf"))
    )
    with serving(tmp_path_factory.mktemp("db"), **options) as (server, _):
        col = server.core.db.create_collection("docs", embedder=DEFAULT_EMBEDDER, text=True)
        col.upsert(
            list(range(len(DOCS))),
            documents=DOCS,
            payloads=[{"file": "handbook.md", "n": i} for i in range(len(DOCS))],
        )
        server.core.db.create_collection("empty", dim=3)
        yield server


@pytest.fixture(scope="module")
def stories():
    return llm.load(fixture_file("models", "stories260K.gguf"))


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def greedy(route):
    body = json.loads(route.request.post_data)
    route.continue_(post_data=json.dumps({**body, "temperature": 0}))


def test_console_lists_searches_and_answers(served, browser, stories):
    expect = playwright.expect
    expect.set_options(timeout=60_000)
    col = served.core.db.get_collection("docs")
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"http://127.0.0.1:{served.http_port}/")
    expect(page.locator("#status")).to_contain_text("API key")  # none given yet: 401
    page.fill("#key", KEY)
    page.press("#key", "Tab")  # change: stored, and the list refreshed
    expect(page.locator("#collections li[data-name=docs] .count")).to_have_text(str(len(DOCS)))
    expect(page.locator("#collections li[data-name=empty] .count")).to_have_text("0")
    page.reload()  # the key stays in localStorage
    expect(page.locator("#key")).to_have_value(KEY)
    page.click("#collections li[data-name=docs]")
    expect(page.locator("#current")).to_contain_text("docs")

    page.fill("#query", "where do visitors park")
    page.click("#search-form button[type=submit]")
    rows = page.locator("#hits tbody tr")
    expect(rows).to_have_count(5)
    top = col.search("where do visitors park", k=5)
    expect(rows.locator(".id")).to_have_text([str(h.id) for h in top])
    expect(rows.first.locator(".doc")).to_have_text(DOCS[2])

    page.select_option("#mode", "query")
    page.fill("#query", "printer paper")
    page.fill("#filter", '{"n": {"$gte": 2}}')
    page.click("#search-form button[type=submit]")
    hybrid = col.search("printer paper", k=5, text="printer paper", filter={"n": {"$gte": 2}})
    expect(rows.locator(".id")).to_have_text([str(h.id) for h in hybrid])
    page.fill("#filter", "")

    page.evaluate(
        """() => { window.updates = 0; new MutationObserver((r) => window.updates += r.length)
        .observe(document.getElementById("answer"), {childList: true, characterData: true,
        subtree: true}); }"""
    )
    page.route("**/ask", greedy)  # the page's request, at temperature 0
    question = "How long are backups kept?"
    pieces = []
    local = rag.ask(col, question, stories, k=5, temperature=0, on_piece=pieces.append)
    page.fill("#question", question)
    page.click("#ask-form button[type=submit]")
    expect(page.locator("#sources li")).to_have_count(len(local.sources))
    assert page.locator("#answer").text_content() == local.text
    assert page.evaluate("window.updates") == len(pieces) > 1  # the answer came in pieces
    expect(page.locator("#sources li").first.locator(".where")).to_contain_text("handbook.md")
    assert page.locator("#status").inner_text() == ""

    png = base64.b64encode(page.screenshot(full_page=True)).decode()
    assert page.evaluate(COLOURS, png) > 10  # not blank
    page.close()


def test_console_assets_are_served(served):
    import urllib.request

    base = f"http://127.0.0.1:{served.http_port}"
    for path, kind in (("/static/console.js", "javascript"), ("/static/console.css", "css")):
        with urllib.request.urlopen(base + path, timeout=30) as resp:
            assert resp.status == 200 and kind in resp.headers["content-type"]
    with urllib.request.urlopen(base + "/", timeout=30) as resp:
        page = resp.read().decode()
    assert "/static/console.js" in page and "http" not in page.split("<body>")[1]  # no CDN

"""The website: it builds offline from the committed notebooks, every page and internal link is there, a broken link
fails the build, and a real headless browser shows a chapter's title, rendered mathematics, results and figure."""
import functools, http.server, os, shutil, socketserver, threading
from pathlib import Path

import pytest

from minirepro.core.docs import CONF, build_site, check_links, foundation_names, sphinx_build, stage_site
from minirepro.core.repro import book_index, chapter_slugs, find_root

ROOT = find_root()
OUT = ROOT/"build"/"docs-test"


@pytest.fixture(scope="module")
def site():
    return build_site(OUT/"html", ROOT, src=OUT/"src")


def test_every_page_is_built(site):
    for slug in chapter_slugs(ROOT): assert (site/"papers"/f"{slug}.html").exists(), slug
    names = foundation_names(ROOT)
    assert set(names) == {p.stem for p in (ROOT/"nbs"/"core").glob("*.ipynb")}  # none left out of the site
    for n in names:
        assert (site/"core"/f"{n}.html").exists() and (site/"api"/f"{n}.html").exists(), n
    parts = {p["part"] for p in book_index(ROOT)}
    assert len(parts) == 9 and all((site/"parts"/f"{p}.html").exists() for p in parts)
    assert (site/"index.html").exists() and (site/"dashboard.html").exists()


def test_internal_links_resolve(site):
    assert check_links(site) == []
    index = (site/"index.html").read_text()
    for slug in chapter_slugs(ROOT): assert f"papers/{slug}.html" in index  # reachable from the front page's sidebar


def test_dashboard_lists_every_paper_with_links_to_written_chapters(site):
    page = (site/"dashboard.html").read_text()
    for p in book_index(ROOT): assert p["slug"] in page
    for slug in chapter_slugs(ROOT): assert f'href="papers/{slug}.html"' in page


def test_api_reference_has_docstrings(site):
    page = (site/"api"/"assets.html").read_text()
    assert "smollm2" in page and "built once from the GGUF" in page


def test_math_uses_the_local_mathjax(site):
    page = (site/"papers"/"aaren.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in page and "cdn" not in page.lower().split("mathjax")[1][:200]
    assert (site/"_static"/"mathjax"/"tex-chtml.js").exists()
    assert "\\(" in page or "\\[" in page or "math notranslate" in page  # math left for MathJax


def test_export_directives_are_hidden_but_code_is_shown(site):
    page = (site/"core"/"assets.html").read_text()
    assert '<span class="nf">cached_entry</span>' in page and "#| export" not in page  # code is highlighted


def _mini_site(tmp_path, body):
    src = tmp_path/"src"; (src/"_static").mkdir(parents=True)
    (src/"conf.py").write_text(CONF); (src/"index.md").write_text(body)
    (src/"other.md").write_text("# Other\n\n## Section\n")
    return src


def test_a_broken_internal_link_fails_the_build(tmp_path):
    toc = "```{toctree}\n:hidden:\nother\n```\n"
    ok = _mini_site(tmp_path/"ok", f"# Home\n\nSee [the other page](other.md#section).\n\n{toc}")
    assert sphinx_build(ok, tmp_path/"ok"/"html") == 0 and check_links(tmp_path/"ok"/"html") == []
    bad = _mini_site(tmp_path/"bad", f"# Home\n\nSee [a page that is not there](missing.md).\n\n{toc}")
    assert sphinx_build(bad, tmp_path/"bad"/"html") != 0
    (tmp_path/"ok"/"html"/"other.html").unlink()  # and a link that the HTML check catches after the build
    assert any("other.html" in p and "no such file" in p for p in check_links(tmp_path/"ok"/"html"))


# --- a real browser -----------------------------------------------------------------------------------------------

def _browser_tools():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("CI"): pytest.fail("chromium and chromedriver must be installed in CI (make test installs them)")
        pytest.skip("chromium/chromedriver not installed: apt-get install chromium chromium-driver")
    return chromium, driver


@pytest.fixture(scope="module")
def served(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a, **k: None
    httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown(); httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    chromium, driver = _browser_tools()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,2400",
              "--no-first-run", "--disable-extensions", "--disable-sync", "--disable-background-networking",
              "--disable-component-update", "--disable-default-apps", "--disable-domain-reliability",
              "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]:  # no name resolves: nothing outside loads
        opts.add_argument(a)
    b = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    b.set_page_load_timeout(60)
    yield b
    b.quit()


def _wait(b, js, timeout=30):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(b, timeout).until(lambda d: d.execute_script(js))


def test_browser_front_page_and_dashboard(browser, served):
    browser.get(f"{served}/index.html")
    assert "minirepro" in browser.title
    nav = browser.execute_script("return document.querySelector('nav').innerText")
    assert "Foundations" in nav and "Status" in nav
    browser.get(f"{served}/dashboard.html")
    rows = browser.execute_script("return document.querySelectorAll('table tbody tr').length")
    assert rows == len(book_index(ROOT))


def test_browser_renders_a_chapter(browser, served):
    browser.get(f"{served}/papers/aaren.html")
    title = browser.execute_script("return document.querySelector('h1').innerText")
    assert title.startswith("Attention as an RNN")
    # MathJax (the site's own copy; the network is off) typesets the equations into mjx-container elements
    n_math = _wait(browser, "return document.querySelectorAll('mjx-container').length")
    assert n_math >= 3
    text = browser.execute_script("return document.body.innerText")
    assert "claim" in text and "holds" in text  # the claims table, as recorded
    loaded = _wait(browser, "return Array.from(document.images).filter(i => i.complete && i.naturalWidth > 100).length")
    assert loaded >= 1  # a figure, loaded and decoded
    OUT.mkdir(parents=True, exist_ok=True)
    browser.execute_script("document.querySelectorAll('img')[0].scrollIntoView()")
    assert browser.save_screenshot(str(OUT/"aaren.png"))
    assert (OUT/"aaren.png").stat().st_size > 10_000


def test_a_new_foundation_notebook_is_not_left_out(tmp_path):
    core = tmp_path/"nbs"/"core"; core.mkdir(parents=True)
    for n in ("lm", "zeta", "repro", "alpha"): (core/f"{n}.ipynb").write_text("{}")
    assert foundation_names(tmp_path) == ["repro", "lm", "alpha", "zeta"]

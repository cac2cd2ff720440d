"""The built book, as a reader's browser sees it (run after `make book`).

Every page named in ``_toc.yml`` must load; every same-site link must lead to a file that
exists; every image must have loaded; every chapter page must show its verdict table; and
no cell output may be an error.  ``test_checker_catches_breakage`` proves the checks bite on
a deliberately broken site.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from functools import lru_cache
from urllib.parse import urldefrag, urlsplit

import pytest

from minir1.publish.chapters import toc_files

_PAGE_JS = """async () => {
  window.scrollTo(0, document.body.scrollHeight);
  const imgs = Array.from(document.images);
  imgs.forEach(i => { if (i.loading === "lazy") i.loading = "eager"; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
    i.addEventListener("load", r); i.addEventListener("error", r); setTimeout(r, 10000); })));
  const outputs = Array.from(document.querySelectorAll(".cell_output, .output:not(.cell_output .output)"));
  return {
    links: Array.from(document.querySelectorAll("a[href]")).map(a => [a.getAttribute("href"), a.href]),
    images: imgs.map(i => [i.getAttribute("src") || "", i.currentSrc || i.src, i.naturalWidth]),
    verdicts: document.querySelectorAll("table.minir1-verdicts").length,
    errors: document.querySelectorAll(".output.traceback, .cell_output .output.error, .output.error").length,
    tracebacks: outputs.filter(o => o.textContent.includes("Traceback (most recent call last)")).length,
  };
}"""


@lru_cache(maxsize=None)
def _exists(url: str) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10) as r:
            return r.status < 400
    except urllib.error.URLError:
        return False


def _same_site(href: str, base: str) -> bool:
    u, b = urlsplit(href), urlsplit(base)
    return u.scheme in ("http", "https") and u.netloc == b.netloc


def check_page(page, base: str, path: str) -> list[str]:
    """Problems a reader would meet on ``base + path`` (an empty list when all is well)."""
    try:
        resp = page.goto(base + path, wait_until="load", timeout=60_000)
    except Exception as e:  # playwright's Error: net failure, timeout
        return [f"{path}: could not load ({e})"]
    if resp is None or resp.status >= 400:
        return [f"{path}: HTTP {resp.status if resp else 'no response'} (missing page?)"]
    info = page.evaluate(_PAGE_JS)
    problems = []
    for raw, href in info["links"]:
        if raw.startswith("#") or not _same_site(href, base):
            continue  # anchors on this page, external and mailto: links
        target = urldefrag(href).url.split("?")[0]
        if not _exists(target):
            problems.append(f"{path}: broken link {raw!r} -> {target}")
    for raw, src, width in info["images"]:
        if width == 0:
            problems.append(f"{path}: image did not load: {raw or src!r}")
    if path.startswith("book/chapters/") and info["verdicts"] == 0:
        problems.append(f"{path}: chapter page has no verdict table (table.minir1-verdicts)")
    if info["errors"] or info["tracebacks"]:
        problems.append(
            f"{path}: {info['errors']} error output(s), {info['tracebacks']} output(s) with a Python traceback"
        )
    return problems


PAGES = [f"{doc}.html" for doc in toc_files()]


@pytest.mark.parametrize("path", PAGES)
def test_page(page, book_url, path):
    problems = check_page(page, book_url, path)
    assert not problems, "\n".join(problems)


def test_index_redirects_to_intro(book_url):
    root = toc_files()[0]
    with urllib.request.urlopen(book_url + "index.html", timeout=10) as r:
        assert f"{root}.html" in r.read().decode()


# ----------------------------------------------------------------------------- the checker bites
_PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")
_GOOD = """<html><body><a href="#top">top</a> <a href="../../other.html#x">ok</a>
<a href="https://example.org/">external</a> <img src="../../dot.png">
<table class="minir1-verdicts"><tr><td>supported</td></tr></table>
<div class="cell_output"><div class="output stream"><pre>fine</pre></div></div></body></html>"""
_BAD = """<html><body><a href="missing.html">broken</a> <img src="nope.png">
<div class="cell_output docutils container"><div class="output traceback highlight-ipythontb">
<pre>Traceback (most recent call last):
ZeroDivisionError: division by zero</pre></div></div></body></html>"""


def test_checker_catches_breakage(page, static_server, tmp_path):
    site = tmp_path / "site"
    (site / "book" / "chapters").mkdir(parents=True)
    (site / "other.html").write_text("<html><body>other</body></html>")
    (site / "dot.png").write_bytes(_PNG)
    (site / "book" / "chapters" / "good.html").write_text(_GOOD)
    (site / "book" / "chapters" / "bad.html").write_text(_BAD)
    with static_server(site) as url:
        assert check_page(page, url, "book/chapters/good.html") == []
        problems = "\n".join(check_page(page, url, "book/chapters/bad.html"))
        assert "HTTP 404" in "\n".join(check_page(page, url, "book/chapters/absent.html"))
    for expected in (
        "broken link 'missing.html'",
        "image did not load: 'nope.png'",
        "no verdict table",
        "1 error output(s), 1 output(s) with a Python traceback",
    ):
        assert expected in problems, problems

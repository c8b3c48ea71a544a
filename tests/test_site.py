"""The workbook's site (``make site``) in a real browser.

The test builds the site from the notebooks' stored outputs (Sphinx + myst-nb, nothing is
executed), serves it with ``http.server`` on 127.0.0.1 (a free port) and drives Debian's
``chromium`` through Playwright (its own browser download is never used): headless, a fresh
profile, and no network beyond that server (any other request is recorded, aborted and fails
the test; host resolution outside 127.0.0.1 is switched off too). Every page must answer 200,
log no console error, decode every image, and list every notebook in its navigation; the
landing page's screenshot is written to ``docs/_build/html/landing.png``.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright import sync_api

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BUILD = DOCS / "_build" / "html"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
CHROMIUM = os.environ.get("NEPSE_PERF_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Path:
    """Build the site as ``make site`` does (from scratch); returns the HTML folder."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-b",
            "html",
            "-E",  # read every page again: a new notebook must reach every page's navigation
            "-q",
            "-W",
            "--keep-going",
            str(DOCS),
            str(BUILD),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stdout}\n{proc.stderr}"
    return BUILD


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    """The built site served on 127.0.0.1 at a free port, for the module's tests."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser_context(base_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Chromium with a fresh profile; requests off 127.0.0.1 are aborted and recorded."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    own_host = urlsplit(base_url).netloc
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            service_workers="block",
        )
        context.offline_requests = []  # type: ignore[attr-defined]

        def guard(route) -> None:
            if urlsplit(route.request.url).netloc == own_host:
                route.continue_()
            else:
                context.offline_requests.append(route.request.url)  # type: ignore[attr-defined]
                route.abort()

        context.route("**/*", guard)
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


def _pages(site: Path) -> list[str]:
    return sorted(
        p.relative_to(site).as_posix()
        for p in site.rglob("*.html")
        if not p.relative_to(site).parts[0].startswith("_")
    )


def test_every_notebook_has_a_page(site: Path) -> None:
    assert NOTEBOOKS, "no notebooks found"
    missing = [nb.name for nb in NOTEBOOKS if not (site / "notebooks" / f"{nb.stem}.html").exists()]
    assert not missing, f"notebooks without a page: {missing}"


def test_every_page_in_the_browser(site: Path, base_url: str, browser_context) -> None:
    pages = _pages(site)
    assert "index.html" in pages
    problems: list[str] = []
    page = browser_context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: console.append(f"uncaught: {exc}"))
    stems = [nb.stem for nb in NOTEBOOKS]
    for rel in pages:
        console.clear()
        response = page.goto(f"{base_url}/{rel}", wait_until="load")
        if response is None or response.status != 200:
            problems.append(f"{rel}: HTTP {None if response is None else response.status}")
            continue
        page.wait_for_load_state("networkidle")
        images = page.evaluate(
            """async () => {
                const imgs = Array.from(document.images);
                imgs.forEach(i => { i.loading = "eager"; });
                await Promise.all(imgs.map(i => i.decode().catch(() => null)));
                return imgs.map(i => [i.getAttribute("src"), i.naturalWidth]);
            }"""
        )
        problems += [f"{rel}: image {src} not decoded" for src, width in images if width <= 0]
        nav = page.evaluate(
            """() => Array.from(document.querySelectorAll('nav.bd-docs-nav a'))
                      .map(a => a.getAttribute('href'))"""
        )
        problems += [
            f"{rel}: notebook {stem} missing from the navigation"
            for stem in stems
            if rel != f"notebooks/{stem}.html"  # the page itself: its own link is "#"
            and not any(href and href.split("#")[0].endswith(f"{stem}.html") for href in nav)
        ]
        problems += [f"{rel}: console error: {text}" for text in console]
        if rel == "index.html":
            assert images, "the landing page shows no image (no benchmark chart?)"
            page.screenshot(path=str(site / "landing.png"), full_page=True)
    page.close()
    offline = browser_context.offline_requests
    assert not offline, f"pages fetched from outside 127.0.0.1 (must work offline): {offline}"
    assert not problems, "\n".join(problems)
    assert (site / "landing.png").stat().st_size > 0


def test_solutions_are_collapsed(site: Path, base_url: str, browser_context) -> None:
    """Every hidden solution cell is closed (code and output) and opens on a click."""
    page = browser_context.new_page()
    checked = 0
    for nb in NOTEBOOKS:
        page.goto(f"{base_url}/notebooks/{nb.stem}.html", wait_until="load")
        cells = page.locator("div.cell.tag_hide-input")
        assert cells.count() >= 1, f"{nb.name}: no collapsed solution on its page"
        for i in range(cells.count()):
            cell = cells.nth(i)
            for part, body in (
                ("above-input", "div.cell_input"),
                ("below-input", "div.cell_output"),
            ):
                toggle = cell.locator(f"details.hide.{part}")
                if toggle.count() == 0:
                    assert part == "below-input", f"{nb.name}: hidden cell {i} has no code toggle"
                    continue
                content = toggle.locator(body).first
                assert toggle.get_attribute("open") is None, f"{nb.name}: cell {i} {part} open"
                assert not content.is_visible(), f"{nb.name}: cell {i} {part} visible"
                toggle.locator("summary").first.click()
                assert content.is_visible(), f"{nb.name}: cell {i} {part} does not open"
            checked += 1
    page.close()
    assert checked >= len(NOTEBOOKS)


def _site_module():
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        import workbook_site
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    return workbook_site


def test_generate_picks_up_any_notebook_and_tags_hidden_cells(tmp_path: Path) -> None:
    ws = _site_module()
    (tmp_path / "notebooks").mkdir()
    cell = {"cell_type": "code", "source": "1", "outputs": [], "execution_count": 1}
    nb = {
        "cells": [
            {"cell_type": "markdown", "source": "# 05b · Ray and Spark (48.5.2)\n", "metadata": {}},
            {
                **cell,
                "metadata": {
                    "execution": {
                        "iopub.execute_input": "2026-11-30T04:00:00.000000Z",
                        "shell.execute_reply": "2026-11-30T04:00:02.500000Z",
                    }
                },
            },
            {
                **cell,
                "metadata": {
                    "jupyter": {"source_hidden": True, "outputs_hidden": True},
                    "execution": {
                        "iopub.execute_input": "2026-11-30T04:00:03.000000Z",
                        "shell.execute_reply": "2026-11-30T04:01:04.000000Z",
                    },
                },
            },
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (tmp_path / "notebooks" / "05b_ray_spark.ipynb").write_text(json.dumps(nb))
    (tmp_path / "notebooks" / "nbval_sanitize.cfg").write_text("")
    found = ws.generate(tmp_path, tmp_path / "docs")
    assert found == {"notebooks": ["05b_ray_spark.ipynb"], "hidden_cells": 1}
    copy = json.loads((tmp_path / "docs" / "notebooks" / "05b_ray_spark.ipynb").read_text())
    assert copy["cells"][2]["metadata"]["tags"] == ["hide-input", "hide-output"]
    assert "tags" not in copy["cells"][1]["metadata"]
    chapters = (tmp_path / "docs" / "_generated" / "chapters.md").read_text()
    assert "| 48.5 |" in chapters and "(notebooks/05b_ray_spark.ipynb)" in chapters
    assert (
        "| `05b_ray_spark.ipynb` | 64 s | 2026-11-30 04:00 |"
        in (tmp_path / "docs" / "_generated" / "runtimes.md").read_text()
    )
    assert "make bench-all" in (tmp_path / "docs" / "_generated" / "results.md").read_text()
    # the source notebook itself is never changed
    assert (
        "tags"
        not in json.loads((tmp_path / "notebooks" / "05b_ray_spark.ipynb").read_text())["cells"][2][
            "metadata"
        ]
    )


def test_generate_names_a_broken_notebook(tmp_path: Path) -> None:
    ws = _site_module()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "12_broken.ipynb").write_text("{not json")
    with pytest.raises(RuntimeError, match=r"12_broken\.ipynb"):
        ws.generate(tmp_path, tmp_path / "docs")


def test_chapter_map_lists_each_cited_subsection_with_its_cells(tmp_path: Path) -> None:
    ws = _site_module()
    md = {"cell_type": "markdown", "metadata": {}}
    code = {"cell_type": "code", "metadata": {}, "source": "1", "outputs": []}
    nb = {
        "cells": [
            {**md, "source": "# 04 · Parallel\n"},
            {**md, "source": "## 1. Process pools over chunks (48.4.1)\n"},
            code,
            {**md, "source": "### A detail\n"},
            code,
            {**md, "source": "## 2. Threads and `nogil` (48.4.2, 48.4.3)\n"},
            code,
        ]
    }
    rows = ws.subsection_cells(nb)
    assert rows == [
        ("48.4.1", "1. Process pools over chunks (48.4.1)", 1, 4),
        ("48.4.2", "2. Threads and `nogil` (48.4.2, 48.4.3)", 5, 6),
        ("48.4.3", "2. Threads and `nogil` (48.4.2, 48.4.3)", 5, 6),
    ]
    assert ws.heading_anchor("2. Threads and `nogil` (48.4.2, 48.4.3)") == (
        "2-threads-and-nogil-4842-4843"
    )
    (tmp_path / "04_parallel.ipynb").write_text(json.dumps(nb))
    table = ws.chapter_map([tmp_path / "04_parallel.ipynb"])
    assert "| 48.4.1 |" in table and "cells 1-4" in table
    assert "(notebooks/04_parallel.ipynb#1-process-pools-over-chunks-4841)" in table


def test_every_chapter_section_of_the_cpu_half_maps_to_a_notebook_heading() -> None:
    """Sections 48.1-48.7 each have at least one subsection row in the stored notebooks."""
    ws = _site_module()
    table = ws.chapter_map(NOTEBOOKS)
    for section in range(1, 8):
        assert f"| 48.{section}." in table, f"no notebook heading cites a 48.{section}.N subsection"


def test_glossary_defines_the_workbook_terms() -> None:
    text = (DOCS / "glossary.md").read_text(encoding="utf-8")
    for term in ("panel", "time-major", "bandwidth bound", "block pool", "step function",
                 "lookback", "warm-up", "nbval", "NBVAL_IGNORE_OUTPUT"):  # fmt: skip
        assert f"\n{term}\n" in text, f"the glossary lacks {term!r}"

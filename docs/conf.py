"""Sphinx configuration of the workbook's site (``make site``): Sphinx + myst-nb.

The notebooks are rendered from their stored outputs (``nb_execution_mode = "off"``), with
the sphinx-book-theme (Jupyter Book's theme, bundled in the wheel: no CDN at build or view
time). ``_ext/workbook_site.py`` copies the notebooks into ``_generated/`` with their hidden
solutions tagged, and writes the landing page's generated tables.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "nepse-perf"
author = "nepse-perf contributors"
copyright = "nepse-perf contributors, MIT licence"

extensions = ["myst_nb", "workbook_site", "errata_site"]
exclude_patterns = ["_build", "_generated/*.md", "**.ipynb_checkpoints"]
myst_enable_extensions = ["colon_fence"]
# Headings get GitHub-style anchors, so the chapter map links straight to a notebook's section.
myst_heading_anchors = 4

# Show what was stored, never run anything.
nb_execution_mode = "off"
# No require.js / widget manager from a CDN (no notebook here uses ipywidgets).
nb_ipywidgets_js: dict = {}
# MathJax (which Sphinx loads from a CDN) is added only to a page with maths: no page has any
# (dollar maths is off), and the browser test fails on any request that leaves 127.0.0.1.
# Markdown headings inside notebooks may skip levels; outputs may carry extra MIME types.
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type"]

html_theme = "sphinx_book_theme"
html_title = "nepse-perf: a measured workbook"
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "navigation_with_keys": False,
}
# A fixed start mode: with none stored (a fresh browser profile) the theme logs a console error.
html_context = {"default_mode": "light"}
html_show_sourcelink = False
html_static_path = ["_static"]
html_css_files = ["workbook.css"]

"""Sphinx extension that writes the errata page's table from ``tests/chapter_samples.py``.

On ``builder-inited`` it loads the records of the chapter's samples (the module is loaded by
path: it imports only the standard library) and writes ``_generated/errata.md`` into the
Sphinx source folder: one table row per record (subsection, sample, outcome, what was measured
or the error, the change made to run it, the notebook section that shows the fix), then each
printed sample verbatim with its changes. ``docs/errata.md`` includes it. The records are
asserted by ``tests/test_chapter_samples.py``; nothing is run here.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from workbook_site import _HEADING_RE, _source, _write_if_changed, notebook_paths

ROOT = Path(__file__).resolve().parents[2]
RECORDS = ROOT / "tests" / "chapter_samples.py"


@dataclass(frozen=True)
class Link:
    """A notebook (file name) and, when one matched, the heading and its anchor."""

    notebook: str
    heading: str | None = None
    anchor: str | None = None

    def markdown(self) -> str:
        """A myst link from ``docs/`` to the notebook's section (or to the notebook)."""
        stem = Path(self.notebook).stem
        if self.heading is None:
            return f"[`{stem}`](notebooks/{self.notebook})"
        text = _cell(re.sub(r"[`*]", "", self.heading))
        return f"`{stem}` [{text}](notebooks/{self.notebook}#{self.anchor})"


def load_records(path: Path = RECORDS) -> ModuleType:
    """Import ``tests/chapter_samples.py`` by path (it is not part of the package)."""
    spec = importlib.util.spec_from_file_location("chapter_samples", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load the chapter-sample records from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("chapter_samples", module)
    spec.loader.exec_module(module)
    return module


def _headings(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            found += [m.group(2) for m in _HEADING_RE.finditer(_source(cell))]
    return found


def fix_link(fix: Any, root: Path = ROOT) -> Link:
    """Where a record's ``Fix`` points: its notebook, and its best matching heading.

    The notebook is the one whose prefix (the name up to the first ``_``) is
    ``fix.notebook``; the heading is the first containing one of ``fix.keywords``
    (case-insensitive), else the first citing ``fix.subsection``, else none (the link goes to
    the notebook). Raises ``RuntimeError`` when no notebook has that prefix.
    """
    matches = [p for p in notebook_paths(root) if p.stem.split("_", 1)[0] == fix.notebook]
    if not matches:
        raise RuntimeError(f"no notebook notebooks/{fix.notebook}_*.ipynb for the errata link")
    path = matches[0]
    heads = _headings(path)
    chosen = next(
        (h for k in fix.keywords for h in heads if k.lower() in h.lower()),
        None,
    )
    if chosen is None and fix.subsection:
        chosen = next((h for h in heads if fix.subsection in h), None)
    if chosen is None:
        return Link(path.name)
    return Link(path.name, chosen, anchor(chosen))


def anchor(title: str) -> str:
    """The anchor myst-parser gives a heading (``myst_heading_anchors``).

    GitHub's rule on the rendered text: code and emphasis marks dropped, lower case, every
    character but letters, digits, ``_``, ``-`` and spaces removed, spaces to ``-``. Unlike
    ``workbook_site.heading_anchor`` it keeps ``_`` (``lru_cache`` -> ``lru_cache``).
    """
    text = re.sub(r"[`*]", "", title.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell (no pipes, no line breaks)."""
    return text.replace("|", "\\|").replace("\n", " ")


def _change_text(change: Any) -> str:
    old = _cell(" ".join(change.old.split()))
    if not change.new.strip():
        return f"removed `{old}`: {_cell(change.why)}"
    return f"`{old}` \N{RIGHTWARDS ARROW} {_cell(change.why)}"


def _sample_anchor(rec: Any) -> str:
    return anchor(_sample_heading(rec))


def _sample_heading(rec: Any) -> str:
    return f"{rec.id}: {rec.name}"


def errata_page(records: ModuleType, root: Path = ROOT) -> str:
    """The markdown of ``_generated/errata.md``: the table, then the samples and changes."""
    rows = []
    for rec in records.SAMPLES:
        changes = [_change_text(c) for c in rec.changes]
        if rec.probe:
            changes.append(f"probe: {_cell(rec.probe)}")
        if rec.extra_code:
            changes.append(f"run after {', '.join(k.split(':')[0] for k in rec.extra_code)}")
        if rec.setup:
            changes.append(f"set-up: {_cell(rec.setup)}")
        result = rec.result_text()
        if rec.note:
            result += " " + rec.note
        rows.append(
            [
                rec.subsection,
                f"[{_cell(rec.name)}](#{_sample_anchor(rec)})",
                f"**{rec.outcome}**",
                _cell(result),
                "<br>".join(changes) or "none",
                fix_link(rec.fix, root).markdown(),
            ]
        )
    header = ["", "sample", "outcome", "what it does here", "changed to run it", "the fix"]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    out += ["", "## The samples as printed, and how each run was set up", ""]
    for rec in records.SAMPLES:
        code = records.CODE[rec.code]
        lang = "sql" if rec.code.endswith("materialised_view") else "python"
        out += [f"### {_sample_heading(rec)}", ""]
        out += [f"**{rec.outcome}**: {rec.result_text()}", ""]
        if rec.note:
            out += [rec.note, ""]
        if rec.extra_code:
            out += [f"Run after {', '.join(k.split(':')[0] for k in rec.extra_code)}.", ""]
        if rec.setup:
            out += [f"Set-up: {rec.setup}.", ""]
        if rec.probe:
            out += [f"Probe: {rec.probe}.", ""]
        for change in rec.changes:
            out += [f"- {_change_text(change)}."]
        if rec.changes:
            out += [""]
        out += [f"Printed in {rec.subsection}:", "", f"```{lang}", code.rstrip("\n"), "```", ""]
    return "\n".join(out) + "\n"


def generate(root: Path = ROOT, srcdir: Path | None = None) -> Path:
    """Write ``_generated/errata.md`` into ``srcdir`` (default ``docs/``); returns its path."""
    srcdir = srcdir or root / "docs"
    target = srcdir / "_generated" / "errata.md"
    page = errata_page(load_records(root / "tests" / "chapter_samples.py"), root)
    _write_if_changed(target, page.encode("utf-8"))
    return target


def _on_builder_inited(app: Any) -> None:
    generate(ROOT, Path(app.srcdir))


def setup(app: Any) -> dict[str, Any]:
    """Sphinx entry point: write the errata table before Sphinx reads the sources."""
    app.connect("builder-inited", _on_builder_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}

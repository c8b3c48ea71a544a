"""Sphinx extension that turns ``notebooks/`` and ``results/`` into the workbook's site.

On ``builder-inited`` it writes into the Sphinx source folder ``docs/`` (both outputs ignored by
git, refreshed on every build):

- ``notebooks/NN_topic.ipynb``: a copy of every ``notebooks/[0-9][0-9]*_*.ipynb`` whose hidden
  cells (metadata ``jupyter.source_hidden`` / ``jupyter.outputs_hidden``, how JupyterLab hides
  a solution) get myst-nb's ``hide-input`` / ``hide-output`` tags, so the site collapses them
  behind a toggle too. The notebooks themselves are never edited; nothing is executed
  (``nb_execution_mode = "off"``: the site shows the stored outputs).
- ``_generated/chapters.md``: the chapter-section -> notebook table.
- ``_generated/runtimes.md``: how long each notebook's stored run took (from the cells' ``execution``
  timestamps, which nbconvert and JupyterLab record).
- ``_generated/chapter-map.md``: each chapter subsection (``48.N.M`` in a notebook heading) ->
  the notebook, heading and cells that run it.
- ``_generated/results.md`` (+ the charts): the newest ``results/<machine>/`` set of ``make bench-all``.

A copy is rewritten only when its content changed, so Sphinx rebuilds only what changed.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_GLOB = "[0-9][0-9]*_*.ipynb"

#: The chapter's sections (48.N), named in the workbook's own words.
SECTIONS: dict[str, str] = {
    "48.1": "Finding the bottleneck: profiling",
    "48.2": "Code optimisation: vectorisation, pandas pitfalls, data structures",
    "48.3": "Algorithmic optimisation and compiled libraries",
    "48.4": "Parallel processing: processes, threads, asyncio",
    "48.5": "Distributed computing: Dask, Ray, Spark",
    "48.6": "Caching",
    "48.7": "Memory optimisation",
    "48.8": "GPU acceleration",
    "48.9": "Scaling prediction services",
    "48.10": "Cloud scaling",
}

#: Notebooks whose opening cell does not cite a section number: their section(s), by prefix.
#: Any other notebook is placed by the ``48.N`` numbers its opening cell (else its markdown)
#: cites; a notebook citing none is listed as groundwork.
SECTION_OF_PREFIX: dict[str, tuple[str, ...]] = {
    "00": (),
    "01": ("48.1",),
    "03b": ("48.3",),
    "05": ("48.5",),
    "06": ("48.6",),
    "07": ("48.7",),
}

_SECTION_RE = re.compile(r"(?<![\d.])48\.(\d+)(?:\.\d+)*")
_SUBSECTION_RE = re.compile(r"(?<![\d.])48\.(\d+)\.(\d+)(?![\d.]*\d)")
_HEADING_RE = re.compile(r"^(#{1,6})\s+(.+?)\s*$", re.MULTILINE)


def notebook_paths(root: Path = ROOT) -> list[Path]:
    """Every workbook notebook, ``notebooks/NN*_*.ipynb``, sorted by name."""
    return sorted((root / "notebooks").glob(NOTEBOOK_GLOB))


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def title_of(nb: dict[str, Any], fallback: str) -> str:
    """The first ``# heading`` of the notebook's first markdown cell (else ``fallback``)."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in _source(cell).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
            break
    return fallback


def sections_of(nb: dict[str, Any], stem: str) -> tuple[str, ...]:
    """The chapter sections (``"48.N"``) a notebook covers, in order of first citation."""
    prefix = stem.split("_", 1)[0]
    if prefix in SECTION_OF_PREFIX:
        return SECTION_OF_PREFIX[prefix]
    markdown = [_source(c) for c in nb.get("cells", []) if c.get("cell_type") == "markdown"]
    for texts in (markdown[:1], markdown):
        found: list[str] = []
        for text in texts:
            for m in _SECTION_RE.finditer(text):
                sec = f"48.{m.group(1)}"
                if sec in SECTIONS and sec not in found:
                    found.append(sec)
        if found:
            return tuple(found)
    return ()


def heading_anchor(title: str) -> str:
    """The anchor myst-parser gives a heading (``myst_heading_anchors``): GitHub's slug rule."""
    text = re.sub(r"[`*]", "", title.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def subsection_cells(nb: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    """Each heading citing a chapter subsection: ``(48.N.M, heading, first cell, last cell)``.

    The cells a heading covers run from its own markdown cell to the cell before the next
    heading of the same or a higher level (or the notebook's end), counted from 0 as
    JupyterLab's cell index. A heading citing several subsections gives one row for each.
    """
    cells = nb.get("cells", [])
    heads: list[tuple[int, int, str]] = []
    for i, cell in enumerate(cells):
        if cell.get("cell_type") == "markdown":
            heads += [(i, len(m.group(1)), m.group(2)) for m in _HEADING_RE.finditer(_source(cell))]
    rows = []
    for k, (i, level, title) in enumerate(heads):
        later = [j for j, lv, _ in heads[k + 1 :] if lv <= level and j > i]
        last = (later[0] - 1) if later else len(cells) - 1
        for m in _SUBSECTION_RE.finditer(title):
            rows.append((f"48.{m.group(1)}.{m.group(2)}", title, i, last))
    return rows


def _subsection_key(sub: str) -> tuple[int, ...]:
    return tuple(int(x) for x in sub.split("."))


def chapter_map(paths: list[Path]) -> str:
    """The chapter-subsection -> notebook-cells table (``_generated/chapter-map.md``)."""
    found: dict[str, list[str]] = {}
    for path in paths:
        nb = json.loads(path.read_text(encoding="utf-8"))
        for sub, title, first, last in subsection_cells(nb):
            plain = re.sub(r"[`*]", "", title)
            link = f"[{plain}](notebooks/{path.stem}.ipynb#{heading_anchor(title)})"
            cells = f"cell {first}" if first == last else f"cells {first}-{last}"
            found.setdefault(sub, []).append(f"`{path.stem}` {link}, {cells}")
    rows = [
        [sub, SECTIONS.get(".".join(sub.split(".")[:2]), ""), "<br>".join(found[sub])]
        for sub in sorted(found, key=_subsection_key)
    ]
    return _table(
        ["subsection", "chapter section", "where it runs (notebook, heading, cells)"], rows
    )


def tag_hidden_cells(nb: dict[str, Any]) -> int:
    """Add ``hide-input``/``hide-output`` tags to JupyterLab-hidden cells; returns how many.

    A cell whose metadata has ``jupyter.source_hidden`` gets ``hide-input``, one with
    ``jupyter.outputs_hidden`` gets ``hide-output`` (myst-nb renders both as a collapsed
    toggle). Works on the parsed JSON in place.
    """
    changed = 0
    for cell in nb.get("cells", []):
        meta = cell.setdefault("metadata", {})
        hidden = meta.get("jupyter", {})
        tags = list(meta.get("tags", []))
        want = [
            tag
            for key, tag in (("source_hidden", "hide-input"), ("outputs_hidden", "hide-output"))
            if hidden.get(key) and tag not in tags
        ]
        if want:
            meta["tags"] = tags + want
            changed += 1
    return changed


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def stored_runtime_seconds(nb: dict[str, Any]) -> float | None:
    """Seconds from the first code cell's start to the last one's end in the stored run.

    Read from the cells' ``execution`` metadata (``iopub.execute_input`` and
    ``shell.execute_reply``, UTC); ``None`` when the notebook carries no timestamps. Kernel
    start-up is not included (it precedes the first cell).
    """
    starts, ends = [], []
    for cell in nb.get("cells", []):
        ex = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in ex:
            starts.append(_parse_time(ex["iopub.execute_input"]))
        end = ex.get("shell.execute_reply") or ex.get("iopub.status.idle")
        if end:
            ends.append(_parse_time(end))
    if not starts or not ends:
        return None
    return (max(ends) - min(starts)).total_seconds()


def executed_on(nb: dict[str, Any]) -> str | None:
    """When the stored run started, ``YYYY-MM-DD HH:MM`` UTC, or ``None`` without timestamps."""
    for cell in nb.get("cells", []):
        start = cell.get("metadata", {}).get("execution", {}).get("iopub.execute_input")
        if start:
            return _parse_time(start).strftime("%Y-%m-%d %H:%M")
    return None


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def newest_results(root: Path = ROOT) -> Path | None:
    """The ``results/<machine>/`` folder of ``make bench-all`` with the newest ``index.json``."""
    found = []
    for index in (root / "results").glob("*/index.json"):
        try:
            date = json.loads(index.read_text(encoding="utf-8"))["finished"]
        except (OSError, ValueError, KeyError) as exc:
            raise RuntimeError(f"{index}: not a bench-all index ({exc})") from exc
        found.append((date, index.parent))
    return max(found)[1] if found else None


def _load(index: dict[str, Any], when: str) -> str:
    values = index.get(f"load_average_{when}")
    return f"{values[0]:.1f}" if values else "not recorded"


def _results_page(gen: Path, root: Path) -> str:
    folder = newest_results(root)
    if folder is None:
        return (
            "No `make bench-all` results are stored yet: run `make bench-all` and rebuild "
            "the site.\n"
        )
    index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    machine = index["machine"]
    rel = folder.relative_to(root).as_posix()
    gpu = (machine.get("gpu") or {}).get("device", "none")
    out = [
        f"Recorded by `make bench-all` on **{index['finished'][:10]}** "
        f"(finished {index['finished']}) on **{index['machine_name']}**: "
        f"{machine['cpu_model']}, {machine['usable_cores']} usable cores, "
        f"{machine['memory_total_gb']} GB RAM, GPU: {gpu}; Python {machine['python']}, "
        f"NumPy {machine['numpy']}, pandas {machine['pandas']}, Numba {machine['numba']}. "
        f"Load average (1 min) at start and end: {_load(index, 'start')} / "
        f"{_load(index, 'end')} (above the core count means other work shared the machine). "
        f"Files: `{rel}/`.\n",
    ]
    for size in index.get("sizes", []):
        bench_dir = folder / size
        md = (bench_dir / "bench.md").read_text(encoding="utf-8")
        body = md.split("\n", 1)[1] if md.startswith("# ") else md
        out.append(f"\n### `{size}` panel\n\n{body}\n")
        png = bench_dir / "bench.png"
        if png.exists():
            dest = gen / "results" / f"bench-{size}.png"
            _write_if_changed(dest, png.read_bytes())
            out.append(
                f"\n```{{image}} _generated/results/bench-{size}.png\n:alt: benchmark chart, {size} "
                f"panel\n:width: 100%\n```\n"
            )
    sweep = folder / "sweep"
    if (sweep / "sweep.png").exists():
        _write_if_changed(gen / "results" / "sweep.png", (sweep / "sweep.png").read_bytes())
        out.append(
            "\n### Size sweep\n\nMedian seconds per call against the number of symbols "
            f"(`{rel}/sweep/`).\n\n```{{image}} _generated/results/sweep.png\n:alt: size sweep chart\n"
            ":width: 100%\n```\n"
        )
    return "".join(out)


def generate(root: Path = ROOT, srcdir: Path | None = None) -> dict[str, Any]:
    """Write ``notebooks/`` and ``_generated/`` into ``srcdir`` (default ``docs/``).

    Returns ``{"notebooks": [file names], "hidden_cells": count}``. Raises ``RuntimeError``
    naming the file when a notebook is not valid JSON or no notebook exists.
    """
    srcdir = srcdir or root / "docs"
    gen = srcdir / "_generated"
    nb_dir = srcdir / "notebooks"
    nb_dir.mkdir(parents=True, exist_ok=True)
    paths = notebook_paths(root)
    if not paths:
        raise RuntimeError(f"no notebooks match {root / 'notebooks' / NOTEBOOK_GLOB}")
    names = {p.name for p in paths}
    for stale in nb_dir.glob("*.ipynb"):
        if stale.name not in names:
            stale.unlink()

    by_section: dict[str, list[str]] = {s: [] for s in SECTIONS}
    groundwork: list[str] = []
    runtimes: list[list[str]] = []
    hidden_total = 0
    for path in paths:
        try:
            nb = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RuntimeError(f"{path}: not valid notebook JSON ({exc})") from exc
        hidden_total += tag_hidden_cells(nb)
        data = (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
        _write_if_changed(nb_dir / path.name, data)
        title = title_of(nb, path.stem)
        link = f"[{title}](notebooks/{path.stem}.ipynb)"
        secs = sections_of(nb, path.stem)
        for sec in secs:
            by_section[sec].append(link)
        if not secs:
            groundwork.append(link)
        seconds = stored_runtime_seconds(nb)
        runtimes.append(
            [
                f"`{path.name}`",
                "not recorded" if seconds is None else f"{seconds:.0f} s",
                executed_on(nb) or "not recorded",
            ]
        )

    rows = [
        ["groundwork", "the data, the pipeline, the reference numbers", "<br>".join(groundwork)]
    ]
    rows += [
        [sec, SECTIONS[sec], "<br>".join(nbs) or "(none yet)"] for sec, nbs in by_section.items()
    ]
    _write_if_changed(
        gen / "chapters.md",
        _table(["chapter section", "topic", "notebook"], rows).encode("utf-8"),
    )
    _write_if_changed(
        gen / "runtimes.md",
        _table(["notebook", "stored run (default size)", "executed (UTC)"], runtimes).encode(
            "utf-8"
        ),
    )
    _write_if_changed(gen / "results.md", _results_page(gen, root).encode("utf-8"))
    _write_if_changed(gen / "chapter-map.md", chapter_map(paths).encode("utf-8"))
    return {"notebooks": [p.name for p in paths], "hidden_cells": hidden_total}


def _on_builder_inited(app: Any) -> None:
    generate(ROOT, Path(app.srcdir))


def setup(app: Any) -> dict[str, Any]:
    """Sphinx entry point: generate the pages before Sphinx looks for source files."""
    app.connect("builder-inited", _on_builder_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}

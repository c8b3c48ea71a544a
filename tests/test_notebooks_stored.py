"""Every notebook is stored executed: outputs present, no errors, no stderr, no warnings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]*_*.ipynb"))


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "no notebooks found in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_with_outputs(path: Path) -> None:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    assert cells[0]["cell_type"] == "markdown", "a notebook opens with its goal"
    problems = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code" or not "".join(cell["source"]).strip():
            continue
        if cell.get("execution_count") is None:
            problems.append(f"cell {i}: not executed (no execution_count)")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"cell {i}: stores an error ({out.get('ename')})")
            if out.get("name") == "stderr":
                problems.append(f"cell {i}: stores stderr: {''.join(out['text'])[:120]!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_summary_and_hidden_solution(path: Path) -> None:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    text = "\n".join("".join(c["source"]) for c in cells)
    assert "Summary" in text, "a notebook closes with a summary table"
    hidden = [
        i
        for i, c in enumerate(cells)
        if c.get("metadata", {}).get("jupyter", {}).get("source_hidden")
    ]
    assert hidden, "the exercise needs a hidden solution cell (metadata.jupyter.source_hidden)"
    shown = [i for i in hidden if not cells[i]["metadata"]["jupyter"].get("outputs_hidden")]
    assert not shown, f"solution cells {shown} show their outputs (set jupyter.outputs_hidden)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_prints_its_environment_first(path: Path) -> None:
    """One of the first two code cells prints the machine and versions, ignored by nbval."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"][:2]
    assert any(
        src.startswith("# NBVAL_IGNORE_OUTPUT") and "environment_report(" in src for src in code
    ), "a first code cell must print environment_report(...) under # NBVAL_IGNORE_OUTPUT"

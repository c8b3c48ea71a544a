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


#: Notebooks held to issue 22's practice rules (08-11 join with the issue that covers them).
PRACTICE_SCOPE = ("00_", "01_", "02_", "03_", "03b_", "04_", "05_", "05b_", "06_", "07_")


def _hidden_solutions(cells: list[dict]) -> list[int]:
    return [
        i
        for i, c in enumerate(cells)
        if c["cell_type"] == "code"
        and c.get("metadata", {}).get("jupyter", {}).get("source_hidden")
    ]


@pytest.mark.parametrize(
    "path", [p for p in NOTEBOOKS if p.name.startswith(PRACTICE_SCOPE)], ids=lambda p: p.name
)
def test_notebook_has_two_graded_exercises_whose_solutions_reveal_nothing(path: Path) -> None:
    """At least two hidden solutions and two ``check_answer`` cells; a solution prints nothing.

    A solution's output would show the answer even with its source collapsed, so a solution
    cell only assigns the variables its check cell reads.
    """
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    hidden = _hidden_solutions(cells)
    checks = [
        i
        for i, c in enumerate(cells)
        if c["cell_type"] == "code" and "check_answer(" in "".join(c["source"])
    ]
    assert len(hidden) >= 2, f"{len(hidden)} hidden solution(s); a notebook needs two exercises"
    assert len(checks) >= 2, f"{len(checks)} check_answer cell(s); grade both exercises"
    talking = [i for i in hidden if cells[i].get("outputs")]
    assert not talking, f"solution cells {talking} store outputs (they may reveal the answer)"


@pytest.mark.parametrize(
    "path", [p for p in NOTEBOOKS if p.name.startswith(PRACTICE_SCOPE)], ids=lambda p: p.name
)
def test_checksum_table_is_printed_at_most_once(path: Path) -> None:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    tables = [
        i
        for i, c in enumerate(cells)
        if c["cell_type"] == "code"
        and any(
            line.strip().startswith(("checksums(", "display(checksums("))
            for line in "".join(c["source"]).splitlines()
        )
    ]
    assert len(tables) <= 1, f"cells {tables} each print the checksum table"

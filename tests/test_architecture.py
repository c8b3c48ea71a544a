"""The package's layers hold: nothing imports from a layer below it, and the core is lean.

Layers, top to bottom (``docs/architecture.md``): the core (``pipeline``, ``_blocks``,
``data``, ``indicators``), engines (``engines``, ``cache``), ``model``, services
(``serving``, ``cloud``), measurement (``bench``), ``lessons`` and the entry points
(``cli``). ``_infra`` (plumbing) may be used by every layer and uses none; the package root
is the public API of the core.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nepse_perf"

#: Each top-level module or subpackage of nepse_perf and its layer (lower = more basic).
LAYER = {
    "_infra": 0,
    "pipeline": 1,
    "_blocks": 1,
    "data": 1,
    "indicators": 1,
    "engines": 2,
    "cache": 2,
    "model": 3,
    "serving": 4,
    "cloud": 4,
    "bench": 5,
    "lessons": 6,
    "cli": 7,
}

#: Packages of the extras that ``import nepse_perf`` + ``compute_indicators`` must not load.
EXTRAS = (
    "dask",
    "distributed",
    "bokeh",
    "aiohttp",
    "redis",
    "duckdb",
    "sklearn",
    "torch",
    "onnxruntime",
    "fastapi",
    "ray",
    "pyspark",
)


def _imports(path: Path) -> list[str]:
    """The nepse_perf modules ``path`` imports (``from a.b import c`` counts as ``a.b``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(a.name for a in node.names)
    return [m for m in found if m.split(".")[0] == "nepse_perf"]


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()}
    parts -= {"__init__", "__main__", "__pycache__"}
    assert parts == set(LAYER)


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_imports_from_a_layer_below_it(path: Path) -> None:
    top = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if top in ("__init__", "__main__"):
        return
    mine = LAYER[top]
    upward = []
    for module in _imports(path):
        parts = module.split(".")
        theirs = LAYER.get(parts[1], 1) if len(parts) > 1 else 1  # the root: the core's API
        if theirs > mine or (top == "_infra" and parts[1:2] != ["_infra"]):
            upward.append(module)
    assert not upward, f"{path.relative_to(PACKAGE)} imports from a lower layer: {upward}"


def test_the_core_loads_no_extra() -> None:
    """``compute_indicators`` and ``load_prices`` on real data import none of the extras."""
    code = (
        "import json, sys\n"
        "from nepse_perf import compute_indicators, load_prices\n"
        "from nepse_perf.data import sample_path\n"
        "compute_indicators(load_prices(sample_path()))\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert not loaded & set(EXTRAS), sorted(loaded & set(EXTRAS))


def test_the_core_dependencies_are_lean() -> None:
    """pyproject's core holds what the core and ``make bench`` import, nothing more."""
    import tomllib

    root = PACKAGE.parent
    core = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "dependencies"
    ]
    names = {req.split(">")[0].split("=")[0].split("[")[0].lower() for req in core}
    assert names == {
        "numpy",
        "pandas",
        "numba",
        "ta-lib",
        "pyarrow",
        "matplotlib",
        "tqdm",
        "psutil",
    }

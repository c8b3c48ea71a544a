"""`nepse-perf bench-all` (``make bench-all``): one folder per machine, every size, the sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nepse_perf.cli import main
from nepse_perf.cli.bench_all import machine_slug


@pytest.mark.parametrize(
    ("model", "cores", "slug"),
    [
        ("AMD EPYC", 2, "amd-epyc-2c"),
        ("Intel(R) Core(TM) i7-1185G7 @ 3.00GHz", 8, "intel-i7-1185g7-8c"),
        ("Apple M2 Pro", 12, "apple-m2-pro-12c"),
        ("", 4, "unknown-4c"),
    ],
)
def test_machine_slug(model: str, cores: int, slug: str) -> None:
    assert machine_slug({"cpu_model": model, "usable_cores": cores}) == slug


def test_bench_all_writes_one_folder_per_machine(tmp_path: Path) -> None:
    status = main(
        [
            "bench-all",
            "--out",
            str(tmp_path),
            "--machine",
            "testbox",
            "--sizes",
            "small",
            "--sweep-symbols",
            "10",
            "--repeat",
            "1",
            "--quiet",
        ]
    )
    assert status == 0
    folder = tmp_path / "testbox"
    for name in ("bench.md", "bench.csv", "bench.png", "bench.json"):
        assert (folder / "small" / name).stat().st_size > 0
    for name in ("sweep.json", "sweep.csv", "sweep.png"):
        assert (folder / "sweep" / name).stat().st_size > 0
    index = json.loads((folder / "index.json").read_text())
    assert index["machine_name"] == "testbox"
    assert index["sizes"] == ["small"] and index["sweep"] == "sweep"
    assert index["machine"]["usable_cores"] >= 1 and index["machine"]["cpu_model"]
    assert [s["step"] for s in index["steps"]] == ["small", "sweep"]
    assert index["started"] <= index["finished"]


def test_bench_all_rejects_an_unknown_size(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["bench-all", "--out", str(tmp_path), "--sizes", "small,huge"]) == 2
    assert "--sizes" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())

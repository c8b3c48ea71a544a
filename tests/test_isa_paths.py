"""Compared outputs hold on CPUs with and without VNNI: the lower path is run, not assumed.

ONNX Runtime picks its int8 kernels from CPUID and has no switch to force a lower instruction
set, so the tests run the same ONNX files under QEMU's user-mode emulator as an AMD EPYC Zen 2
(``EPYC-Rome``: AVX2, no AVX-512, no VNNI). The emulated tests skip only where ``qemu-x86_64``
is absent and neither ``CI`` nor ``NEPSE_PERF_REQUIRE_QEMU`` is set; ``.ci/run`` installs
Debian's ``qemu-user``, so in CI they fail instead of skipping.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nepse_perf import load_prices
from nepse_perf.bench.emulation import EMULATED_CPU, emulation_available, run_emulated
from nepse_perf.bench.machine import cpuid, int8_dot_path, simd_features
from nepse_perf.bench.model import (
    ISA_DEPENDENT_VARIANTS,
    compared_quantisation,
    int8_path_spread,
    quantisation_paths,
)
from nepse_perf.bench.score_files import score_directory
from nepse_perf.data import sample_path
from nepse_perf.model import make_dataset, to_onnx, train

RECORD = Path(__file__).resolve().parents[1] / "results" / "isa" / "quantisation-paths.json"
DETERMINISTIC = ("float32", "int8 dynamic, 7-bit", "float16")


def _qemu_or_skip() -> None:
    if emulation_available():
        return
    if os.environ.get("CI") == "true" or os.environ.get("NEPSE_PERF_REQUIRE_QEMU") == "1":
        pytest.fail("qemu-x86_64 is required here (CI or NEPSE_PERF_REQUIRE_QEMU) but missing")
    pytest.skip("qemu-x86_64 is not installed (Debian: qemu-user)")


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        ({"AVX2": True, "AVX512BW": True, "AVX512_VNNI": True}, "VNNI"),
        ({"AVX2": True, "AVX_VNNI": True}, "VNNI"),
        ({"AVX2": True, "AVX512BW": True}, "AVX-512, no VNNI"),
        ({"AVX2": True}, "AVX2, no VNNI"),
        ({"AVX2": True, "AMX_INT8": True, "AVX512_VNNI": True}, "AMX"),
        ({}, "other"),
    ],
)
def test_int8_dot_path_names_the_kernel_family(features, expected):
    assert int8_dot_path(features) == expected


def test_cpuid_agrees_with_numpy():
    """The CPUID bits read directly match what NumPy's own dispatcher detected."""
    from numpy._core._multiarray_umath import __cpu_features__ as numpy_features

    if cpuid(0) is None:
        pytest.skip("not an x86-64 Linux machine")
    ours = simd_features()
    for name, theirs in (
        ("AVX2", "AVX2"),
        ("AVX512F", "AVX512F"),
        ("AVX512BW", "AVX512BW"),
        ("AVX512_VNNI", "AVX512VNNI"),
    ):
        assert ours[name] == bool(numpy_features.get(theirs)), name


@pytest.fixture(scope="module")
def notebook_mlp():
    """Notebook 09's MLP: the sample's data set, walk-forward trained with seed 0."""
    ds = make_dataset(load_prices(sample_path()), horizon=1)
    return train(ds, kind="mlp", seed=0), ds.X.to_numpy(), ds.y.to_numpy()


def test_score_directory_writes_scores_and_cpu(notebook_mlp, tmp_path):
    model, X, _ = notebook_mlp
    (tmp_path / "m.onnx").write_bytes(to_onnx(model))
    np.save(tmp_path / "X.npy", X[:50])
    info = score_directory(tmp_path)
    scores = np.load(tmp_path / "m.scores.npy")
    assert scores.shape == (50,) and np.isfinite(scores).all()
    assert info["int8_path"] == int8_dot_path()
    assert json.loads((tmp_path / "cpu.json").read_text())["features"] == simd_features()


def test_emulated_cpu_offers_avx2_only():
    _qemu_or_skip()
    report = json.loads(run_emulated("nepse_perf.bench.machine", timeout=120))
    features = report["features"]
    assert features["AVX2"] and not features["AVX512F"]
    assert not features["AVX512_VNNI"] and not features["AVX_VNNI"]
    assert report["int8_path"] == "AVX2, no VNNI"


def test_emulation_reports_a_failing_module():
    _qemu_or_skip()
    with pytest.raises(RuntimeError, match="exited 1"):
        run_emulated("nepse_perf.bench.score_files", ["a", "b"], timeout=120)


@pytest.mark.slow
def test_quantised_mlp_on_both_paths(notebook_mlp):
    """Notebook 09's compared quantisation rows are the same with and without VNNI.

    Deterministic variants (float32, 7-bit int8, float16) give bit-identical scores on the
    native and the emulated CPU; the default int8 model lands on the same point of the
    compared grid on both; and where this CPU has VNNI, the default int8 scores really do
    differ (the dependence the notebook teaches is there to see).
    """
    _qemu_or_skip()
    model, X, y = notebook_mlp
    paths = quantisation_paths(model, X, y, cpus=(None, EMULATED_CPU))
    emulated = paths[paths["cpu"] == f"{EMULATED_CPU} (QEMU)"]
    assert set(emulated["int8_path"]) == {"AVX2, no VNNI"}
    by = paths.set_index(["cpu", "variant"])["same_as_first"]
    for variant in DETERMINISTIC:
        assert by[(f"{EMULATED_CPU} (QEMU)", variant)], variant
    assert int8_path_spread(paths, len(X))["int8 dynamic"]["on_grid"]
    native_path = paths.loc[paths["cpu"] == "native", "int8_path"].iloc[0]
    expect_same = native_path in ("AVX2, no VNNI", "AVX-512, no VNNI")
    assert by[(f"{EMULATED_CPU} (QEMU)", "int8 dynamic")] == expect_same
    tables = [
        compared_quantisation(rows.assign(kind="mlp", bytes=0), len(X)).reset_index(drop=True)
        for _, rows in paths.groupby("cpu", sort=False)
    ]
    pd.testing.assert_frame_equal(tables[0], tables[1])


def test_recorded_paths_fit_the_grid():
    """The record notebook 09 shows without QEMU: both paths, on one grid point, and the
    deterministic variants identical."""
    paths = pd.read_json(RECORD, orient="records")
    assert set(paths["int8_path"]) == {"VNNI", "AVX2, no VNNI"}
    n_rows = 65_831  # notebook 09's data set (the sample, horizon 1)
    spread = int8_path_spread(paths, n_rows)
    assert all(spread[v]["on_grid"] for v in ISA_DEPENDENT_VARIANTS)
    assert spread["int8 dynamic"]["flipped"] > 0
    exact = paths.groupby("variant")["same_as_first"].all()
    assert all(exact[v] for v in DETERMINISTIC)


#: Numba's own switches: compile for Haswell (AVX2 + FMA, no AVX-512) on any x86-64 CPU.
NUMBA_AVX2 = {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": ""}

_NUMBA_RUN = """
import sys, numpy as np
from nepse_perf import compute_indicators, load_prices
from nepse_perf.data import sample_path
from nepse_perf.indicators.backends import numba_parallel
prices = load_prices(sample_path())
out = {b: compute_indicators(prices, backend=b).to_numpy() for b in ("numba", "numba_parallel")}
asm = "".join(numba_parallel.fused_panel.inspect_asm().values())
np.savez(sys.argv[1], zmm=np.array("zmm" in asm), **out)
"""


def _numba_run(tmp_path: Path, name: str, env: dict[str, str]) -> dict[str, np.ndarray]:
    import subprocess
    import sys

    target = tmp_path / f"{name}.npz"
    env = {**os.environ, **env, "NUMBA_CACHE_DIR": str(tmp_path / f"cache-{name}")}
    subprocess.run([sys.executable, "-c", _NUMBA_RUN, str(target)], env=env, check=True)
    with np.load(target) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.slow
def test_numba_kernels_are_bit_identical_when_compiled_for_avx2(tmp_path):
    """The compiled backends give the same bits with and without AVX-512 code.

    Numba compiles for the host CPU unless ``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` say
    otherwise; the kernels use no fast-math, so LLVM may neither reassociate sums nor fuse a
    multiply and an add, and the vector width cannot change a result. Both runs compile from
    an empty cache; on this Zen 4 VM the native one uses 512-bit registers, the other none.
    """
    native = _numba_run(tmp_path, "native", {})
    avx2 = _numba_run(tmp_path, "avx2", NUMBA_AVX2)
    assert not avx2["zmm"]  # (natively, LLVM uses zmm registers where it prefers them)
    for backend in ("numba", "numba_parallel"):
        assert np.array_equal(native[backend].view(np.int64), avx2[backend].view(np.int64))

"""Notebook 08's GPU workloads on the CPU: the MLP's loop is the model's, covariances are np.cov's."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nepse_perf.lessons.gpu_workloads import (  # noqa: E402
    covariance_windows,
    gpu_problems,
    load_recorded_workloads,
    record_workloads,
    returns_grid,
    time_workloads,
    torch_device,
    train_mlp,
)
from nepse_perf.model.mlp import MLPClassifier  # noqa: E402


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1_500, 6)) * [1, 10, 100, 0.1, 1, 3]
    y = (X[:, 0] + rng.normal(size=len(X)) > 0).astype(np.int8)
    return X, y


def test_train_mlp_on_the_cpu_is_the_models_fit(data) -> None:
    X, y = data
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        module, losses = train_mlp(X, y, epochs=2, batch_size=256, seed=3)
    finally:
        torch.set_num_threads(threads)
    fitted = MLPClassifier(epochs=2, batch_size=256, seed=3).fit(X, y).module_
    for a, b in zip(module.state_dict().values(), fitted.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert len(losses) == 2 and np.isfinite(losses).all() and losses[1] < losses[0]


def test_covariance_windows_are_np_cov() -> None:
    close = 100 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.02, (400, 7)), axis=0))
    r = returns_grid(close)
    assert r.shape == (399, 7) and np.allclose(r[0], close[1] / close[0] - 1, rtol=0, atol=0)
    got = covariance_windows(r, 100, 30, batch=4)
    starts = range(0, len(r) - 100 + 1, 30)
    ref = np.stack([np.cov(r[s : s + 100].T) for s in starts])
    assert got.shape == ref.shape == (10, 7, 7)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-18)
    with pytest.raises(ValueError, match="window"):
        covariance_windows(r, 1, 1)
    with pytest.raises(ValueError, match="finite"):
        returns_grid(np.full((3, 2), np.nan))


def test_time_and_record_on_the_cpu(data, tmp_path, monkeypatch) -> None:
    X, y = data
    table = time_workloads(X[:300], y[:300], [5], device="cpu", n_days=60, window=20, step=20,
                           repeat=1)  # fmt: skip
    assert list(table["device"]) == ["cpu"] * 3 and table["finite"].all()
    assert (table["median_s"] > 0).all()
    assert torch_device() in ("cpu", "cuda")
    if not gpu_problems():
        pytest.skip("a CUDA GPU is present: the CPU-only record below does not apply")
    import nepse_perf.lessons.gpu_workloads as gw

    monkeypatch.setattr(gw, "TIMED_ROWS", 400)
    path = record_workloads(
        tmp_path, n_symbols=3, n_days=120, covariance_symbols=[4], window=20, step=20, repeat=1
    )
    doc = json.loads(path.read_text())
    assert doc["device"] is None and {r["device"] for r in doc["rows"]} == {"cpu"}
    assert load_recorded_workloads(path) is None  # a CPU-only file is not a GPU record


def test_without_gpu_the_command_fails_fast() -> None:
    if not gpu_problems():
        pytest.skip("a CUDA GPU is present on this machine")
    proc = subprocess.run(
        [sys.executable, "-m", "nepse_perf", "gpu-workloads", "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "no usable CUDA GPU" in proc.stderr

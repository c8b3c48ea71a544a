"""The workloads section 48.8 of the chapter says a GPU is for, run where ``torch`` finds one.

Notebook 08 shows that six indicators do too little arithmetic per byte to keep a GPU busy.
The chapter's own examples are different work: training a neural network (48.8.2-3) and
large matrix products. This module holds both, written once, for the CPU and the GPU alike:

* :func:`train_mlp`: the project's MLP (:class:`nepse_perf.model.mlp.MLPClassifier`'s
  layers and training loop, :func:`nepse_perf.model.mlp.train_module`) trained for a fixed
  number of epochs on ``device``;
* :func:`covariance_windows`: rolling covariance matrices of every symbol's one-session
  return (the model's ``ret_1`` feature laid out time-major, sessions x symbols): one batched
  matrix product ``D @ D^T`` per batch of windows;
* :func:`time_workloads` times both on a device at stated sizes; :func:`record_workloads`
  writes the timings of the CPU and, when there is one, the GPU into ``workloads.json``
  (``make gpu-sweep`` puts it in ``results/gpu/``, :data:`RECORDED_WORKLOADS`), and
  :func:`load_recorded_workloads` reads a file recorded with a GPU back (None otherwise).

``torch`` is imported inside the functions: importing this module loads nothing heavy.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nepse_perf._infra.checks import positive_int
from nepse_perf.bench.timing import measure
from nepse_perf.model.mlp import MLPClassifier, train_module

__all__ = [
    "MLP_SHAPES",
    "RECORDED_WORKLOADS",
    "TIMED_ROWS",
    "covariance_windows",
    "gpu_problems",
    "load_recorded_workloads",
    "record_workloads",
    "returns_grid",
    "time_workloads",
    "torch_device",
    "train_mlp",
]

#: Where ``make gpu-sweep`` keeps the workloads' timings recorded on a GPU machine.
RECORDED_WORKLOADS: Path = (
    Path(__file__).resolve().parents[2] / "results" / "gpu" / "workloads.json"
)

#: The MLPs timed: the project's model (``train``'s defaults) and a wide one, as
#: ``label -> (hidden widths, batch size)``.
MLP_SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    "mlp (32, 16), batch 512": ((32, 16), 512),
    "mlp (512, 512), batch 4096": ((512, 512), 4096),
}

#: Rows of the data set the MLPs are timed on (the first rows of notebook 08's data set).
TIMED_ROWS = 30_000


def torch_device() -> str:
    """``"cuda"`` when PyTorch sees a usable CUDA GPU, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def train_mlp(
    X: np.ndarray,
    y: np.ndarray,
    *,
    hidden: tuple[int, ...] = (32, 16),
    epochs: int = 2,
    batch_size: int = 512,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
) -> tuple[Any, list[float]]:
    """The project's MLP trained on ``device`` for ``epochs``; returns (module, epoch losses).

    Inputs are standardised as :meth:`MLPClassifier.fit` does, the weights initialised from
    ``seed`` on the CPU (so every device starts from the same weights) and the module then
    trained by :func:`train_module` on ``device``. On the CPU with one thread the weights are
    those of ``MLPClassifier(...).fit(X, y)`` bit for bit. The module stays on ``device``.
    """
    import torch

    model = MLPClassifier(hidden=hidden, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    X = np.asarray(X, dtype=np.float64)
    model.mean_ = X.mean(axis=0)
    scale = X.std(axis=0)
    model.scale_ = np.where(scale > 0, scale, 1.0)
    torch.manual_seed(seed)
    module = model._build(X.shape[1])
    losses = train_module(
        module,
        model.standardise(X),
        y,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
    )
    return module, losses


def returns_grid(close: np.ndarray) -> np.ndarray:
    """One-session simple returns ``close_t / close_(t-1) - 1`` of a time-major close grid.

    ``close`` is (sessions, symbols) with every symbol complete (no padding); the result is
    (sessions - 1, symbols): the model's ``ret_1`` feature, one column per symbol.
    """
    close = np.asarray(close, dtype=np.float64)
    if close.ndim != 2 or close.shape[0] < 2 or not np.isfinite(close).all():
        raise ValueError("close: need a finite (sessions >= 2, symbols) time-major grid")
    return close[1:] / close[:-1] - 1.0


def covariance_windows(
    returns: np.ndarray,
    window: int,
    step: int,
    *,
    device: str = "cpu",
    batch: int = 64,
) -> np.ndarray:
    """Covariance matrices of ``returns`` over windows of ``window`` rows every ``step`` rows.

    ``returns`` is (sessions, symbols); the result is (windows, symbols, symbols) float64,
    window ``k`` covering rows ``k * step`` to ``k * step + window - 1`` (sample covariance,
    ``window - 1`` in the denominator, as ``np.cov``). Each batch of ``batch`` windows is one
    batched matrix product on ``device``, ``D @ D^T`` of the windows' deviations from their
    means; batching bounds the memory the deviations take.
    """
    import torch

    window, step, batch = (
        positive_int(v, n) for v, n in ((window, "window"), (step, "step"), (batch, "batch"))
    )
    if window < 2 or returns.ndim != 2 or returns.shape[0] < window:
        raise ValueError(
            f"need a (sessions >= window, symbols) array and window >= 2, got {returns.shape}, {window}"
        )
    r = torch.from_numpy(np.ascontiguousarray(returns, dtype=np.float64)).to(device)
    windows = r.unfold(0, window, step)  # (n_windows, symbols, window), a view
    parts = []
    for start in range(0, windows.shape[0], batch):
        w = windows[start : start + batch]
        dev = w - w.mean(dim=2, keepdim=True)
        parts.append(torch.bmm(dev, dev.transpose(1, 2)) / (window - 1))
    return torch.cat(parts).cpu().numpy()


def time_workloads(
    X: np.ndarray,
    y: np.ndarray,
    covariance_symbols: Sequence[int],
    *,
    device: str,
    n_days: int = 2_500,
    window: int = 250,
    step: int = 50,
    epochs: int = 1,
    repeat: int = 3,
) -> pd.DataFrame:
    """Median and best seconds of each workload on ``device`` (a warm-up call first).

    The MLPs of :data:`MLP_SHAPES` train for ``epochs`` on ``X``, ``y``; the covariance
    windows run on random returns of ``n_days`` sessions for each count in
    ``covariance_symbols``. Each call ends with its results on the host (a CUDA device is
    synchronised by the copy back). Columns: ``workload``, ``device``, ``size``, ``median_s``,
    ``best_s``, ``repeats``, ``finite`` (every loss or matrix entry finite).
    """
    rows = []
    for label, (hidden, batch_size) in MLP_SHAPES.items():

        def fit(hidden=hidden, batch_size=batch_size):
            _, losses = train_mlp(
                X, y, hidden=hidden, epochs=epochs, batch_size=batch_size, device=device
            )
            return losses

        t = measure(fit, repeat=repeat)
        ok = bool(np.isfinite(fit()).all())
        rows.append(
            (label, device, f"{len(X):,} rows x {X.shape[1]} features, {epochs} epoch(s)", t, ok)
        )
    rng = np.random.default_rng(0)
    for n_symbols in covariance_symbols:
        returns = rng.normal(0.0, 0.02, size=(n_days, n_symbols))
        run = lambda returns=returns: covariance_windows(returns, window, step, device=device)  # noqa: E731
        t = measure(run, repeat=repeat)
        rows.append(
            (
                f"covariance windows, {n_symbols:,} symbols",
                device,
                f"{n_days:,} sessions, window {window}, step {step}",
                t,
                bool(np.isfinite(run()).all()),
            )
        )
    return pd.DataFrame(
        [(w, d, s, t.median, t.best, len(t.times), ok) for w, d, s, t, ok in rows],
        columns=["workload", "device", "size", "median_s", "best_s", "repeats", "finite"],
    )


def _device_attrs() -> dict[str, Any]:
    """The torch build and, when there is one, the CUDA device the workloads ran on."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "device": torch.cuda.get_device_name(0) if cuda else None,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }


def record_workloads(
    out_dir: str | Path,
    *,
    n_symbols: int = 50,
    n_days: int = 2_500,
    covariance_symbols: Sequence[int] = (250, 500, 1_000, 2_000),
    window: int = 250,
    step: int = 50,
    epochs: int = 1,
    repeat: int = 3,
) -> Path:
    """Time the workloads on the CPU and, if PyTorch sees one, the GPU; write ``workloads.json``.

    The MLPs train on the first :data:`TIMED_ROWS` rows of the data set of
    ``synthetic_prices(n_symbols, n_days)`` (notebook 08's panel at its default size); the covariance windows run at each of ``covariance_symbols``
    over ``n_days`` sessions. The file holds the device, the torch build, the date, the
    settings and one row per (workload, device). Returns its path.
    """
    from nepse_perf.data import synthetic_prices
    from nepse_perf.model import make_dataset

    ds = make_dataset(synthetic_prices(n_symbols, n_days, seed=0))
    X, y = ds.X.to_numpy()[:TIMED_ROWS], ds.y.to_numpy()[:TIMED_ROWS]
    attrs = _device_attrs()
    devices = ["cpu"] + (["cuda"] if attrs["device"] else [])
    table = pd.concat(
        [
            time_workloads(
                X,
                y,
                covariance_symbols,
                device=d,
                n_days=n_days,
                window=window,
                step=step,
                epochs=epochs,
                repeat=repeat,
            )
            for d in devices
        ],
        ignore_index=True,
    )
    doc = {
        "what": "nepse-perf GPU workloads: median seconds per call, CPU and GPU",
        **attrs,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "settings": {
            "n_symbols": n_symbols,
            "timed_rows": len(X),
            "window": window,
            "step": step,
            "n_days": n_days,
            "epochs": epochs,
            "repeat": repeat,
            "covariance_symbols": list(covariance_symbols),
        },
        "rows": table.to_dict("records"),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "workloads.json"
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path


def load_recorded_workloads(path: str | Path | None = None) -> pd.DataFrame | None:
    """The workloads' timings recorded with a GPU (:data:`RECORDED_WORKLOADS`), or None.

    A file without a CUDA device (a CPU-only run) does not count. The DataFrame has the
    columns of :func:`time_workloads` and the file's other fields as ``attrs``.
    """
    path = Path(path) if path is not None else RECORDED_WORKLOADS
    if not path.is_file():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not doc.get("device"):
        return None
    table = pd.DataFrame(doc["rows"])
    table.attrs.update({k: v for k, v in doc.items() if k != "rows"})
    return table


def gpu_problems() -> list[str]:
    """What stops this machine from recording GPU figures; empty when nothing does.

    Asks ``numba.cuda`` (the ``gpu`` backend; the CUDA simulator does not count) and PyTorch
    (the workloads) for a usable CUDA GPU. Quick either way: no kernel is compiled.
    """
    from nepse_perf.indicators.backends import gpu

    problems = []
    if gpu.simulator_enabled():
        problems.append("NUMBA_ENABLE_CUDASIM=1 is set: the CUDA simulator is not a GPU")
    elif not gpu.gpu_available():
        problems.append(
            "numba.cuda finds no CUDA GPU (is numba-cuda installed, is the NVIDIA driver loaded?)"
        )
    if torch_device() != "cuda":
        import torch

        problems.append(
            f"PyTorch {torch.__version__} sees no CUDA GPU (a +cpu build cannot; install a CUDA "
            "build of torch)"
        )
    return problems

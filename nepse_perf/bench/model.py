"""Inference and training measurements for notebook 09 and ``nepse-perf bench-model``.

Every timing here excludes warm-up (the first call, which builds ONNX Runtime's kernels or
torch's caches), repeats the measurement, and reports the median with the quartiles. A
measurement of small batches loops enough calls to last ``target_s`` seconds, so timer
resolution does not decide the figure. All times are seconds; rates are rows per second.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nepse_perf.bench.machine import int8_dot_path
from nepse_perf.bench.score_files import onnx_scores
from nepse_perf.bench.timing import Timing, measure
from nepse_perf.model.dataset import Dataset
from nepse_perf.model.io import link_function, make_session, predict_proba, to_onnx
from nepse_perf.model.onnx_export import (
    ONNX_INPUT,
    ONNX_SCORE,
    hgb_trees,
    lightgbm_trees,
    trees_to_onnx,
)
from nepse_perf.model.train import TrainedModel, make_estimator, score

__all__ = [
    "ISA_DEPENDENT_VARIANTS",
    "ISA_STEPS",
    "LLEAVES_ANCHOR",
    "batch_curve",
    "compared_quantisation",
    "cpu_features",
    "dataloader_bench",
    "hardware_report",
    "int8_path_spread",
    "native_threads",
    "onnx_scores_on",
    "per_call",
    "quantisation_paths",
    "quantisation_table",
    "run_bench_model",
    "threshold_flip_demo",
    "tile_rows",
    "training_times",
]

#: Published anchor (lleaves README, Intel i7-4770, 4 cores): single-row predict of a
#: LightGBM model, in microseconds. Quoted beside our numbers, never as ours.
LLEAVES_ANCHOR = {"lightgbm native": 52.3, "onnxruntime": 11.0, "batch 100 onnxruntime": 191.0}


def cpu_features() -> list[str]:
    """The SIMD instruction sets this CPU offers, as NumPy detects them (e.g. AVX2, AVX512F)."""
    from numpy._core._multiarray_umath import __cpu_features__

    wanted = ("SSE42", "AVX", "FMA3", "AVX2", "AVX512F", "AVX512_SKX", "AVX512VNNI", "AVX512BF16")
    return [k for k in wanted if __cpu_features__.get(k)]


def hardware_report(model: TrainedModel | None = None) -> dict[str, Any]:
    """Which ONNX Runtime execution providers exist and which one a model's session uses.

    Also the CPU's SIMD instruction sets (ONNX Runtime's MLAS kernels pick the widest the
    CPU offers at run time), the path its int8 kernels take (``int8_path``, see
    :func:`~nepse_perf.bench.machine.int8_dot_path`) and whether a CUDA provider could be used.
    """
    import onnxruntime as ort

    info: dict[str, Any] = {
        "onnxruntime": ort.__version__,
        "available_providers": ort.get_available_providers(),
        "cuda_provider": "CUDAExecutionProvider" in ort.get_available_providers(),
        "cpu_features": cpu_features(),
        "int8_path": int8_dot_path(),
    }
    if model is not None and model.session is not None:
        info["session_providers"] = model.session.get_providers()
    return info


def tile_rows(X: np.ndarray, n: int) -> np.ndarray:
    """``n`` rows drawn by repeating ``X`` (for batches larger than the data set)."""
    reps = math.ceil(n / len(X))
    return np.ascontiguousarray(np.tile(X, (reps, 1))[:n])


def per_call(fn: Callable[[], Any], *, repeat: int = 5, target_s: float = 0.03) -> Timing:
    """Seconds per call of ``fn``: each of ``repeat`` measurements loops enough calls to last
    about ``target_s`` (calibrated on one warm call), then divides by the call count."""
    fn()  # warm-up
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    calls = max(1, min(10_000, round(target_s / one)))

    def loop() -> None:
        for _ in range(calls):
            fn()

    t = measure(loop, repeat=repeat, warmup=0)
    return Timing(tuple(x / calls for x in t.times), None)


@contextlib.contextmanager
def native_threads(n: int) -> Iterator[None]:
    """Limit OpenMP/BLAS (scikit-learn, LightGBM) and torch to ``n`` threads inside the block."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


def _native_fn(model: TrainedModel, block: np.ndarray, threads: int) -> Callable[[], Any]:
    est = model.estimator
    if model.kind == "lightgbm":
        return lambda: est.predict_proba(block, num_threads=threads)
    if model.kind == "mlp":
        import torch

        xs = torch.from_numpy(est.standardise(block))

        def run() -> Any:
            with torch.inference_mode():
                return est.module_(xs)

        return run
    return lambda: est.predict_proba(block)


def _timing_row(
    labels: dict[str, Any],
    t: Timing,
    *,
    time_key: str = "median_s",
    rate: tuple[str, float] | None = None,
) -> dict[str, Any]:
    """A result row: ``labels``, the median (as ``time_key``) and quartiles in seconds.

    ``rate=(name, count)`` adds ``name``: ``count`` per second of the median.
    """
    q1, q3 = t.quartiles
    row = {**labels, time_key: t.median, "q1_s": q1, "q3_s": q3}
    if rate is not None:
        name, count = rate
        row[name] = count / t.median
    return row


def _curve_row(kind: str, engine: str, threads: int, batch: int, t: Timing) -> dict[str, Any]:
    """One row of :func:`batch_curve`: seconds per call of ``batch`` rows and rows/s."""
    labels = {"kind": kind, "engine": engine, "threads": threads, "batch": batch}
    return _timing_row(labels, t, rate=("rows_per_s", batch))


def batch_curve(
    models: Sequence[TrainedModel],
    X: np.ndarray,
    batch_sizes: Sequence[int] = (1, 10, 100, 1000, 10_000, 100_000),
    *,
    threads: Sequence[int] = (1, 2),
    engines: Sequence[str] = ("native", "onnx"),
    repeat: int = 5,
    target_s: float = 0.03,
) -> pd.DataFrame:
    """Latency per call and rows per second against batch size, per model, engine and threads.

    ``native`` is the library's own predict (scikit-learn, LightGBM, torch); ``onnx`` an
    ONNX Runtime session with that many intra-op threads. Rows beyond ``len(X)`` repeat
    ``X``. Returns one row per (kind, engine, threads, batch) with ``median_s``, ``q1_s``,
    ``q3_s`` (seconds per call) and ``rows_per_s`` (batch / median).
    """
    rows = []
    largest = max(batch_sizes)
    data = tile_rows(np.asarray(X, dtype=np.float64), largest)
    for model in models:
        onnx_bytes = to_onnx(model)
        for n_threads in threads:
            session = make_session(onnx_bytes, threads=n_threads)
            dtype = np.float32 if session.get_inputs()[0].type == "tensor(float)" else np.float64
            for engine in engines:
                for b in batch_sizes:
                    block = np.ascontiguousarray(data[:b])
                    if engine == "onnx":
                        feed = {ONNX_INPUT: block.astype(dtype)}
                        fn = lambda s=session, f=feed: s.run(None, f)  # noqa: E731
                        t = per_call(fn, repeat=repeat, target_s=target_s)
                    else:
                        with native_threads(n_threads):
                            fn = _native_fn(model, block, n_threads)
                            t = per_call(fn, repeat=repeat, target_s=target_s)
                    rows.append(_curve_row(model.kind, engine, n_threads, b, t))
    return pd.DataFrame(rows)


def _onnx_variant_prob(onnx_bytes: bytes, X: np.ndarray, kind: str) -> tuple[np.ndarray, float]:
    session = make_session(onnx_bytes, threads=1)
    dtype = np.float32 if session.get_inputs()[0].type == "tensor(float)" else np.float64
    p = link_function(kind)(onnx_scores(onnx_bytes, X))
    block = {ONNX_INPUT: X[:10_000].astype(dtype)}
    t = per_call(lambda: session.run(None, block), repeat=5, target_s=0.05)
    return p, min(10_000, len(X)) / t.median


#: The quantised variant whose results depend on the CPU: ONNX Runtime's default dynamic int8
#: (u8 activations x s8 weights) sums pairs of products in saturating 16-bit lanes on CPUs
#: without VNNI and exactly in 32 bits with VNNI. The 7-bit variant (``reduce_range``) keeps
#: every pair sum inside 16 bits, so its integer sums are exact on every path.
ISA_DEPENDENT_VARIANTS: tuple[str, ...] = ("int8 dynamic",)

#: The grid the CPU-dependent columns are compared on (the notebook prints them rounded to
#: it): flipped labels as a share of rows, accuracy change, ROC AUC and its change. Each step
#: is wider than the spread between the VNNI and the AVX2 path that the tests measure.
ISA_STEPS: dict[str, float] = {
    "flipped_share": 0.005,
    "accuracy_change": 0.001,
    "roc_auc": 0.005,
    "auc_change": 0.005,
}


def _mlp_variants(onnx_f32: bytes) -> dict[str, bytes]:
    """int8 (dynamic quantisation of MatMul/Gemm weights: 8-bit and 7-bit) and float16 MLPs."""
    import onnx
    from onnxconverter_common import float16
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="nepse-quant-") as tmp:
        src, pre = Path(tmp, "f32.onnx"), Path(tmp, "pre.onnx")
        src.write_bytes(onnx_f32)
        # shape inference + graph clean-up first, as ONNX Runtime's quantiser recommends
        quant_pre_process(str(src), str(pre))
        for name, reduce_range in (("int8 dynamic", False), ("int8 dynamic, 7-bit", True)):
            dst = Path(tmp, f"int8-{int(reduce_range)}.onnx")
            quantize_dynamic(
                str(pre), str(dst), weight_type=QuantType.QInt8, reduce_range=reduce_range
            )
            out[name] = dst.read_bytes()
    # float16: the score path only (onnxconverter-common mistypes the cast it inserts after a
    # Sigmoid that is itself a graph output); probabilities come from raw_score anyway
    graph = onnx.load_from_string(onnx_f32)
    keep = [o for o in graph.graph.output if o.name == ONNX_SCORE]
    del graph.graph.output[:]
    graph.graph.output.extend(keep)
    graph = onnx.utils.Extractor(graph).extract_model(
        [i.name for i in graph.graph.input], [ONNX_SCORE]
    )
    half = float16.convert_float_to_float16(graph, keep_io_types=True)
    out["float16"] = half.SerializeToString()
    return out


def _model_variants(model: TrainedModel) -> dict[str, bytes]:
    if model.kind == "mlp":
        f32 = to_onnx(model)
        return {"float32": f32, **_mlp_variants(f32)}
    if model.kind == "rf":
        return {"float32 in, float64 split": to_onnx(model)}
    return {
        "float64": to_onnx(model, dtype=np.float64),
        "float32": to_onnx(model, dtype=np.float32),
    }


def _variant_row(p: np.ndarray, native: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """A variant's probabilities against the native ones: changes, flips, accuracy and AUC."""
    base, scores = score(y, native), score(y, p)
    return {
        "max_abs_dp": float(np.max(np.abs(p - native))),
        "flipped": int(np.sum((p >= 0.5) != (native >= 0.5))),
        "accuracy_change": scores["accuracy"] - base["accuracy"],
        "roc_auc": scores["roc_auc"],
        "auc_change": scores["roc_auc"] - base["roc_auc"],
    }


def quantisation_table(
    models: Sequence[TrainedModel], X: np.ndarray, y: np.ndarray
) -> pd.DataFrame:
    """Reduced-precision ONNX variants against each model's native predictions, in one table.

    Trees: float64 (the exact export) and float32 graphs. MLP: float32 (its native
    precision), dynamic int8 with 8-bit and with 7-bit weights, and float16. Per variant: the
    file size, the largest change of probability and the number of flipped labels (at 0.5)
    against native, the accuracy change, ROC AUC and its change, and rows/s at batch 10,000
    on one thread with the speed-up over the reference variant (the first of each model).
    """
    X = np.asarray(X, dtype=np.float64)
    rows = []
    for model in models:
        native = predict_proba(model, X, engine="native")
        ref_rate = None
        for name, data in _model_variants(model).items():
            p, rate = _onnx_variant_prob(data, X, model.kind)
            ref_rate = ref_rate or rate
            rows.append(
                {
                    "kind": model.kind,
                    "variant": name,
                    "bytes": len(data),
                    **_variant_row(p, native, y),
                    "rows_per_s": rate,
                    "speedup": rate / ref_rate,
                }
            )
    return pd.DataFrame(rows)


def _on_grid(value: float, step: float, fmt: str) -> str:
    return "≈ " + format(round(value / step) * step + 0.0, fmt)


def _fixed(value: float, decimals: int, sign: bool = True) -> str:
    # rounded first, then + 0.0: a change of -3e-9 prints +0.00000, not -0.00000
    return format(round(value, decimals) + 0.0, f"{'+' if sign else ''}.{decimals}f")


def compared_quantisation(quant: pd.DataFrame, n_rows: int) -> pd.DataFrame:
    """The columns of :func:`quantisation_table` that are the same on every x86-64 CPU.

    Exact for every variant whose arithmetic does not depend on the instruction set; for
    :data:`ISA_DEPENDENT_VARIANTS` the flips (as a share of ``n_rows``), the accuracy change,
    ROC AUC and its change are rounded to :data:`ISA_STEPS` and marked with ``≈``. The
    largest probability change is printed as its order of magnitude.
    """
    from nepse_perf.bench.report import diff_bucket

    def row(r: pd.Series) -> dict[str, Any]:
        out = {
            "kind": r["kind"],
            "variant": r["variant"],
            "bytes": int(r["bytes"]),
            "max_change": diff_bucket(r["max_abs_dp"]),
        }
        if r["variant"] in ISA_DEPENDENT_VARIANTS:
            share = r["flipped"] / n_rows
            out |= {
                "flipped": _on_grid(100 * share, 100 * ISA_STEPS["flipped_share"], ".1f") + " %",
                "accuracy_change": _on_grid(
                    r["accuracy_change"], ISA_STEPS["accuracy_change"], "+.3f"
                ),
                "roc_auc": _on_grid(r["roc_auc"], ISA_STEPS["roc_auc"], ".3f"),
                "auc_change": _on_grid(r["auc_change"], ISA_STEPS["auc_change"], "+.3f"),
            }
        else:
            out |= {
                "flipped": f"{int(r['flipped']):,}",
                "accuracy_change": _fixed(r["accuracy_change"], 5),
                "roc_auc": _fixed(r["roc_auc"], 4, sign=False),
                "auc_change": _fixed(r["auc_change"], 5),
            }
        return out

    return pd.DataFrame([row(r) for _, r in quant.iterrows()])


def onnx_scores_on(
    variants: dict[str, bytes], X: np.ndarray, *, cpu: str | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Raw scores of each ONNX variant on ``X`` on this CPU, or on the emulated ``cpu``.

    With ``cpu`` (a QEMU model such as :data:`~nepse_perf.bench.emulation.EMULATED_CPU`) the
    files go to a temporary directory and ``python -m nepse_perf.bench.score_files`` runs
    under ``qemu-x86_64 -cpu cpu``. Returns the scores by variant name and the CPU's
    description (its int8 dot-product path and SIMD features).
    """
    from nepse_perf.bench.emulation import run_emulated
    from nepse_perf.bench.score_files import score_directory

    with tempfile.TemporaryDirectory(prefix="nepse-isa-") as tmp:
        directory = Path(tmp)
        names = {f"v{i}": name for i, name in enumerate(variants)}
        for stem, name in names.items():
            (directory / f"{stem}.onnx").write_bytes(variants[name])
        np.save(directory / "X.npy", np.asarray(X, dtype=np.float64))
        if cpu is None:
            info = score_directory(directory)
        else:
            run_emulated("nepse_perf.bench.score_files", [tmp], cpu=cpu)
            info = json.loads((directory / "cpu.json").read_text(encoding="utf-8"))
        scores = {name: np.load(directory / f"{stem}.scores.npy") for stem, name in names.items()}
    return scores, info


def quantisation_paths(
    model: TrainedModel, X: np.ndarray, y: np.ndarray, *, cpus: Sequence[str | None] = (None,)
) -> pd.DataFrame:
    """The MLP's reduced-precision variants on several CPUs: this one (None) and emulated ones.

    One row per CPU and variant: the CPU (``"native"`` or ``"<model> (QEMU)"``), its int8
    dot-product path, the variant, the columns of :func:`_variant_row` against the native
    (torch) predictions made here, and ``same_as_first``: whether the raw scores are bit for
    bit those of the first CPU listed.
    """
    X = np.asarray(X, dtype=np.float64)
    native = predict_proba(model, X, engine="native")
    variants = _model_variants(model)
    rows, first = [], None
    for cpu in cpus:
        scores, info = onnx_scores_on(variants, X, cpu=cpu)
        first = first or scores
        for name, raw in scores.items():
            rows.append(
                {
                    "cpu": "native" if cpu is None else f"{cpu} (QEMU)",
                    "int8_path": info["int8_path"],
                    "variant": name,
                    **_variant_row(link_function(model.kind)(raw), native, y),
                    "same_as_first": bool(np.array_equal(raw, first[name])),
                }
            )
    return pd.DataFrame(rows)


def int8_path_spread(paths: pd.DataFrame, n_rows: int) -> dict[str, Any]:
    """How far the CPU-dependent int8 variant moves between the CPUs of :func:`quantisation_paths`.

    For each of :data:`ISA_DEPENDENT_VARIANTS`, over the CPUs listed: the int8 paths seen, the
    largest difference in flipped labels (also as a share of ``n_rows``), in accuracy change and
    in ROC AUC, and ``on_grid``: whether every CPU's figures land on the same point of the
    :data:`ISA_STEPS` grid that :func:`compared_quantisation` prints.
    """
    out: dict[str, Any] = {}
    for variant in ISA_DEPENDENT_VARIANTS:
        rows = paths[paths["variant"] == variant]
        grid = {
            (
                _on_grid(r["flipped"] / n_rows, ISA_STEPS["flipped_share"], ".3f"),
                _on_grid(r["accuracy_change"], ISA_STEPS["accuracy_change"], "+.3f"),
                _on_grid(r["roc_auc"], ISA_STEPS["roc_auc"], ".3f"),
                _on_grid(r["auc_change"], ISA_STEPS["auc_change"], "+.3f"),
            )
            for _, r in rows.iterrows()
        }
        flips = rows["flipped"].max() - rows["flipped"].min()
        out[variant] = {
            "paths": list(dict.fromkeys(rows["int8_path"])),
            "flipped": int(flips),
            "flipped_share": flips / n_rows,
            "accuracy": float(rows["accuracy_change"].max() - rows["accuracy_change"].min()),
            "roc_auc": float(rows["roc_auc"].max() - rows["roc_auc"].min()),
            "on_grid": len(grid) == 1,
        }
    return out


def threshold_flip_demo(
    model: TrainedModel, X: np.ndarray, *, max_rows: int = 2000
) -> dict[str, int]:
    """Rows placed just above a split threshold: how many change in the float32 tree graph.

    For each split of a boosted-tree model (``hgb`` or ``lightgbm``) a copy of the first
    row of ``X`` gets that split's feature set to the smallest float64 above the threshold
    by a relative 1e-9: float64 sends it right, float32 rounds value and threshold to the
    same number and sends it left. Returns the number of rows tried, of rows whose
    probability changed and of rows whose label (at 0.5) flipped.
    """
    trees, base = (hgb_trees if model.kind == "hgb" else lightgbm_trees)(model.estimator)
    splits = [
        (int(t.feature[i]), float(t.threshold[i]))
        for t in trees
        for i in np.flatnonzero(~t.is_leaf)
    ][:max_rows]
    probe = np.repeat(np.asarray(X, dtype=np.float64)[:1], len(splits), axis=0)
    for r, (f, thr) in enumerate(splits):
        probe[r, f] = thr + abs(thr) * 1e-9 if thr != 0 else 1e-300
    n = probe.shape[1]
    p64 = (
        make_session(trees_to_onnx(trees, base, n, dtype=np.float64))
        .run(None, {ONNX_INPUT: probe})[0]
        .ravel()
    )
    p32 = (
        make_session(trees_to_onnx(trees, base, n, dtype=np.float32))
        .run(None, {ONNX_INPUT: probe.astype(np.float32)})[0]
        .ravel()
    )
    changed = np.abs(p64 - p32.astype(np.float64)) > 1e-6
    return {
        "rows": len(splits),
        "probability_changed": int(changed.sum()),
        "label_flipped": int(np.sum((p64 >= 0.5) != (p32 >= 0.5))),
    }


def training_times(
    dataset: Dataset,
    kinds: Sequence[str] = ("hgb", "lightgbm", "rf"),
    threads: Sequence[int] = (1, 2),
    *,
    repeat: int = 3,
    rows: int | None = None,
    params: dict[str, dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """Seconds to fit each CPU estimator on ``rows`` rows (default all), per thread count.

    Threads are limited with threadpoolctl (OpenMP: HGB, LightGBM) and ``n_jobs`` (the
    random forest's joblib workers). ``params`` overrides hyper-parameters per kind (e.g.
    fewer trees for a quick forest). One warm-up fit, then ``repeat`` timed fits; median
    and quartiles in seconds.
    """
    params = params or {}
    X = dataset.X.to_numpy(dtype=np.float64)
    y = dataset.y.to_numpy()
    if rows is not None:
        X, y = X[:rows], y[:rows]
    out = []
    for kind in kinds:
        for n in threads:
            with native_threads(n):
                t = measure(
                    lambda k=kind, n=n: make_estimator(k, threads=n, **params.get(k, {})).fit(X, y),
                    repeat=repeat,
                    warmup=1,
                )
            out.append(_timing_row({"kind": kind, "threads": n}, t))
    return pd.DataFrame(out)


def dataloader_bench(
    X: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int = 1024,
    num_workers: Sequence[int] = (0,),
    repeat: int = 3,
) -> pd.DataFrame:
    """Samples per second of one shuffled epoch: ``DataLoader(TensorDataset)`` vs slicing.

    The chapter's ``DataLoader(TensorDataset(X, y), batch_size, shuffle=True)`` fetches every
    sample with its own ``__getitem__`` and stacks them in ``collate``; slicing takes each
    batch as one indexed read of a shuffled permutation. ``num_workers`` > 0 adds worker
    processes (started with fork; their start-up is inside the epoch, as in training).
    Returns one row per method with the median epoch time, its quartiles and samples/s.
    """
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    xt = torch.from_numpy(np.asarray(X, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.float32))
    n = len(xt)
    gen = torch.Generator().manual_seed(0)

    def sliced() -> int:
        perm = torch.randperm(n, generator=gen)
        seen = 0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            xb, _yb = xt[idx], yt[idx]
            seen += len(xb)
        return seen

    methods: dict[str, Callable[[], int]] = {"slice a shuffled permutation": sliced}
    for w in num_workers:
        loader = DataLoader(
            TensorDataset(xt, yt), batch_size=batch_size, shuffle=True, num_workers=w, generator=gen
        )

        def epoch(ld: DataLoader = loader) -> int:
            return sum(len(xb) for xb, _ in ld)

        methods[f"DataLoader(TensorDataset), num_workers={w}"] = epoch
    out = []
    for name, fn in methods.items():
        t = measure(fn, repeat=repeat, warmup=1)
        out.append(_timing_row({"method": name}, t, time_key="epoch_s", rate=("samples_per_s", n)))
    return pd.DataFrame(out)


def plot_batch_curve(curve: pd.DataFrame, path: str | os.PathLike[str] | None = None) -> Any:
    """Rows/s against batch size (log-log), one line per kind/engine/threads, quartile whiskers."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for (kind, engine, threads), g in curve.groupby(["kind", "engine", "threads"], sort=True):
        rate = g["batch"] / g["median_s"]
        lo = g["batch"] / g["q3_s"]
        hi = g["batch"] / g["q1_s"]
        ax.errorbar(
            g["batch"],
            rate,
            yerr=[rate - lo, hi - rate],
            marker="o",
            ms=3,
            capsize=2,
            label=f"{kind} {engine} {threads}t",
            linestyle="-" if engine == "onnx" else "--",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows per call (batch size)")
    ax.set_ylabel("predictions per second")
    ax.set_title("Batch inference: native vs ONNX Runtime (median, IQR whiskers)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def run_bench_model(
    *,
    kinds: Sequence[str],
    model_dir: str | os.PathLike[str] | None,
    batch_sizes: Sequence[int],
    repeat: int,
    out: str | os.PathLike[str],
) -> int:
    """``nepse-perf bench-model``: train (or load) the models, time them, write the reports.

    Writes ``bench-model.csv``, ``bench-model.json`` (with the hardware report and the
    lleaves anchor) and ``bench-model.png`` into ``out``; prints the table. Returns 0.
    """
    from nepse_perf.bench.machine import machine_info
    from nepse_perf.data import load_prices, sample_path
    from nepse_perf.model.dataset import make_dataset
    from nepse_perf.model.io import load
    from nepse_perf.model.train import KINDS, train

    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown model kind(s) {bad}; choose from {list(KINDS)}")
    ds = make_dataset(load_prices(sample_path()))
    X = ds.X.to_numpy(dtype=np.float64)
    if model_dir is not None:
        model = load(model_dir, threads=1)
        rows = []
        for n_threads in (1, os.cpu_count() or 1):
            session = make_session(_read_onnx(model_dir), threads=n_threads)
            dtype = np.float32 if model.onnx_dtype == "float32" else np.float64
            for b in batch_sizes:
                feed = {ONNX_INPUT: tile_rows(X, b).astype(dtype)}
                t = per_call(lambda s=session, f=feed: s.run(None, f), repeat=repeat)
                rows.append(_curve_row(model.kind, "onnx", n_threads, b, t))
        curve = pd.DataFrame(rows)
        hardware = hardware_report(model)
    else:
        models = [train(ds, kind=k, n_splits=2) for k in kinds]
        curve = batch_curve(models, X, batch_sizes, threads=(1, os.cpu_count() or 1), repeat=repeat)
        hardware = hardware_report()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    curve.to_csv(out_dir / "bench-model.csv", index=False)
    payload = {
        "machine": machine_info(),
        "hardware": hardware,
        "anchor_lleaves_us": LLEAVES_ANCHOR,
        "results": curve.to_dict(orient="records"),
    }
    (out_dir / "bench-model.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    plot_batch_curve(curve, out_dir / "bench-model.png")
    table = curve.assign(
        us_per_call=(curve["median_s"] * 1e6).round(1),
        iqr_us=((curve["q3_s"] - curve["q1_s"]) * 1e6).round(1),
        rows_per_s=curve["rows_per_s"].round(0).astype(int),
    )[["kind", "engine", "threads", "batch", "us_per_call", "iqr_us", "rows_per_s"]]
    print(table.to_string(index=False))
    print(
        "anchor (lleaves README, i7-4770, 4 cores; not measured here): single-row LightGBM "
        f"{LLEAVES_ANCHOR['lightgbm native']} us native, {LLEAVES_ANCHOR['onnxruntime']} us ONNX Runtime"
    )
    print(
        f"providers: {', '.join(hardware['available_providers'])}; CPU: {', '.join(hardware['cpu_features'])}"
    )
    print(f"wrote {out_dir / 'bench-model.csv'}, .json, .png")
    return 0


def _read_onnx(model_dir: str | os.PathLike[str]) -> bytes:
    from nepse_perf.model.io import MODEL_FILE

    return Path(model_dir, MODEL_FILE).read_bytes()

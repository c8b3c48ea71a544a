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

from ..bench.timing import Timing, measure
from .dataset import Dataset
from .io import link_function, make_session, predict_proba, to_onnx
from .onnx_export import ONNX_INPUT, ONNX_SCORE, hgb_trees, lightgbm_trees, trees_to_onnx
from .train import TrainedModel, make_estimator, score

__all__ = [
    "LLEAVES_ANCHOR",
    "batch_curve",
    "cpu_features",
    "dataloader_bench",
    "hardware_report",
    "native_threads",
    "per_call",
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
    CPU offers at run time) and whether a CUDA provider could be used.
    """
    import onnxruntime as ort

    info: dict[str, Any] = {
        "onnxruntime": ort.__version__,
        "available_providers": ort.get_available_providers(),
        "cuda_provider": "CUDAExecutionProvider" in ort.get_available_providers(),
        "cpu_features": cpu_features(),
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
    feed = {ONNX_INPUT: X.astype(dtype)}
    raw = session.run([ONNX_SCORE], feed)[0].reshape(-1).astype(np.float64)
    p = link_function(kind)(raw)
    block = {ONNX_INPUT: X[:10_000].astype(dtype)}
    t = per_call(lambda: session.run(None, block), repeat=5, target_s=0.05)
    return p, min(10_000, len(X)) / t.median


def _mlp_variants(onnx_f32: bytes) -> dict[str, bytes]:
    """int8 (dynamic quantisation of MatMul/Gemm weights) and float16 versions of the MLP."""
    import onnx
    from onnxconverter_common import float16
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="nepse-quant-") as tmp:
        src, pre, dst = Path(tmp, "f32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(onnx_f32)
        # shape inference + graph clean-up first, as ONNX Runtime's quantiser recommends
        quant_pre_process(str(src), str(pre))
        quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QInt8)
        out["int8 dynamic"] = dst.read_bytes()
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


def quantisation_table(
    models: Sequence[TrainedModel], X: np.ndarray, y: np.ndarray
) -> pd.DataFrame:
    """Reduced-precision ONNX variants against each model's native predictions, in one table.

    Trees: float64 (the exact export) and float32 graphs. MLP: float32 (its native
    precision), dynamic int8 and float16. Per variant: the file size, the largest change of
    probability and the number of flipped labels (at 0.5) against native, the accuracy
    change, ROC AUC and its change, and rows/s at batch 10,000 on one thread with the speed-up over the reference
    variant (the first of each model).
    """
    X = np.asarray(X, dtype=np.float64)
    rows = []
    for model in models:
        native = predict_proba(model, X, engine="native")
        base = score(y, native)
        if model.kind == "mlp":
            f32 = to_onnx(model)
            variants = {"float32": f32, **_mlp_variants(f32)}
        elif model.kind == "rf":
            variants = {"float32 in, float64 split": to_onnx(model)}
        else:
            variants = {
                "float64": to_onnx(model, dtype=np.float64),
                "float32": to_onnx(model, dtype=np.float32),
            }
        ref_rate = None
        for name, data in variants.items():
            p, rate = _onnx_variant_prob(data, X, model.kind)
            ref_rate = ref_rate or rate
            scores = score(y, p)
            rows.append(
                {
                    "kind": model.kind,
                    "variant": name,
                    "bytes": len(data),
                    "max_abs_dp": float(np.max(np.abs(p - native))),
                    "flipped": int(np.sum((p >= 0.5) != (native >= 0.5))),
                    "accuracy_change": scores["accuracy"] - base["accuracy"],
                    "roc_auc": scores["roc_auc"],
                    "auc_change": scores["roc_auc"] - base["roc_auc"],
                    "rows_per_s": rate,
                    "speedup": rate / ref_rate,
                }
            )
    return pd.DataFrame(rows)


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
    from ..bench.machine import machine_info
    from ..data import load_prices, sample_path
    from .dataset import make_dataset
    from .io import load
    from .train import KINDS, train

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
    from .io import MODEL_FILE

    return Path(model_dir, MODEL_FILE).read_bytes()

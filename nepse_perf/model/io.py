"""Saving, loading and predicting: ONNX for the model, JSON for what describes it, no pickle.

A model directory holds ``model.onnx`` and ``metadata.json`` (name, kind, version,
features, training dates, metrics, parameters, the ONNX file's SHA-256 and input dtype).
``load`` checks both files and the feature list before building an ONNX Runtime session,
so a missing, truncated or foreign model fails with a message naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nepse_perf._infra.checks import positive_int
from nepse_perf._infra.files import atomic_write_bytes
from nepse_perf.model.dataset import validate_features
from nepse_perf.model.features import FEATURES
from nepse_perf.model.onnx_export import (
    ONNX_INPUT,
    ONNX_SCORE,
    forest_trees,
    hgb_trees,
    lightgbm_trees,
    mlp_to_onnx,
    trees_to_onnx,
)
from nepse_perf.model.train import TrainedModel

__all__ = [
    "METADATA_FILE",
    "MODEL_FILE",
    "ModelFileError",
    "link_function",
    "load",
    "make_session",
    "onnx_block_predictor",
    "predict_proba",
    "save",
    "to_onnx",
]

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model directory that cannot be loaded (missing, truncated, foreign or corrupt)."""


def to_onnx(model: TrainedModel, *, dtype: type | None = None) -> bytes:
    """The serialised ONNX graph of a fitted model (needs ``model.estimator``).

    Boosted trees default to float64 (the native model's precision) and accept float32; the
    random forest and the MLP are float32 (their native precision). See :mod:`nepse_perf.model.onnx_export`.
    """
    if model.estimator is None:
        raise ValueError("this model has no native estimator (it was loaded from ONNX)")
    cache = model.__dict__.setdefault("_onnx_cache", {})
    key = np.dtype(dtype).name if dtype is not None else None
    if key not in cache:
        cache[key] = _export(model, dtype)
    return cache[key]


def _export(model: TrainedModel, dtype: type | None) -> bytes:
    n = len(model.features)
    if model.kind == "hgb":
        trees, base = hgb_trees(model.estimator)
        return trees_to_onnx(trees, base, n, dtype=dtype or np.float64)
    if model.kind == "lightgbm":
        trees, base = lightgbm_trees(model.estimator)
        return trees_to_onnx(trees, base, n, dtype=dtype or np.float64)
    if model.kind == "rf":
        if type(model.estimator).__module__.startswith("cuml"):
            raise ValueError("a cuML forest is not exported here: train the CPU 'rf' to serve it")
        trees, base = forest_trees(model.estimator)
        if dtype not in (None, np.float32):
            raise ValueError("scikit-learn's trees compare float32 inputs: export rf as float32")
        return trees_to_onnx(
            trees, base, n, dtype=np.float64, input_dtype=np.float32, transform="none"
        )
    if dtype not in (None, np.float32):
        raise ValueError("the MLP exports as float32 only")
    return mlp_to_onnx(model.estimator, n)


def link_function(kind: str) -> Any:
    """Raw score -> probability for a model kind: SciPy's ``expit`` (log-odds) or identity.

    Applied outside ONNX Runtime, in float64, so the result does not depend on the batch
    size (ONNX Runtime's vectorised float64 sigmoid can differ in the last bit between a
    batch of one and a batch of many) and equals scikit-learn's own ``expit``.
    """
    if kind == "rf":
        return lambda score: score
    from scipy.special import expit

    return expit


def _input_dtype(session: Any) -> str:
    kind = session.get_inputs()[0].type
    return {"tensor(double)": "float64", "tensor(float)": "float32"}.get(kind, kind)


def make_session(
    onnx_bytes: bytes, *, threads: int | None = 1, providers: list[str] | None = None
) -> Any:
    """An ONNX Runtime session for ``onnx_bytes`` with ``threads`` intra-op threads.

    ``threads=None`` lets ONNX Runtime use every core; the default 1 suits one worker per
    core (the service). ``providers`` default to CUDA first when ONNX Runtime has it, then
    the CPU. Inter-op threads are 1 (the graphs are a chain).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only: no provider chatter on stderr
    if providers is None:
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    return ort.InferenceSession(onnx_bytes, sess_options=opts, providers=providers)


def save(
    model: TrainedModel, directory: str | os.PathLike[str], *, dtype: type | None = None
) -> Path:
    """Write ``model.onnx`` and ``metadata.json`` into ``directory`` (created); returns it.

    Each file is written to a temporary name and renamed, so a crash never leaves a
    half-written model behind a valid name. ``dtype`` picks the trees' ONNX precision
    (default float64).
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    onnx_bytes = to_onnx(model, dtype=dtype)
    meta = model.describe()
    meta.update(
        {
            "format_version": FORMAT_VERSION,
            "onnx_file": MODEL_FILE,
            "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
            "onnx_bytes": len(onnx_bytes),
            "onnx_input_dtype": _input_dtype(make_session(onnx_bytes)),
            "onnx_outputs": {
                "prob_up": "probability of up (ONNX Runtime's own link function)",
                "raw_score": "score before the link; probability = link(raw_score)",
            },
            "link": "identity" if model.kind == "rf" else "logit",
        }
    )
    atomic_write_bytes(d / MODEL_FILE, onnx_bytes)  # 0644: a service user reads it
    atomic_write_bytes(d / METADATA_FILE, (json.dumps(meta, indent=2) + "\n").encode())
    return d


def load(
    directory: str | os.PathLike[str],
    *,
    threads: int | None = 1,
    providers: list[str] | None = None,
    features: tuple[str, ...] = FEATURES,
) -> TrainedModel:
    """Load a model saved by :func:`save`; it predicts through ONNX Runtime (no estimator).

    Raises :class:`ModelFileError` (a ``ValueError``) naming the file when the directory or
    a file is missing, the metadata is not valid JSON, the ONNX file's size or SHA-256
    differs from the metadata (truncated or replaced), the feature list differs from
    ``features`` (a model of another feature set), or ONNX Runtime rejects the graph.
    """
    d = Path(directory)
    meta_path, onnx_path = d / METADATA_FILE, d / MODEL_FILE
    if not d.is_dir():
        raise ModelFileError(f"{d}: no such model directory")
    for p in (meta_path, onnx_path):
        if not p.is_file():
            raise ModelFileError(
                f"{p}: missing (a model directory holds {MODEL_FILE} and {METADATA_FILE})"
            )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{meta_path}: not valid JSON ({exc})") from None
    required = ("name", "kind", "version", "features", "onnx_sha256", "onnx_bytes", "metrics")
    lacking = [k for k in required if k not in meta]
    if lacking:
        raise ModelFileError(f"{meta_path}: missing field(s) {lacking}")
    data = onnx_path.read_bytes()
    if len(data) != meta["onnx_bytes"]:
        raise ModelFileError(
            f"{onnx_path}: {len(data):,} bytes, metadata says {meta['onnx_bytes']:,} (truncated?)"
        )
    if hashlib.sha256(data).hexdigest() != meta["onnx_sha256"]:
        raise ModelFileError(f"{onnx_path}: SHA-256 differs from {meta_path} (file changed)")
    if tuple(meta["features"]) != tuple(features):
        extra = sorted(set(meta["features"]) - set(features))
        absent = sorted(set(features) - set(meta["features"]))
        raise ModelFileError(
            f"{meta_path}: the model was saved with another feature list "
            f"(not in this version: {extra}; missing from the model: {absent}; or another order)"
        )
    try:
        session = make_session(data, threads=threads, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelFileError(f"{onnx_path}: ONNX Runtime cannot load it: {exc}") from None
    return TrainedModel(
        name=meta["name"],
        kind=meta["kind"],
        estimator=None,
        features=tuple(meta["features"]),
        horizon=int(meta.get("horizon", 1)),
        train_start=meta.get("train_start", ""),
        train_end=meta.get("train_end", ""),
        n_train_rows=int(meta.get("n_train_rows", 0)),
        metrics=meta["metrics"],
        params=meta.get("params", {}),
        version=meta["version"],
        session=session,
        onnx_dtype=_input_dtype(session),
    )


def onnx_block_predictor(model: TrainedModel) -> Callable[[np.ndarray], np.ndarray]:
    """A function of a block of feature rows: one call of the model's ONNX Runtime session.

    The block is cast to the graph's input dtype (``model.onnx_dtype``), the session returns
    the raw score and the link (:func:`link_function`, e.g. SciPy's ``expit``) turns it into
    the probability in float64 outside ONNX Runtime, so a row's result does not depend on the
    block it comes in. Needs ``model.session`` (a loaded model has it). Returns float64 of
    shape (rows,); the engine ``"onnx"`` of :func:`predict_proba` and the service use it.
    """
    dtype = np.float32 if model.onnx_dtype == "float32" else np.float64
    session = model.session
    link = link_function(model.kind)

    def predict(block: np.ndarray) -> np.ndarray:
        out = session.run([ONNX_SCORE], {ONNX_INPUT: block.astype(dtype, copy=False)})[0]
        return link(out.reshape(-1).astype(np.float64))

    return predict


def predict_proba(
    model: TrainedModel,
    X: pd.DataFrame | np.ndarray,
    *,
    batch_size: int | None = None,
    engine: str = "auto",
) -> np.ndarray:
    """Probability that the close rises ``model.horizon`` sessions later, one per row of ``X``.

    ``X`` holds the model's features (a DataFrame with those columns, or an array in that
    order); it is validated (finite, numeric, right width) and nothing is imputed.
    ``engine`` is ``"native"`` (the fitted estimator), ``"onnx"`` (the ONNX Runtime
    session; built on first use for a freshly trained model) or ``"auto"`` (native when
    there is an estimator). ``batch_size`` splits the rows into calls of at most that many.
    Returns float64 of shape (rows,).
    """
    arr = validate_features(X, model.features)
    if engine not in ("auto", "native", "onnx"):
        raise ValueError(f"engine must be 'auto', 'native' or 'onnx', got {engine!r}")
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size")
    use_native = engine == "native" or (engine == "auto" and model.estimator is not None)
    if use_native:
        if model.estimator is None:
            raise ValueError(
                "engine='native' needs the fitted estimator; a loaded model has ONNX only"
            )

        def run(block: np.ndarray) -> np.ndarray:
            return model.estimator.predict_proba(block)[:, 1]
    else:
        if model.session is None:
            model.session = make_session(to_onnx(model))
            model.onnx_dtype = _input_dtype(model.session)
        run = onnx_block_predictor(model)

    if batch_size is None or batch_size >= len(arr):
        return np.asarray(run(arr), dtype=np.float64)
    parts = [run(arr[i : i + batch_size]) for i in range(0, len(arr), batch_size)]
    return np.concatenate(parts).astype(np.float64)

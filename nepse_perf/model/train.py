"""Training with walk-forward evaluation, baselines, and the model's content-hash version.

``train(dataset, kind=...)`` evaluates a fresh estimator on every walk-forward split (the
out-of-fold predictions of all test blocks are scored together), scores two baselines on
the same test rows, then fits the final estimator on every row. Daily direction is close
to a coin flip; the baselines are there so nobody mistakes 0.52 for skill.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nepse_perf.model.dataset import Dataset, validate_features, walk_forward_splits
from nepse_perf.model.features import FEATURES

__all__ = [
    "BASELINES",
    "KINDS",
    "TrainedModel",
    "baseline_predictions",
    "fold_table",
    "gpu_ml_available",
    "make_estimator",
    "metrics_table",
    "score",
    "train",
]

#: The model kinds ``train`` builds.
KINDS: tuple[str, ...] = ("hgb", "lightgbm", "mlp", "rf")

#: Default hyper-parameters per kind (small and fast; the lesson is speed, not alpha).
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "hgb": {"max_iter": 60, "learning_rate": 0.05, "max_leaf_nodes": 15, "early_stopping": False},
    "lightgbm": {"n_estimators": 60, "learning_rate": 0.05, "num_leaves": 15},
    "mlp": {"hidden": (32, 16), "epochs": 5, "batch_size": 512, "lr": 1e-3},
    "rf": {"n_estimators": 100, "max_depth": 8, "min_samples_leaf": 50},
}


def gpu_ml_available() -> str | None:
    """``"cuml"`` when cuML and a CUDA GPU are present, else ``None`` (CPU estimators).

    Decides where ``kind="rf"`` trains with ``device="auto"``: cuML's
    ``RandomForestClassifier`` on the GPU, scikit-learn's on the CPU otherwise.
    """
    try:
        import cuml  # noqa: F401
        from numba import cuda
    except ImportError:
        return None
    try:
        return "cuml" if cuda.is_available() else None
    except Exception:  # a broken driver counts as no GPU
        return None


@dataclass
class TrainedModel:
    """A fitted model with what serving and reviewing need to know about it.

    ``estimator`` is the native model (``None`` after :func:`~nepse_perf.model.load`, which
    predicts through ONNX Runtime only); ``features`` the ordered input columns; ``horizon``
    sessions ahead; ``train_start``/``train_end`` ISO dates of the training rows;
    ``metrics`` walk-forward scores of the model and the baselines (``{"model": {"accuracy",
    "roc_auc", "log_loss"}, "always_up": {...}, "majority": {...}, "yesterday": {...},
    "folds": n, "per_fold": [{...}, ...], "rows": n, "up_share": x}``, see :func:`fold_table`);
    ``params`` the hyper-parameters; ``version`` a content hash of kind, parameters,
    features and training data. ``session``/``onnx_dtype`` are set by ``load``.
    """

    name: str
    kind: str
    estimator: Any
    features: tuple[str, ...]
    horizon: int
    train_start: str
    train_end: str
    n_train_rows: int
    metrics: dict[str, Any]
    params: dict[str, Any]
    version: str
    session: Any = field(default=None, repr=False)
    onnx_dtype: str | None = None

    def describe(self) -> dict[str, Any]:
        """The JSON-able description (``/v1/model`` and ``metadata.json`` use it)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "version": self.version,
            "features": list(self.features),
            "horizon": self.horizon,
            "train_start": self.train_start,
            "train_end": self.train_end,
            "n_train_rows": self.n_train_rows,
            "metrics": self.metrics,
            "params": _jsonable(self.params),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def make_estimator(
    kind: str,
    *,
    seed: int = 0,
    threads: int | None = None,
    device: str = "cpu",
    **params: Any,
) -> Any:
    """A fresh, unfitted estimator of ``kind`` (``hgb``, ``lightgbm``, ``mlp`` or ``rf``).

    ``params`` override :data:`DEFAULT_PARAMS`; ``threads`` caps LightGBM's and the random
    forest's threads (HGB uses OpenMP's default; the MLP trains on one thread for
    determinism). LightGBM runs with ``deterministic=True`` so a seed gives the same trees
    on any thread count. ``device="cuda"`` (``rf`` only) builds cuML's GPU forest;
    ``"auto"`` picks it when :func:`gpu_ml_available`, else the CPU.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {list(KINDS)}")
    if device not in ("cpu", "cuda", "auto"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    if device != "cpu" and kind != "rf":
        raise ValueError(f"device={device!r} is offered for kind 'rf' only")
    merged = {**DEFAULT_PARAMS[kind], **params}
    if kind == "rf":
        gpu = device == "cuda" or (device == "auto" and gpu_ml_available() == "cuml")
        if gpu:
            from cuml.ensemble import RandomForestClassifier as GpuForest

            return GpuForest(random_state=seed, **merged)
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(random_state=seed, n_jobs=threads or 1, **merged)
    if kind == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(random_state=seed, **merged)
    if kind == "lightgbm":
        import lightgbm

        return lightgbm.LGBMClassifier(
            random_state=seed,
            deterministic=True,
            force_row_wise=True,
            n_jobs=threads or 1,
            verbose=-1,
            **merged,
        )
    from nepse_perf.model.mlp import MLPClassifier

    merged["hidden"] = tuple(merged["hidden"])
    return MLPClassifier(seed=seed, **merged)


def _fit(estimator: Any, X: np.ndarray, y: np.ndarray) -> Any:
    """Fit on plain arrays (no column names: LightGBM then warns about none at predict time)."""
    return estimator.fit(X, y)


def score(y: np.ndarray, p_up: np.ndarray, labels: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy, ROC AUC and log-loss of probabilities ``p_up`` for the 0/1 labels ``y``.

    Accuracy scores ``labels`` (the predicted classes) when given, else ``p_up >= 0.5``.
    AUC is NaN when ``y`` holds one class only. Probabilities are clipped to [1e-15,
    1 - 1e-15] for the log-loss.
    """
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    y = np.asarray(y)
    p = np.clip(np.asarray(p_up, dtype=np.float64), 1e-15, 1 - 1e-15)
    predicted = (p >= 0.5) if labels is None else np.asarray(labels).astype(bool)
    auc = roc_auc_score(y, p) if len(np.unique(y)) == 2 else float("nan")
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "roc_auc": float(auc),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
    }


#: The baselines every model is compared with (see :func:`baseline_predictions`).
BASELINES: tuple[str, ...] = ("always_up", "majority", "yesterday")


def baseline_predictions(train: Dataset, test: Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each baseline's (labels, probability of "up") on ``test``, estimated on ``train`` only.

    ``always_up`` predicts "up" for every row, with the training share of up moves as its
    probability (accuracy = the share of up moves; AUC 0.5 within a fold). ``majority`` predicts the
    training majority class (on NEPSE daily data "not up": an unchanged close is not up),
    with the same probability. ``yesterday`` predicts the last session's direction
    (``ret_1 > 0``), with the training frequency of an up move after an up / a non-up
    session as its probability.
    """
    y_train = train.y.to_numpy()
    share = float(y_train.mean())
    n = len(test)
    const = np.full(n, share)
    up_before = train.X["ret_1"].to_numpy() > 0
    p_after_up = float(y_train[up_before].mean()) if up_before.any() else share
    p_after_down = float(y_train[~up_before].mean()) if (~up_before).any() else share
    test_up = test.X["ret_1"].to_numpy() > 0
    return {
        "always_up": (np.ones(n, dtype=bool), const),
        "majority": (np.full(n, share >= 0.5), const),
        "yesterday": (test_up, np.where(test_up, p_after_up, p_after_down)),
    }


def _version(kind: str, params: dict[str, Any], seed: int, dataset: Dataset) -> str:
    h = hashlib.blake2b(digest_size=8)
    h.update(json.dumps({"kind": kind, "params": _jsonable(params), "seed": seed}).encode())
    h.update(json.dumps(list(dataset.X.columns)).encode())
    h.update(np.ascontiguousarray(dataset.X.to_numpy(dtype=np.float64)).tobytes())
    h.update(np.ascontiguousarray(dataset.y.to_numpy(dtype=np.int8)).tobytes())
    h.update(dataset.date.to_numpy().astype("datetime64[ns]").tobytes())
    h.update("\0".join(dataset.symbol.astype(str)).encode())
    h.update(str(dataset.horizon).encode())
    return f"{kind}-{h.hexdigest()}"


def _fold_record(
    dataset: Dataset,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    p_model: np.ndarray,
    base: dict[str, tuple[np.ndarray, np.ndarray]],
) -> dict[str, Any]:
    """One walk-forward fold: its rows, test dates, the model's and the majority's scores.

    JSON-ready: a NaN score (a test block of one class has no AUC) is written as None.
    """
    y_test = dataset.y.to_numpy()[test_rows]
    model = score(y_test, p_model)
    labels, p_majority = base["majority"]
    majority = score(y_test, p_majority, labels)
    dates = dataset.date[test_rows]
    record: dict[str, Any] = {
        "train_rows": len(train_rows),
        "test_rows": len(test_rows),
        "first_test_date": dates.min().date().isoformat(),
        "last_test_date": dates.max().date().isoformat(),
        **{k: model[k] for k in ("accuracy", "roc_auc", "log_loss")},
        "majority_accuracy": majority["accuracy"],
    }
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in record.items()}


def train(
    dataset: Dataset,
    *,
    kind: str = "hgb",
    seed: int = 0,
    n_splits: int = 5,
    name: str = "nepse-direction",
    threads: int | None = None,
    device: str = "cpu",
    **params: Any,
) -> TrainedModel:
    """Walk-forward evaluate, then fit ``kind`` on all of ``dataset``; returns a TrainedModel.

    Each of the ``n_splits`` expanding-window splits (embargo = the data set's horizon, and
    no training target on or after the test block) trains a fresh estimator; the test
    blocks' predictions are scored together, beside the two baselines of
    :func:`baseline_predictions`. ``params`` override the kind's defaults; ``device``
    (``rf`` only) trains on the GPU with cuML (``"cuda"``, or ``"auto"`` when available).
    Unknown kind, bad features or too few dates raise ``ValueError``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {list(KINDS)}")
    X = validate_features(dataset.X, FEATURES, source="dataset.X")
    y = dataset.y.to_numpy()
    if len(np.unique(y)) < 2:
        raise ValueError("dataset.y: only one class present; cannot train a classifier")
    splits = walk_forward_splits(
        dataset.date, n_splits=n_splits, embargo=dataset.horizon, target_dates=dataset.target_date
    )
    oof_rows: list[np.ndarray] = []
    oof_model: list[np.ndarray] = []
    oof_base: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {k: [] for k in BASELINES}
    per_fold: list[dict[str, Any]] = []
    for train_rows, test_rows in splits:
        est = make_estimator(kind, seed=seed, threads=threads, device=device, **params)
        _fit(est, X[train_rows], y[train_rows])
        oof_rows.append(test_rows)
        oof_model.append(est.predict_proba(X[test_rows])[:, 1])
        base = baseline_predictions(dataset.subset(train_rows), dataset.subset(test_rows))
        for k, v in base.items():
            oof_base[k].append(v)
        per_fold.append(_fold_record(dataset, train_rows, test_rows, oof_model[-1], base))
    rows = np.concatenate(oof_rows)
    y_test = y[rows]
    metrics: dict[str, Any] = {"model": score(y_test, np.concatenate(oof_model))}
    for k, parts in oof_base.items():
        labels = np.concatenate([lab for lab, _ in parts])
        metrics[k] = score(y_test, np.concatenate([p for _, p in parts]), labels)
    metrics["folds"] = len(splits)
    metrics["per_fold"] = per_fold
    metrics["rows"] = len(rows)
    metrics["up_share"] = float(y_test.mean())
    final = make_estimator(kind, seed=seed, threads=threads, device=device, **params)
    _fit(final, X, y)
    used = {**DEFAULT_PARAMS[kind], **params}
    start, end = dataset.date_range
    return TrainedModel(
        name=name,
        kind=kind,
        estimator=final,
        features=tuple(FEATURES),
        horizon=dataset.horizon,
        train_start=start,
        train_end=end,
        n_train_rows=len(dataset),
        metrics=metrics,
        params={**_jsonable(used), "seed": seed},
        version=_version(kind, used, seed, dataset),
    )


def fold_table(model: TrainedModel) -> pd.DataFrame:
    """The walk-forward scores fold by fold (``metrics["per_fold"]``), one row per fold.

    Columns: train and test rows, the test block's first and last date, the model's
    accuracy, ROC AUC and log-loss on that block and the majority class's accuracy. Empty
    for a model saved before folds were recorded.
    """
    folds = model.metrics.get("per_fold") or []
    return pd.DataFrame.from_records(folds).rename_axis("fold")


def metrics_table(model: TrainedModel) -> pd.DataFrame:
    """The walk-forward metrics of the model and the two baselines as a small table."""
    rows = {k: model.metrics[k] for k in ("model", *BASELINES)}
    table = pd.DataFrame(rows).T[["accuracy", "roc_auc", "log_loss"]]
    table.index = [model.kind, "always up", "majority class", "yesterday's direction"]
    return table

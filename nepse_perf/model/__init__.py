"""The prediction model on the indicators: data set, walk-forward training, ONNX serving format.

``make_dataset`` -> ``train`` -> ``save`` / ``load`` -> ``predict_proba``; ``FEATURES`` is
the ordered input of the model, its ONNX file and the prediction service.
"""

from nepse_perf.model.dataset import Dataset, make_dataset, validate_features, walk_forward_splits
from nepse_perf.model.features import DERIVED_FEATURES, FEATURES, feature_frame, warmup_rows
from nepse_perf.model.io import ModelFileError, load, make_session, predict_proba, save, to_onnx
from nepse_perf.model.train import (
    BASELINES,
    KINDS,
    TrainedModel,
    fold_table,
    gpu_ml_available,
    make_estimator,
    metrics_table,
    score,
    train,
)

__all__ = [
    "BASELINES",
    "DERIVED_FEATURES",
    "FEATURES",
    "KINDS",
    "Dataset",
    "ModelFileError",
    "TrainedModel",
    "feature_frame",
    "fold_table",
    "gpu_ml_available",
    "load",
    "make_dataset",
    "make_estimator",
    "make_session",
    "metrics_table",
    "predict_proba",
    "save",
    "score",
    "to_onnx",
    "train",
    "validate_features",
    "walk_forward_splits",
    "warmup_rows",
]

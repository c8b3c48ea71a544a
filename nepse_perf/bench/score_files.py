"""Raw scores of ONNX files, as a command, so that another CPU (or an emulated one) can run it.

``python -m nepse_perf.bench.score_files DIR`` runs every ``DIR/*.onnx`` on ``DIR/X.npy``
with a one-thread ONNX Runtime session and writes ``DIR/<name>.scores.npy`` (the graph's
``raw_score`` output as float64) and ``DIR/cpu.json`` (the CPU's SIMD features and its int8
dot-product path). :func:`nepse_perf.bench.model.onnx_scores_on` drives it under QEMU.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from nepse_perf.bench.machine import int8_dot_path, simd_features
from nepse_perf.model.io import make_session
from nepse_perf.model.onnx_export import ONNX_INPUT, ONNX_SCORE

__all__ = ["onnx_scores", "score_directory"]


def onnx_scores(onnx_bytes: bytes, X: np.ndarray) -> np.ndarray:
    """The ``raw_score`` output of ``onnx_bytes`` on ``X`` (one intra-op thread), as float64."""
    session = make_session(onnx_bytes, threads=1)
    dtype = np.float32 if session.get_inputs()[0].type == "tensor(float)" else np.float64
    raw = session.run([ONNX_SCORE], {ONNX_INPUT: np.asarray(X).astype(dtype)})[0]
    return raw.reshape(-1).astype(np.float64)


def score_directory(directory: Path) -> dict[str, object]:
    """Score every ``*.onnx`` in ``directory`` on its ``X.npy``; returns what ``cpu.json`` holds."""
    X = np.load(directory / "X.npy")
    for path in sorted(directory.glob("*.onnx")):
        np.save(directory / f"{path.stem}.scores.npy", onnx_scores(path.read_bytes(), X))
    features = simd_features()
    info = {"int8_path": int8_dot_path(features), "features": features}
    (directory / "cpu.json").write_text(json.dumps(info), encoding="utf-8")
    return info


if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess
    if len(sys.argv) != 2:
        sys.exit("usage: python -m nepse_perf.bench.score_files DIR")
    score_directory(Path(sys.argv[1]))

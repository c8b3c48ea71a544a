"""A small PyTorch multilayer perceptron with a scikit-learn-like face (fit / predict_proba).

Inputs are standardised with the training mean and standard deviation, which become the
first layer of the exported ONNX graph, so the served model takes raw features. Training
is seeded and single-threaded (``torch.use_deterministic_algorithms``), so the same data
and seed give the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["MLPClassifier", "train_module"]


def train_module(
    module: Any,
    Xs: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str = "cpu",
) -> list[float]:
    """Train ``module`` in place with Adam on binary cross-entropy; per-epoch mean losses.

    ``Xs`` are standardised float32 inputs (rows x features), ``y`` the 0/1 targets. Each
    epoch visits the rows in the order of a permutation drawn from a CPU generator seeded
    with ``seed``, and each batch is one slice of the tensors by a batch of indices (no
    ``DataLoader``, no per-sample stacking). ``device`` (``"cpu"`` or ``"cuda"``) is where
    the module, the tensors and the arithmetic live; the permutation is drawn on the CPU and
    copied once per epoch, so CPU and GPU runs visit the same batches. The losses are summed on
    the device and read once per epoch (no synchronisation per step). Leaves the module in
    evaluation mode.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    module.to(device)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    xt = torch.from_numpy(np.ascontiguousarray(Xs, dtype=np.float32)).to(device)
    yt = torch.from_numpy(np.asarray(y, dtype=np.float32)).reshape(-1, 1).to(device)
    losses = []
    module.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=gen).to(device)
        total = torch.zeros((), device=device)
        for start in range(0, len(xt), batch_size):
            idx = perm[start : start + batch_size]
            opt.zero_grad()
            loss = loss_fn(module(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        losses.append(float(total) / len(xt))
    module.eval()
    return losses


@dataclass
class MLPClassifier:
    """Two hidden ReLU layers and a sigmoid output, trained with Adam on binary cross-entropy.

    ``hidden`` layer widths, ``epochs`` passes over the data, ``batch_size`` rows per step,
    ``lr`` Adam's learning rate, ``seed`` for weights and shuffling. After ``fit``:
    ``module_`` (float32 ``torch.nn.Sequential`` that maps standardised inputs to a logit),
    ``mean_`` and ``scale_`` (float64, per feature).
    """

    hidden: tuple[int, ...] = (32, 16)
    epochs: int = 8
    batch_size: int = 512
    lr: float = 1e-3
    seed: int = 0
    module_: Any = field(default=None, repr=False)
    mean_: np.ndarray | None = field(default=None, repr=False)
    scale_: np.ndarray | None = field(default=None, repr=False)

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters (what the model version hashes)."""
        return {
            "hidden": list(self.hidden),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "seed": self.seed,
        }

    def _build(self, n_features: int) -> Any:
        import torch

        layers: list[Any] = []
        width = n_features
        for h in self.hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
            width = h
        layers.append(torch.nn.Linear(width, 1))
        return torch.nn.Sequential(*layers)

    def fit(self, X: np.ndarray, y: np.ndarray) -> MLPClassifier:
        """Train on ``X`` (rows x features, float64) and ``y`` (0/1); returns ``self``."""
        import torch

        X = np.asarray(X, dtype=np.float64)
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        Xs = ((X - self.mean_) / self.scale_).astype(np.float32)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            torch.manual_seed(self.seed)
            module = self._build(X.shape[1])
            train_module(
                module, Xs, y, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                seed=self.seed,
            )  # fmt: skip
        finally:
            torch.set_num_threads(threads)
        self.module_ = module
        return self

    def standardise(self, X: np.ndarray) -> np.ndarray:
        """``(X - mean_) / scale_`` as float32, the input of ``module_``."""
        return ((np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_).astype(np.float32)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of the two classes, shape (rows, 2), like scikit-learn's."""
        import torch

        with torch.inference_mode():
            logit = self.module_(torch.from_numpy(self.standardise(X))).numpy().ravel()
        from scipy.special import expit

        p = expit(logit.astype(np.float64))
        return np.column_stack([1.0 - p, p])

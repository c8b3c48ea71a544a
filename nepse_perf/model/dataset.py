"""The supervised data set: features at session t, the direction of the close at t+horizon.

Rows are (symbol, session) pairs. The target of row t is 1 when the close of the same
symbol ``horizon`` sessions (rows of that symbol) later is strictly higher than today's
close, else 0 (an unchanged close counts as "not up"). Rows inside any feature's warm-up
and the last ``horizon`` rows of each symbol (no target yet) are dropped and counted in
``Dataset.dropped``; nothing is imputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nepse_perf._infra.checks import non_negative_int, positive_int
from nepse_perf.model.features import FEATURES, feature_frame
from nepse_perf.pipeline import DEFAULT_BACKEND

__all__ = ["Dataset", "make_dataset", "validate_features", "walk_forward_splits"]


@dataclass(frozen=True)
class Dataset:
    """Features, targets and row identities, sorted by date then symbol.

    ``X`` float64 frame with the columns of ``FEATURES``; ``y`` int8 (1 = the close rose
    ``horizon`` sessions later); ``symbol`` and ``date`` identify each row; ``target_date``
    is the date of the session the target looks at (used to keep training targets out of
    test periods); ``dropped`` counts removed rows by reason (``"warmup"``, ``"no_target"``).
    """

    X: pd.DataFrame
    y: pd.Series
    symbol: pd.Series
    date: pd.Series
    target_date: pd.Series
    horizon: int
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def date_range(self) -> tuple[str, str]:
        """First and last feature date as ISO strings (``("", "")`` when empty)."""
        if len(self.date) == 0:
            return ("", "")
        return (self.date.min().date().isoformat(), self.date.max().date().isoformat())

    def subset(self, rows: np.ndarray) -> Dataset:
        """The rows at integer positions ``rows`` (index reset), ``dropped`` unchanged."""
        pick = np.asarray(rows)
        return Dataset(
            self.X.iloc[pick].reset_index(drop=True),
            self.y.iloc[pick].reset_index(drop=True),
            self.symbol.iloc[pick].reset_index(drop=True),
            self.date.iloc[pick].reset_index(drop=True),
            self.target_date.iloc[pick].reset_index(drop=True),
            self.horizon,
            dict(self.dropped),
        )


def make_dataset(
    prices: pd.DataFrame,
    *,
    horizon: int = 1,
    backend: str = DEFAULT_BACKEND,
    **params: float,
) -> Dataset:
    """Build the model's data set from a long price frame (e.g. ``load_prices``).

    Features come from :func:`feature_frame` (``backend`` and indicator ``params`` are passed
    on); the target of row t is whether the same symbol's close ``horizon`` rows later is
    higher. Rows with any NaN feature (warm-ups) or without a target are dropped and counted.
    An empty frame, a missing column or ``horizon < 1`` raises ``ValueError``.
    """
    horizon = positive_int(horizon, "horizon")
    missing = [c for c in ("symbol", "date", "high", "low", "close") if c not in prices.columns]
    if missing:
        raise ValueError(f"prices: missing column(s) {missing}")
    if len(prices) == 0:
        raise ValueError("prices: the frame is empty; nothing to build a data set from")
    order = np.lexsort((prices["date"].to_numpy(), prices["symbol"].astype(str).to_numpy()))
    frame = prices.iloc[order].reset_index(drop=True)
    feats = feature_frame(frame, backend=backend, **params)
    sym = frame["symbol"].astype(str).to_numpy()
    close = frame["close"].to_numpy(dtype=np.float64)
    dates = frame["date"].to_numpy()
    n = len(frame)
    has_target = np.zeros(n, dtype=bool)
    future = np.full(n, np.nan)
    target_date = np.full(n, np.datetime64("NaT"), dtype=dates.dtype)
    if n > horizon:
        same = sym[horizon:] == sym[:-horizon]
        has_target[:-horizon] = same
        future[:-horizon] = np.where(same, close[horizon:], np.nan)
        target_date[:-horizon] = np.where(same, dates[horizon:], np.datetime64("NaT"))
    complete = feats.notna().all(axis=1).to_numpy()
    keep = complete & has_target
    dropped = {
        "warmup": int((~complete).sum()),
        "no_target": int((complete & ~has_target).sum()),
    }
    kept = np.flatnonzero(keep)
    # date-major order: what time-ordered splits and "train up to a date" expect
    kept = kept[np.lexsort((sym[kept], dates[kept]))]
    y = (future[kept] > close[kept]).astype(np.int8)
    return Dataset(
        X=feats.iloc[kept].reset_index(drop=True).astype(np.float64),
        y=pd.Series(y, name="up"),
        symbol=pd.Series(sym[kept], name="symbol"),
        date=pd.Series(dates[kept], name="date"),
        target_date=pd.Series(target_date[kept], name="target_date"),
        horizon=int(horizon),
        dropped=dropped,
    )


def validate_features(
    X: pd.DataFrame | np.ndarray, features: Sequence[str] = FEATURES, *, source: str = "X"
) -> np.ndarray:
    """Check a feature table and return it as a C-contiguous float64 array in ``features`` order.

    A DataFrame must hold every name of ``features`` (extra columns are ignored, order is
    taken from ``features``); an array must be 2-D with ``len(features)`` columns. Empty
    input, a non-numeric column, NaN or +-inf raise ``ValueError`` naming ``source``, the
    column and the first bad row. Nothing is imputed.
    """
    names = list(features)
    if isinstance(X, pd.DataFrame):
        missing = [c for c in names if c not in X.columns]
        if missing:
            raise ValueError(f"{source}: missing feature column(s) {missing}")
        for c in names:
            if not pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c]):
                raise ValueError(f"{source}: column {c!r} has dtype {X[c].dtype}, expected numbers")
        arr = X[names].to_numpy(dtype=np.float64)
    else:
        arr = np.asarray(X)
        if arr.dtype.kind not in "fiu":
            raise ValueError(f"{source}: dtype {arr.dtype} is not numeric")
        if arr.ndim != 2 or arr.shape[1] != len(names):
            raise ValueError(
                f"{source}: expected a 2-D array with {len(names)} feature columns, "
                f"got shape {arr.shape}"
            )
        arr = arr.astype(np.float64, copy=False)
    if arr.shape[0] == 0:
        raise ValueError(f"{source}: no rows")
    finite = np.isfinite(arr)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise ValueError(
            f"{source}: column {names[col]!r} row {row} is {float(arr[row, col])}; features must be "
            "finite (nothing is imputed)"
        )
    return np.ascontiguousarray(arr)


def walk_forward_splits(
    dates: pd.Series | np.ndarray | Sequence,
    *,
    n_splits: int = 5,
    embargo: int = 1,
    target_dates: pd.Series | np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window, date-ordered train/test splits with an embargo between them.

    The distinct dates are cut into ``n_splits + 1`` consecutive blocks of (nearly) equal
    length; split k tests on block k+1 and trains on every row dated before it, less the
    last ``embargo`` distinct dates before the test block (use ``embargo = horizon`` so no
    training target reaches into the test period). When ``target_dates`` is given, training
    rows whose target lies on or after the first test date are also removed (a symbol with
    trading gaps can look further ahead than ``horizon`` market days). Returns a list of
    ``(train_rows, test_rows)`` integer arrays. ``ValueError`` if there are fewer distinct
    dates than ``n_splits + 1`` blocks need or an argument is out of range.
    """
    n_splits = positive_int(n_splits, "n_splits")
    embargo = non_negative_int(embargo, "embargo")
    d = np.asarray(pd.to_datetime(np.asarray(dates)), dtype="datetime64[ns]")
    unique = np.unique(d)
    if len(unique) < 2 * (n_splits + 1) + embargo:
        raise ValueError(
            f"{len(unique)} distinct dates are too few for {n_splits} splits with embargo {embargo}"
        )
    td = None
    if target_dates is not None:
        td = np.asarray(pd.to_datetime(np.asarray(target_dates)), dtype="datetime64[ns]")
        if td.shape != d.shape:
            raise ValueError("target_dates must have one entry per row of dates")
    edges = np.linspace(0, len(unique), n_splits + 2).round().astype(int)
    splits = []
    for k in range(n_splits):
        start, stop = edges[k + 1], edges[k + 2]
        test_first, test_last = unique[start], unique[stop - 1]
        train_end = start - embargo  # exclusive index into unique dates
        if train_end <= 0:
            raise ValueError(f"split {k}: the embargo leaves no training dates")
        train_mask = d < unique[train_end]
        if td is not None:
            train_mask &= td < test_first
        test_mask = (d >= test_first) & (d <= test_last)
        splits.append((np.flatnonzero(train_mask), np.flatnonzero(test_mask)))
    return splits

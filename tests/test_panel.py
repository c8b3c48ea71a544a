"""The panel builder against a plain pandas statement of what it must find.

``panel_from_frame`` checks the frame and finds every symbol's slice in one compiled call
(a vectorised pass, then a binary search per symbol). Here random frames (ragged lengths,
leading NaNs, shuffled or sorted, categorical or text symbols) are compared with what
``sort_values`` and ``groupby`` say the slices and first complete rows are.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nepse_perf.indicators.panel import panel_from_frame

symbols = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=40),  # rows
        st.integers(min_value=0, max_value=45),  # leading rows with a NaN price
        st.sampled_from(["close", "high", "low"]),  # which price is NaN there
    ),
    min_size=1,
    max_size=6,
)


def _frame(spec: list[tuple[int, int, str]], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for k, (rows, leading, column) in enumerate(spec):
        close = 100.0 + rng.standard_normal(rows).cumsum()
        part = pd.DataFrame(
            {
                "symbol": f"S{k:02d}",
                "date": pd.bdate_range("2020-01-01", periods=rows),
                "high": close + 1.0,
                "low": close - 1.0,
                "close": close,
            }
        )
        part.loc[: leading - 1, column] = np.nan
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=symbols,
    seed=st.integers(0, 2**31 - 1),
    shuffle=st.booleans(),
    kind=st.sampled_from(["category", "object"]),
)
def test_slices_and_first_complete_rows(
    spec: list[tuple[int, int, str]], seed: int, shuffle: bool, kind: str
) -> None:
    frame = _frame(spec, seed).astype({"symbol": kind})
    if shuffle:
        frame = frame.sample(frac=1.0, random_state=seed % 1000)
    panel = panel_from_frame(frame)

    ordered = frame.sort_values(["symbol", "date"], kind="stable")
    sizes = ordered.groupby("symbol", observed=True, sort=True).size()
    complete = ordered[["close", "high", "low"]].notna().all(axis=1).to_numpy()
    first_complete = [
        a + (int(np.argmax(complete[a:b])) if complete[a:b].any() else b - a)
        for a, b in zip(np.r_[0, np.cumsum(sizes)[:-1]], np.cumsum(sizes), strict=True)
    ]

    assert panel.symbols == tuple(sizes.index.astype(str))
    np.testing.assert_array_equal(panel.offsets, np.r_[0, np.cumsum(sizes)])
    np.testing.assert_array_equal(panel.starts, first_complete)
    np.testing.assert_array_equal(panel.close, ordered["close"].to_numpy())
    if panel.order is None:
        assert frame.index.equals(ordered.index)
    else:
        np.testing.assert_array_equal(frame.index[panel.order], ordered.index)


def test_empty_frame() -> None:
    panel = panel_from_frame(_frame([(3, 0, "close")], 0).iloc[:0])
    assert panel.n_rows == 0 and panel.n_symbols == 0 and panel.symbols == ()

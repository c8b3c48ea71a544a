"""Hypothesis: random price paths and windows, every backend against TA-Lib."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_matches_talib, make_prices, talib_reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nepse_perf import compute_indicators
from nepse_perf.pipeline import available_backends

paths = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=120),  # length
        st.floats(min_value=1.0, max_value=75_000.0),  # starting level, NPR
        st.floats(min_value=0.0, max_value=0.1),  # daily volatility
        st.integers(min_value=0, max_value=2**31 - 1),  # seed
        st.booleans(),  # rounded to a 0.1 tick (flat stretches are common)
    ),
    min_size=1,
    max_size=4,
)
windows = st.fixed_dictionaries(
    {
        "sma_period": st.integers(2, 30),
        "ema_period": st.integers(2, 30),
        "rsi_period": st.integers(2, 30),
        "macd_fast": st.integers(2, 12),
        "macd_slow": st.integers(13, 30),
        "macd_signal": st.integers(2, 12),
        "bb_period": st.integers(2, 30),
        "bb_nbdev": st.floats(0.5, 3.0),
        "atr_period": st.integers(2, 30),
    }
)


def _closes(spec: list[tuple[int, float, float, int, bool]]) -> dict[str, np.ndarray]:
    out = {}
    for k, (n, level, vol, seed, tick) in enumerate(spec):
        rng = np.random.default_rng(seed)
        moves = np.clip(rng.normal(0, vol, n), -0.1, 0.1)
        c = level * np.exp(np.cumsum(moves))
        out[f"S{k}"] = np.maximum(np.round(c, 1), 0.1) if tick else c
    return out


@pytest.mark.parametrize("backend", sorted(available_backends()))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=paths, params=windows)
def test_random_paths_match_talib(backend: str, spec: list, params: dict) -> None:
    prices = make_prices(_closes(spec), seed=len(spec))
    got = compute_indicators(prices, backend, **params)
    assert_matches_talib(got, talib_reference(prices, **params))

"""The peer libraries (``nepse_perf.bench.peers``): each runs, and differs from TA-Lib only
where its definitions say so; ``run_benchmark(peers=True)`` gives them rows."""

from __future__ import annotations

import numpy as np
import pytest

from nepse_perf.bench.machine import memory_bandwidth
from nepse_perf.bench.peers import (
    AGREEMENT,
    PEERS,
    PeerInput,
    agreement,
    installed_peers,
    peer_version,
)
from nepse_perf.bench.runner import reference_block, run_benchmark
from nepse_perf.data import synthetic_prices
from nepse_perf.indicators import layout, panel_from_frame
from nepse_perf.indicators.backends import numba_parallel
from nepse_perf.indicators.params import OUTPUT_COLUMNS, IndicatorParams

#: The peers of the ``peers`` extra, which ``make test`` installs.
EXTRA = ("polars-talib", "polars-talib-fast", "tulipy", "ta-numba", "talipp")


@pytest.fixture(scope="module")
def blocks() -> dict[str, np.ndarray]:
    """Every installed peer's 10 x n block on a small panel, and TA-Lib's (key "talib")."""
    panel = panel_from_frame(synthetic_prices(6, 400, seed=4))
    inp = PeerInput(panel)
    out = {p.name: p.to_block(p.run(inp, IndicatorParams()), inp) for p in installed_peers()}
    out["talib"] = reference_block(panel)
    return out


def _first_valid(row: np.ndarray) -> int:
    return int(np.flatnonzero(~np.isnan(row))[0])


def test_the_extra_is_installed_with_versions() -> None:
    names = {p.name for p in installed_peers()}
    assert set(EXTRA) <= names
    assert all(peer_version(p)[0].isdigit() for p in PEERS if p.name in EXTRA)


def test_polars_talib_is_talibs_bit_for_bit(blocks: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(blocks["polars-talib"], blocks["talib"])


def test_polars_talib_fast_differs_only_in_the_ema_rounding(blocks: dict[str, np.ndarray]) -> None:
    got, ref = blocks["polars-talib-fast"], blocks["talib"]
    for k, col in enumerate(OUTPUT_COLUMNS):
        if col in ("ema", "macd", "macd_signal", "macd_hist"):
            np.testing.assert_allclose(got[k], ref[k], rtol=1e-9, atol=1e-9, err_msg=col)
        else:
            np.testing.assert_array_equal(got[k], ref[k], err_msg=col)


def test_tulipy_macd_uses_fixed_alphas(blocks: dict[str, np.ndarray]) -> None:
    """tulipy's MACD(12, 26, 9) is EMAs with alpha 0.15 and 0.075 from the first close."""
    panel = panel_from_frame(synthetic_prices(6, 400, seed=4))
    c = panel.close[: panel.offsets[1]]

    def ema(x: np.ndarray, alpha: float) -> np.ndarray:
        out, e = np.empty_like(x), x[0]
        for i, v in enumerate(x):
            e = (v - e) * alpha + e if i else v
            out[i] = e
        return out

    line = (ema(c, 0.15) - ema(c, 0.075))[25:]
    got = blocks["tulipy"][layout.MACD, : panel.offsets[1]]
    np.testing.assert_allclose(got[25:], line, rtol=1e-12, atol=1e-12)
    assert _first_valid(got) == 25 != _first_valid(blocks["talib"][layout.MACD])


@pytest.mark.parametrize("name", ["tulipy", "ta-numba", "talipp"])
def test_warm_up_peers_converge_to_talib(name: str, blocks: dict[str, np.ndarray]) -> None:
    """Seeded differently (bar 0, TR[0]), these peers' SMA, EMA, RSI, bands and ATR converge."""
    got, ref = blocks[name], blocks["talib"]
    for col in ("sma", "ema", "rsi", "bb_middle", "atr"):
        k = OUTPUT_COLUMNS.index(col)
        tail = slice(300, 400)  # the first symbol's last 100 bars
        np.testing.assert_allclose(got[k, tail], ref[k, tail], rtol=1e-9, err_msg=f"{name} {col}")
    assert _first_valid(got[layout.ATR]) == _first_valid(ref[layout.ATR]) - 1  # TR[0] seeds it


def test_run_benchmark_with_peers_adds_their_rows() -> None:
    prices = synthetic_prices(3, 200, seed=2)
    results = run_benchmark(
        prices,
        ["numba_parallel", "talib"],
        repeat=1,
        bandwidth=memory_bandwidth(size_mib=2, repeat=1),
        progress=False,
        peers=True,
    )
    peers = results[results["kind"] == "peer"].set_index("label")
    assert {f"peer: {n}" for n in EXTRA} <= {label.rsplit(" ", 1)[0] for label in peers.index}
    by_name = {label.rsplit(" ", 1)[0]: row for label, row in peers.iterrows()}
    assert by_name["peer: polars-talib"]["check"] == "ok"
    assert by_name["peer: tulipy"]["check"] == "differs"
    assert (peers["median_s"] > 0).all()


def test_small_panels_run_serially_and_give_the_same_bits() -> None:
    """Below PARALLEL_MIN_ROWS the default kernel is the serial one; results are identical."""
    for n_symbols, n_days in ((3, 100), (30, 400)):
        panel = panel_from_frame(synthetic_prices(n_symbols, n_days, seed=1))
        a, b = np.empty((10, panel.n_rows)), np.empty((10, panel.n_rows))
        numba_parallel.compute(panel, IndicatorParams(), a)
        numba_parallel.compute_serial(panel, IndicatorParams(), b)
        np.testing.assert_array_equal(a, b)
    assert 3 * 100 < numba_parallel.PARALLEL_MIN_ROWS < 30 * 400


def test_agreement_verdicts_follow_the_definitions(blocks: dict[str, np.ndarray]) -> None:
    """agreement(): TA-Lib's own bits, a rounding, a warm-up, another definition."""
    panel = panel_from_frame(synthetic_prices(6, 400, seed=4))
    ref = blocks["talib"]
    assert set(agreement(ref, ref, panel).values()) == {AGREEMENT[0]}
    assert set(agreement(blocks["polars-talib"], ref, panel).values()) == {"bit-identical"}
    tulip = agreement(blocks["tulipy"], ref, panel, settle=300)
    assert tulip["macd"] == "differs" and tulip["atr"] == "converges"
    assert tulip["sma"] == "rtol 1e-9"
    nudged = ref.copy()
    nudged[layout.RSI] *= 1 + 1e-12
    assert agreement(nudged, ref, panel)["rsi"] == "rtol 1e-9"

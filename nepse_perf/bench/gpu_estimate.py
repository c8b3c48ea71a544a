"""An estimate, from a GPU's specification and the CPU curve measured here, of when the GPU wins.

Notebook 08 asks "how many symbols before the GPU wins?". Without a measured
``results/gpu/sweep.json`` the honest answer is a model, labelled as such. It adds up what
one call of the ``gpu`` backend does, each part priced from a named source:

* **host layout** (rearranging the panel time-major, inputs and outputs): the per-row cost
  *measured on this machine*, either of the backend's whole layout (3 inputs gathered, 10
  outputs scattered back: ``layout_s_per_row``) or of the inputs alone, scaled to the 13
  series that are laid out (``layout_s_per_input_row``);
* **copies** (prices to the card, ten outputs back): bytes counted by
  ``gpu_transfer_bytes`` over the *published* PCIe rate of the slot;
* **kernel**: one thread per symbol walks its bars in order, so with few symbols the time is
  the length of one thread's dependency chain (``ASSUMED_CYCLES_PER_BAR`` cycles per bar at
  the published boost clock, an assumption); once many symbols are in flight it is bounded by
  the card's published memory bandwidth and FP64 rate; plus a fixed launch cost.

The CPU side is the sweep measured here, interpolated between its points and extended
linearly (cost per row of the widest panel) beyond them.
Every number the estimate produces depends on these stated inputs; nothing in it is a GPU
measurement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "ASSUMED_CYCLES_PER_BAR",
    "ASSUMED_LAUNCH_S",
    "BYTES_PER_ROW_FLOAT64",
    "FLOPS_PER_ROW",
    "H200_SXM",
    "PCIE_GBPS",
    "DeviceSpec",
    "cpu_curve",
    "cpu_seconds",
    "estimate_covariance_seconds",
    "estimate_crossover",
    "estimate_gpu_seconds",
    "estimate_table",
]

#: Published PCIe throughput per direction of a x16 slot, GB/s (1e9 bytes): 16 and 32 GT/s per
#: lane with 128b/130b encoding. Specification figures, not measurements.
PCIE_GBPS: dict[str, float] = {"4.0 x16": 31.5, "5.0 x16": 63.0}

#: Bytes one panel row costs on the link in float64: 3 price series in, 10 outputs back.
BYTES_PER_ROW_FLOAT64 = 13 * 8

#: Floating-point operations per row of the fused kernel (about forty adds, multiplies,
#: divides and one square root over the six indicators), used for the compute bound.
FLOPS_PER_ROW = 40

#: Assumed length of one thread's dependency chain per bar, in GPU cycles: dependent float64
#: adds and multiplies (a few cycles each), several float64 divisions and a square root (tens
#: of cycles each), loads issued ahead. An assumption for the estimate, not a measurement.
ASSUMED_CYCLES_PER_BAR = 1_000

#: Assumed fixed cost of launching the kernel and synchronising, seconds.
ASSUMED_LAUNCH_S = 10e-6


@dataclass(frozen=True)
class DeviceSpec:
    """A GPU's published figures: what the estimate needs, with where they come from.

    ``sms`` streaming multiprocessors with ``threads_per_sm`` resident threads each;
    ``boost_ghz`` the boost clock; ``memory_gbps`` the memory bandwidth (GB/s, 1e9 bytes);
    ``fp64_tflops`` the FP64 (non-tensor) rate; ``pcie`` a key of :data:`PCIE_GBPS`.
    """

    name: str
    sms: int
    threads_per_sm: int
    boost_ghz: float
    memory_gbps: float
    fp64_tflops: float
    pcie: str
    source: str

    @property
    def thread_slots(self) -> int:
        """Threads resident on the whole card at once."""
        return self.sms * self.threads_per_sm


#: NVIDIA H200 (SXM): the device lent to this project's GPU checks.
H200_SXM = DeviceSpec(
    name="NVIDIA H200 SXM",
    sms=132,
    threads_per_sm=2048,
    boost_ghz=1.98,
    memory_gbps=4_800.0,
    fp64_tflops=34.0,
    pcie="5.0 x16",
    source="NVIDIA H200 product brief (specification figures)",
)


def _layout_seconds(rows: int, per_row: float | None, per_input_row: float | None) -> float:
    """Host layout seconds for ``rows`` rows from exactly one of the two measured costs."""
    if (per_row is None) == (per_input_row is None):
        raise ValueError("give exactly one of layout_s_per_row and layout_s_per_input_row")
    return per_row * rows if per_row is not None else per_input_row * rows * 13 / 3


def estimate_gpu_seconds(
    n_symbols: int,
    n_days: int,
    spec: DeviceSpec,
    *,
    layout_s_per_input_row: float | None = None,
    layout_s_per_row: float | None = None,
) -> dict[str, float]:
    """Estimated seconds of one ``gpu`` backend call on ``n_symbols`` x ``n_days``, by part.

    Returns ``layout`` (host: ``layout_s_per_row``, the measured per-row cost of the whole
    layout, inputs and outputs, or ``layout_s_per_input_row``, that of the 3 input series
    scaled to all 13; give exactly one), ``copies`` (both directions at the spec's PCIe
    rate), ``kernel`` (the longer of one thread's chain, ``n_days * ASSUMED_CYCLES_PER_BAR``
    cycles, and the memory and FP64 bounds of all rows, plus the launch cost; symbols beyond
    the card's thread slots run in further waves) and ``total``. Seconds throughout.
    """
    rows = n_symbols * n_days
    layout = _layout_seconds(rows, layout_s_per_row, layout_s_per_input_row)
    copies = rows * BYTES_PER_ROW_FLOAT64 / (PCIE_GBPS[spec.pcie] * 1e9)
    waves = -(-n_symbols // spec.thread_slots)
    chain = waves * n_days * ASSUMED_CYCLES_PER_BAR / (spec.boost_ghz * 1e9)
    memory = rows * BYTES_PER_ROW_FLOAT64 / (spec.memory_gbps * 1e9)
    compute = rows * FLOPS_PER_ROW / (spec.fp64_tflops * 1e12)
    kernel = max(chain, memory, compute) + ASSUMED_LAUNCH_S
    return {
        "layout": layout,
        "copies": copies,
        "kernel": kernel,
        "total": layout + copies + kernel,
    }


def cpu_curve(sweep: pd.DataFrame, labels: str | Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(n_rows, median_s)`` of the fastest of ``labels`` at each width of ``sweep``, by rows.

    ``sweep`` is what ``panel_size_sweep`` returns (columns ``label``, ``n_rows``,
    ``median_s``); with several labels each width keeps the best CPU backend's median.
    :func:`cpu_seconds` interpolates between these points.
    """
    names = [labels] if isinstance(labels, str) else list(labels)
    rows = sweep[sweep["label"].isin(names)].groupby("n_rows")["median_s"].min()
    if len(rows) < 2:
        raise ValueError(f"need at least two sweep points for {names!r}, got {len(rows)}")
    return rows.index.to_numpy(float), rows.to_numpy(float)


def cpu_seconds(curve: tuple[np.ndarray, np.ndarray], n_rows: float) -> float:
    """The CPU's seconds at ``n_rows`` from a measured curve (:func:`cpu_curve`).

    Linear interpolation between measured points; below the narrowest point its time (fixed
    costs dominate there); beyond the widest, that point's cost per row times ``n_rows`` (the
    pass is linear in the rows once the panel is wide).
    """
    x, y = curve
    if n_rows > x[-1]:
        return float(y[-1] / x[-1] * n_rows)
    return float(np.interp(n_rows, x, y))


def estimate_table(
    symbols: list[int],
    n_days: int,
    spec: DeviceSpec,
    curve: tuple[np.ndarray, np.ndarray],
    *,
    layout_s_per_input_row: float | None = None,
    layout_s_per_row: float | None = None,
) -> pd.DataFrame:
    """Seconds per call against panel width: the measured CPU curve and the GPU estimate.

    Columns ``cpu (measured curve)`` (:func:`cpu_seconds`), ``gpu kernel only (estimate)``,
    ``gpu total (estimate)``, indexed by symbol count; every GPU figure is an estimate from
    :func:`estimate_gpu_seconds` (which takes the layout cost the same two ways).
    """
    out = {}
    for s in symbols:
        est = estimate_gpu_seconds(
            s,
            n_days,
            spec,
            layout_s_per_input_row=layout_s_per_input_row,
            layout_s_per_row=layout_s_per_row,
        )
        out[s] = {
            "cpu (measured curve)": cpu_seconds(curve, s * n_days),
            "gpu kernel only (estimate)": est["kernel"],
            "gpu total (estimate)": est["total"],
        }
    table = pd.DataFrame.from_dict(out, orient="index")
    table.index.name = "n_symbols"
    return table


def estimate_crossover(table: pd.DataFrame, column: str) -> int | None:
    """The narrowest width from which ``column`` beats the CPU curve at every wider width tried.

    None when it does not beat the CPU at the widest width of ``table``.
    """
    wins = (table[column] < table["cpu (measured curve)"]).to_numpy()
    if not wins[-1]:
        return None
    first = len(wins) - 1
    while first > 0 and wins[first - 1]:
        first -= 1
    return int(table.index[first])


def estimate_covariance_seconds(
    n_symbols: int, n_days: int, window: int, step: int, spec: DeviceSpec
) -> dict[str, float]:
    """Estimated seconds of ``covariance_windows`` on the card ``spec``, returns starting on the host.

    ``compute``: ``2 * symbols^2 * window`` float64 operations per window at the published
    FP64 rate (non-tensor; an upper bound on the time, the matrix units could do better);
    ``copies``: the returns to the card and every window's matrix back at the slot's PCIe
    rate; ``total`` adds the launch cost. From the specification alone: an estimate.
    """
    windows = (n_days - window) // step + 1
    flops = 2.0 * n_symbols * n_symbols * window * windows
    nbytes = 8.0 * (n_days * n_symbols + windows * n_symbols * n_symbols)
    compute = flops / (spec.fp64_tflops * 1e12)
    copies = nbytes / (PCIE_GBPS[spec.pcie] * 1e9)
    return {"compute": compute, "copies": copies, "total": compute + copies + ASSUMED_LAUNCH_S}

"""How often to checkpoint on a spot instance: Young/Daly's interval, checked by simulation.

Model (Daly 2006, exponential failures): the job needs ``work_s`` seconds of computation,
cut into segments of ``interval_s``; each segment ends with a checkpoint of ``checkpoint_s``
seconds. Interruptions arrive as a Poisson process of mean time between failures ``mtbf_s``
(they can also strike during a checkpoint or a restart). An interruption loses the work
since the last checkpoint and costs ``restart_s`` (a new instance, start-up, reload) before
the segment is retried. Expected wall time of one segment of length L = interval + checkpoint:

    E = MTBF * exp(R / MTBF) * (exp(L / MTBF) - 1)

Young's first-order optimum of the interval is ``sqrt(2 * checkpoint_s * mtbf_s)``.
:func:`simulate_completion` draws the same process (and optionally a hard instance lifetime,
GCP preemptible VMs' 24 h) so the formula and the optimum can be checked against it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = [
    "GCP_PREEMPTIBLE_LIFETIME_S",
    "HOURS_PER_MONTH",
    "SPOT_BANDS",
    "expected_completion",
    "interval_study",
    "mtbf_from_monthly_rate",
    "simulate_completion",
    "young_daly_interval",
]

#: Hours in the month the cloud price pages bill by (365 x 24 / 12).
HOURS_PER_MONTH = 730.0
#: GCP preemptible VMs are stopped after at most 24 hours (documented limit).
GCP_PREEMPTIBLE_LIFETIME_S = 24 * 3600.0
#: AWS Spot Instance Advisor's interruption-frequency bands (share of instances interrupted
#: per month); each is simulated at its upper edge, the open band ">20 %" at 25 % (a choice,
#: stated wherever it is used).
SPOT_BANDS: dict[str, float] = {
    "<5 %": 0.05,
    "5-10 %": 0.10,
    "10-15 %": 0.15,
    "15-20 %": 0.20,
    ">20 % (at 25 %)": 0.25,
}


def young_daly_interval(checkpoint_s: float, mtbf_s: float) -> float:
    """Young/Daly's optimal compute time between checkpoints: sqrt(2 x C x MTBF), seconds.

    ``checkpoint_s`` is the cost of one checkpoint, ``mtbf_s`` the mean time between
    interruptions, both in seconds and > 0 (ValueError otherwise).
    """
    if not (checkpoint_s > 0 and mtbf_s > 0):
        raise ValueError(f"checkpoint_s and mtbf_s must be > 0, got {checkpoint_s}, {mtbf_s}")
    return math.sqrt(2.0 * checkpoint_s * mtbf_s)


def mtbf_from_monthly_rate(rate: float) -> float:
    """Mean time between interruptions (seconds) of an instance interrupted with probability
    ``rate`` within a month (``HOURS_PER_MONTH``), e.g. 0.05 for the Spot advisor's "<5 %".

    Exponential interruptions: hazard = -ln(1 - rate) per month. ``rate`` in (0, 1).
    """
    if not 0 < rate < 1:
        raise ValueError(f"rate must be in (0, 1), got {rate}")
    return HOURS_PER_MONTH * 3600.0 / -math.log1p(-rate)


def _segments(work_s: float, interval_s: float) -> np.ndarray:
    if not (work_s > 0 and interval_s > 0):
        raise ValueError(f"work_s and interval_s must be > 0, got {work_s}, {interval_s}")
    n_full = int(work_s // interval_s)
    rest = work_s - n_full * interval_s
    seg = [interval_s] * n_full + ([rest] if rest > 1e-12 * work_s else [])
    return np.asarray(seg, dtype=np.float64)


def expected_completion(
    work_s: float, interval_s: float, checkpoint_s: float, mtbf_s: float, restart_s: float = 0.0
) -> float:
    """Expected wall time (seconds) of the job under exponential interruptions (Daly's model).

    ``work_s`` total compute, ``interval_s`` compute per segment (the last may be shorter),
    ``checkpoint_s`` after every segment, ``mtbf_s`` mean time between interruptions,
    ``restart_s`` paid after each interruption. ``mtbf_s = inf`` gives the time without
    interruptions: work plus checkpoints.
    """
    seg = _segments(work_s, interval_s) + checkpoint_s
    if math.isinf(mtbf_s):
        return float(seg.sum())
    return float(np.sum(mtbf_s * math.exp(restart_s / mtbf_s) * np.expm1(seg / mtbf_s)))


def simulate_completion(
    work_s: float,
    interval_s: float,
    checkpoint_s: float,
    mtbf_s: float,
    restart_s: float = 0.0,
    *,
    lifetime_s: float = math.inf,
    n_runs: int = 2000,
    seed: int = 0,
    max_attempts: int = 100_000,
) -> np.ndarray:
    """Wall times (seconds) of ``n_runs`` simulated runs of the job (see the module docstring).

    Interruptions are exponential with mean ``mtbf_s``; an instance also stops when it
    reaches ``lifetime_s`` of age (``GCP_PREEMPTIBLE_LIFETIME_S`` for a preemptible VM), the
    replacement starting at age 0. Every retry after an interruption pays ``restart_s``
    before the segment's work. Runs still unfinished after ``max_attempts`` rounds (a
    segment longer than the lifetime never completes) get ``inf``. Seeded: same arguments,
    same array.
    """
    rng = np.random.default_rng(seed)
    seg = _segments(work_s, interval_s) + checkpoint_s
    total = np.zeros(n_runs)
    age = np.zeros(n_runs)
    alive = np.ones(n_runs, dtype=bool)
    for length in seg:
        first = np.ones(n_runs, dtype=bool)
        pending = alive.copy()
        attempts = 0
        while pending.any():
            attempts += 1
            if attempts > max_attempts:
                total[pending] = np.inf
                alive &= ~pending
                break
            idx = np.flatnonzero(pending)
            need = np.where(first[idx], length, restart_s + length)
            until_fail = (
                rng.exponential(mtbf_s, idx.size)
                if math.isfinite(mtbf_s)
                else np.full(idx.size, np.inf)
            )
            until_fail = np.minimum(until_fail, lifetime_s - age[idx])
            ok = until_fail >= need
            total[idx[ok]] += need[ok]
            age[idx[ok]] += need[ok]
            bad = idx[~ok]
            total[bad] += np.maximum(until_fail[~ok], 0.0)
            age[bad] = 0.0
            first[bad] = False
            pending[idx[ok]] = False
    return total


def interval_study(
    work_s: float,
    checkpoint_s: float,
    restart_s: float,
    intervals_s: np.ndarray,
    mtbfs_s: dict[str, float],
    *,
    lifetime_s: float = math.inf,
    n_runs: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Expected completion time against checkpoint interval for several interruption rates.

    One row per (rate label, interval): ``formula_s`` from :func:`expected_completion`,
    ``sim_mean_s`` and ``sim_se_s`` (standard error) from :func:`simulate_completion`
    (``lifetime_s`` applies to the simulation only), ``young_daly_s`` the rate's optimum and
    ``overhead`` = formula / ``work_s`` - 1. ``mtbfs_s`` maps a label to an MTBF in seconds.
    """
    rows = []
    for label, mtbf in mtbfs_s.items():
        yd = young_daly_interval(checkpoint_s, mtbf)
        for tau in np.asarray(intervals_s, dtype=np.float64):
            sims = simulate_completion(
                work_s,
                tau,
                checkpoint_s,
                mtbf,
                restart_s,
                lifetime_s=lifetime_s,
                n_runs=n_runs,
                seed=seed,
            )
            formula = expected_completion(work_s, tau, checkpoint_s, mtbf, restart_s)
            finite = sims[np.isfinite(sims)]
            rows.append(
                {
                    "rate": label,
                    "mtbf_s": mtbf,
                    "interval_s": float(tau),
                    "formula_s": formula,
                    "sim_mean_s": float(finite.mean()) if len(finite) == len(sims) else math.inf,
                    "sim_se_s": float(finite.std(ddof=1) / math.sqrt(len(finite)))
                    if len(finite) > 1
                    else math.nan,
                    "young_daly_s": yd,
                    "overhead": formula / work_s - 1.0,
                }
            )
    return pd.DataFrame(rows)

"""How long a hostile body freezes a running service: ``/healthz`` probed while it is sent.

A service on one event loop answers nothing else while it parses a body. The stall is
measured from outside, as a client sees it: one connection asks ``GET /healthz`` every half
millisecond, another sends the body, and the stall is the slowest ``/healthz`` answer in the
window around it (its baseline, with no body, is the probe's own round trip).
:func:`hostile_bodies` builds the shapes that are cheap to send and costly to parse (many small
containers, many values, deep nesting, long literals), each as close to the body limit as it
fits; :func:`event_loop_stalls` sends each to a service on loopback and returns a table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator

import pandas as pd

from nepse_perf.bench.loadtest import Connection, check_loopback_url, run_coroutine

__all__ = ["event_loop_stalls", "hostile_bodies", "paused"]

FEATURES_PATH = "/v1/predict/features"
SYMBOLS_PATH = "/v1/predict"


def _fill(prefix: bytes, unit: bytes, suffix: bytes, limit: int, sep: bytes = b",") -> bytes:
    """``prefix unit,unit,... suffix`` with as many units as fit in ``limit`` bytes."""
    k = max(1, (limit - len(prefix) - len(suffix)) // (len(unit) + len(sep)))
    return prefix + sep.join([unit] * k) + suffix


def hostile_bodies(n_features: int, limit: int, max_rows: int) -> dict[str, tuple[str, bytes]]:
    """Name -> (path, body) of bodies at most ``limit`` bytes that are costly to parse.

    The shapes (each filling the limit; for 1 MB): 350,000 empty lists; short rows; empty
    objects; nested lists under an unknown key; 87,000 keys; half a million small numbers in
    one row; full rows beyond ``max_rows``; a quarter of a million strings; strings behind
    backslashes (to defeat a quote count); one number of a quarter of the limit in digits;
    whitespace padding around a valid body; a valid body of ``max_rows`` rows; and nesting
    half a million deep.
    """
    ones = b",".join([b"1"] * n_features)
    valid = json.dumps({"rows": [[1.25] * n_features] * max_rows}).encode()
    quarter = limit // 4
    return {
        "empty lists": (FEATURES_PATH, _fill(b'{"rows": [', b"[]", b"]}", limit)),
        "short rows [1]": (FEATURES_PATH, _fill(b'{"rows": [', b"[1]", b"]}", limit)),
        "empty objects": (FEATURES_PATH, _fill(b'{"rows": [', b"{}", b"]}", limit)),
        "lists under an unknown key": (
            FEATURES_PATH,
            _fill(b'{"junk": [', b"[[]]", b'], "rows": [[' + ones + b"]]}", limit),
        ),
        "many keys": (
            FEATURES_PATH,
            b"{" + b",".join(b'"k%d": 0' % i for i in range(limit // 12)) + b"}",
        ),
        "small numbers in one row": (FEATURES_PATH, _fill(b'{"rows": [[', b"1", b"]]}", limit)),
        "full rows beyond max_rows": (
            FEATURES_PATH,
            _fill(b'{"rows": [', b"[" + ones + b"]", b"]}", limit),
        ),
        "many strings": (SYMBOLS_PATH, _fill(b'{"symbols": [', b'"A"', b"]}", limit)),
        "strings behind backslashes": (
            SYMBOLS_PATH,
            _fill(b'{"symbols": ["' + b"\\\\" * (limit // 4) + b'", ', b'"A"', b"]}", limit),
        ),
        "one number of a quarter of the limit": (
            FEATURES_PATH,
            b'{"rows": [[' + b"1." + b"0" * quarter + b"," + ones[2:] + b"]]}",
        ),
        "valid body padded with spaces": (
            FEATURES_PATH,
            b" " * (limit - len(valid) - 2) + valid,
        ),
        f"valid, {max_rows} rows": (FEATURES_PATH, valid),
        "deep nesting": (
            FEATURES_PATH,
            b'{"rows": ' + b"[" * (limit // 2 - 8) + b"]" * (limit // 2 - 8) + b"}",
        ),
    }


async def _probe(host: str, port: int, path: str, body: bytes) -> tuple[int, float, float]:
    """(status, answer ms, worst /healthz ms) of one body sent while /healthz is polled."""
    prober = Connection(*await asyncio.open_connection(host, port))
    worst, stop = [0.0], asyncio.Event()

    async def poll() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await prober.request(b"GET /healthz HTTP/1.1\r\nHost: probe\r\n\r\n")
            worst[0] = max(worst[0], time.perf_counter() - t)
            await asyncio.sleep(0.0005)

    task = asyncio.create_task(poll())
    await asyncio.sleep(0.1)
    sender = Connection(*await asyncio.open_connection(host, port))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: probe\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    t0 = time.perf_counter()
    status, _, _ = await sender.request(head + body)
    answer_s = time.perf_counter() - t0
    await asyncio.sleep(0.1)
    stop.set()
    await task
    for conn in (prober, sender):
        conn.close()
    return status, answer_s * 1000, worst[0] * 1000


def event_loop_stalls(url: str, bodies: dict[str, tuple[str, bytes]]) -> pd.DataFrame:
    """Send each body to the service at ``url`` (loopback) while probing ``/healthz``.

    One row per body: its size (bytes), the answer's status, the time to the answer and the
    worst ``/healthz`` round trip meanwhile (ms), plus a ``baseline`` row with no body. Run
    it on a quiet machine: the figures include the probe's own round trip.
    """
    host, port, _ = check_loopback_url(url)

    async def run() -> list[dict]:
        out = []
        _, _, base = await _probe(host, port, "/healthz-baseline", b"{}")
        out.append({"body": "baseline (no body)", "bytes": 0, "status": 0, "answer_ms": 0.0})
        out[-1]["worst_healthz_ms"] = base
        for name, (path, body) in bodies.items():
            status, answer, worst = await _probe(host, port, path, body)
            out.append(
                {
                    "body": name,
                    "bytes": len(body),
                    "status": status,
                    "answer_ms": answer,
                    "worst_healthz_ms": worst,
                }
            )
        return out

    return pd.DataFrame(run_coroutine(run)).set_index("body")


@contextlib.contextmanager
def paused(pid: int, at_s: float, for_s: float) -> Iterator[threading.Event]:
    """Stop process ``pid`` (SIGSTOP) ``at_s`` seconds into the block, for ``for_s`` seconds.

    An injected stall of a known length, as a garbage-collection pause, a page-cache miss or
    a noisy neighbour would make one: a load test run inside the block sees the server freeze
    and resume (SIGCONT). Leaving the block ends a stall still running, and the process is
    resumed whatever happens; the yielded event is set once the stall is over.
    """
    over, leaving = threading.Event(), threading.Event()

    def stall() -> None:
        try:
            os.kill(pid, signal.SIGSTOP)
            leaving.wait(for_s)  # cut short when the block is left first
        finally:
            os.kill(pid, signal.SIGCONT)
            over.set()

    timer = threading.Timer(at_s, stall)
    timer.start()
    try:
        yield over
    finally:
        leaving.set()
        timer.cancel()
        timer.join()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)

"""The service's limits, for real: connections, timeouts, admission, deadlines, the drain.

Each test starts ``nepse-perf serve`` on a free loopback port with the limit under test set
small, and checks answers and exit statuses only (no timing assertions: the timeouts are
set short, and the tests wait well past them).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter

import httpx
import numpy as np
import pytest
import requests

from nepse_perf.bench.loadtest import features_body, run_loadtest, sample_feature_rows
from nepse_perf.bench.stalls import event_loop_stalls, hostile_bodies
from nepse_perf.cli.serve import DROPPED_EXIT
from nepse_perf.data import sample_path
from nepse_perf.model import FEATURES
from nepse_perf.serving.process import ServiceProcess

BODY_LIMIT = 65_536
BIG = b"[" * 20_000_000  # 20 MB, sent with its Content-Length
FEATURES_PATH = "/v1/predict/features"


def metric(text: str, name: str) -> float:
    """The sum of every sample of one Prometheus metric (0 when absent)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


@pytest.fixture(scope="module")
def limited(serving_model_dir):
    """A service with a 1 s read timeout, 4 connections and a 64 kB body limit."""
    with ServiceProcess(
        serving_model_dir,
        prices=sample_path(),
        read_timeout=1,
        max_connections=4,
        max_body_bytes=BODY_LIMIT,
    ) as svc:
        yield svc


def _connect(svc: ServiceProcess) -> socket.socket:
    return socket.create_connection((svc.host, svc.port), timeout=10)


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_a_silent_connection_is_closed(limited) -> None:
    with _connect(limited) as sock:
        t0 = time.monotonic()
        assert _read_all(sock) == b""  # closed, nothing sent
        assert time.monotonic() - t0 < 8  # the read timeout (1 s), not never


def test_headers_sent_too_slowly_get_408(limited) -> None:
    with _connect(limited) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.3)
        sock.sendall(b"X-Slow: 1\r\n")  # a byte now and then does not reset the clock
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408")


def test_a_body_sent_too_slowly_gets_408(limited) -> None:
    with _connect(limited) as sock:
        sock.sendall(
            f"POST {FEATURES_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 100\r\n\r\n{".encode()
        )
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408") and b"not received within 1 s" in answer


def test_connections_beyond_the_cap_get_503(limited) -> None:
    held = [_connect(limited) for _ in range(4)]
    try:
        time.sleep(0.2)
        with _connect(limited) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = _read_all(extra)
        assert answer.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in answer.lower()
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert httpx.get(limited.url + "/healthz").status_code == 200  # room again


def _curl_413(url: str) -> int:
    done = subprocess.run(
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
            url,
        ],
        input=BIG,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return int(done.stdout or 0)


def _urllib_413(url: str) -> int:
    req = urllib.request.Request(url, data=BIG, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("client", ["urllib", "requests", "httpx", "curl"])
def test_every_common_client_sees_the_413(limited, client) -> None:
    if client == "curl" and shutil.which("curl") is None:
        pytest.fail("curl is not installed (.ci/run installs it)")
    url = limited.url + FEATURES_PATH
    send = {
        "urllib": _urllib_413,
        "requests": lambda u: (
            requests.post(
                u, data=BIG, headers={"Content-Type": "application/json"}, timeout=60
            ).status_code
        ),
        "httpx": lambda u: (
            httpx.post(
                u, content=BIG, headers={"Content-Type": "application/json"}, timeout=60
            ).status_code
        ),
        "curl": _curl_413,
    }[client]
    assert send(url) == 413
    assert httpx.get(limited.url + "/healthz").status_code == 200


def test_hostile_bodies_under_the_limit_get_4xx_or_200(limited) -> None:
    bodies = hostile_bodies(len(FEATURES), BODY_LIMIT, 64)
    table = event_loop_stalls(limited.url, bodies)
    statuses = table["status"].drop("baseline (no body)")
    assert set(statuses) <= {200, 400, 413}, statuses.to_dict()
    assert (table["bytes"] <= BODY_LIMIT).all()
    assert statuses["empty lists"] == 413 and statuses["valid, 64 rows"] == 200


# one admitted request at a time; a lone request waits 1.5 s for company, past its deadline
ADMISSION = {"max_inflight": 1, "max_batch": 64, "max_wait_ms": 1500, "deadline_ms": 300}


def test_admission_and_deadline(serving_model_dir) -> None:
    rows = sample_feature_rows(2, seed=3)
    body = features_body(rows[:1])
    headers = {"Content-Type": "application/json"}
    with ServiceProcess(serving_model_dir, prices=sample_path(), **ADMISSION) as svc:

        async def two() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=svc.url, timeout=30) as ac:
                first = asyncio.ensure_future(ac.post(FEATURES_PATH, content=body, headers=headers))
                await asyncio.sleep(0.3)  # the first is admitted and queued
                second = await ac.post(FEATURES_PATH, content=body, headers=headers)
                return [await first, second]

        first, second = asyncio.run(two())
        assert second.status_code == 503 and "inflight" in second.json()["detail"]
        assert second.headers["retry-after"] == "1"
        assert first.status_code == 503 and "deadline passed" in first.json()["detail"]
        text = httpx.get(svc.url + "/metrics").text
        assert metric(text, "nepse_batch_rows_count") == 1  # the warm-up only: no answer computed
        assert 'reason="deadline"' in text and 'reason="inflight"' in text

        # a request shed at the protocol: its body is dropped and the connection still works
        with (
            socket.create_connection((svc.host, svc.port), timeout=10) as sock,
            concurrent.futures.ThreadPoolExecutor(1) as pool,
        ):
            hold = pool.submit(httpx.post, svc.url + FEATURES_PATH, content=body, headers=headers)
            time.sleep(0.3)  # it holds the one admission slot
            head = (
                f"POST {FEATURES_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            sock.sendall(head + body + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while b'{"status":"ok"}' not in got:
                chunk = sock.recv(65536)
                assert chunk, got
                got += chunk
            assert hold.result().status_code == 503  # its deadline passed
        assert got.startswith(b"HTTP/1.1 503") and b"HTTP/1.1 200" in got


def test_a_drain_out_of_time_answers_503_and_exits_nonzero(serving_model_dir) -> None:
    rows = sample_feature_rows(40, seed=2)
    svc = ServiceProcess(
        serving_model_dir,
        prices=sample_path(),
        max_batch=64,
        max_wait_ms=5000,
        max_inflight=64,
        deadline_ms=30_000,
        graceful_timeout=1,
    ).start()
    try:

        async def go() -> list:
            limits = httpx.Limits(max_connections=64)
            async with httpx.AsyncClient(base_url=svc.url, timeout=30, limits=limits) as ac:
                tasks = [
                    asyncio.ensure_future(ac.post(FEATURES_PATH, json={"rows": [r.tolist()]}))
                    for r in rows
                ]
                await asyncio.sleep(0.5)  # all 40 queued, waiting 5 s for company
                svc.proc.send_signal(signal.SIGTERM)
                return await asyncio.gather(*tasks, return_exceptions=True)

        answers = asyncio.run(go())
        statuses = Counter(getattr(a, "status_code", type(a).__name__) for a in answers)
        assert statuses == {503: 40}, statuses
        assert all(a.headers["retry-after"] == "1" for a in answers)
        assert "stopped before this request finished" in answers[0].json()["detail"]
        assert svc.proc.wait(30) == DROPPED_EXIT
        assert "40 request(s) could not finish" in svc.log_text()
    finally:
        svc.close()


def test_overload_is_shed_with_503_and_retry_after(serving_model_dir) -> None:
    """Far more than one worker can take (max_inflight 2): every request is answered 200 or
    503 with Retry-After, none times out, and the 200s are the predictions."""
    with ServiceProcess(
        serving_model_dir, prices=sample_path(), max_inflight=2, max_wait_ms=5
    ) as svc:
        result = run_loadtest(svc.url, rate=3000, duration=1.5, connections=128, timeout=10)
    assert result.scheduled == 4500
    assert result.shed > 0 and result.completed_ok > 0
    assert result.answered_share == 1.0, result.errors
    assert set(result.errors) <= {"503"}
    assert np.isfinite(result.ok_p99_ms)


def test_serve_cli_documents_the_limits() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nepse_perf", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for flag in (
        "--max-inflight",
        "--deadline-ms",
        "--read-timeout",
        "--keep-alive-timeout",
        "--max-connections",
        "--cpus",
    ):
        assert flag in done.stdout


def _state(pid: int) -> str:
    """The process state letter from /proc (T: stopped)."""
    from pathlib import Path

    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_paused_stops_a_process_for_the_stall_and_always_resumes_it() -> None:
    """bench.stalls.paused: SIGSTOP at the given instant, SIGCONT after the stall (and on exit)."""
    import subprocess
    import sys

    from nepse_perf.bench.stalls import paused

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with paused(proc.pid, 0.05, 0.3) as over:
            time.sleep(0.15)
            assert _state(proc.pid) == "T"
            assert over.wait(2.0)
            time.sleep(0.05)
            assert _state(proc.pid) != "T"
        with paused(proc.pid, 0.0, 5.0):  # leaving the block early still resumes it
            time.sleep(0.1)
        assert _state(proc.pid) != "T"
    finally:
        proc.kill()
        proc.wait()

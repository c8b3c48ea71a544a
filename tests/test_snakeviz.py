"""A cProfile of the pipeline opens in SnakeViz: the server starts and serves the profile page.

Notebook 01 tells learners to run ``snakeviz pipeline.prof``; this test makes sure that
works with the installed versions, without a browser: ``snakeviz -s`` (server only) on
127.0.0.1, then one HTTP GET of the page for the profile.
"""

from __future__ import annotations

import cProfile
import pstats
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import free_port

from nepse_perf import compute_indicators, synthetic_prices

#: Total time allowed for the server to come up and answer (seconds).
STARTUP_TIMEOUT = 20.0


def _profile_pipeline(path: Path) -> None:
    """cProfile one run of the plain-Python pipeline on a small synthetic panel into ``path``."""
    prices = synthetic_prices(3, 300, seed=1)
    compute_indicators(prices, "python")  # warm: one-time imports stay out of the profile
    profiler = cProfile.Profile()
    profiler.enable()
    compute_indicators(prices, "python")
    profiler.disable()
    profiler.dump_stats(path)


def _read_lines(stream, lines: list[str]) -> None:
    for line in stream:
        lines.append(line)


def test_profile_is_readable(tmp_path: Path) -> None:
    prof = tmp_path / "pipeline.prof"
    _profile_pipeline(prof)
    names = {func for _, _, func in pstats.Stats(str(prof)).stats}
    assert {"compute_indicators", "rsi_into", "bbands_into"} <= names


def test_snakeviz_serves_the_profile(tmp_path: Path) -> None:
    prof = tmp_path / "pipeline.prof"
    _profile_pipeline(prof)
    port = free_port()
    # -u: unbuffered, so the URL snakeviz prints reaches us while it serves.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "snakeviz",
            "-s",
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
            str(prof),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    # snakeviz picks another port if ours was taken meanwhile; it prints the URL it serves.
    url = f"http://127.0.0.1:{port}/snakeviz/{quote(str(prof.resolve()), safe='')}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        status, page, error = None, "", None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"snakeviz exited with {proc.returncode}: {''.join(lines)}")
            printed = [ln.strip() for ln in list(lines) if ln.startswith("http://")]
            if printed:
                url = printed[0]
            try:
                with urllib.request.urlopen(url, timeout=2.0) as response:
                    status = response.status
                    page = response.read().decode("utf-8", errors="replace")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                error = exc
                time.sleep(0.2)
        else:
            pytest.fail(f"snakeviz did not answer {url} within {STARTUP_TIMEOUT:.0f} s: {error}")
        assert status == 200
        assert "<title>pipeline</title>" in page  # the page is titled after the file
        assert "compute_indicators" in page  # and embeds the profile's call table
        assert "bbands_into" in page
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        reader.join(timeout=5)  # the pipe reaches EOF once the server has exited
        if proc.stdout is not None:
            proc.stdout.close()

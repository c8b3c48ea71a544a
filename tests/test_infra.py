"""The shared plumbing: child-process lifecycle, atomic writes, ports and argument checks."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pytest

from nepse_perf._infra.checks import non_negative_int, positive_int
from nepse_perf._infra.files import atomic_write, atomic_write_text
from nepse_perf._infra.ports import free_port
from nepse_perf._infra.process import (
    ChildProcess,
    ProcessDiedError,
    ProcessTimeoutError,
    tcp_accepting,
)

PY = sys.executable


def test_died_before_ready_quotes_the_output() -> None:
    child = ChildProcess([PY, "-c", "print('boom'); raise SystemExit(3)"], name="dier")
    with pytest.raises(ProcessDiedError, match=r"dier exited with status 3(.|\n)*boom"):
        child.start().wait_ready(lambda: False, 30)
    child.close()
    assert not child.log.exists()


def test_timeout_stops_the_child() -> None:
    child = ChildProcess([PY, "-c", "print('slow', flush=True); import time; time.sleep(60)"])
    with pytest.raises(ProcessTimeoutError, match=r"not ready after 0.3 s(.|\n)*slow"):
        child.start().wait_ready(lambda: False, 0.3)
    assert child.poll() is not None
    child.close()


def test_ready_on_port_and_sigkill_after_grace() -> None:
    port = free_port()
    code = (
        "import signal, socket, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen()\n"
        "print('listening', flush=True)\n"
        "time.sleep(60)\n"
    )
    with ChildProcess([PY, "-c", code], name="stubborn", new_session=True) as child:
        child.wait_ready(tcp_accepting("127.0.0.1", port), 30)
        assert child.output_matches("listen")()
        t0 = time.monotonic()
        assert child.stop(grace=0.3) == -9  # SIGTERM ignored: SIGKILL after the grace
        assert time.monotonic() - t0 < 10


def test_atomic_write_mode_prefix_and_failure(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    atomic_write_text(target, "{}")
    assert target.read_text() == "{}"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644

    def fail(tmp: Path) -> None:
        assert tmp.name.startswith(".mine-a.json.")
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail, prefix=".mine-")
    assert target.read_text() == "{}" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_checks_wording() -> None:
    assert positive_int(3, "n") == 3
    for bad in (0, -1, 2.5, "3", True, None):
        with pytest.raises(ValueError, match=r"n must be an int >= 1, got"):
            positive_int(bad, "n")
    assert non_negative_int(0, "k") == 0
    with pytest.raises(ValueError, match=r"k must be an int >= 0"):
        non_negative_int(-1, "k")

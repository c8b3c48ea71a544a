"""The lifecycle of one child process: start, wait until it is ready, stop, reap.

Every server the package starts (the model service, nginx, redis-server, a Spark master or
worker) goes through :class:`ChildProcess`:

* **start**: ``subprocess.Popen`` with stdin from ``/dev/null`` and stdout + stderr appended
  to a log file (a private temporary one unless ``log`` names one), so a full pipe can never
  block the child and its output is there to quote when it fails. ``new_session=True``
  makes the child the leader of its own session and process group, so a signal to the group
  reaches everything it spawned (Uvicorn's workers, nginx's workers, Spark's JVM).
* **wait until ready**: :meth:`ChildProcess.wait_ready` polls a predicate
  (:func:`tcp_accepting`, :func:`http_ok`, :meth:`ChildProcess.output_matches` or any
  callable) until it is true. If the child exits first it raises :class:`ProcessDiedError`
  (a ``RuntimeError``); after ``timeout`` seconds :class:`ProcessTimeoutError` (a
  ``TimeoutError``). Either way the child is stopped first and the message ends with the
  tail of its output (and of any ``tail_files`` it writes itself).
* **stop**: :func:`stop_process`: each of ``stop_signals`` (default SIGTERM) in turn, waiting
  up to ``grace`` seconds after each, then SIGKILL, then reap. ``signal_group=True`` sends
  the polite signals to the whole process group; SIGKILL always goes to the group when the
  child leads one, so no grandchild outlives it.

``with ChildProcess(cmd) as child:`` starts it and stops it (and removes a private log) on
exit, also on error.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "ChildProcess",
    "ProcessDiedError",
    "ProcessTimeoutError",
    "http_ok",
    "stop_process",
    "tcp_accepting",
]

#: How many characters of the child's output an error message quotes.
TAIL_CHARS = 2000


class ProcessDiedError(RuntimeError):
    """The child exited before it was ready (message: status and the tail of its output)."""


class ProcessTimeoutError(TimeoutError):
    """The child did not become ready in time (message: the tail of its output)."""


def _signal(proc: subprocess.Popen, sig: int, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)


def stop_process(
    proc: subprocess.Popen,
    grace: float = 10.0,
    *,
    stop_signals: Sequence[int] = (signal.SIGTERM,),
    signal_group: bool = False,
) -> int | None:
    """Stop ``proc`` and reap it: each of ``stop_signals`` in turn, then SIGKILL; its exit status.

    After each signal it waits up to ``grace`` seconds for the process to exit; an empty
    ``stop_signals`` only waits (for a child told to exit some other way, e.g. by closing its
    stdin). ``signal_group=True`` sends the stop signals to the process group ``proc`` leads
    (started with ``start_new_session=True``). SIGKILL goes to that group whenever ``proc``
    leads one, else to ``proc`` alone. A process that already exited is only reaped.
    """
    if proc.poll() is not None:
        return proc.returncode
    for sig in stop_signals:
        _signal(proc, sig, signal_group)
        try:
            return proc.wait(grace)
        except subprocess.TimeoutExpired:
            continue
    if not stop_signals:
        try:
            return proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        leads_group = os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:  # exited a moment ago: nothing left to kill
        leads_group = False
    _signal(proc, signal.SIGKILL, leads_group)
    return proc.wait()


def tcp_accepting(host: str, port: int, timeout: float = 0.2) -> Callable[[], bool]:
    """A readiness predicate: true once a TCP connection to ``host:port`` is accepted."""

    def ready() -> bool:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            return False

    return ready


def http_ok(url: str, timeout: float = 2.0) -> Callable[[], bool]:
    """A readiness predicate: true once a GET of ``url`` answers 200 (standard library only)."""

    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    return ready


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


class ChildProcess:
    """One child process (``args``), its log, its readiness and its stop (see the module).

    ``log`` is the file that receives the child's stdout and stderr (truncated at start);
    ``None`` makes a private temporary file that :meth:`close` removes. ``tail_files`` are
    other files the child writes itself (e.g. nginx's error log), quoted with ``log`` in error
    messages. ``env`` and ``cwd`` go to ``Popen``; ``new_session`` starts the child in its own
    session and process group; ``stop_signals`` and ``signal_group`` are as for
    :func:`stop_process`. ``name`` labels error messages (default: the program's file name).
    """

    def __init__(
        self,
        args: Sequence[str | os.PathLike[str]],
        *,
        name: str | None = None,
        log: str | os.PathLike[str] | None = None,
        tail_files: Sequence[str | os.PathLike[str]] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        new_session: bool = False,
        signal_group: bool = False,
        stop_signals: Sequence[int] = (signal.SIGTERM,),
    ) -> None:
        self.args = [str(a) for a in args]
        self.name = name or Path(self.args[0]).name
        self.tail_files = [Path(p) for p in tail_files]
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.new_session = new_session
        self.signal_group = signal_group
        self.stop_signals = tuple(stop_signals)
        self.proc: subprocess.Popen | None = None
        self._private_log = log is None
        if log is None:
            fd, name_ = tempfile.mkstemp(prefix=f"nepse-perf-{self.name}-", suffix=".log")
            os.close(fd)
            log = name_
        self.log = Path(log)

    @property
    def pid(self) -> int | None:
        """The child's process id once started, else None."""
        return None if self.proc is None else self.proc.pid

    def poll(self) -> int | None:
        """The exit status if the child has exited, else None (also None before ``start``)."""
        return None if self.proc is None else self.proc.poll()

    def start(self) -> ChildProcess:
        """Start the child (without waiting for readiness); returns self."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"{self.name} is already running (pid {self.proc.pid})")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=self.new_session,
            )
        return self

    def output(self) -> str:
        """Everything the child wrote to stdout and stderr so far (the log's text)."""
        return _read(self.log)

    def output_tail(self, chars: int = TAIL_CHARS) -> str:
        """The last ``chars`` characters of the log and of each of ``tail_files`` (labelled)."""
        parts = [_read(self.log)[-chars:].rstrip()]
        for path in self.tail_files:
            text = _read(path)[-chars:].rstrip()
            if text:
                parts.append(f"--- {path.name} ---\n{text}")
        return "\n".join(p for p in parts if p)

    def output_matches(self, pattern: str) -> Callable[[], bool]:
        """A readiness predicate: true once the log (stdout + stderr) matches regex ``pattern``."""
        regex = re.compile(pattern)
        return lambda: regex.search(_read(self.log)) is not None

    def wait_ready(
        self,
        ready: Callable[[], object],
        timeout: float,
        *,
        what: str = "ready",
        poll: float = 0.05,
    ) -> ChildProcess:
        """Poll ``ready()`` every ``poll`` s until it is true; returns self.

        Raises :class:`ProcessDiedError` as soon as the child exits, or
        :class:`ProcessTimeoutError` after ``timeout`` s (the child is stopped first, 5 s
        grace); the message says what was awaited (``what``) and ends with the tail of the
        child's output.
        """
        if self.proc is None:
            raise RuntimeError(f"start() {self.name} first")
        deadline = time.monotonic() + timeout
        while True:
            status = self.proc.poll()
            if status is not None:
                raise ProcessDiedError(
                    self._failure(f"exited with status {status} before it was {what}")
                )
            if ready():
                return self
            if time.monotonic() > deadline:
                self.stop(grace=5.0)
                raise ProcessTimeoutError(self._failure(f"not {what} after {timeout:g} s"))
            time.sleep(poll)

    def _failure(self, what: str) -> str:
        tail = self.output_tail()
        return f"{self.name} {what}: {' '.join(self.args)}" + (
            f"\n--- last output ---\n{tail}" if tail else " (no output)"
        )

    def stop(self, grace: float = 10.0) -> int | None:
        """Stop the child (see :func:`stop_process`); its exit status, None if never started."""
        if self.proc is None:
            return None
        return stop_process(
            self.proc, grace, stop_signals=self.stop_signals, signal_group=self.signal_group
        )

    def close(self, grace: float = 10.0) -> int | None:
        """:meth:`stop` the child and remove a private log file; returns the exit status."""
        code = self.stop(grace)
        if self._private_log:
            self.log.unlink(missing_ok=True)
        return code

    def __enter__(self) -> ChildProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

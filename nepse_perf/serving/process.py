"""Start and stop ``nepse-perf serve`` as a real process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from .loadtest import wait_until_ready

__all__ = ["ServiceProcess", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServiceProcess:
    """``python -m nepse_perf serve --model DIR ...`` on 127.0.0.1 and a free port.

    ``options`` are extra CLI options as a dict (``{"workers": 2, "max_batch": 8}`` becomes
    ``--workers 2 --max-batch 8``). ``start()`` waits until ``/readyz`` answers 200 (or the
    process dies: ``RuntimeError`` with its log); ``stop()`` sends SIGTERM and waits
    (SIGKILL after ``timeout`` s) and returns the exit status. Use as a context manager.
    stderr/stdout go to a log file (``log_text()``) so a full pipe can never block the server.
    """

    def __init__(self, model_dir: str | os.PathLike[str], **options: object) -> None:
        self.model_dir = Path(model_dir)
        self.options = options
        self.host = "127.0.0.1"
        self.port = int(options.pop("port", 0) or free_port())  # type: ignore[call-overload]
        self.proc: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="nepse-serve-", suffix=".log", delete=False)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The command line that starts the service."""
        cmd = [sys.executable, "-m", "nepse_perf", "serve", "--model", str(self.model_dir)]
        cmd += ["--host", self.host, "--port", str(self.port)]
        for key, value in self.options.items():
            cmd += ["--" + key.replace("_", "-"), str(value)]
        return cmd

    def start(self, timeout: float = 90.0) -> ServiceProcess:
        """Start the process and wait for readiness; returns self."""
        return self.launch().wait_ready(timeout)

    def launch(self) -> ServiceProcess:
        """Start the process without waiting (see :meth:`wait_ready`); returns self."""
        self.proc = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def wait_ready(self, timeout: float = 90.0) -> ServiceProcess:
        """Wait until ``/readyz`` answers 200; ``RuntimeError`` with the log otherwise."""
        if self.proc is None:
            raise RuntimeError("launch() the process first")
        try:
            wait_until_ready(self.url + "/readyz", timeout=timeout, alive=self.proc.poll)
        except Exception:
            self.stop(timeout=5)
            raise RuntimeError(
                f"the service did not become ready: {' '.join(self.command())}\n"
                + self.log_text()[-2000:]
            ) from None
        return self

    def log_text(self) -> str:
        """What the process wrote to stdout and stderr so far."""
        return Path(self._log.name).read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def close(self) -> None:
        """Stop the process and remove its log file."""
        self.stop()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

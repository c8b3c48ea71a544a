"""Start and stop ``nepse-perf serve`` as a real process on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from nepse_perf._infra.ports import free_port
from nepse_perf._infra.process import (
    ChildProcess,
    ProcessDiedError,
    ProcessTimeoutError,
    http_ok,
)

__all__ = ["ServiceProcess", "free_port"]


class ServiceProcess:
    """``python -m nepse_perf serve --model DIR ...`` on 127.0.0.1 and a free port.

    ``options`` are extra CLI options as a dict (``{"workers": 2, "max_batch": 8}`` becomes
    ``--workers 2 --max-batch 8``); ``env`` is the child's environment (default: this
    process's) and ``cwd`` its directory: another checkout's code is served with
    ``PYTHONPATH`` and ``cwd`` both set to it (``python -m`` puts the directory first on
    ``sys.path``). ``start()``
    waits until ``/readyz`` answers 200 (or the process dies: ``RuntimeError`` with its
    log); ``stop()`` sends SIGTERM and waits (SIGKILL after ``timeout`` s) and returns the
    exit status. Use as a context manager.
    stderr/stdout go to a log file (``log_text()``) so a full pipe can never block the server.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        **options: object,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.options = options
        self.host = "127.0.0.1"
        self.port = int(options.pop("port", 0) or free_port(self.host))  # type: ignore[call-overload]
        # SIGTERM to the server (Uvicorn drains), SIGKILL to its whole session if it hangs
        self._child = ChildProcess(self.command(), name="serve", new_session=True, env=env, cwd=cwd)

    @property
    def proc(self) -> subprocess.Popen | None:
        """The running ``Popen`` (None before :meth:`launch`)."""
        return self._child.proc

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
        self._child.args = self.command()
        self._child.start()
        return self

    def wait_ready(self, timeout: float = 90.0) -> ServiceProcess:
        """Wait until ``/readyz`` answers 200; ``RuntimeError`` with the log otherwise."""
        if self.proc is None:
            raise RuntimeError("launch() the process first")
        try:
            self._child.wait_ready(
                http_ok(self.url + "/readyz"), timeout, what="ready (/readyz 200)", poll=0.1
            )
        except (ProcessDiedError, ProcessTimeoutError):  # the child is stopped already
            raise RuntimeError(
                f"the service did not become ready: {' '.join(self.command())}\n"
                + self.log_text()[-2000:]
            ) from None
        return self

    def log_text(self) -> str:
        """What the process wrote to stdout and stderr so far."""
        return self._child.output()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL; returns the exit status."""
        return self._child.stop(grace=timeout)

    def close(self) -> None:
        """Stop the process and remove its log file."""
        self._child.close(grace=30.0)

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

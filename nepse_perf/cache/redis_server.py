"""A private, throw-away ``redis-server`` for lessons and tests, and the rules for finding one.

``REDIS_URL`` names a server to use. Without it, :func:`lesson_redis` starts a private
server with :func:`private_redis`: the ``redis-server`` binary on 127.0.0.1, a free port,
no persistence (``--save ''``, ``--appendonly no``), a temporary working directory, and it
stops the server afterwards. ``NEPSE_PERF_REQUIRE_REDIS=1`` (set by CI) turns "no Redis
available" from a quiet fallback into an error, so a lesson cannot pass without Redis.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nepse_perf._infra.checks import positive_int
from nepse_perf._infra.ports import free_port
from nepse_perf._infra.process import ChildProcess, ProcessDiedError, ProcessTimeoutError

__all__ = [
    "REQUIRE_VARIABLE",
    "RedisUnavailableError",
    "free_port",
    "lesson_redis",
    "private_redis",
    "redis_server_binary",
    "require_redis",
]

#: Environment variable that makes Redis mandatory (CI sets it to 1).
REQUIRE_VARIABLE = "NEPSE_PERF_REQUIRE_REDIS"


class RedisUnavailableError(RuntimeError):
    """Redis is required (``NEPSE_PERF_REQUIRE_REDIS``) or was asked for, but cannot be used."""


def require_redis() -> bool:
    """True when ``NEPSE_PERF_REQUIRE_REDIS`` is set to anything but empty, 0, false or no."""
    value = os.environ.get(REQUIRE_VARIABLE, "").strip().lower()
    return value not in ("", "0", "false", "no")


def redis_server_binary() -> str | None:
    """Path of the ``redis-server`` executable on PATH (or /usr/bin, /usr/sbin), or None."""
    found = shutil.which("redis-server")
    if found:
        return found
    for candidate in ("/usr/bin/redis-server", "/usr/sbin/redis-server"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _ping(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def private_redis(
    binary: str | None = None, *, startup_timeout: float = 10.0, attempts: int = 3
) -> Iterator[str]:
    """Run a private ``redis-server`` on 127.0.0.1 and yield its URL (``redis://127.0.0.1:N/0``).

    The server listens on a free port, binds to 127.0.0.1 only, keeps no data on disk, logs
    to a file in a temporary directory (never to this process's stdout/stderr) and is
    stopped, with the directory removed, when the block exits, also on error. Raises
    :class:`RedisUnavailableError` if the binary is missing or the server does not answer
    PING within ``startup_timeout`` seconds (after ``attempts`` tries on fresh ports).
    """
    attempts = positive_int(attempts, "attempts")
    binary = binary or redis_server_binary()
    if binary is None:
        raise RedisUnavailableError("redis-server is not installed (apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="nepse-perf-redis-") as workdir:
        log = Path(workdir) / "redis.log"
        last = ""
        for _ in range(attempts):
            port = free_port()
            server = ChildProcess(
                _redis_command(binary, port, workdir, log),
                name="redis-server",
                log=Path(workdir) / "stdout.log",
                tail_files=[log],
            )
            try:  # redis-server shuts down cleanly on SIGTERM (nothing to save)
                try:
                    server.start().wait_ready(
                        lambda port=port: _ping(port), startup_timeout, what="answering PING"
                    )
                except (ProcessDiedError, ProcessTimeoutError) as exc:
                    last = str(exc)  # exited (port taken?) or too slow: try another port
                    continue
                yield f"redis://127.0.0.1:{port}/0"
                return
            finally:
                server.stop(grace=5.0)
        raise RedisUnavailableError(f"redis-server did not start on 127.0.0.1: {last}")


def _redis_command(binary: str, port: int, workdir: str, log: Path) -> list[str]:
    """``redis-server`` on 127.0.0.1:``port``: no persistence, logs to ``log``, foreground."""
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        workdir,
        "--logfile",
        str(log),
        "--daemonize",
        "no",
    ]


@contextlib.contextmanager
def lesson_redis() -> Iterator[str | None]:
    """The Redis URL lessons and tests use: ``REDIS_URL``, else a private server, else None.

    With ``REDIS_URL`` set, yields it (and starts nothing). Otherwise starts
    :func:`private_redis` if ``redis-server`` is installed and stops it on exit. With
    neither, yields None so callers can fall back to another cache, unless
    ``NEPSE_PERF_REQUIRE_REDIS`` is set: then it raises :class:`RedisUnavailableError`.
    """
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    if redis_server_binary() is None:
        if require_redis():
            raise RedisUnavailableError(
                f"{REQUIRE_VARIABLE} is set but REDIS_URL is unset and redis-server is not installed"
            )
        yield None
        return
    with private_redis() as url:
        yield url

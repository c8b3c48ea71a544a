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
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.terminate()  # redis-server shuts down cleanly on SIGTERM (nothing to save)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


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
    binary = binary or redis_server_binary()
    if binary is None:
        raise RedisUnavailableError("redis-server is not installed (apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="nepse-perf-redis-") as workdir:
        log = Path(workdir) / "redis.log"
        for _ in range(attempts):
            port = free_port()
            cmd = [
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
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                deadline = time.monotonic() + startup_timeout
                while proc.poll() is None and time.monotonic() < deadline:
                    if _ping(port):
                        break
                    time.sleep(0.02)
                else:
                    continue  # exited (port taken?) or too slow: try another port
                yield f"redis://127.0.0.1:{port}/0"
                return
            finally:
                _stop(proc)
        tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
        raise RedisUnavailableError(f"redis-server did not start on 127.0.0.1: {tail}")


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

"""Atomic file writes with one durability: the data, then the rename, survive a crash.

Each write goes to a temporary file in the destination's directory, is flushed and fsynced,
renamed over the destination (``os.replace``, atomic on one file system), and then the
directory itself is fsynced so that the rename is on disk too. A reader sees the old file or
the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "DEFAULT_MODE",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "fsync_directory",
]


def fsync_directory(directory: Path) -> None:
    """fsync ``directory`` so that a rename or a new entry in it is durable (POSIX only)."""
    if os.name != "posix":  # pragma: no cover - Windows has no directory fsync
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Permission bits of a file written here (``mkstemp`` alone would make it 0600): readable by
#: another user, e.g. the service account that loads a saved model.
DEFAULT_MODE = 0o644


def atomic_write(
    path: Path,
    write: Callable[[Path], None],
    *,
    prefix: str = ".tmp-",
    mode: int = DEFAULT_MODE,
) -> None:
    """Create ``path`` atomically: ``write(tmp)`` fills a temporary file beside it.

    ``write`` receives the temporary path (in ``path``'s directory, named ``prefix`` + name +
    a random suffix, so a caller can recognise leftovers by ``prefix``) and may write it any
    way it likes (Parquet, NumPy, text). The file gets permission bits ``mode``, is fsynced,
    renamed to ``path`` and the directory fsynced. On any error the temporary file is
    removed (an error while removing it is suppressed, so the original error is the one
    raised) and ``path`` is untouched.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{prefix}{path.name}.")
    tmp = Path(name)
    try:
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_directory(path.parent)


def atomic_write_bytes(
    path: Path, data: bytes, *, prefix: str = ".tmp-", mode: int = DEFAULT_MODE
) -> None:
    """Write ``data`` to ``path`` atomically and durably (see :func:`atomic_write`)."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data), prefix=prefix, mode=mode)


def atomic_write_text(
    path: Path,
    text: str,
    *,
    encoding: str = "utf-8",
    prefix: str = ".tmp-",
    mode: int = DEFAULT_MODE,
) -> None:
    """Write ``text`` to ``path`` atomically and durably (see :func:`atomic_write`)."""
    atomic_write(
        path, lambda tmp: tmp.write_text(text, encoding=encoding), prefix=prefix, mode=mode
    )

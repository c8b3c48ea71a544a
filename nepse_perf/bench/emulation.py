"""Run a Python module on an emulated x86-64 CPU, to see what another instruction set computes.

Libraries such as ONNX Runtime pick their kernels from CPUID at run time and have no switch
that forces a lower instruction set. QEMU's user-mode emulator (Debian's ``qemu-user``:
``qemu-x86_64 -cpu MODEL python ...``) runs the same interpreter, wheels and files while
answering CPUID as another CPU, so those libraries take that CPU's code paths. The default
model, ``EPYC-Rome`` (AMD Zen 2), offers AVX2 and FMA but no AVX-512 and no VNNI: the kind of
machine a CI runner is often given.

The emulator is software too (its AVX2 instructions are translated by QEMU's TCG): keep what
runs under it narrow, and check it against real hardware where you can. Only the process
started here is emulated; programs it starts with ``exec`` run natively.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence

__all__ = ["EMULATED_CPU", "emulation_available", "run_emulated"]

#: QEMU's CPU model for the lower path: AVX2 + FMA, no AVX-512, no VNNI (AMD Zen 2)
EMULATED_CPU = "EPYC-Rome"

_QEMU = "qemu-x86_64"


def emulation_available() -> bool:
    """Whether ``qemu-x86_64`` is on PATH and this is an x86-64 Linux machine."""
    import platform

    return (
        shutil.which(_QEMU) is not None
        and sys.platform.startswith("linux")
        and platform.machine().lower() in ("x86_64", "amd64")
    )


def run_emulated(
    module: str,
    args: Sequence[str] = (),
    *,
    cpu: str = EMULATED_CPU,
    timeout: float = 600.0,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run ``python -m module args`` under ``qemu-x86_64 -cpu cpu``; return its stdout.

    The interpreter is this one (``sys.executable``), so the same packages load. QEMU's
    warnings about CPUID bits its translator does not implement are dropped; any other
    output on stderr, a non-zero exit or a timeout raises ``RuntimeError`` with the tail of
    stderr.
    """
    if not emulation_available():
        raise RuntimeError(f"{_QEMU} is not installed (Debian: apt-get install qemu-user)")
    cmd = [_QEMU, "-cpu", cpu, sys.executable, "-m", module, *args]
    try:
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{module} under {cpu}: no result within {timeout:.0f} s") from exc
    errors = [
        line
        for line in done.stderr.splitlines()
        if line.strip() and "TCG doesn't support requested feature" not in line
    ]
    if done.returncode != 0:
        tail = "\n".join(errors[-10:])
        raise RuntimeError(f"{module} under {cpu} exited {done.returncode}:\n{tail}")
    return done.stdout

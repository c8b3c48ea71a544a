"""What machine the numbers came from, and how fast it moves memory.

:func:`memory_bandwidth` measures the copy and read bandwidth (GB/s, 1 GB = 1e9 bytes)
with NumPy; :func:`pipeline_bound_seconds` turns the copy figure into the lower bound of the
indicator pipeline: every row reads 3 input series and writes 10 outputs, 8 bytes each.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any

import numpy as np

from nepse_perf._infra.checks import positive_int

__all__ = [
    "BYTES_PER_ROW",
    "Bandwidth",
    "cpuid",
    "int8_dot_path",
    "machine_info",
    "memory_bandwidth",
    "pipeline_bound_seconds",
    "simd_features",
]

#: Bytes the pipeline must move per row: 3 float64 inputs read + 10 float64 outputs written.
BYTES_PER_ROW = 13 * 8


@dataclass(frozen=True)
class Bandwidth:
    """Measured memory bandwidth in GB/s (1e9 bytes per second).

    ``copy_gbps`` counts bytes read plus bytes written by ``np.copyto(dst, src)`` (the
    write-allocate traffic of the destination is not counted); ``read_gbps`` is
    ``src.sum()``'s bytes read per second. ``size_mib`` is the size of one array.
    """

    copy_gbps: float
    read_gbps: float
    size_mib: float
    repeat: int

    def as_dict(self) -> dict[str, float]:
        """The fields as a plain dict (for JSON)."""
        return asdict(self)


def memory_bandwidth(size_mib: float = 256, repeat: int = 7) -> Bandwidth:
    """Measure copy and read-only memory bandwidth (GB/s) on two ``size_mib`` float64 arrays.

    Both arrays are touched before timing (no page faults are timed); the figure is the
    median of ``repeat`` runs of ``np.copyto(dst, src)`` counting 2 x nbytes moved, and of
    ``src.sum()`` counting nbytes read. Use arrays well beyond the last-level cache (the
    default 256 MiB) for a DRAM figure; a small size only checks that the code runs.
    """
    if not size_mib > 0:
        raise ValueError(f"size_mib must be > 0, got {size_mib!r}")
    repeat = positive_int(repeat, "repeat")
    n = max(1, int(size_mib * 2**20) // 8)
    src = np.ones(n, dtype=np.float64)
    dst = np.zeros(n, dtype=np.float64)
    np.copyto(dst, src)  # warm-up: every page of both arrays is now mapped
    copy_t, read_t = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        copy_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        src.sum()
        read_t.append(time.perf_counter() - t0)
    nbytes = src.nbytes
    return Bandwidth(
        copy_gbps=2 * nbytes / statistics.median(copy_t) / 1e9,
        read_gbps=nbytes / statistics.median(read_t) / 1e9,
        size_mib=nbytes / 2**20,
        repeat=repeat,
    )


def pipeline_bound_seconds(n_rows: int, copy_gbps: float) -> float:
    """Lower bound (seconds) of the pipeline on ``n_rows`` rows: rows x 13 x 8 bytes / copy rate.

    ``copy_gbps`` is the copy bandwidth in GB/s from :func:`memory_bandwidth`.
    """
    return n_rows * BYTES_PER_ROW / (copy_gbps * 1e9)


# x86-64 System V machine code for ``void cpuid(uint32 leaf, uint32 subleaf, uint32 out[4])``:
# push rbx; mov eax, edi; mov ecx, esi; mov r8, rdx; cpuid; mov [r8], eax; mov [r8+4], ebx;
# mov [r8+8], ecx; mov [r8+12], edx; pop rbx; ret
_CPUID_CODE = bytes.fromhex("5389f889f14989d00fa241890041895804418948084189500c5bc3")

#: (name, leaf, subleaf, register index (eax=0 .. edx=3), bit) of the features reported
_SIMD_BITS = (
    ("AVX2", 7, 0, 1, 5),
    ("AVX512F", 7, 0, 1, 16),
    ("AVX512BW", 7, 0, 1, 30),
    ("AVX512_VNNI", 7, 0, 2, 11),
    ("AMX_INT8", 7, 0, 3, 25),
    ("AVX_VNNI", 7, 1, 0, 4),
)


def cpuid(leaf: int, subleaf: int = 0) -> tuple[int, int, int, int] | None:
    """The CPUID instruction's (eax, ebx, ecx, edx) for ``leaf``/``subleaf``, or None.

    Executed directly (a few bytes of machine code in an executable page), so it reports the
    CPU that the process really runs on: under an emulator (``qemu-x86_64 -cpu ...``) the
    emulated CPU, which ``/proc/cpuinfo`` does not show. None off x86-64 Linux or where the
    system forbids executable memory.
    """
    import ctypes
    import mmap

    if platform.machine().lower() not in ("x86_64", "amd64") or not sys.platform.startswith(
        "linux"
    ):
        return None
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, ValueError):
        return None
    try:
        page.write(_CPUID_CODE)
        address = ctypes.addressof(ctypes.c_char.from_buffer(page))
        fn = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p)(address)
        out = (ctypes.c_uint32 * 4)()
        fn(leaf, subleaf, ctypes.addressof(out))
        result = (out[0], out[1], out[2], out[3])
        del fn
        return result
    finally:
        with contextlib.suppress(BufferError):
            page.close()


def simd_features() -> dict[str, bool]:
    """Which of AVX2, AVX-512 (F, BW), the two VNNI forms and AMX-INT8 this CPU reports.

    Read with :func:`cpuid` (leaf 7); off x86-64 every value is False. These decide which
    integer dot-product kernels ONNX Runtime's MLAS picks for int8 models at run time.
    """
    top = cpuid(0)
    if top is None or top[0] < 7:
        return {name: False for name, *_ in _SIMD_BITS}
    regs = {0: cpuid(7, 0), 1: cpuid(7, 1)}
    return {
        name: bool(regs[sub] is not None and (regs[sub][reg] >> bit) & 1)
        for name, leaf, sub, reg, bit in _SIMD_BITS
    }


def int8_dot_path(features: dict[str, bool] | None = None) -> str:
    """The integer dot-product path of ONNX Runtime's u8 x s8 kernels on this CPU, in words.

    ``"VNNI"`` (``vpdpbusd``: four u8 x s8 products added straight into 32 bits, exact; AVX-512
    VNNI or AVX-VNNI), ``"AMX"`` (tile multiplies, exact), ``"AVX2, no VNNI"`` or
    ``"AVX-512, no VNNI"`` (``vpmaddubsw``: pairs of products summed in signed 16 bits, which
    saturate), or ``"other"``. ``features`` defaults to :func:`simd_features`.
    """
    f = simd_features() if features is None else features
    if f.get("AMX_INT8"):
        return "AMX"
    if f.get("AVX512_VNNI") or f.get("AVX_VNNI"):
        return "VNNI"
    if f.get("AVX512BW"):
        return "AVX-512, no VNNI"
    if f.get("AVX2"):
        return "AVX2, no VNNI"
    return "other"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(dist: str, module: str | None = None) -> str:
    if module is not None:
        mod = sys.modules.get(module)
        if mod is None:
            try:
                mod = __import__(module)
            except ImportError:
                mod = None
        version = getattr(mod, "__version__", None)
        if version:
            return str(version)
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, Any]:
    """Machine and software facts for a benchmark report, as a JSON-serialisable dict.

    Keys: ``cpu_model``, ``logical_cores``, ``physical_cores``, ``usable_cores`` (CPU
    affinity), ``memory_total_gb`` (1e9 bytes), ``os``, ``python``, ``numpy``, ``pandas``,
    ``numba``, ``llvmlite``, ``talib``, ``numba_threads``, ``numba_threading_layer``
    (after a parallel call; "not initialised" before), ``thread_env`` (the threading
    environment variables that are set), ``datetime`` (local ISO 8601 with offset).
    """
    import numba
    import pandas as pd
    import psutil

    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel function has run yet in this process
        layer = "not initialised"
    return {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": usable,
        "memory_total_gb": round(psutil.virtual_memory().total / 1e9, 2),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "numba": numba.__version__,
        "llvmlite": _version("llvmlite", "llvmlite"),
        "talib": _version("TA-Lib", "talib"),
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": layer,
        "thread_env": {
            k: os.environ[k]
            for k in (
                "NUMBA_NUM_THREADS",
                "NUMBA_THREADING_LAYER",
                "OMP_NUM_THREADS",
                "OMP_WAIT_POLICY",
            )
            if k in os.environ
        },
        "datetime": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "gpu": gpu_info(),
    }


def gpu_info() -> dict[str, Any] | None:
    """The CUDA device (name, compute capability, driver and runtime versions), or None.

    ``None`` when numba.cuda finds no GPU; ``{"device": "CUDA simulator"}`` when
    ``NUMBA_ENABLE_CUDASIM=1``.
    """
    from nepse_perf.indicators.backends import gpu

    if not gpu.gpu_available():
        return None
    if gpu.simulator_enabled():
        return {"device": "CUDA simulator"}
    from numba import cuda

    dev = cuda.get_current_device()
    info: dict[str, Any] = {
        "device": gpu.device_name(),
        "compute_capability": ".".join(map(str, dev.compute_capability)),
    }
    try:
        info["driver"] = ".".join(map(str, cuda.cudadrv.driver.driver.get_version()))
        info["runtime"] = ".".join(map(str, cuda.runtime.get_version()))
    except Exception as exc:  # versions are informative only
        info["driver"] = f"unknown ({type(exc).__name__})"
    return info


if __name__ == "__main__":  # pragma: no cover - run as a command (tests run it under QEMU)
    import json

    features = simd_features()
    print(json.dumps({"int8_path": int8_dot_path(features), "features": features}))

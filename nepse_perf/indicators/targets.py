"""Compile the step functions, and the loops that call them, for one target.

The step functions of :mod:`nepse_perf.indicators.steps` and the drivers that loop over
bars (plain loops, fused kernel, stream) are ordinary Python functions that call each
other by global name. Run as they are, they are the ``python`` backend. For a compiled
target every function is rebuilt with the same code object but a globals dictionary in
which the step names point at that target's compiled versions (``numba.njit`` functions
for the CPU, ``numba.cuda.jit(device=True)`` functions for the GPU), then compiled. So one
source, never a copy, serves every target.

Numba's on-disk cache (``cache=True``) decides whether a cached function is stale from the
file that defines it, and nothing else, while a compiled driver carries the machine code of
every step function it calls. So every function compiled here for the CPU is named after a
digest of all the kernel sources (:data:`SOURCE_DIGEST`): edit ``steps.py`` (or any driver
module) and the cache files of the old name are simply never read again; new ones are
compiled. ``make clean`` deletes the stale files.
"""

from __future__ import annotations

import hashlib
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba

from nepse_perf.indicators import steps

#: Every function in ``steps`` that a compiled function may call (public and helpers).
STEP_NAMES: tuple[str, ...] = tuple(
    name
    for name, obj in vars(steps).items()
    if isinstance(obj, types.FunctionType) and obj.__module__ == steps.__name__
)


#: The sources whose code ends up inside the compiled drivers (paths from the package root).
KERNEL_SOURCES: tuple[str, ...] = (
    "indicators/steps.py",
    "indicators/layout.py",
    "indicators/targets.py",
    "indicators/backends/python.py",
    "indicators/backends/numba.py",
    "indicators/backends/numba_parallel.py",
    "indicators/stream.py",
)


def _source_digest() -> str:
    root = Path(__file__).resolve().parents[1]
    h = hashlib.blake2b(digest_size=6)
    for name in KERNEL_SOURCES:
        h.update((root / name).read_bytes())
    return h.hexdigest()


#: 12 hex digits of BLAKE2b over :data:`KERNEL_SOURCES`; part of every compiled driver's name.
SOURCE_DIGEST: str = _source_digest()


def _rebind(func: Callable, namespace: dict[str, Any]) -> types.FunctionType:
    """``func`` with the same code but ``namespace`` as its globals, named for the sources.

    The ``__qualname__`` gets ``_k<digest>`` appended: Numba names its cache files after it,
    so a kernel compiled from other sources never loads this one's cache, or vice versa.
    """
    rebound = types.FunctionType(
        func.__code__, namespace, func.__name__, func.__defaults__, func.__closure__
    )
    rebound.__qualname__ = f"{func.__qualname__}_k{SOURCE_DIGEST}"
    rebound.__doc__ = func.__doc__
    rebound.__module__ = func.__module__
    return rebound


def _compiled_steps(jit: Callable[[Callable], Any], target: str) -> dict[str, Any]:
    """``steps``' namespace with every step function compiled by ``jit``.

    Under the key ``"steps"`` it also holds a module object whose attributes are the
    compiled functions: drivers call ``steps.rsi_update(...)``, and a driver compiled for
    this target finds this module where the plain one finds :mod:`steps`.
    """
    namespace = dict(vars(steps))
    module = types.ModuleType(f"{steps.__name__}[{target}]")
    for name in STEP_NAMES:
        namespace[name] = jit(_rebind(getattr(steps, name), namespace))
        setattr(module, name, namespace[name])
    namespace["steps"] = module
    return namespace


_CPU: dict[str, Any] | None = None
_CUDA: dict[str, Any] | None = None


def cpu_steps() -> dict[str, Any]:
    """``steps``' namespace with every step function compiled by ``numba.njit(cache=True)``."""
    global _CPU
    if _CPU is None:
        _CPU = _compiled_steps(
            lambda f: numba.njit(cache=True, nogil=True, inline="always")(f), "cpu"
        )
    return _CPU


def cuda_steps() -> dict[str, Any]:
    """``steps``' namespace with every step function compiled as a CUDA device function."""
    global _CUDA
    if _CUDA is None:
        from numba import cuda

        _CUDA = _compiled_steps(lambda f: cuda.jit(device=True)(f), "cuda")
    return _CUDA


def _compile_group(
    funcs: dict[str, Callable], steps_ns: dict[str, Any], jit: Callable[[Callable, str], Any]
) -> dict[str, Any]:
    """Rebind ``funcs`` to one namespace, then compile each with ``jit``.

    In that namespace the step names and the names in ``funcs`` point at the compiled
    versions, so drivers may call the step functions and each other.
    """
    namespace: dict[str, Any] = {}
    for func in funcs.values():  # the globals of every module the functions come from
        namespace.update(func.__globals__)
    namespace.update({name: steps_ns[name] for name in (*STEP_NAMES, "steps")})
    compiled = {}
    for name, func in funcs.items():
        compiled[name] = namespace[name] = jit(_rebind(func, namespace), name)
    return compiled


def njit(funcs: dict[str, Callable], options: dict[str, dict[str, Any]] | None = None) -> Any:
    """The drivers ``funcs`` compiled with ``numba.njit(cache=True, **options[name])``.

    Returns name -> dispatcher; the drivers call the compiled step functions and each other.
    """
    options = options or {}
    return _compile_group(
        funcs, cpu_steps(), lambda f, name: numba.njit(cache=True, **options.get(name, {}))(f)
    )


def cuda_device(funcs: dict[str, Callable]) -> dict[str, Any]:
    """The drivers ``funcs`` compiled as CUDA device functions (name -> device function)."""
    from numba import cuda

    return _compile_group(funcs, cuda_steps(), lambda f, name: cuda.jit(device=True)(f))

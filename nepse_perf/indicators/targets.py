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
from llvmlite import ir
from numba.core import cgutils
from numba.core import types as nb_types
from numba.extending import intrinsic

from nepse_perf.indicators import steps

#: Functions of ``steps`` that each compiled target implements natively (an instruction)
#: instead of compiling their CPython definition.
PRIMITIVES: tuple[str, ...] = ("fma",)

#: Every other function in ``steps`` that a compiled function may call (public and helpers).
STEP_NAMES: tuple[str, ...] = tuple(
    name
    for name, obj in vars(steps).items()
    if isinstance(obj, types.FunctionType)
    and obj.__module__ == steps.__name__
    and name not in PRIMITIVES
)


@intrinsic
def cpu_fma(typingctx, a, b, c):  # pragma: no cover - typed and lowered by Numba
    """``a * b + c`` with one rounding: LLVM's ``llvm.fma`` (the FMA instruction on x86-64-v3+).

    ``llvm.fma`` is always fused (unlike a contracted ``a * b + c``, which the compiler may
    or may not fuse); on a CPU without FMA it is the C library's exact ``fma``.
    """
    ty = typingctx.unify_types(a, b, c)
    if not isinstance(ty, nb_types.Float):
        ty = nb_types.float64

    def codegen(context, builder, signature, args):
        values = [
            context.cast(builder, v, t, ty) for v, t in zip(args, signature.args, strict=True)
        ]
        lty = context.get_value_type(ty)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(lty, [lty] * 3), f"llvm.fma.f{ty.bitwidth}"
        )
        return builder.call(fn, values)

    return ty(a, b, c), codegen


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


def _compiled_steps(
    jit: Callable[[Callable], Any], target: str, primitives: dict[str, Any]
) -> dict[str, Any]:
    """``steps``' namespace with every step function compiled by ``jit``.

    ``primitives`` gives the target's own implementation of each name in :data:`PRIMITIVES`.
    Under the key ``"steps"`` the namespace also holds a module object whose attributes are
    the compiled functions: drivers call ``steps.rsi_update(...)``, and a driver compiled for
    this target finds this module where the plain one finds :mod:`steps`.
    """
    namespace = dict(vars(steps))
    module = types.ModuleType(f"{steps.__name__}[{target}]")
    for name in PRIMITIVES:
        namespace[name] = primitives[name]
        setattr(module, name, primitives[name])
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
            lambda f: numba.njit(cache=True, nogil=True, inline="always")(f),
            "cpu",
            {"fma": cpu_fma},
        )
    return _CPU


def cuda_steps() -> dict[str, Any]:
    """``steps``' namespace with every step function compiled as a CUDA device function."""
    global _CUDA
    if _CUDA is None:
        from numba import cuda

        def cuda_fma(a, b, c):  # pragma: no cover - compiled for CUDA
            return cuda.fma(a, b, c)  # the DFMA/FFMA instruction: one rounding

        # the simulator runs device functions as Python and has no cuda.fma: steps' exact one
        fma = cuda.jit(device=True)(cuda_fma) if hasattr(cuda, "fma") else steps.fma
        _CUDA = _compiled_steps(lambda f: cuda.jit(device=True)(f), "cuda", {"fma": fma})
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
    namespace.update({name: steps_ns[name] for name in (*PRIMITIVES, *STEP_NAMES, "steps")})
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

"""Serverless cold starts, measured in fresh subprocesses, and the handler's deployable size.

A cold start is a new interpreter: :func:`measure_cold_start` runs one with a chosen Numba
cache directory and records, in order, the imports (numpy, pyarrow, pandas, numba,
onnxruntime one by one, then ``nepse_perf.cloud``), the model load, the first prediction from
features and the first prediction from prices (the indicator pipeline: Numba compiles or
loads its cache here). :func:`interpreter_start` times a bare ``python -c pass``.

Numba caches compiled kernels only in a directory it can write to. On Lambda the image
layers (site-packages, the home directory) are read-only and only ``/tmp`` is writable, so a
cache baked into the image beside the sources, or ``NUMBA_CACHE_DIR`` pointing into a
read-only layer, cannot be used: :func:`measure_cold_start` with ``read_only=True`` shows what
happens (it needs ``unshare`` to mount the directories read-only for the child only). The
fix measured beside it: copy the baked cache into ``/tmp`` at start-up and point
``NUMBA_CACHE_DIR`` there.

:func:`deployable_size` sums the installed size of every distribution whose modules the
handler has imported after a first prediction, for Lambda's zip (250 MB unzipped) and image
(10 GB) limits.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

__all__ = [
    "PHASES",
    "deployable_size",
    "handler_demo",
    "handler_event",
    "interpreter_start",
    "measure_cold_start",
    "phase_table",
    "unshare_available",
]

#: Phases of a cold start, in order (seconds each in :func:`measure_cold_start`'s result).
PHASES = (
    "import numpy",
    "import pyarrow",
    "import pandas",
    "import numba",
    "import onnxruntime",
    "import nepse_perf.cloud",
    "model load",
    "first prediction (features)",
    "first prediction (prices)",
)

_CHILD = r"""
import importlib, json, sys, time
start = time.perf_counter()
out = {}
def phase(name, fn):
    t = time.perf_counter()
    value = fn()
    out[name] = time.perf_counter() - t
    return value
for mod in ("numpy", "pyarrow", "pandas", "numba", "onnxruntime"):
    phase("import " + mod, lambda m=mod: importlib.import_module(m))
cloud = phase("import nepse_perf.cloud", lambda: importlib.import_module("nepse_perf.cloud"))
from nepse_perf.cloud import handler as hmod_fn
hmod = sys.modules["nepse_perf.cloud.handler"]
phase("model load", hmod._model)
event = json.loads(sys.argv[1])
r1 = phase("first prediction (features)", lambda: hmod_fn({"features": event["features"]}))
r2 = phase("first prediction (prices)", lambda: hmod_fn({"prices": event["prices"]}))
out["status"] = [r1["statusCode"], r2["statusCode"]]
out["total in process"] = time.perf_counter() - start
if len(sys.argv) > 2:
    import importlib.metadata as md
    dists = md.packages_distributions()
    tops = sorted({m.split(".")[0] for m in list(sys.modules)})
    out["distributions"] = sorted({d for t in tops for d in dists.get(t, [])})
print("COLDSTART " + json.dumps(out))
"""


def _python() -> str:
    return sys.executable


def interpreter_start(repeat: int = 5) -> float:
    """Median wall time (seconds) of ``python -I -c pass`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([_python(), "-I", "-c", "pass"], check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def unshare_available() -> bool:
    """True when ``unshare -rm`` can give a child its own read-only bind mounts here."""
    if shutil.which("unshare") is None:
        return False
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        probe = subprocess.run(
            ["unshare", "-rm", "sh", "-c", f"mount --bind -o ro {d} {d} && ! touch {d}/x"],
            capture_output=True,
        )
    return probe.returncode == 0


def handler_event(prices_rows: int = 60) -> dict:
    """A valid request for the handler: ``{"features": [one row], "prices": [bars]}``.

    Built from a seeded synthetic symbol of ``prices_rows`` sessions (the features of its
    last complete row; its bars as ``{"date", "open", "high", "low", "close"}``).
    """
    return _event(prices_rows)


def handler_demo(model_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Status and message of the handler for a few good and bad events (in this process).

    Sets ``NEPSE_PERF_MODEL_DIR`` to ``model_dir`` for the calls (restored afterwards).
    Returns ``{case: "status: error message"}``, or ``"200: p_up in [0, 1]"`` for a success.
    """
    import importlib

    hmod = importlib.import_module("nepse_perf.cloud.handler")  # the module, not the function
    good = _event()
    bars = good["prices"]
    cases = {
        "features": {"features": good["features"]},
        "prices": {"prices": bars},
        "API Gateway body": {"headers": {}, "body": json.dumps({"prices": bars})},
        "body not JSON": {"body": "{oops"},
        "no field": {"rows": []},
        "short row": {"features": [good["features"][0][:-2]]},
        "text value": {"features": [[*good["features"][0][:-1], "1.5"]]},
        "too few bars": {"prices": bars[:5]},
        "negative close": {"prices": [*bars[:-1], {**bars[-1], "close": -3}]},
    }
    old = os.environ.get(hmod.MODEL_ENV)
    os.environ[hmod.MODEL_ENV] = str(model_dir)
    hmod.reset()
    try:
        out = {}
        for label, event in cases.items():
            r = hmod.handler(event, None)
            body = json.loads(r["body"])
            if r["statusCode"] == 200:
                ok = all(0.0 <= p <= 1.0 for p in body["p_up"])
                out[label] = f"200: p_up in [0, 1]: {ok}"
            else:
                out[label] = f"{r['statusCode']}: {body['error']}"
        os.environ.pop(hmod.MODEL_ENV)
        hmod.reset()
        r = hmod.handler(cases["features"], None)
        out["no model configured"] = f"{r['statusCode']}: {json.loads(r['body'])['error']}"
        return out
    finally:
        if old is None:
            os.environ.pop(hmod.MODEL_ENV, None)
        else:
            os.environ[hmod.MODEL_ENV] = old
        hmod.reset()


def _event(prices_rows: int = 60) -> dict:
    from nepse_perf.data import synthetic_prices
    from nepse_perf.model import FEATURES, feature_frame

    p = synthetic_prices(1, prices_rows, seed=7)
    feats = feature_frame(p).dropna()
    bars = [
        {"date": str(d.date()), "open": o, "high": h, "low": lo, "close": c}
        for d, o, h, lo, c in zip(
            p["date"], p["open"], p["high"], p["low"], p["close"], strict=True
        )
    ]
    return {"features": feats[list(FEATURES)].tail(1).to_numpy().tolist(), "prices": bars}


def _run_child(
    env: dict, event: dict, *, wrap: list[str] | None = None, distributions: bool = False
) -> dict:
    cmd = [_python(), "-c", _CHILD, json.dumps(event)] + (["--dists"] if distributions else [])
    if wrap:  # a shell prefix (mounts) run in the child's own namespace, then exec the child
        cmd = [*wrap[:-1], wrap[-1] + " " + " ".join(_quote(c) for c in cmd)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    line = next((x for x in proc.stdout.splitlines() if x.startswith("COLDSTART ")), None)
    if proc.returncode != 0 or line is None:
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        return {"ok": False, "error": last, "wall": wall}
    result = json.loads(line[len("COLDSTART ") :])
    result.update({"ok": True, "wall": wall})
    return result


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def measure_cold_start(
    model_dir: str | os.PathLike[str],
    numba_cache_dir: str | os.PathLike[str],
    *,
    read_only: bool = False,
    event: dict | None = None,
) -> dict:
    """One cold start of the handler in a fresh interpreter; returns its phases in seconds.

    ``NUMBA_CACHE_DIR`` is ``numba_cache_dir`` (created if missing): an empty directory gives
    a cold Numba cache (compile, then write the cache), the same directory again a warm one.
    ``read_only=True`` mounts that directory, the ``nepse_perf`` sources and a fresh home
    directory read-only for the child (as on a Lambda image layer; needs ``unshare``,
    ``ValueError`` otherwise). Returns ``{"ok", "wall", phase: seconds, ...}``, or
    ``{"ok": False, "error": last line of stderr, "wall"}`` when the child fails, which is
    what the read-only trap can do.
    """
    cache = Path(numba_cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "NUMBA_CACHE_DIR": str(cache),
            "NEPSE_PERF_MODEL_DIR": str(Path(model_dir).resolve()),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    event = event or _event()
    if not read_only:
        return _run_child(env, event)
    if not unshare_available():
        raise ValueError("read_only=True needs 'unshare -rm' (user namespaces) on this machine")
    package = Path(__file__).resolve().parents[1]
    home = cache.parent / (cache.name + "-home")
    home.mkdir(exist_ok=True)
    env.update({"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")})
    mounts = " && ".join(
        f"mount --bind -o ro {_quote(str(d))} {_quote(str(d))}" for d in (cache, package, home)
    )
    return _run_child(env, event, wrap=["unshare", "-rm", "sh", "-c", f"{mounts} && exec"])


def deployable_size(model_dir: str | os.PathLike[str]) -> dict:
    """Installed size of what the handler needs, from a fresh process after a first prediction.

    The distributions are those owning a top-level module in ``sys.modules`` after one
    features and one prices request; each one's size is the sum of the files its RECORD
    lists (bytes on disk; the editable ``nepse-perf`` counts its package directory). Returns
    ``{"distributions": {name: bytes}, "total_bytes": int}``.
    """
    from importlib import metadata

    env = dict(os.environ)
    env["NEPSE_PERF_MODEL_DIR"] = str(Path(model_dir).resolve())
    result = _run_child(env, _event(), distributions=True)
    if not result["ok"]:
        raise RuntimeError(f"handler subprocess failed: {result['error']}")
    sizes: dict[str, int] = {}
    for name in result["distributions"]:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        total = 0
        for f in dist.files or []:
            p = Path(dist.locate_file(f))
            if p.is_file():
                total += p.stat().st_size
        if name.lower().replace("_", "-") == "nepse-perf":
            pkg = Path(__file__).resolve().parents[1]
            total = sum(p.stat().st_size for p in pkg.rglob("*.py"))
        sizes[name] = total
    return {
        "distributions": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
        "total_bytes": sum(sizes.values()),
    }


def phase_table(runs: dict[str, dict], interpreter_s: float) -> pd.DataFrame:
    """Seconds per cold-start phase (rows) for each labelled run (columns).

    ``runs`` maps a label ("cold Numba cache", ...) to a result of
    :func:`measure_cold_start`; ``interpreter_s`` (from :func:`interpreter_start`) is the
    first row and ``wall`` (the parent's wall time of the child) the last. A failed run has
    NaN phases and its ``wall``; its error is in the result, not the table.
    """
    index = ["interpreter", *PHASES, "wall"]
    data = {}
    for label, r in runs.items():
        col = [interpreter_s] + [r.get(p, float("nan")) for p in PHASES] + [r["wall"]]
        data[label] = col
    return pd.DataFrame(data, index=index)

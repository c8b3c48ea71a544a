"""The nightly batch job a spot instance would run: resumable, chunked, safe to kill at any instant.

``run_batch(INPUT, OUT)`` computes the indicators (and, with a model, the probability that
the close rises) for every symbol of ``load_prices(INPUT)`` and writes one Parquet file per
chunk of ``chunk_symbols`` symbols (symbols in sorted order) into ``OUT``:

* each chunk goes to a hidden temporary file (``.tmp-...``), is fsynced, renamed to
  ``chunk-NNNNN.parquet`` (``os.replace`` is atomic on one file system) and the directory
  fsynced (``nepse_perf._infra.files.atomic_write``);
* ``manifest.json`` (rewritten the same way after every chunk) records the job's key (a
  SHA-256 of the input's content, the parameters and the code version) and, per finished
  chunk, its symbols, row count and the SHA-256 of its file;
* a rerun with the same key skips finished chunks whose file still hashes to the manifest's
  value, redoes any other chunk (the one in flight when the job died, or one corrupted since),
  and deletes stray temporary files; a rerun with another key (inputs, parameters or code
  changed) raises :class:`BatchError` naming the manifest unless ``force=True``, which
  deletes this job's own files (chunks, manifest, temporaries) and starts over;
* a ``should_stop()`` callback (the CLI wires it to SIGTERM, which a spot VM's process gets
  when the machine shuts down; the notice itself is a metadata event) is checked
  between chunks: the job stops cleanly with ``BatchResult.stopped`` set.

So a SIGKILL at any instant loses at most the chunk in flight, and the output of a job killed
and resumed any number of times is byte-for-byte the output of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nepse_perf._infra.checks import positive_int, shown
from nepse_perf._infra.files import atomic_write, atomic_write_text
from nepse_perf.pipeline import DEFAULT_BACKEND

__all__ = [
    "MANIFEST",
    "BatchError",
    "BatchResult",
    "code_version",
    "input_digest",
    "kill_and_resume",
    "read_output",
    "run_batch",
    "verify_output",
]

#: Name of the manifest file in an output directory.
MANIFEST = "manifest.json"
#: Manifest format tag (a directory with another tag belongs to another program).
FORMAT = "nepse-perf-batch/1"
#: Prefix of temporary files; stray ones are ours to delete.
TMP_PREFIX = ".tmp-"
#: Data files of an input directory, as ``load_prices`` selects them.
_DATA_SUFFIXES = (".csv", ".parquet", ".pq")
#: Package sources whose text decides the numbers a chunk holds (the "code version").
_CODE_FILES = (
    "indicators/steps.py",
    "indicators/layout.py",
    "indicators/targets.py",
    "indicators/backends/numba_parallel.py",
    "indicators/backends/numba.py",
    "indicators/backends/python.py",
    "indicators/backends/numpy.py",
    "indicators/backends/pandas.py",
    "indicators/backends/talib.py",
    "indicators/params.py",
    "indicators/panel.py",
    "pipeline.py",
    "model/features.py",
    "cloud/batch.py",
)


class BatchError(ValueError):
    """The job cannot run or resume safely here (message names the file or argument)."""


@dataclass
class BatchResult:
    """What one call of :func:`run_batch` did.

    ``n_chunks`` chunks in the job; ``done`` chunk indices written by this call, ``skipped``
    indices already finished by an earlier call, ``redone`` indices that an earlier call had
    written but whose file was missing from the manifest or failed its hash (with the
    reason); ``stopped`` is True when ``should_stop`` ended the call early; ``complete``
    when every chunk is finished. Timings are seconds: ``load_s`` (hash and read the input),
    per written chunk ``compute_s`` (indicators and predictions), ``write_s`` (Parquet
    encoding: the output itself, which a job without checkpoints writes too) and
    ``checkpoint_s`` (fsync, atomic rename, SHA-256 and manifest update: the price of
    resumability); ``total_s`` the call's wall time.
    """

    out: Path
    n_chunks: int
    n_symbols: int
    n_rows: int
    done: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    redone: dict[int, str] = field(default_factory=dict)
    stopped: bool = False
    complete: bool = False
    load_s: float = 0.0
    compute_s: list[float] = field(default_factory=list)
    write_s: list[float] = field(default_factory=list)
    checkpoint_s: list[float] = field(default_factory=list)
    total_s: float = 0.0

    @property
    def checkpoint_share(self) -> float:
        """Checkpoint time as a fraction of this call's wall time (``total_s``)."""
        return sum(self.checkpoint_s) / self.total_s if self.total_s > 0 else 0.0


def code_version() -> str:
    """``nepse_perf`` version plus a 12-hex SHA-256 of the sources that compute the outputs.

    Part of the job key: outputs written by other kernels or feature definitions are not
    mixed with new ones in one output directory.
    """
    from nepse_perf import __version__

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for rel in _CODE_FILES:
        p = root / rel
        h.update(rel.encode() + b"\0")
        h.update(p.read_bytes() if p.is_file() else b"<absent>")
    return f"{__version__}+{h.hexdigest()[:12]}"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def input_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 over the data files ``load_prices(path)`` would read (names and bytes).

    A file: its bytes. A directory: every non-hidden ``.csv``/``.parquet``/``.pq`` file in
    it (not recursive), in name order, each as name + bytes. Raises ``BatchError`` naming
    the path when it does not exist or a file cannot be read.
    """
    root = Path(path)
    if root.is_dir():
        files = sorted(
            p
            for p in root.iterdir()
            if p.suffix.lower() in _DATA_SUFFIXES
            and not p.name.startswith((".", "_"))
            and p.is_file()
        )
    elif root.exists():
        files = [root]
    else:
        raise BatchError(f"{root}: no such file or directory")
    h = hashlib.sha256()
    for p in files:
        try:
            digest = _sha256_file(p)
        except OSError as exc:
            raise BatchError(f"{p}: cannot read: {exc.strerror or exc}") from None
        h.update(p.name.encode() + b"\0" + digest.encode())
    return h.hexdigest()


def _write_manifest(out: Path, manifest: dict) -> None:
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    atomic_write_text(out / MANIFEST, text, prefix=TMP_PREFIX)


def _read_manifest(out: Path) -> dict | None:
    path = out / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BatchError(
            f"{path}: unreadable manifest ({exc}); nothing overwritten (use --force to start over)"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BatchError(
            f"{path}: not a nepse-perf batch manifest (format "
            f"{manifest.get('format') if isinstance(manifest, dict) else None!r}, expected "
            f"{FORMAT!r}); nothing overwritten or deleted"
        )
    problem = _manifest_problem(manifest)
    if problem:
        raise BatchError(f"{path}: invalid manifest: {problem}; nothing overwritten")
    return manifest


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _manifest_problem(manifest: dict) -> str | None:
    """What is wrong with a manifest of our format (None: nothing), naming the field.

    The schema: ``key`` a string, ``job`` an object, ``n_chunks`` a non-negative integer,
    ``chunks`` an object mapping each index ``"0"`` .. ``n_chunks - 1`` to an entry whose
    ``file`` is exactly that chunk's name (so no path can lead outside ``--out``),
    ``sha256`` 64 hex digits, ``rows`` a non-negative integer and ``symbols`` a list of
    strings.
    """
    types = {"key": str, "job": dict, "n_chunks": int, "chunks": dict}
    for name, kind in types.items():
        value = manifest.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{name!r} must be a JSON {_JSON_NAMES[kind]}, got {shown(value)}"
    if manifest["n_chunks"] < 0:
        return f"'n_chunks' must be >= 0, got {manifest['n_chunks']}"
    for name, entry in manifest["chunks"].items():
        where = f"chunks[{name!r}]"
        if not (name.isdigit() and name.isascii()) or int(name) >= manifest["n_chunks"]:
            return f"{where}: not a chunk index below n_chunks"
        if not isinstance(entry, dict):
            return f"{where}: must be an object, got {shown(entry)}"
        if entry.get("file") != chunk_name(int(name)):
            return f"{where}.file must be {chunk_name(int(name))!r}, got {shown(entry.get('file'))}"
        if not isinstance(entry.get("sha256"), str) or not _SHA256.fullmatch(entry["sha256"]):
            return f"{where}.sha256 must be 64 hex digits"
        rows = entry.get("rows")
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            return f"{where}.rows must be a non-negative integer, got {shown(rows)}"
        symbols = entry.get("symbols")
        if not isinstance(symbols, list) or not all(isinstance(x, str) for x in symbols):
            return f"{where}.symbols must be a list of strings"
    return None


_JSON_NAMES = {str: "string", dict: "object", int: "integer"}


def chunk_name(index: int) -> str:
    """File name of chunk ``index`` (0-based): ``chunk-00000.parquet``."""
    return f"chunk-{index:05d}.parquet"


_CHUNK_FILE = re.compile(r"chunk-\d{5,}\.parquet")


def _named_as_ours(name: str) -> bool:
    """Whether a file name is one this program writes: the manifest, a chunk, a temporary."""
    return name == MANIFEST or name.startswith(TMP_PREFIX) or bool(_CHUNK_FILE.fullmatch(name))


def _own_files(out: Path, with_manifest: bool) -> list[Path]:
    """The files in ``out`` that this program writes: its temporaries, and, when ``out``
    holds a manifest of ours, the manifest and the chunk files (named as ours are)."""
    return [
        p
        for p in out.iterdir()
        if p.is_file()
        and (p.name.startswith(TMP_PREFIX) or (with_manifest and _named_as_ours(p.name)))
    ]


def _chunk_frame(
    prices: pd.DataFrame, backend: str, params: dict, model, model_column: str
) -> pd.DataFrame:
    from nepse_perf.pipeline import compute_indicators

    table = prices.reset_index(drop=True)
    if model is None:
        ind = compute_indicators(table, backend, **params)
        frame = table.join(ind)
    else:
        from nepse_perf.model import feature_frame, predict_proba

        feats = feature_frame(table, backend=backend, **params)
        frame = table.join(feats)
        proba = np.full(len(table), np.nan)
        ok = np.isfinite(feats.to_numpy()).all(axis=1)
        if ok.any():
            proba[ok] = predict_proba(model, feats.to_numpy()[ok], engine="onnx")
        frame[model_column] = proba
    frame["symbol"] = frame["symbol"].astype(str)  # chunk files must not depend on categories
    return frame


@dataclass
class _Job:
    """A checked job: where it reads and writes, how it computes, and its key."""

    source: Path
    out: Path
    chunk_symbols: int
    backend: str
    params: dict
    model: object | None
    spec: dict  # what the manifest records as "job"
    key: str  # SHA-256 of ``spec`` without the input's path


def _checked_settings(chunk_symbols: int, backend: str, params: dict | None) -> tuple[int, dict]:
    """``chunk_symbols`` and the full indicator parameters, or :class:`BatchError`."""
    from nepse_perf.indicators.params import IndicatorParams
    from nepse_perf.pipeline import BACKENDS

    try:
        chunk_symbols = positive_int(chunk_symbols, "chunk_symbols")
    except ValueError as exc:
        raise BatchError(str(exc)) from None
    if backend not in BACKENDS:
        raise BatchError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    try:
        full = dataclasses.asdict(IndicatorParams.from_kwargs(**dict(params or {})))
    except (TypeError, ValueError) as exc:
        raise BatchError(f"indicator parameters: {exc}") from None
    return chunk_symbols, full


def _load_model(model_dir: str | os.PathLike[str] | None) -> tuple[object | None, str | None]:
    """The saved model of ``model_dir`` and its ONNX SHA-256 (both None without a model)."""
    if model_dir is None:
        return None, None
    from nepse_perf.model import ModelFileError, load

    try:
        model = load(model_dir, threads=1)
    except ModelFileError as exc:
        raise BatchError(f"--predict: {exc}") from None
    meta = json.loads((Path(model_dir) / "metadata.json").read_text(encoding="utf-8"))
    return model, meta["onnx_sha256"]


def _define_job(
    source: Path,
    out: Path,
    settings: tuple[int, str, dict],
    model_dir: str | os.PathLike[str] | None,
) -> _Job:
    """Hash the input, load the model and derive the job key (everything but the path)."""
    chunk_symbols, backend, params = settings
    digest = input_digest(source)
    model, model_sha = _load_model(model_dir)
    spec = {
        "input": str(source),
        "input_sha256": digest,
        "chunk_symbols": chunk_symbols,
        "backend": backend,
        "params": params,
        "model_sha256": model_sha,
        "code_version": code_version(),
    }
    key = hashlib.sha256(
        json.dumps({k: v for k, v in spec.items() if k != "input"}, sort_keys=True).encode()
    ).hexdigest()
    return _Job(source, out, chunk_symbols, backend, params, model, spec, key)


def _remove_own_files(out: Path) -> None:
    """``--force``: delete this program's files in ``out``, and nothing else.

    A manifest of ours (valid, or unreadable in a directory that holds nothing but files
    named as ours) goes with the chunk files; a manifest of another format is refused
    (:class:`BatchError`) before anything is deleted. Temporaries of ours always go.
    """
    path = out / MANIFEST
    ours = False
    if path.exists():
        try:
            _read_manifest(out)
            ours = True
        except BatchError:
            if _foreign_manifest(path) or not all(_named_as_ours(p.name) for p in out.iterdir()):
                raise
            ours = True
    for p in _own_files(out, ours):
        p.unlink()


def _foreign_manifest(path: Path) -> bool:
    """Whether ``path`` parses as JSON but is not a manifest of this program's format."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return not isinstance(data, dict) or data.get("format") != FORMAT


def _claim_output(job: _Job, force: bool) -> dict | None:
    """Make ``job.out`` ours: its manifest (None when new), strays removed; else BatchError.

    ``out`` must be a directory that is empty or holds this job's manifest; ``force``
    deletes this program's own files there first. Temporaries of a run that died are
    deleted.
    """
    out = job.out
    if out.exists() and not out.is_dir():
        raise BatchError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    if force:
        _remove_own_files(out)
    manifest = None if force else _read_manifest(out)
    if manifest is not None and manifest.get("key") != job.key:
        old = manifest.get("job", {})
        changed = sorted(k for k in job.spec if k != "input" and old.get(k) != job.spec[k])
        raise BatchError(
            f"{out / MANIFEST}: belongs to another job (changed: {', '.join(changed) or 'key'}); "
            "nothing overwritten (use --force to start over, or another --out)"
        )
    for p in out.iterdir():  # the temporary of a chunk in flight when a run died
        if p.name.startswith(TMP_PREFIX):
            p.unlink()
    if manifest is None:
        others = sorted(p.name for p in out.iterdir() if p.name not in (MANIFEST,))
        if others:
            raise BatchError(
                f"--out {out}: not empty and has no {MANIFEST} (holds {', '.join(others[:3])}"
                f"{', ...' if len(others) > 3 else ''}); nothing overwritten"
            )
    return manifest


def _load_input(source: Path) -> pd.DataFrame:
    """``load_prices(source)``, its errors as :class:`BatchError`; refuses an empty table."""
    from nepse_perf.data import DataError, load_prices

    try:
        prices = load_prices(source)
    except (DataError, ValueError) as exc:
        raise BatchError(str(exc)) from None
    except OSError as exc:
        raise BatchError(f"{source}: cannot read: {exc.strerror or exc}") from None
    if len(prices) == 0:
        raise BatchError(f"{source}: no price rows")
    return prices


def _recheck_finished(out: Path, manifest: dict, n_chunks: int, result: BatchResult) -> None:
    """Forget finished chunks whose file is gone or fails its hash; note every chunk to redo.

    Drops such entries from ``manifest`` (rewritten if any was dropped) and records why in
    ``result.redone``, with chunk files on disk that the manifest never recorded.
    """
    finished: dict = manifest["chunks"]
    for name, entry in list(finished.items()):
        path = out / entry["file"]
        if not path.is_file():
            result.redone[int(name)] = "file missing"
            del finished[name]
        elif _sha256_file(path) != entry["sha256"]:
            result.redone[int(name)] = "SHA-256 differs from the manifest"
            del finished[name]
    if result.redone:
        _write_manifest(out, manifest)
    for i in range(n_chunks):
        if str(i) not in finished and (out / chunk_name(i)).exists():
            result.redone.setdefault(i, "written but not in the manifest (run died)")


def _checkpoint_chunk(
    out: Path, manifest: dict, index: int, members: list[str], frame: pd.DataFrame
) -> tuple[float, float]:
    """Write chunk ``index`` durably and record it in the manifest; (write_s, checkpoint_s).

    ``write_s`` is the Parquet encoding (the output itself, which a job without checkpoints
    pays too); ``checkpoint_s`` the price of resumability: fsync, atomic rename, directory
    fsync, the file's SHA-256 and the manifest's rewrite.
    """
    path = out / chunk_name(index)
    encoded: list[float] = []

    def write(tmp: Path) -> None:
        frame.to_parquet(tmp, index=False)
        encoded.append(time.perf_counter())

    t_write = time.perf_counter()
    atomic_write(path, write, prefix=TMP_PREFIX)
    manifest["chunks"][str(index)] = {
        "file": path.name,
        "sha256": _sha256_file(path),
        "rows": len(frame),
        "symbols": members,
    }
    _write_manifest(out, manifest)
    t_done = time.perf_counter()
    return encoded[0] - t_write, t_done - encoded[0]


def _run_chunks(
    job: _Job,
    prices: pd.DataFrame,
    chunks: list[list[str]],
    manifest: dict,
    result: BatchResult,
    stop: Callable[[], bool],
    say: Callable[[str], None],
) -> None:
    """Compute and checkpoint every unfinished chunk in order, until done or ``stop()``."""
    finished: dict = manifest["chunks"]
    by_symbol = prices.assign(symbol=prices["symbol"].astype(str)).groupby("symbol", sort=False)
    positions = by_symbol.indices
    for i, members in enumerate(chunks):
        if str(i) in finished:
            result.skipped.append(i)
            continue
        if stop():
            result.stopped = True
            say(f"stop requested: {len(finished)}/{len(chunks)} chunks finished")
            return
        t_start = time.perf_counter()
        rows = np.concatenate([positions[s] for s in members])
        chunk = prices.iloc[np.sort(rows)]
        frame = _chunk_frame(chunk, job.backend, job.params, job.model, "p_up")
        compute_s = time.perf_counter() - t_start
        write_s, checkpoint_s = _checkpoint_chunk(job.out, manifest, i, members, frame)
        result.done.append(i)
        result.compute_s.append(compute_s)
        result.write_s.append(write_s)
        result.checkpoint_s.append(checkpoint_s)
        say(f"chunk {i + 1}/{len(chunks)}: {len(members)} symbols, {len(frame):,} rows")


def run_batch(
    input_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    chunk_symbols: int = 50,
    backend: str = DEFAULT_BACKEND,
    model_dir: str | os.PathLike[str] | None = None,
    params: dict | None = None,
    force: bool = False,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[str], None] | None = None,
) -> BatchResult:
    """Run (or resume) the batch job of ``input_path`` into directory ``out``; see the module.

    ``chunk_symbols`` symbols per chunk (sorted symbol order), ``backend`` one of
    ``BACKENDS``, ``model_dir`` a saved model (adds the column ``p_up``: probability that
    the close rises, NaN inside the features' warm-up), ``params`` indicator parameters.
    Raises :class:`BatchError` (a ``ValueError``) naming the file or argument for an
    unreadable input, a missing model, a corrupt or foreign manifest, an ``out`` that holds
    other files, or a job key that differs from the manifest's (unless ``force``).
    ``should_stop()`` is polled between chunks; ``progress`` receives one line per event.
    """
    say = progress or (lambda msg: None)
    chunk_symbols, full_params = _checked_settings(chunk_symbols, backend, params)
    t0 = time.perf_counter()
    settings = (chunk_symbols, backend, full_params)
    job = _define_job(Path(input_path), Path(out), settings, model_dir)
    try:
        result = _run_job(job, force, should_stop or (lambda: False), say, t0)
    except OSError as exc:  # --out (or its parent) not writable, disk full, ...
        where = f" ({exc.filename})" if exc.filename else ""
        raise BatchError(f"--out {job.out}: cannot write: {exc.strerror or exc}{where}") from None
    result.total_s = time.perf_counter() - t0
    return result


def _run_job(
    job: _Job,
    force: bool,
    should_stop: Callable[[], bool],
    say: Callable[[str], None],
    t0: float,
) -> BatchResult:
    """The body of :func:`run_batch` once the job is defined: claim ``--out``, run chunks.

    ``t0`` is when the call began (``load_s`` counts from it).
    """
    manifest = _claim_output(job, force)
    prices = _load_input(job.source)
    symbols = sorted(map(str, prices["symbol"].unique()))
    size = job.chunk_symbols
    chunks = [symbols[i : i + size] for i in range(0, len(symbols), size)]
    if manifest is None:
        manifest = {"format": FORMAT, "key": job.key, "job": job.spec}
        manifest.update({"n_chunks": len(chunks), "chunks": {}})
        _write_manifest(job.out, manifest)
    result = BatchResult(job.out, len(chunks), len(symbols), len(prices))
    result.load_s = time.perf_counter() - t0

    _recheck_finished(job.out, manifest, len(chunks), result)
    say(
        f"{len(symbols):,} symbols, {len(prices):,} rows, {len(chunks)} chunks; "
        f"{len(manifest['chunks'])} finished before, {len(result.redone)} to redo"
    )
    _run_chunks(job, prices, chunks, manifest, result, should_stop, say)
    result.complete = len(manifest["chunks"]) == len(chunks)
    return result


def verify_output(out: str | os.PathLike[str]) -> dict:
    """Check a finished output directory; returns its manifest.

    Raises :class:`BatchError` naming the file when the manifest is missing or foreign, a
    chunk is missing or its SHA-256 differs, the job is unfinished, a symbol is missing or
    appears in two chunks, or temporary files are left.
    """
    out = Path(out)
    manifest = _read_manifest(out)
    if manifest is None:
        raise BatchError(f"{out / MANIFEST}: missing (not a batch output directory)")
    chunks = manifest["chunks"]
    if len(chunks) != manifest["n_chunks"]:
        raise BatchError(
            f"{out / MANIFEST}: unfinished job ({len(chunks)}/{manifest['n_chunks']} chunks)"
        )
    seen: set[str] = set()
    for name in sorted(chunks, key=int):
        entry = chunks[name]
        path = out / entry["file"]
        if not path.is_file():
            raise BatchError(f"{path}: missing")
        if _sha256_file(path) != entry["sha256"]:
            raise BatchError(f"{path}: SHA-256 differs from {out / MANIFEST} (corrupted)")
        twice = seen.intersection(entry["symbols"])
        if twice:
            raise BatchError(f"{path}: symbols also in an earlier chunk: {sorted(twice)[:3]}")
        seen.update(entry["symbols"])
    strays = sorted(p.name for p in out.iterdir() if p.name.startswith(TMP_PREFIX))
    if strays:
        raise BatchError(f"{out}: temporary files left: {strays[:3]}")
    return manifest


def read_output(out: str | os.PathLike[str]) -> pd.DataFrame:
    """The whole output of a finished job, chunks in order (after :func:`verify_output`).

    One row per input row, sorted by symbol then date, fresh RangeIndex; ``symbol`` as str.
    """
    out = Path(out)
    manifest = verify_output(out)
    parts = [
        pd.read_parquet(out / manifest["chunks"][name]["file"])
        for name in sorted(manifest["chunks"], key=int)
    ]
    return pd.concat(parts, ignore_index=True)


def kill_and_resume(
    input_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    kills: int = 3,
    window_s: float = 0.5,
    chunk_symbols: int = 50,
    model_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    timeout_s: float = 300.0,
) -> pd.DataFrame:
    """Run ``nepse-perf batch`` in a subprocess, SIGKILL it ``kills`` times, then let it finish.

    Each run is killed at a random instant (seeded ``random.Random(seed)``) up to
    ``window_s`` seconds after it wrote its first chunk (its first ``chunk`` progress line:
    the loop is in steady state, Numba's cache loaded); a run that finishes before its kill
    is not counted, and since it completed the job, it is the last run (fewer than ``kills``
    kills then landed: the chunks ran out first; the log shows how many). Returns one row per
    run: ``run``, ``signal`` ("SIGKILL" or "none"), ``delay_s``, ``finished_chunks`` in the
    manifest afterwards, ``lost_chunk_files`` (chunk files written but not recorded, plus
    chunk temporaries: at most the one in flight) and ``exit`` (the exit status; -9 killed).
    The last row is the final, uninterrupted run.
    """
    import random
    import signal
    import subprocess
    import sys

    out = Path(out)
    cmd = [sys.executable, "-m", "nepse_perf", "batch", str(input_path), "--out", str(out)]
    cmd += ["--chunk-symbols", str(chunk_symbols)]
    if model_dir is not None:
        cmd += ["--predict", str(model_dir)]
    rng = random.Random(seed)
    rows = []
    landed = 0
    for run in range(1, 4 * kills + 2):
        final = landed >= kills
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        delay = 0.0
        if not final:
            for line in proc.stderr:  # the loop is in steady state once a chunk is written
                if line.startswith("chunk "):
                    break
            delay = rng.uniform(0.0, window_s)
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        proc.stderr.read()
        status = proc.wait(timeout=timeout_s)
        killed = status == -signal.SIGKILL
        landed += killed
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        recorded = {e["file"] for e in manifest["chunks"].values()}
        on_disk = {p.name for p in out.glob("chunk-*.parquet")}
        temps = list(out.glob(TMP_PREFIX + "*chunk-*"))
        rows.append(
            {
                "run": run,
                "signal": "SIGKILL" if killed else "none",
                "delay_s": delay,
                "finished_chunks": len(recorded),
                "lost_chunk_files": len(on_disk - recorded) + len(temps),
                "exit": status,
            }
        )
        if final or status == 0:  # done: a further run would only skip finished chunks
            break
    return pd.DataFrame(rows)

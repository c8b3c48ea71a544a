"""The resumable batch job: SIGKILL at random instants, SIGTERM, corruption, changed inputs.

The kill tests run ``nepse-perf batch`` as a real subprocess on a synthetic panel and kill it
with SIGKILL at random instants inside its chunk loop (at least five kills per run), resume
each time, and compare the result with an uninterrupted run: same chunk files byte for
byte (same SHA-256), the same rows, every symbol exactly once, no temporary files.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from nepse_perf import synthetic_prices
from nepse_perf.cli.cloud import EXIT_PREEMPTED
from nepse_perf.cloud import BatchError, read_output, run_batch, verify_output
from nepse_perf.cloud.batch import MANIFEST, TMP_PREFIX, chunk_name

N_SYMBOLS, N_DAYS, CHUNK = 120, 500, 4
KILLS = 5


@pytest.fixture(scope="module")
def panel_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("batch-input") / "panel.parquet"
    synthetic_prices(N_SYMBOLS, N_DAYS, seed=3).to_parquet(path, index=False)
    return path


def _cmd(inp: Path, out: Path, model: Path | None, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "nepse_perf", "batch", str(inp), "--out", str(out)]
    cmd += ["--chunk-symbols", str(CHUNK), *extra]
    return cmd + (["--predict", str(model)] if model else [])


@pytest.fixture(scope="module")
def reference(panel_file: Path, serving_model_dir: Path, tmp_path_factory) -> dict:
    """One uninterrupted run: its directory, manifest, frame and the loop's duration."""
    out = tmp_path_factory.mktemp("batch-ref") / "out"
    proc, first = _launch(panel_file, out, serving_model_dir)
    t0 = time.perf_counter()
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, first + rest
    loop_s = time.perf_counter() - t0  # the steady chunk loop after the first chunk
    return {
        "out": out,
        "manifest": verify_output(out),
        "frame": read_output(out),
        "loop_s": loop_s,
        "first_line": first,
    }


def _wait_for_chunk(proc: subprocess.Popen) -> str:
    """Read progress lines until the first chunk is written (or the process ends)."""
    seen = ""
    for line in proc.stderr:
        seen += line
        if line.startswith("chunk "):
            break
    return seen


def _launch(inp: Path, out: Path, model: Path | None) -> tuple[subprocess.Popen, str]:
    """Start the job as a subprocess; return it once a chunk is written, with its lines so far."""
    proc = subprocess.Popen(_cmd(inp, out, model), stderr=subprocess.PIPE, text=True)
    return proc, _wait_for_chunk(proc)


def _finish(inp: Path, out: Path, model: Path | None, reference: dict) -> None:
    """Rerun the job to the end: exit 0 and the reference run's chunks, byte for byte."""
    done = subprocess.run(_cmd(inp, out, model), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    manifest = verify_output(out)  # every chunk present, hashes match, no temporaries
    assert _chunk_hashes(manifest) == _chunk_hashes(reference["manifest"])  # byte for byte


def _chunk_hashes(manifest: dict) -> dict[str, str]:
    return {k: v["sha256"] for k, v in manifest["chunks"].items()}


def _dir_state(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


def test_reference_output_is_complete(reference: dict, panel_file: Path) -> None:
    frame = reference["frame"]
    prices = pd.read_parquet(panel_file)
    assert len(frame) == len(prices)
    assert not frame.duplicated(["symbol", "date"]).any()
    assert sorted(frame["symbol"].unique()) == sorted(prices["symbol"].astype(str).unique())
    assert reference["manifest"]["n_chunks"] == -(-N_SYMBOLS // CHUNK)
    assert "p_up" in frame and frame["p_up"].notna().sum() > 0
    assert ((frame["p_up"].dropna() >= 0) & (frame["p_up"].dropna() <= 1)).all()


def test_sigkill_at_random_instants_then_resume(
    reference: dict, panel_file: Path, serving_model_dir: Path, tmp_path: Path
) -> None:
    seed = int(os.environ.get("NEPSE_PERF_KILL_SEED", "20261130"))
    rng = random.Random(seed)
    out = tmp_path / "out"
    window = reference["loop_s"] / 8  # each run gets at most 1/8 of the loop: 5 kills fit
    kills, log = 0, []
    for _attempt in range(3 * KILLS):
        if kills >= KILLS:
            break
        proc, _ = _launch(panel_file, out, serving_model_dir)  # kill at a random instant after
        delay = rng.uniform(0.0, window)
        time.sleep(delay)
        if proc.poll() is not None:  # finished before the kill: not a kill
            proc.stderr.read()
            continue
        proc.send_signal(signal.SIGKILL)
        proc.stderr.read()
        assert proc.wait(timeout=30) == -signal.SIGKILL
        kills += 1
        manifest = json.loads((out / MANIFEST).read_text())
        on_disk = {p.name for p in out.glob("chunk-*.parquet")}
        recorded = {e["file"] for e in manifest["chunks"].values()}
        # at most the chunk in flight is lost: one unrecorded chunk file or one chunk
        # temporary (a manifest temporary may sit beside it: the same chunk's record)
        assert recorded <= on_disk
        assert len(on_disk - recorded) + len(list(out.glob(TMP_PREFIX + "*chunk-*"))) <= 1
        log.append((round(delay, 3), len(recorded)))
    assert kills >= KILLS, f"only {kills} kills landed (seed {seed}, log {log})"
    finished = [n for _, n in log]
    assert finished == sorted(finished), f"a kill lost recorded chunks: {log}"
    # at least the first kill came before the last chunk was recorded, so the resume below
    # really redoes work (a later kill on a loaded machine may land after the last record)
    assert finished[0] < reference["manifest"]["n_chunks"], "the job finished before the kills"

    _finish(panel_file, out, serving_model_dir, reference)
    got = read_output(out)
    pd.testing.assert_frame_equal(got, reference["frame"])
    assert not got.duplicated(["symbol", "date"]).any()
    assert not list(out.glob(TMP_PREFIX + "*"))


def test_sigterm_finishes_the_chunk_and_exits_75(
    reference: dict, panel_file: Path, serving_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc, _ = _launch(panel_file, out, serving_model_dir)
    time.sleep(reference["loop_s"] / 4)
    proc.send_signal(signal.SIGTERM)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == EXIT_PREEMPTED, err
    assert "SIGTERM" in err and "rerun to resume" in err
    manifest = json.loads((out / MANIFEST).read_text())
    on_disk = {p.name for p in out.glob("chunk-*.parquet")}
    assert on_disk == {e["file"] for e in manifest["chunks"].values()}  # clean: nothing half-done
    assert 0 < len(on_disk) < manifest["n_chunks"]
    assert not list(out.glob(TMP_PREFIX + "*"))
    _finish(panel_file, out, serving_model_dir, reference)


def test_corrupted_chunk_is_detected_by_hash_and_redone(
    reference: dict, panel_file: Path, serving_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(reference["out"], out)
    victim = out / chunk_name(2)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(BatchError, match=r"chunk-00002\.parquet: SHA-256 differs"):
        verify_output(out)
    result = run_batch(panel_file, out, chunk_symbols=CHUNK, model_dir=serving_model_dir)
    assert result.complete
    assert result.done == [2]
    assert "SHA-256" in result.redone[2]
    assert _chunk_hashes(verify_output(out)) == _chunk_hashes(reference["manifest"])
    # a deleted chunk is redone as well
    (out / chunk_name(5)).unlink()
    result = run_batch(panel_file, out, chunk_symbols=CHUNK, model_dir=serving_model_dir)
    assert result.done == [5] and result.redone[5] == "file missing"
    pd.testing.assert_frame_equal(read_output(out), reference["frame"])


def test_changed_inputs_are_refused_and_force_starts_over(
    reference: dict, panel_file: Path, serving_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(reference["out"], out)
    before = _dir_state(out)
    changed = tmp_path / "panel.csv"  # other prices, as canonical CSV
    synthetic_prices(N_SYMBOLS, N_DAYS, seed=4).to_csv(changed, index=False)
    r = subprocess.run(
        _cmd(changed, out, serving_model_dir), capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2
    assert f"{out / MANIFEST}: belongs to another job (changed: input_sha256)" in r.stderr
    assert _dir_state(out) == before  # nothing overwritten
    # other parameters: refused the same way
    with pytest.raises(BatchError, match=r"changed: chunk_symbols, model_sha256"):
        run_batch(panel_file, out, chunk_symbols=CHUNK + 1)
    assert _dir_state(out) == before
    r = subprocess.run(
        _cmd(changed, out, serving_model_dir, "--force"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    got = read_output(out)
    assert len(got) == N_SYMBOLS * N_DAYS
    assert _chunk_hashes(verify_output(out)) != _chunk_hashes(reference["manifest"])


def test_bad_inputs_name_the_file(panel_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(
        BatchError, match=r"not empty and has no manifest\.json \(holds notes\.txt\)"
    ):
        run_batch(panel_file, other)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / MANIFEST).write_text(json.dumps({"format": "someone-else/3"}))
    with pytest.raises(BatchError, match=r"manifest\.json: not a nepse-perf batch manifest"):
        run_batch(panel_file, foreign)
    (foreign / MANIFEST).write_text("{ truncated")
    with pytest.raises(BatchError, match=r"manifest\.json: unreadable manifest"):
        run_batch(panel_file, foreign)

    with pytest.raises(BatchError, match=r"--predict: .*no-model: no such model directory"):
        run_batch(panel_file, tmp_path / "o1", model_dir=tmp_path / "no-model")
    with pytest.raises(BatchError, match=r"missing\.parquet: no such file or directory"):
        run_batch(tmp_path / "missing.parquet", tmp_path / "o2")
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("what,ever\n1,2\n")
    with pytest.raises(BatchError, match=r"garbage\.csv"):
        run_batch(garbage, tmp_path / "o3")
    with pytest.raises(BatchError, match=r"unknown backend 'fast'"):
        run_batch(panel_file, tmp_path / "o4", backend="fast")
    with pytest.raises(BatchError, match=r"chunk_symbols must be"):
        run_batch(panel_file, tmp_path / "o5", chunk_symbols=0)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "nepse_perf",
            "batch",
            str(tmp_path / "nope.csv"),
            "--out",
            str(tmp_path / "o6"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "nope.csv: no such file or directory" in r.stderr
    assert "Traceback" not in r.stderr


def test_indicators_only_and_chunking_do_not_change_numbers(
    panel_file: Path, tmp_path: Path
) -> None:
    from nepse_perf import compute_indicators, load_prices

    a = run_batch(panel_file, tmp_path / "a", chunk_symbols=7)
    b = run_batch(panel_file, tmp_path / "b", chunk_symbols=N_SYMBOLS)
    assert a.complete and b.complete and a.n_chunks == -(-N_SYMBOLS // 7) and b.n_chunks == 1
    fa, fb = read_output(tmp_path / "a"), read_output(tmp_path / "b")
    pd.testing.assert_frame_equal(fa, fb)
    prices = load_prices(panel_file)
    ind = compute_indicators(prices, "numba_parallel")
    pd.testing.assert_frame_equal(fa[list(ind.columns)], ind)
    assert a.checkpoint_s and all(s >= 0 for s in a.checkpoint_s)


def test_second_sigterm_abandons_the_chunk_in_flight(
    reference: dict, panel_file: Path, serving_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc, _ = _launch(panel_file, out, serving_model_dir)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == EXIT_PREEMPTED, err
    assert "Traceback" not in err
    assert not list(out.glob(TMP_PREFIX + "*"))  # the abandoned chunk left no temporary
    manifest = json.loads((out / MANIFEST).read_text())
    recorded = {e["file"] for e in manifest["chunks"].values()}
    assert recorded <= {p.name for p in out.glob("chunk-*.parquet")}
    _finish(panel_file, out, serving_model_dir, reference)


def test_kill_and_resume_stops_once_the_job_is_done(panel_file: Path, tmp_path: Path) -> None:
    from nepse_perf.cloud.batch import kill_and_resume

    # many kills asked of a short job: the chunks run out first, and the log ends there
    log = kill_and_resume(panel_file, tmp_path / "out", kills=50, window_s=0.2, chunk_symbols=4)
    finished = log.index[log["exit"] == 0]
    assert len(finished) == 1 and finished[0] == log.index[-1]
    assert (log["signal"].iloc[:-1] == "SIGKILL").all()
    assert log["lost_chunk_files"].le(1).all()
    manifest = verify_output(tmp_path / "out")  # raises unless finished, whole and clean
    assert len(manifest["chunks"]) == manifest["n_chunks"] == log["finished_chunks"].iloc[-1]


def _batch_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``nepse-perf batch ARGV`` in-process: (exit status, stderr); stderr is one line."""
    from nepse_perf.cli import main

    status = main(["batch", *argv, "--quiet"])
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, err
    return status, err


def test_unwritable_out_is_one_line_and_exit_2(
    panel_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    import tempfile

    # a parent that cannot hold directories (as root, chmod would not stop us)
    status, err = _batch_cli(capsys, str(panel_file), "--out", "/proc/nepse-perf-out/x")
    assert status == 2 and "--out /proc/nepse-perf-out/x: cannot write" in err

    # an --out where no file can be created: every temporary file fails, as on a read-only mount
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(kwargs.get("dir", "")))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    out = tmp_path / "ro"
    status, err = _batch_cli(capsys, str(panel_file), "--out", str(out))
    assert status == 2 and f"--out {out}: cannot write: Permission denied" in err


def test_force_deletes_only_this_programs_files(
    panel_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "theirs"
    out.mkdir()
    (out / MANIFEST).write_text(json.dumps({"format": "someone-else/2"}))
    (out / "notes.txt").write_text("mine")
    (out / "chunk-00000.parquet").write_bytes(b"theirs too")
    before = _dir_state(out)
    status, err = _batch_cli(capsys, str(panel_file), "--out", str(out), "--force")
    assert status == 2 and "not a nepse-perf batch manifest" in err
    assert _dir_state(out) == before  # nothing deleted, the other program's manifest kept

    # an unreadable manifest beside a file that is not ours: refused, nothing deleted
    (out / MANIFEST).write_text("{ truncated")
    before = _dir_state(out)
    status, err = _batch_cli(capsys, str(panel_file), "--out", str(out), "--force")
    assert status == 2 and _dir_state(out) == before

    # an unreadable manifest among our files only: --force starts over
    (out / "notes.txt").unlink()
    status, err = _batch_cli(capsys, str(panel_file), "--out", str(out), "--force")
    assert status == 0, err
    assert verify_output(out)["n_chunks"] > 0


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda m: m.pop("chunks"), "'chunks' must be a JSON object"),
        (lambda m: m.update(job=["a", "list"]), "'job' must be a JSON object"),
        (lambda m: m.update(n_chunks="30"), "'n_chunks' must be a JSON integer"),
        (lambda m: m["chunks"]["0"].update(file="../elsewhere.parquet"), "must be 'chunk-00000"),
        (lambda m: m["chunks"]["0"].update(file="/etc/passwd"), "must be 'chunk-00000"),
        (lambda m: m["chunks"]["0"].update(sha256="x"), "sha256 must be 64 hex digits"),
        (lambda m: m["chunks"].update({"999": m["chunks"]["0"]}), "not a chunk index below"),
        (lambda m: m["chunks"]["0"].update(symbols=[1]), "symbols must be a list of strings"),
    ],
)
def test_a_tampered_manifest_is_refused_by_name(
    reference: dict,
    panel_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tamper,
    message,
) -> None:
    out = tmp_path / "out"
    shutil.copytree(reference["out"], out)
    manifest = json.loads((out / MANIFEST).read_text())
    tamper(manifest)
    (out / MANIFEST).write_text(json.dumps(manifest))
    (tmp_path / "elsewhere.parquet").write_bytes((out / "chunk-00000.parquet").read_bytes())
    with pytest.raises(BatchError, match=re.escape(message)):
        verify_output(out)
    status, err = _batch_cli(capsys, str(panel_file), "--out", str(out))
    assert status == 2 and "invalid manifest" in err and message in err


@pytest.mark.parametrize("provider", ["aws", "gcp"])
def test_a_spot_notice_in_the_metadata_stops_between_chunks(
    provider: str, reference: dict, panel_file: Path, serving_model_dir: Path, tmp_path: Path
) -> None:
    """--spot-notice polls a loopback stand-in of the metadata service; a notice stops the
    job after the chunk in flight (exit 75), and a rerun finishes it byte for byte."""
    from nepse_perf.cloud.spot import FakeMetadataServer

    out = tmp_path / "out"
    with FakeMetadataServer() as metadata:
        spot = ["--spot-notice", provider, "--metadata-url", metadata.base, "--spot-poll-s", "0.05"]
        cmd = _cmd(panel_file, out, serving_model_dir, *spot)
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        _wait_for_chunk(proc)
        metadata.announce("terminate", "2026-12-03T10:00:00Z")
        err = proc.stderr.read()
        assert proc.wait(timeout=60) == EXIT_PREEMPTED, err
    assert f"spot notice ({provider}:" in err and "rerun to resume" in err
    assert ("at 2026-12-03T10:00:00Z" in err) == (provider == "aws")
    manifest = json.loads((out / MANIFEST).read_text())
    assert 0 < len(manifest["chunks"]) < manifest["n_chunks"]
    assert not list(out.glob(TMP_PREFIX + "*"))
    _finish(panel_file, out, serving_model_dir, reference)


def test_the_spot_watcher_reads_both_clouds_and_survives_no_metadata() -> None:
    from nepse_perf.cloud.spot import FakeMetadataServer, SpotNoticeWatcher, read_notice

    with FakeMetadataServer() as metadata:
        assert read_notice("aws", metadata.base) is None
        assert read_notice("gcp", metadata.base) is None
        metadata.announce("stop", "2026-12-03T10:00:00Z")
        notice = read_notice("aws", metadata.base)
        assert (notice.action, notice.time) == ("stop", "2026-12-03T10:00:00Z")
        assert read_notice("gcp", metadata.base).action == "preempted"
    with pytest.raises(ValueError, match="unknown provider 'azure'"):
        read_notice("azure")
    watcher = SpotNoticeWatcher("aws", "http://127.0.0.1:9", interval_s=0.02).start()
    time.sleep(0.2)
    watcher.stop()
    assert watcher.errors > 0 and not watcher.should_stop()


def test_metadata_url_needs_spot_notice(
    capsys: pytest.CaptureFixture[str], panel_file: Path, tmp_path: Path
) -> None:
    code, err = _batch_cli(
        capsys, str(panel_file), "--out", str(tmp_path / "o"), "--metadata-url", "http://x"
    )
    assert code == 2 and "--metadata-url needs --spot-notice" in err

"""py-spy on a real service (stages and shares), the stage rules, and the attrs fix."""

from __future__ import annotations

import json

import pytest

from nepse_perf.bench import profile as P
from nepse_perf.bench.loadtest import run_loadtest
from nepse_perf.data import load_prices, sample_path
from nepse_perf.serving.app import SymbolFeatures
from nepse_perf.serving.process import ServiceProcess

ROOT = "thread (1): MainThread;_run_module_as_main (<frozen runpy>:198);Runner.run (asyncio/runners.py:118)"
ASGI = ROOT + ";RequestResponseCycle.run_asgi (uvicorn/protocols/http/httptools_impl.py:422)"
ASGI += ";Gate.__call__ (nepse_perf/serving/gate.py:183)"


def _line(frames: str, n: int) -> str:
    return f"{frames} {n}"


def test_stage_rules_on_synthetic_stacks() -> None:
    decode_line = P._DECODE.split("|")[0]
    worker = "thread (2): nepse-infer_0;Thread.run (threading.py:982);_worker (concurrent/futures/thread.py:83)"
    collapsed = "\n".join(
        [
            _line(ROOT, 5),  # uvloop's C loop: the event loop
            _line(
                ROOT
                + ";GuardedHttpToolsProtocol.data_received (nepse_perf/serving/protocol.py:96)",
                2,
            ),
            _line(ASGI + ";Router.__call__ (starlette/routing.py:683)", 3),
            _line(
                ASGI + f";BodyDecoder.rows (nepse_perf/serving/request_bodies.py:{decode_line})", 4
            ),
            _line(ASGI + ";BodyDecoder.rows (nepse_perf/serving/request_bodies.py:1)", 1),
            _line(ASGI + ";MicroBatcher.submit (nepse_perf/serving/batcher.py:155)", 2),
            _line(
                ASGI + ";dumps (json/__init__.py:231);JSONEncoder.encode (json/encoder.py:200)", 3
            ),
            _line(worker + ";MicroBatcher._predict_chunks (nepse_perf/serving/batcher.py:194)", 6),
            _line(
                worker
                + ";SymbolFeatures._latest (nepse_perf/serving/app.py:243);deepcopy (copy.py:128)",
                7,
            ),
            _line("thread (3): x;somewhere (else.py:1)", 1),
            "",
        ]
    )
    table = P.frame_share(collapsed)
    assert list(table.index) == list(P.STAGES)
    want = {
        "accept, event loop": 5,
        "HTTP parsing": 2,
        "ASGI, middleware, routing": 3,
        "JSON decode": 4,
        "validation": 1,
        "queueing (batcher, threads)": 2,
        "JSON encode": 3,
        "ONNX run": 6,
        "indicator pipeline": 7,
        "other": 1,
    }
    assert table["samples"].to_dict() == want
    assert table["share"].sum() == pytest.approx(1.0)
    assert P.inclusive_share(collapsed, r"^deepcopy ") == pytest.approx(7 / 34)


def test_collapsed_parsing_errors() -> None:
    with pytest.raises(ValueError, match="collapsed stack"):
        P.parse_collapsed("a;b;c")
    with pytest.raises(ValueError, match="no samples"):
        P.frame_share("")


def test_profile_duration_from_env(monkeypatch) -> None:
    monkeypatch.delenv(P.PROFILE_ENV, raising=False)
    assert P.profile_duration() == 3.0
    monkeypatch.setenv(P.PROFILE_ENV, "1.5")
    assert P.profile_duration() == 1.5
    monkeypatch.setenv(P.PROFILE_ENV, "soon")
    with pytest.raises(ValueError, match="not a number"):
        P.profile_duration()


def test_bodies_are_sent_in_turn(serving_model_dir) -> None:
    with ServiceProcess(serving_model_dir, prices=sample_path()) as svc:
        r = run_loadtest(
            svc.url + "/v1/predict",
            rate=40,
            duration=0.5,
            bodies=P.symbol_bodies(["NABIL", "NOPE"]),
        )
    assert r.scheduled == 20 and r.errors == {"404": 10}
    with pytest.raises(ValueError, match="not both"):
        run_loadtest(svc.url, rate=1, duration=1, body=b"{}", bodies=[b"{}"])


def test_py_spy_on_a_real_service(serving_model_dir) -> None:
    """Real py-spy on a real service: every stage reported, shares sum to 1, the request path
    seen. A py-spy that cannot attach fails here with its message (never a skip)."""
    symbols = sorted(load_prices(sample_path())["symbol"].astype(str).unique())
    with ServiceProcess(serving_model_dir, prices=sample_path()) as svc:
        features = P.profile_service(svc, rate=200, duration_s=1.0, sample_rate=200)
        miss = P.profile_service(
            svc, path="/v1/predict", bodies=P.symbol_bodies(symbols[1:]), rate=20, duration_s=1.0
        )
    for prof in (features, miss):
        split = prof.split()
        assert list(split.index) == list(P.STAGES)
        assert split["share"].sum() == pytest.approx(1.0)
        assert prof.cpu_ms_per_request > 0 and prof.answered == prof.load.scheduled
    request_path = ["HTTP parsing", "ASGI, middleware, routing", "queueing (batcher, threads)"]
    assert features.split().loc[request_path, "samples"].sum() > 0  # one stage may see none
    assert miss.split().loc["indicator pipeline", "samples"] > 0


def test_py_spy_failure_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="ptrace"):
        P.record(2**22 + 12345, lambda: None)  # no such process


def test_symbol_features_slice_a_frame_without_attrs() -> None:
    sf = SymbolFeatures(sample_path(), [])
    assert sf.symbols  # loads the prices
    loaded = load_prices(sample_path())
    assert loaded.attrs and sf._prices.attrs == {}
    assert json.dumps(sf.report, default=str) == json.dumps(loaded.attrs, default=str)
    assert sf.report["bad_prices"] == loaded.attrs["bad_prices"]
    assert sf._prices.loc[sf._groups["NABIL"]].attrs == {}

"""The prediction service for real: uvicorn processes on free loopback ports, nginx in front.

No timing assertions: only answers, status codes, exactness of batched predictions, drain
on SIGTERM and refusal under overload.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import threading
import time

import httpx
import numpy as np
import pytest

from nepse_perf.bench.loadtest import sample_feature_rows
from nepse_perf.data import load_prices, sample_path
from nepse_perf.model import FEATURES, feature_frame, load, predict_proba
from nepse_perf.serving.app import ServeConfig, create_app, onnx_predictor
from nepse_perf.serving.batcher import MicroBatcher, Overloaded
from nepse_perf.serving.nginx import NginxBalancer, nginx_config
from nepse_perf.serving.process import ServiceProcess


@pytest.fixture(scope="module")
def service(serving_model_dir):
    with ServiceProcess(
        serving_model_dir,
        max_batch=32,
        max_wait_ms=5,
        max_rows=64,
        max_symbols=8,
        max_body_bytes=65536,
        max_inflight=128,  # the exactness test sends 64 requests at once
    ) as svc:
        yield svc


@pytest.fixture(scope="module")
def client(service):
    with httpx.Client(base_url=service.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return sample_feature_rows(64, seed=1)


def metric(text: str, name: str, labels: str = "") -> float:
    """The value of one Prometheus sample (0 when absent)."""
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else "") + r" (\S+)"
    m = re.search("^" + pattern + "$", text, flags=re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def test_health_and_readiness(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200


def test_model_endpoint(client, serving_model_dir) -> None:
    info = client.get("/v1/model").json()
    meta = json.loads((serving_model_dir / "metadata.json").read_text())
    assert info["features"] == list(FEATURES)
    assert info["version"] == meta["version"]
    assert info["kind"] == "hgb"
    assert info["train_start"] == meta["train_start"] and info["train_end"] == meta["train_end"]
    assert info["metrics"] == meta["metrics"]


def test_predict_symbols_equals_offline_prediction(client, serving_model_dir) -> None:
    prices = load_prices(sample_path())
    feats = feature_frame(prices)
    model = load(serving_model_dir)
    reference = onnx_predictor(model)
    r = client.post("/v1/predict", json={"symbols": ["NABIL", "adbl"]})
    assert r.status_code == 200, r.text
    got = r.json()["predictions"]
    assert [p["symbol"] for p in got] == ["NABIL", "ADBL"]
    for p in got:
        rows = prices.index[prices["symbol"].astype(str) == p["symbol"]]
        last = prices.loc[rows, "date"].idxmax()
        assert p["date"] == prices.loc[last, "date"].date().isoformat()
        row = feats.loc[[last]].to_numpy()
        assert p["prob_up"] == reference(row)[0] == predict_proba(model, row)[0]
        assert p["model_version"] == model.version


def test_serves_every_market_symbol_by_default(client) -> None:
    # no --prices: the whole market (GMFIL is not in the sample; CZBILP has one session)
    r = client.post("/v1/predict", json={"symbols": ["GMFIL", "APHL"]})
    assert r.status_code == 200, r.text
    assert [p["symbol"] for p in r.json()["predictions"]] == ["GMFIL", "APHL"]
    short = client.post("/v1/predict", json={"symbols": ["CZBILP"]})
    assert short.status_code == 422 and "CZBILP" in short.text


def test_each_symbol_is_answered_on_its_own(client) -> None:
    r = client.post("/v1/predict", json={"symbols": ["NABIL", "NOSUCH", "CZBILP"]})
    assert r.status_code == 207, r.text  # some predicted, some not
    body = r.json()
    assert [p["symbol"] for p in body["predictions"]] == ["NABIL"]
    assert [(e["symbol"], e["status"]) for e in body["errors"]] == [
        ("NOSUCH", 404),
        ("CZBILP", 422),
    ]
    everything = client.post("/v1/predict", json={"symbols": ["NABIL", "ADBL"]}).json()
    assert everything["errors"] == []
    none = client.post("/v1/predict", json={"symbols": ["CZBILP", "NOSUCH"]})
    assert none.status_code == 422 and len(none.json()["errors"]) == 2


def test_a_refused_symbol_is_cached_until_the_prices_change(client) -> None:
    client.post("/v1/predict", json={"symbols": ["CORBLP"]})  # one session: inside the warm-up
    before = metric(client.get("/metrics").text, "nepse_feature_computations")
    for _ in range(3):
        assert client.post("/v1/predict", json={"symbols": ["CORBLP"]}).status_code == 422
    assert metric(client.get("/metrics").text, "nepse_feature_computations") == before


def test_repeated_symbol_is_not_recomputed(client) -> None:
    client.post("/v1/predict", json={"symbols": ["NICA"]})
    before = metric(client.get("/metrics").text, "nepse_feature_computations")
    for _ in range(3):
        assert client.post("/v1/predict", json={"symbols": ["NICA", "NICA"]}).status_code == 200
    after = metric(client.get("/metrics").text, "nepse_feature_computations")
    assert before >= 1 and after == before


def test_features_path_equals_unbatched(service, client, serving_model_dir, rows) -> None:
    model = load(serving_model_dir)
    reference = onnx_predictor(model)
    want = np.array([reference(rows[i : i + 1])[0] for i in range(len(rows))])  # unbatched

    async def fire() -> list[float]:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as ac:
            rs = await asyncio.gather(
                *(ac.post("/v1/predict/features", json={"rows": [r.tolist()]}) for r in rows)
            )
        assert all(r.status_code == 200 for r in rs)
        return [r.json()["prob_up"][0] for r in rs]

    got = asyncio.run(fire())
    np.testing.assert_array_equal(got, want)  # batched by the server as it happened
    for size in (2, 3, 7, 64):  # any grouping gives the same bits
        grouped = np.concatenate([reference(rows[i : i + size]) for i in range(0, len(rows), size)])
        np.testing.assert_array_equal(grouped, want)
    single = [predict_proba(model, rows[i : i + 1])[0] for i in range(len(rows))]
    np.testing.assert_array_equal(single, want)
    np.testing.assert_array_equal(predict_proba(model, rows), want)
    whole = client.post("/v1/predict/features", json={"rows": rows.tolist()}).json()["prob_up"]
    np.testing.assert_array_equal(whole, want)
    text = client.get("/metrics").text
    assert metric(text, "nepse_batch_rows_count") >= 1
    assert 'nepse_request_latency_seconds_bucket{endpoint="/v1/predict/features"' in text
    assert "nepse_queue_rows" in text


BAD_BODIES = [
    ("/v1/predict/features", b"{bad json", 400, "malformed JSON"),
    ("/v1/predict/features", b"", 400, "empty body"),
    ("/v1/predict/features", b"[1, 2]", 400, "JSON object"),
    ("/v1/predict/features", b'{"rows": 3}', 400, "non-empty list"),
    ("/v1/predict/features", b'{"rows": []}', 400, "non-empty list"),
    ("/v1/predict/features", b'{"rows": [1, 2]}', 400, "rows[0] must be a list"),
    ("/v1/predict/features", b'{"rows": [[1, 2, 3]]}', 400, "rows[0] has 3 values"),
    ("/v1/predict/features", None, 400, "finite"),  # NaN literal, built below
    ("/v1/predict/features", "inf", 400, "finite"),
    ("/v1/predict/features", "str", 400, "expected a number"),
    ("/v1/predict/features", "bool", 400, "expected a number"),
    ("/v1/predict/features", "huge", 400, "float64"),
    ("/v1/predict/features", "toomany", 413, "too many rows: 65"),
    ("/v1/predict", b'{"symbols": "NABIL"}', 400, "non-empty list"),
    ("/v1/predict", b'{"symbols": [1]}', 400, "symbols[0]"),
    ("/v1/predict", b'{"rows": []}', 400, "JSON object"),
    ("/v1/predict", b'{"symbols": ["NOSUCH"]}', 404, "unknown symbol 'NOSUCH'"),
    ("/v1/predict", json.dumps({"symbols": ["NABIL"] * 9}).encode(), 413, "too many symbols"),
    # what a JSON parser or the response encoder can raise on client data is a 4xx too
    ("/v1/predict/features", "digits", 400, "float64"),
    ("/v1/predict", b'{"symbols": [' + b"7" * 5000 + b"]}", 400, "symbols[0]"),
    ("/v1/predict", b'{"symbols": ["\xff"]}', 400, "UTF-8"),
    ("/v1/predict", b'{"symbols": ["\\ud800"]}', 400, "malformed JSON"),  # not Unicode
    ("/v1/predict", json.dumps({"symbols": ["X" * 50_000]}).encode(), 404, "XXX..."),
    ("/v1/predict", b'{"symbols": [' + b"[" * 20_000 + b"]" * 20_000 + b"]}", 400, "symbols[0]"),
    ("/v1/predict/features", b'{"rows": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", 413, "rows"),
    ("/v1/predict/features", "extra", 400, "unknown field 'extra'"),
    ("/v1/predict", b'{"symbols": ["NABIL"], "extra": 1}', 400, "unknown field 'extra'"),
    ("/v1/predict", b'{"symbols": ["A", "B", "C", "D", "E", "F", "G", "H", "I"]}', 413, "symbols"),
]


def _body(spec: bytes | str | None) -> bytes:
    n = len(FEATURES)
    row = ", ".join(["1.0"] * (n - 1))
    special = {
        None: '{"rows": [[' + row + ", NaN]]}",
        "inf": '{"rows": [[' + row + ", -Infinity]]}",
        "str": '{"rows": [[' + row + ', "2.0"]]}',
        "bool": '{"rows": [[' + row + ", true]]}",
        "huge": '{"rows": [[' + row + ", " + "9" * 400 + "]]}",
        "digits": '{"rows": [[' + row + ", " + "9" * 5000 + "]]}",
        "toomany": json.dumps({"rows": [[1.0] * n] * 65}),
        "extra": json.dumps({"rows": [[1.0] * n], "extra": 1}),
    }
    return special[spec].encode() if spec is None or isinstance(spec, str) else spec


@pytest.mark.parametrize("path,spec,status,words", BAD_BODIES)
def test_bad_input_is_a_clear_4xx(client, path, spec, status, words) -> None:
    r = client.post(path, content=_body(spec), headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert len(r.json()["detail"]) < 300  # never the whole input echoed back


def test_body_over_the_limit(client) -> None:
    big = b'{"rows": [' + b"1" * 70_000 + b"]}"
    r = client.post("/v1/predict/features", content=big)  # refused on its length alone
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks():  # no Content-Length: chunked transfer, counted as it arrives
        for _ in range(20):
            yield b" " * 4096

    with httpx.Client(base_url=str(client.base_url), timeout=30) as fresh:
        r = fresh.post(
            "/v1/predict/features", content=chunks(), headers={"content-type": "application/json"}
        )
    assert r.status_code == 413 and "limit" in r.json()["detail"]


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_only_json_is_accepted(client, content_type) -> None:
    headers = {"content-type": content_type} if content_type else {}
    for path, body in (("/v1/predict", b'{"symbols": ["NABIL"]}'), ("/v1/predict/features", b"{}")):
        r = client.post(path, content=body, headers=headers)
        assert r.status_code == 415 and "application/json" in r.json()["detail"], r.text
    ok = client.post(
        "/v1/predict",
        content=b'{"symbols": ["NABIL"]}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 200


def test_still_serving_after_bad_input(client, rows) -> None:
    assert client.get("/healthz").status_code == 200
    r = client.post("/v1/predict/features", json={"rows": rows[:2].tolist()})
    assert r.status_code == 200 and len(r.json()["prob_up"]) == 2
    text = client.get("/metrics").text
    assert 'status="500"' not in text


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_a_real_500_is_counted_and_timed(serving_model_dir, monkeypatch) -> None:
    from fastapi.testclient import TestClient

    from nepse_perf.data import sample_path

    app = create_app(ServeConfig(str(serving_model_dir), prices=str(sample_path())))
    with TestClient(app, raise_server_exceptions=False) as api:
        service = app.app.state.service

        async def broken(rows):
            raise RuntimeError("a bug in the service")

        monkeypatch.setattr(service, "infer", broken)
        r = api.post("/v1/predict/features", json={"rows": [[1.0] * len(FEATURES)]})
        assert r.status_code == 500
        text = api.get("/metrics").text
    labels = 'endpoint="/v1/predict/features",status="500"'
    assert metric(text, "nepse_requests_total", labels) == 1
    assert (
        metric(text, "nepse_request_latency_seconds_count", 'endpoint="/v1/predict/features"') == 1
    )


def test_unknown_path_is_json_404(client) -> None:
    r = client.get("/v2/nothing")
    assert r.status_code == 404 and "detail" in r.json()


# a queue of 4 rows and a long batch wait: a 4-row request sits in the queue until the
# wait ends, so a second request finds the queue full, deterministically
SLOW = {"max_batch": 64, "max_wait_ms": 1500, "max_queue": 4, "deadline_ms": 20_000}


def _wait_queued(url: str, rows: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if metric(httpx.get(url + "/metrics").text, "nepse_queue_rows") == rows:
            return
        time.sleep(0.02)
    raise AssertionError(f"the queue never held {rows} rows")


def _post_in_thread(url: str, body: dict, out: dict) -> threading.Thread:
    def go() -> None:
        try:
            out["response"] = httpx.post(url + "/v1/predict/features", json=body, timeout=30)
        except Exception as exc:  # recorded, asserted in the test
            out["error"] = exc

    t = threading.Thread(target=go)
    t.start()
    return t


def test_overload_answers_503_with_retry_after(serving_model_dir, rows) -> None:
    with ServiceProcess(serving_model_dir, prices=sample_path(), **SLOW) as svc:
        first: dict = {}
        t = _post_in_thread(svc.url, {"rows": rows[:4].tolist()}, first)
        _wait_queued(svc.url, 4)
        r = httpx.post(svc.url + "/v1/predict/features", json={"rows": rows[4:5].tolist()})
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert "overloaded" in r.json()["detail"]
        t.join(30)
        assert first["response"].status_code == 200
        assert len(first["response"].json()["prob_up"]) == 4
        text = httpx.get(svc.url + "/metrics").text
        assert metric(text, "nepse_overload_refusals_total", 'reason="queue"') == 1
        again = httpx.post(svc.url + "/v1/predict/features", json={"rows": rows[:1].tolist()})
        assert again.status_code == 200


def test_sigterm_finishes_in_flight_requests_and_exits_0(serving_model_dir, rows) -> None:
    svc = ServiceProcess(serving_model_dir, prices=sample_path(), **SLOW).start()
    try:
        out: dict = {}
        t = _post_in_thread(svc.url, {"rows": rows[:4].tolist()}, out)
        _wait_queued(svc.url, 4)
        svc.proc.send_signal(signal.SIGTERM)
        t.join(30)
        assert "error" not in out, out.get("error")
        assert out["response"].status_code == 200
        assert svc.proc.wait(30) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(svc.url + "/healthz")
    finally:
        svc.close()


def test_two_workers_and_nginx_in_front_of_two_instances(service, serving_model_dir, rows):
    with ServiceProcess(serving_model_dir, prices=sample_path(), workers=2) as second:
        backends = [service, second]
        ok_label = 'endpoint="/v1/predict/features",status="200"'
        before = metric(httpx.get(service.url + "/metrics").text, "nepse_requests_total", ok_label)
        with NginxBalancer([("127.0.0.1", b.port) for b in backends], method="round_robin") as ng:
            with httpx.Client(base_url=ng.url, timeout=30) as c:
                got = [
                    c.post("/v1/predict/features", json={"rows": [r.tolist()]}) for r in rows[:24]
                ]
                assert all(r.status_code == 200 for r in got)
                assert c.get("/v1/model").json()["features"] == list(FEATURES)
        want = onnx_predictor(load(serving_model_dir))(rows[:24])
        np.testing.assert_array_equal([r.json()["prob_up"][0] for r in got], want)
        # round robin: the first instance answered its share (the other one has two
        # worker processes, each with its own metrics, so its count is not summed here)
        after = metric(httpx.get(service.url + "/metrics").text, "nepse_requests_total", ok_label)
        assert after - before == 12
        assert second.stop() == 0


def test_nginx_config_is_loopback_only(tmp_path) -> None:
    text = nginx_config(tmp_path, 8080, [("127.0.0.1", 9001), ("127.0.0.1", 9002)])
    assert "listen 127.0.0.1:8080;" in text and "server 127.0.0.1:9002" in text
    assert "daemon off;" in text and f"pid {tmp_path}/nginx.pid;" in text
    with pytest.raises(ValueError, match="loopback"):
        nginx_config(tmp_path, 8080, [("10.0.0.1", 9001)])
    with pytest.raises(ValueError, match="at least one"):
        nginx_config(tmp_path, 8080, [])


def test_prices_change_invalidates_the_cache(serving_model_dir, tmp_path) -> None:
    src = sample_path()
    prices_dir = tmp_path / "prices"
    prices_dir.mkdir()
    for name in ("NABIL.csv", "ADBL.csv"):
        shutil.copy(src / name, prices_dir / name)
    with ServiceProcess(serving_model_dir, prices=prices_dir) as svc:

        def computations() -> float:
            return metric(httpx.get(svc.url + "/metrics").text, "nepse_feature_computations")

        warm = computations()  # the warm-up computed one symbol
        first = httpx.post(svc.url + "/v1/predict", json={"symbols": ["NABIL"]}).json()
        httpx.post(svc.url + "/v1/predict", json={"symbols": ["NABIL"]})
        assert computations() == warm + 1
        shutil.copy(src / "NICA.csv", prices_dir / "NICA.csv")  # the price files change
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = httpx.post(svc.url + "/v1/predict", json={"symbols": ["NICA"]})
            if r.status_code == 200:
                break
            assert r.status_code == 404
            time.sleep(0.2)
        assert r.status_code == 200
        again = httpx.post(svc.url + "/v1/predict", json={"symbols": ["NABIL"]}).json()
        assert again == first
        assert computations() == warm + 3  # new prices: NICA and NABIL computed again


def test_batcher_runs_one_call_for_concurrent_requests(rows) -> None:
    calls: list[int] = []

    def predict(block: np.ndarray) -> np.ndarray:
        calls.append(len(block))
        return block.sum(axis=1)

    async def main() -> list[np.ndarray]:
        b = MicroBatcher(predict, max_batch=64, max_wait_ms=10_000, max_queue=64)
        await b.start()
        out = await asyncio.gather(*(b.submit(rows[i : i + 1]) for i in range(64)))
        b.max_queue = 1
        waiting = asyncio.ensure_future(b.submit(rows[:1]))  # waits up to 10 s for company
        await asyncio.sleep(0.01)
        assert b.queued_rows == 1
        with pytest.raises(Overloaded):
            await b.submit(rows[:1])
        await b.stop()  # finishes the queued request
        np.testing.assert_array_equal(await waiting, rows[:1].sum(axis=1))
        assert b.queued_rows == 0
        return out

    out = asyncio.run(main())
    assert calls == [64, 1]  # the concurrent 64 in one call, then the queued one at stop
    np.testing.assert_array_equal(np.concatenate(out), rows.sum(axis=1))


def test_batcher_splits_big_requests_and_reports_failures(rows) -> None:
    calls: list[int] = []

    def predict(block: np.ndarray) -> np.ndarray:
        calls.append(len(block))
        if np.isnan(block).any():
            raise RuntimeError("model failed")
        return block[:, 0]

    async def main() -> None:
        b = MicroBatcher(predict, max_batch=16, max_wait_ms=0)
        await b.start()
        got = await b.submit(rows[:40])
        np.testing.assert_array_equal(got, rows[:40, 0])
        bad = rows[:2].copy()
        bad[1, 3] = np.nan
        with pytest.raises(RuntimeError, match="model failed"):
            await b.submit(bad)
        await b.stop()
        with pytest.raises(Overloaded, match="stopping"):
            await b.submit(rows[:1])

    asyncio.run(main())
    assert calls[:3] == [16, 16, 8]


def test_config_round_trips_through_the_environment(serving_model_dir) -> None:
    cfg = ServeConfig(str(serving_model_dir), max_batch=8, max_wait_ms=0.5, threads=2)
    assert ServeConfig.from_env(cfg.to_env()) == cfg
    with pytest.raises(ValueError, match="MODEL_DIR"):
        ServeConfig.from_env({})
    with pytest.raises(ValueError, match="max_batch"):
        ServeConfig(str(serving_model_dir), max_batch=0)
    with pytest.raises(ValueError, match="MAX_BATCH"):
        ServeConfig.from_env({**cfg.to_env(), "NEPSE_PERF_SERVE_MAX_BATCH": "x"})
    assert create_app(cfg) is not None


def test_serve_cli_rejects_a_bad_model_dir(tmp_path, capsys) -> None:
    from nepse_perf.cli import main

    assert main(["serve", "--model", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "no such model directory" in err and err.count("\n") == 1

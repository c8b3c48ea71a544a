"""The service's OpenAPI contract, served and fuzzed: schemathesis against a real server.

``nepse-perf serve`` runs on 127.0.0.1 (the sample's prices, small limits so that the fuzzer
reaches them); schemathesis loads ``/openapi.json`` and runs every check with a fixed seed and
a bounded number of examples per operation. The statuses its checks accept are those the
document declares (``tests/schemathesis.toml``), nothing more.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from nepse_perf.data import sample_path
from nepse_perf.serving.process import ServiceProcess

CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture(scope="module")
def service(serving_model_dir):
    with ServiceProcess(
        serving_model_dir, prices=sample_path(), max_rows=16, max_symbols=8, max_body_bytes=65536
    ) as svc:
        yield svc


def test_the_contract_is_served(service) -> None:
    doc = httpx.get(f"{service.url}/openapi.json", timeout=10).json()
    predict = doc["paths"]["/v1/predict"]["post"]
    assert set(predict["responses"]) == {"200", "207", "400", "404", "413", "415", "422", "503"}
    body = predict["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["symbols"]["maxItems"] == 8  # the configured limit
    rows = doc["paths"]["/v1/predict/features"]["post"]["requestBody"]["content"]
    assert rows["application/json"]["schema"]["properties"]["rows"]["maxItems"] == 16


def test_docs_work_offline(service) -> None:
    page = httpx.get(f"{service.url}/docs", timeout=10)
    assert page.status_code == 200 and "swagger" in page.text.lower()
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))]
    for asset in assets:  # every file the page loads comes from the service itself
        assert httpx.get(f"{service.url}{asset}", timeout=10).status_code == 200, asset


def test_schemathesis_finds_nothing(service, tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        f"{service.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        "100",
        "--seed",
        "20261202",
        "--workers",
        "1",
        "--no-color",
        "--generation-database",
        "none",
        "--request-timeout",
        "10",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "No issues found" in done.stdout, done.stdout[-3000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert cases and int(cases[1]) == int(cases[2]) >= 300, done.stdout[-1500:]

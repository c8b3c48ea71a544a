"""`make lab`'s command really serves the workbook: start it, list the notebooks, stop it.

JupyterLab is started exactly as the Makefile's ``lab`` recipe does (``jupyter lab
notebooks/``) plus what a test needs: a free port on 127.0.0.1 (the OS picks it), no browser,
a token of the test's own, runtime and workspace files in a temporary folder. Every
``notebooks/NN*_*.ipynb`` must be listed by the REST API (``/api/contents``), and the
notebook's JSON must come back with cells; the server is then stopped (SIGTERM, then kill).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
LAB_COMMAND = ["lab", "notebooks/"]  # the arguments of `make lab` after $(VENV)/bin/jupyter
START_TIMEOUT_S = 120


def _get(url: str, token: str) -> tuple[int, object]:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def test_makefile_lab_runs_this_command() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^lab:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe, "Makefile has no lab target"
    assert f"$(VENV)/bin/jupyter {' '.join(LAB_COMMAND)}" in recipe.group(1)


def test_lab_lists_every_notebook(tmp_path: Path) -> None:
    assert NOTEBOOKS, "no notebooks found"
    jupyter = Path(sys.executable).with_name("jupyter")
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
    }
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(
        [
            str(jupyter),
            *LAB_COMMAND,
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            *(["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        listing = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"jupyter lab exited: {(tmp_path / 'lab.log').read_text()}"
            try:
                status, listing = _get(f"{base}/api/contents", token)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        assert listing is not None, f"no answer in {START_TIMEOUT_S} s on {base}"
        assert status == 200
        listed = {item["name"] for item in listing["content"] if item["type"] == "notebook"}
        missing = [nb.name for nb in NOTEBOOKS if nb.name not in listed]
        assert not missing, f"JupyterLab does not list {missing} (it lists {sorted(listed)})"
        status, first = _get(f"{base}/api/contents/{NOTEBOOKS[0].name}", token)
        assert status == 200 and first["type"] == "notebook" and first["content"]["cells"]
        with urllib.request.urlopen(f"{base}/lab?token={token}", timeout=10) as resp:
            status = resp.status
        assert status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()

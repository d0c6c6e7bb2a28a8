"""`make lab` headless and as root: ARGS pass through, --allow-root is added as root; Lab opens at the repository root
with notebooks/ in view."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_lab_serves_headless_on_the_given_port(tmp_path):
    import sys

    port = _free_port()
    env = dict(os.environ, MEDLIB_PYTHON=sys.executable, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"))
    args = f"--no-browser --port {port} --ip 127.0.0.1 --ServerApp.port_retries=0 --IdentityProvider.token=t"
    proc = subprocess.Popen(["make", "-s", "lab", f"ARGS={args}"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        t0, up = time.time(), False
        while time.time() - t0 < 120 and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=2) as r:
                    up = r.status == 200 and b"version" in r.read()
                    break
            except OSError:
                time.sleep(0.5)
        assert up, "JupyterLab did not answer on the port given in ARGS"
        # Lab's root is the repository: notebooks/, reports/ and the profiles are browsable, notebooks/ opens first
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/api/contents?content=1&token=t", timeout=10) as r:
            names = {item["name"] for item in json.loads(r.read())["content"]}
        assert {"notebooks", "reports", "medlib", "README.md"} <= names
        with urllib.request.urlopen(f"{base}/api/contents/notebooks/01_data_prep.ipynb?content=0&token=t",
                                    timeout=10) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"{base}/?token=t", timeout=10) as r:
            assert r.geturl().split("?")[0].endswith("/lab/tree/notebooks")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        out = proc.stdout.read()
    if os.geteuid() == 0:
        assert "adding --allow-root" in out

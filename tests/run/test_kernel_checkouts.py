"""Two checkouts sharing one environment (each checkout's .venv links to the same environment; an editable
install points at checkout A): neither rewrites the shared `medclip` kernel spec, and each one's kernels run its
own medlib -- under the runner and under `make lab`."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]

WHERE = """\
import os, pathlib, medlib
pathlib.Path("where.txt").write_text(f"{medlib.__file__}\\n{os.environ.get('MEDLIB_ROOT')}")
"""


@pytest.fixture
def shared(tmp_path):
    """tmp/env (a venv seeing this environment's packages, medlib installed "editable" from checkout A) and
    checkouts A and B, each a copy of the package with .venv -> env."""
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    site = Path(subprocess.run([str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    (site / "packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # jupyter, papermill, ...
    (site / "medlib-editable.pth").write_text(str(tmp_path / "A") + "\n")  # `pip install -e` in checkout A
    (env / "bin" / "jupyter-lab").write_text(f"#!{env / 'bin' / 'python'}\nimport sys\nfrom jupyterlab.labapp "
                                             "import main\nsys.exit(main())\n")
    (env / "bin" / "jupyter-lab").chmod(0o755)
    for name in ("A", "B"):
        root = tmp_path / name
        shutil.copytree(REPO / "medlib", root / "medlib", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(REPO / "scripts", root / "scripts")
        shutil.copy(REPO / "Makefile", root / "Makefile")
        (root / "run_all.sh").write_text("#!/bin/sh\n")
        (root / ".venv").symlink_to(env)
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell('profile = "smoke"\ndata_dir = None')
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell(WHERE)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        (root / "notebooks").mkdir()
        nbformat.write(nb, root / "notebooks" / "01_where.ipynb")
        (root / "p.yaml").write_text("kind: smoke\ndevice: cpu\nmodels: []\ndatasets: []\n")
    short = Path(tempfile.mkdtemp(prefix="mck-", dir="/tmp"))  # TMPDIR: Unix socket paths are short
    (tmp_path / "tmpdir").symlink_to(short)
    yield tmp_path
    shutil.rmtree(short, ignore_errors=True)


def _env(base: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDLIB_", "JUPYTER", "PYTHON", "VIRTUAL_ENV"))}
    env.update(JUPYTER_DATA_DIR=str(base / "jupyter-user"), JUPYTER_CONFIG_DIR=str(base / "jupyter-config"),
               JUPYTER_RUNTIME_DIR=str(base / "runtime"), TMPDIR=str((base / "tmpdir").resolve()),
               HF_HUB_OFFLINE="1", **extra)
    return env


def _spec(base: Path) -> Path:
    return base / "env" / "share" / "jupyter" / "kernels" / "medclip" / "kernel.json"


def _run(base: Path, name: str) -> None:
    root = base / name
    res = subprocess.run([str(root / ".venv" / "bin" / "python"), "-m", "medlib.run", "--profile",
                          str(root / "p.yaml"), "--no-report"], cwd=root, env=_env(base), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr


def _where(root: Path) -> list[str]:
    return (root / "where.txt").read_text().splitlines()


def test_runner_in_two_checkouts_keeps_the_shared_spec_and_runs_each_checkouts_code(shared):
    a, b = shared / "A", shared / "B"
    _run(shared, "B")
    spec = _spec(shared)
    before = (spec.read_bytes(), spec.stat().st_mtime_ns)
    assert json.loads(before[0])["argv"][0] == str(shared / "env" / "bin" / "python")  # valid without B
    _run(shared, "A")
    assert (spec.read_bytes(), spec.stat().st_mtime_ns) == before  # A's run left B's spec alone
    assert _where(a) == [str(a / "medlib" / "__init__.py"), str(a)]
    _run(shared, "B")
    assert _where(b) == [str(b / "medlib" / "__init__.py"), str(b)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _iopub_joined(kc, timeout: float = 120.0) -> None:
    """Wait until the client's IOPub socket carries the kernel's messages: a SUB socket that joins late drops what
    was published before (ZeroMQ's slow joiner), and an execute whose idle status is lost never returns."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        kc.kernel_info()  # each request publishes busy/idle on IOPub
        try:
            kc.get_iopub_msg(timeout=1)
            return
        except queue.Empty:
            continue
    raise AssertionError("the kernel's IOPub channel never delivered a message")


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_lab_kernels_run_this_checkouts_code(shared):
    """JupyterLab starts kernels in notebooks/, where the editable install (checkout A) would win."""
    from jupyter_client import BlockingKernelClient

    b, port, out = shared / "B", _free_port(), []
    env = _env(shared, MEDLIB_PYTHON=str(b / ".venv" / "bin" / "python"))
    args = f"--no-browser --port {port} --ip 127.0.0.1 --ServerApp.port_retries=0 --IdentityProvider.token=t"
    lab = subprocess.Popen(["make", "-s", "lab", f"ARGS={args}"], cwd=b, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        kernel_id, t0 = None, time.time()
        while kernel_id is None and time.time() - t0 < 120 and lab.poll() is None:
            try:
                # what opening notebooks/01_where.ipynb in JupyterLab (rooted at the checkout) does: a session
                # starts its kernel in the notebook's folder
                body = {"path": "notebooks/01_where.ipynb", "name": "01_where.ipynb", "type": "notebook",
                        "kernel": {"name": "medclip"}}
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/sessions", data=json.dumps(body).encode(),
                                             headers={"Authorization": "token t"}, method="POST")
                with urllib.request.urlopen(req, timeout=10) as r:
                    kernel_id = json.loads(r.read())["kernel"]["id"]
            except OSError:
                time.sleep(0.5)
        assert kernel_id, "JupyterLab did not start a medclip kernel"
        kc = BlockingKernelClient(connection_file=str(shared / "runtime" / f"kernel-{kernel_id}.json"))
        kc.load_connection_file()
        kc.start_channels()
        try:
            kc.kernel_info(reply=True, timeout=120)  # (wait_for_ready's heartbeat check is flaky on a busy machine)
            _iopub_joined(kc)
            reply = kc.execute_interactive("import os, medlib; print(medlib.__file__, os.getcwd(), "
                                           "os.environ.get('MEDLIB_ROOT'))", timeout=240,  # a hang guard
                                           output_hook=lambda msg: out.append(msg["content"].get("text", "")))
        finally:
            kc.stop_channels()
        assert reply["content"]["status"] == "ok"
    finally:
        if lab.poll() is None:
            os.killpg(lab.pid, signal.SIGTERM)
            try:
                lab.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(lab.pid, signal.SIGKILL)
    assert "".join(out).split() == [str(b / "medlib" / "__init__.py"), str(b / "notebooks"), str(b)]


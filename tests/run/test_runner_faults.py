"""Fault injection on the runner: two runs in one checkout, Ctrl-C, failed notebooks, a full disk, a kernel
spec that starts another Python, and the real-or-generated lines."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from medlib.run import kernel as kernels, preflight, runner, workspace as runspace
from medlib.config import load_profile
from medlib.errors import MedlibError

REPO = Path(__file__).resolve().parents[2]

# The notebook waits (up to 60 s) for a "release" file when run with profile a.yaml, fails with profile
# c.yaml, and finishes at once otherwise; it writes "started-<profile>" first so the test knows it runs.
WAIT_CELL = """\
import pathlib, time
name = pathlib.Path(profile).stem
pathlib.Path(f"started-{name}").touch()
if name == "a":
    t0 = time.time()
    while not pathlib.Path("release").exists() and time.time() - t0 < 60:
        time.sleep(0.2)
if name == "c":
    raise ValueError("broken on purpose")
"""


def _checkout(tmp_path: Path) -> Path:
    """A minimal repository: run_all.sh marker, notebooks/01_wait.ipynb, profiles a/b/c.yaml."""
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "run_all.sh").write_text("#!/bin/sh\n")
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "smoke"\ndata_dir = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(WAIT_CELL)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "notebooks" / "01_wait.ipynb")
    for name in ("a", "b", "c"):
        (root / f"{name}.yaml").write_text("kind: smoke\ndevice: cpu\nmodels: []\ndatasets: []\n")
    tmp = _tmp(root)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return root


def _tmp(root: Path) -> Path:
    """A short TMPDIR for the runner under test (Unix socket paths are limited to ~100 bytes)."""
    import hashlib

    return Path("/tmp") / f"mct-{hashlib.sha1(str(root).encode()).hexdigest()[:10]}"


def _env(root: Path) -> dict:
    env = dict(os.environ, MEDLIB_ROOT=str(root), PYTHONPATH=str(REPO), TMPDIR=str(_tmp(root)))
    env.pop("MEDLIB_CALLER_CWD", None)
    return env


def _start(root: Path, profile: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "medlib.run", "--profile", str(root / f"{profile}.yaml"),
                             "--no-report"], cwd=root, env=_env(root), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"runner exited early: {proc.communicate()}")
        if time.time() - t0 > timeout:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.2)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_second_run_of_a_profile_stops_at_once_and_other_profiles_run_beside_it(tmp_path):
    root = _checkout(tmp_path)
    a = _start(root, "a")
    try:
        _wait_for(root / "started-a", a)
        # The kernel's sockets live in this run's own folder, not in the repository.
        assert not list(root.glob("kernel-ipc*"))
        assert [d.name.split("-")[1] for d in _tmp(root).glob("medclip-*")] == [str(a.pid)]
        t0 = time.time()
        same = subprocess.run([sys.executable, "-m", "medlib.run", "--profile", str(root / "a.yaml"),
                               "--no-report"], cwd=root, env=_env(root), capture_output=True, text=True, timeout=60)
        assert time.time() - t0 < 45
        assert same.returncode != 0
        err = same.stderr.strip().splitlines()
        assert len(err) == 1 and "already running" in err[0] and f"PID {a.pid}" in err[0]
        assert "a.yaml" in err[0]  # the running process's command
        other = subprocess.run([sys.executable, "-m", "medlib.run", "--profile", str(root / "b.yaml"),
                                "--no-report"], cwd=root, env=_env(root), capture_output=True, text=True,
                               timeout=180)
        assert other.returncode == 0, other.stderr
        assert "Traceback" not in other.stderr + other.stdout
        assert (root / "reports" / "b" / "executed" / "01_wait.ipynb").is_file()
        (root / "release").touch()
        out, err_a = a.communicate(timeout=120)
        assert a.returncode == 0, err_a
    finally:
        _kill(a)
    assert not list(_tmp(root).glob("medclip-*"))  # socket folders removed on exit
    assert not list((root / "reports").glob("*/executed/.*.running.ipynb"))


def test_ctrl_c_prints_one_line_keeps_the_good_copy_and_clears_stale_files(tmp_path):
    root = _checkout(tmp_path)
    executed = root / "reports" / "a" / "executed"
    executed.mkdir(parents=True)
    (executed / "01_wait.ipynb").write_text("GOOD")
    stale_nb = executed / ".01_wait.99999999.running.ipynb"  # left by a run killed with -9
    stale_nb.write_text("{}")
    stale_sockets = _tmp(root) / "medclip-99999999-abc"
    stale_sockets.mkdir()
    a = _start(root, "a")
    try:
        _wait_for(root / "started-a", a)
        assert not stale_nb.exists() and not stale_sockets.exists()
        time.sleep(1.0)
        os.killpg(a.pid, signal.SIGINT)  # what Ctrl-C in a terminal does to the foreground group
        out, err = a.communicate(timeout=120)
    finally:
        _kill(a)
    assert a.returncode == 130, (out, err)
    assert "Traceback" not in err and "IPKernelApp" not in err
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err and "01_wait.failed.ipynb" in err
    assert (executed / "01_wait.ipynb").read_text() == "GOOD"
    assert (executed / "01_wait.failed.ipynb").is_file()
    assert not list(executed.glob(".*.running.ipynb")) and not list(_tmp(root).glob("medclip-*"))


# Two notebooks: each says when it starts and waits for "end-NN" (01 then says it is ending), so every moment of
# the first notebook can be hit while the run is far from over.
STEP_CELL = """\
import pathlib, time
nb = "{nb}"
pathlib.Path(f"started-{{nb}}").touch()
t0 = time.time()
while not pathlib.Path(f"end-{{nb}}").exists() and time.time() - t0 < 60:
    time.sleep(0.05)
pathlib.Path(f"ending-{{nb}}").touch()
"""


def _two_step_checkout(tmp_path: Path) -> Path:
    root = _checkout(tmp_path)
    for nb in ("01", "02"):
        book = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell('profile = "smoke"\ndata_dir = None')
        params.metadata["tags"] = ["parameters"]
        book.cells = [params, nbformat.v4.new_code_cell(STEP_CELL.format(nb=nb))]
        book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(book, root / "notebooks" / f"{nb}_step.ipynb")
    (root / "notebooks" / "01_wait.ipynb").unlink()
    return root


def _when(moment: str, root: Path, proc: subprocess.Popen) -> None:
    """Return at ``moment`` of notebook 01: its kernel starting, its cell running, or its kernel shutting down."""
    if moment == "kernel-start":
        while "01_step ..." not in (line := proc.stdout.readline()):
            assert line, "the runner ended before starting notebook 01"
    elif moment == "mid-cell":
        _wait_for(root / "started-01", proc)
        time.sleep(0.3)
    elif moment == "kernel-shutdown":
        _wait_for(root / "started-01", proc)
        (root / "end-01").touch()
        _wait_for(root / "ending-01", proc)


@pytest.mark.parametrize("trial", [1, 2])
@pytest.mark.parametrize("moment", ["kernel-start", "mid-cell", "kernel-shutdown"])
def test_ctrl_c_at_any_moment_ends_in_one_line_and_130(tmp_path, moment, trial):
    root = _two_step_checkout(tmp_path)
    proc = _start(root, "a")
    try:
        _when(moment, root, proc)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        _kill(proc)
    assert proc.returncode == 130, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR") and "interrupted" in lines[0], err
    for noise in ("Traceback", "Kernel died", "Task exception", "DeadKernelError", "IPKernelApp"):
        assert noise not in out + err
    assert not (root / "started-02").exists()  # the run stopped at notebook 01


def test_client_logs_and_unretrieved_tasks_go_to_the_kernel_log(tmp_path, capfd):
    """What papermill/nbclient log after a Ctrl-C, and asyncio's report of the poll tasks a cell left behind,
    land in the notebook's kernel log, not on the console."""
    import asyncio
    import gc
    import logging

    from jupyter_core.utils import ensure_event_loop
    from nbclient.exceptions import DeadKernelError

    def leave_tasks_behind():
        loop = ensure_event_loop()

        async def dies():
            raise DeadKernelError("Kernel died")

        loop.create_task(dies())
        loop.create_task(asyncio.sleep(3600))  # a poll that never ends
        loop.run_until_complete(asyncio.sleep(0.05))  # dies() ends; nobody retrieves its exception

    log = tmp_path / "01.kernel.log"
    with kernels.client_logs_to(log):
        logging.getLogger("papermill").error("Kernel died while waiting for execute reply.")
        leave_tasks_behind()
    gc.collect()
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    text = log.read_text()
    assert "Kernel died while waiting" in text and "Task exception was never retrieved" in text
    assert not [t for t in asyncio.all_tasks(ensure_event_loop()) if not t.done()]
    assert logging.getLogger("papermill").propagate
    # a task left behind and collected after the notebook still reports to that log, never to the console
    loop = ensure_event_loop()

    async def dies_later():
        raise DeadKernelError("Kernel died later")

    loop.create_task(dies_later())
    loop.run_until_complete(asyncio.sleep(0.05))
    gc.collect()
    out, err = capfd.readouterr()
    assert out == "" and err == "" and "Kernel died later" in log.read_text()


def test_failed_notebook_is_kept_beside_the_good_copy(tmp_path):
    root = _checkout(tmp_path)
    executed = root / "reports" / "c" / "executed"
    executed.mkdir(parents=True)
    (executed / "01_wait.ipynb").write_text("GOOD")
    c = _start(root, "c")
    try:
        out, err = c.communicate(timeout=180)
    finally:
        _kill(c)
    assert c.returncode == 1
    assert "ValueError: broken on purpose" in err and "Traceback" not in err
    assert (executed / "01_wait.ipynb").read_text() == "GOOD"
    failed = json.loads((executed / "01_wait.failed.ipynb").read_text())
    assert any("broken on purpose" in json.dumps(c.get("outputs", [])) for c in failed["cells"])
    manifest = json.loads((root / "reports" / "c" / "manifest.json").read_text())
    assert manifest["notebooks"]["01_wait"]["status"] == "failed"


# ---- disk full / OS errors at the manifest and report steps ---------------------------------------------


@pytest.fixture
def quiet_checkout(tmp_path, monkeypatch):
    """In-process runner on a checkout whose notebooks are not executed (the step under test comes first)."""
    root = _checkout(tmp_path)
    for key in ("MEDLIB_ROOT", "MEDLIB_DATA_DIR", "MEDLIB_PROGRESS"):
        monkeypatch.setenv(key, os.environ.get(key, ""))  # restored after the test; the runner sets them
    monkeypatch.setenv("MEDLIB_ROOT", str(root))
    monkeypatch.delenv("MEDLIB_CALLER_CWD", raising=False)
    monkeypatch.setattr(runner, "ensure_kernel", lambda: "medclip")
    return root


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_at_the_manifest_is_one_line_and_leaves_no_temp(quiet_checkout, monkeypatch, capsys):
    root = quiet_checkout
    reports = root / "reports" / "a"
    reports.mkdir(parents=True)
    (reports / "manifest.json").write_text('{"old": true}')
    real_write = Path.write_text

    def half_then_full(self, text, *a, **k):
        if self.name.startswith(".manifest.json"):
            real_write(self, text[:10])
            _enospc()
        return real_write(self, text, *a, **k)

    monkeypatch.setattr(Path, "write_text", half_then_full)
    rc = runner.main(["--profile", str(root / "a.yaml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0
    assert len(err) == 1 and "manifest.json: no space left on device" in err[0] and "Fix:" in err[0]
    assert (reports / "manifest.json").read_text() == '{"old": true}'
    assert sorted(p.name for p in reports.iterdir()) == [".run.lock", "manifest.json"]


def test_disk_full_at_the_report_is_one_line(quiet_checkout, monkeypatch, capsys):
    root = quiet_checkout
    monkeypatch.setattr(runner, "_notebooks", lambda *a, **k: 0)
    import medlib.report

    monkeypatch.setattr(medlib.report, "main", _enospc)
    rc = runner.main(["--profile", str(root / "a.yaml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0
    assert len(err) == 1 and "report.md: no space left on device" in err[0] and "df -h" in err[0]


def test_os_error_line_names_path_reason_and_fix():
    line = runner.os_error_line(OSError(errno.EACCES, "Permission denied"), "/r/smoke/manifest.json")
    assert line.startswith("/r/smoke/manifest.json: permission denied. Fix: make /r/smoke writable")
    assert "\n" not in runner.error_line(OSError(errno.ENOSPC, "No space left on device", "/r/x.ipynb"))


# ---- the kernel Jupyter resolves --------------------------------------------------------------------------


def _user_spec(tmp_path, monkeypatch, python: str) -> Path:
    user = tmp_path / "jupyter-user"
    spec = user / "kernels" / kernels.KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": [python, "-m", "ipykernel_launcher", "-f",
                                                           "{connection_file}"],
                                                  "display_name": "medclip", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(user))  # searched before this environment's share/jupyter
    installed = []
    monkeypatch.setattr("ipykernel.kernelspec.install", lambda **kw: installed.append(kw))
    return spec


def test_ensure_kernel_fails_when_a_spec_with_another_python_wins(tmp_path, monkeypatch):
    other = tmp_path / "other-env" / "bin" / "python"
    other.parent.mkdir(parents=True)
    other.symlink_to(sys.executable)  # the same interpreter binary, but another environment
    spec = _user_spec(tmp_path, monkeypatch, str(other))
    with pytest.raises(MedlibError) as exc:
        kernels.ensure_kernel()
    msg = str(exc.value)
    assert "\n" not in msg and str(spec / "kernel.json") in msg and str(other) in msg
    assert "kernelspec remove" in msg and "Fix:" in msg


def test_ensure_kernel_accepts_a_spec_that_starts_this_python(tmp_path, monkeypatch):
    _user_spec(tmp_path, monkeypatch, sys.executable)
    assert kernels.ensure_kernel() == kernels.KERNEL_NAME


# ---- real or generated: the first and last console lines ------------------------------------------------


def _smoke_like(root: Path, data: Path) -> Path:
    text = (REPO / "medlib" / "config" / "profiles" / "smoke.yaml").read_text()
    prof = root / "gen.yaml"
    data.mkdir(parents=True, exist_ok=True)
    prof.write_text(text.replace("name: smoke", "name: gen").replace("data_dir: data", f"data_dir: {data}"))
    return prof


def test_data_origins_tell_generated_from_real(tmp_path, shared_pneumonia):
    (tmp_path / "empty").mkdir()
    P = load_profile("smoke", data_dir=tmp_path / "empty")
    origins = preflight.data_origins(P)
    assert origins["pneumoniamnist"] == "generated" and origins["flickr30k"] == "generated"
    (tmp_path / "real" / "medmnist").mkdir(parents=True)
    shutil.copy(shared_pneumonia, tmp_path / "real" / "medmnist" / "pneumoniamnist.npz")
    P = load_profile("smoke", data_dir=tmp_path / "real")
    assert preflight.data_origins(P)["pneumoniamnist"] == "real"
    line = preflight.origin_line(preflight.data_origins(P))
    assert line.startswith("GENERATED data: chestxray14") and line.endswith("real: pneumoniamnist")
    assert preflight.origin_line({"pneumoniamnist": "real"}) == "real data: pneumoniamnist"


def test_first_and_last_console_lines_say_generated(quiet_checkout, monkeypatch, capsys):
    root = quiet_checkout
    monkeypatch.setattr(runner, "_notebooks", lambda *a, **k: 0)
    prof = _smoke_like(root, root / "data")
    assert runner.main(["--profile", str(prof), "--no-report"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    for line in (out[0], out[-1]):
        assert line.startswith("GENERATED data:") and "pneumoniamnist" in line and "NOT results" in line


def test_last_line_follows_what_notebook_01_found(quiet_checkout, monkeypatch, capsys):
    root = quiet_checkout
    prof = _smoke_like(root, root / "data")

    def notebook_01_found_real_pneumonia(args, profile, *rest):
        tables = profile.reports_path / "tables"
        tables.mkdir(parents=True, exist_ok=True)
        (tables / "data_summary.csv").write_text("dataset,synthetic\npneumoniamnist,False\nchestxray14,True\n")
        return 0

    monkeypatch.setattr(runner, "_notebooks", notebook_01_found_real_pneumonia)
    assert runner.main(["--profile", str(prof), "--no-report"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "real: pneumoniamnist" not in out[0] and out[-1].endswith("real: pneumoniamnist")


def test_stale_helpers_leave_live_runs_alone(tmp_path):
    live = tmp_path / f"medclip-{os.getpid()}-x"
    dead = tmp_path / "medclip-99999999-y"
    live.mkdir(), dead.mkdir()
    assert runspace.remove_stale_kernel_dirs(tmp_path) == [dead] and live.is_dir()
    mine = runspace.running_path(tmp_path, "01_a")
    mine.write_text("{}")
    old = tmp_path / ".01_a.running.ipynb"  # the PID-less name older versions used
    old.write_text("{}")
    assert runspace.remove_stale_running(tmp_path) == [old] and mine.exists()


def test_ctrl_c_during_a_swallowing_import_still_interrupts(tmp_path, monkeypatch):
    # medmnist's __init__ wraps its imports in a bare `except:`; a Ctrl-C landing there must not be lost.
    (tmp_path / "swallower.py").write_text(
        "import os, signal, time\ntry:\n    os.kill(os.getpid(), signal.SIGINT)\n    time.sleep(0.5)\nexcept:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "swallower", raising=False)
    with pytest.raises(KeyboardInterrupt):
        preflight._import_keeping_ctrl_c("swallower")


def test_peak_memory_sees_the_kernel_process():
    from medlib.run.manifest import PeakMemory

    code = "import time; x = bytearray(300 * 2**20); x[::4096] = b'1' * len(x[::4096]); time.sleep(2.5)"
    with PeakMemory(every=0.2) as pm:
        subprocess.run([sys.executable, "-c", code], check=True)
    assert pm.result()["peak_rss_mb"] >= 300


def _sleeping_kernel() -> subprocess.Popen:
    """A stand-in kernel: its own session (as jupyter_client starts kernels), killed by SIGINT (the default action:
    no traceback); returned once it has started (a SIGINT during the interpreter's start-up ends it otherwise)."""
    code = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_DFL); print('ready', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_ctrl_c_swallowed_by_a_finalizer_is_still_seen_and_stops_the_kernel(capfd):
    kernel = _sleeping_kernel()

    class Finalizer:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)  # lands here: Python ignores exceptions raised in __del__
            time.sleep(0.2)

    try:
        with runspace.CtrlC().installed() as ctrl_c:
            ctrl_c.kernels.append(kernel.pid)
            Finalizer()  # created and finalized at once
            time.sleep(0.2)  # the KeyboardInterrupt did not reach this frame
        assert kernel.wait(timeout=20) == -signal.SIGINT
    finally:
        kernel.kill()
    assert ctrl_c.pressed
    assert capfd.readouterr().err == ""  # no "Exception ignored in ... KeyboardInterrupt" traceback
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_swallowed_ctrl_c_during_a_notebook_ends_the_run_with_130(quiet_checkout, monkeypatch, capsys):
    root = quiet_checkout
    monkeypatch.setattr(runner, "_notebooks", runner._notebooks)  # the real notebook step, a fake papermill

    def papermill_swallowing_the_interrupt(nb, out, *args):
        kernel = _sleeping_kernel()
        args[-2].append(kernel.pid)  # kernel_pids (then env)
        try:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)
            except:  # noqa: E722 - what a bare except in a library does with it
                pass
            if kernel.wait(timeout=20) == -signal.SIGINT:  # the cell was interrupted: papermill reports its error
                raise RuntimeError("KeyboardInterrupt in the cell")
        finally:
            kernel.kill()

    monkeypatch.setattr(runner, "run_notebook", papermill_swallowing_the_interrupt)
    assert runner.main(["--profile", str(root / "a.yaml"), "--no-report"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ERROR in 01_wait: interrupted"), err

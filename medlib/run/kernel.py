"""The Jupyter kernel the runner executes notebooks in.

* :func:`ensure_kernel`: the kernel spec named ``medclip`` that jupyter_client *resolves* (the first one on
  its search path; a user-level spec wins over this environment's) must start this environment's Python. A
  spec that already does is left as it is: checkouts that share one environment share one spec.
* :func:`checkout_env`: what makes a kernel run *this checkout's* code: ``PYTHONPATH`` led by the checkout
  and ``MEDLIB_ROOT``, set in the kernel process's environment (an editable install points at one checkout
  only; the spec is shared).
* :func:`kernel_manager_class`: on POSIX, kernels talk over IPC sockets in the run's private folder (no
  unencrypted TCP on localhost, no socket files in the repository, no clash between two runs), and the
  kernel process's own stdout/stderr (ipykernel's log, e.g. its shutdown noise after Ctrl-C) go to a log
  file instead of the console. What a cell prints still lands in the executed notebook.
* :func:`client_logs_to`: papermill's, nbclient's and asyncio's log records during a notebook (e.g. "Kernel
  died while waiting for execute reply" after Ctrl-C) go to that log file too, and the event loop's
  left-over tasks are settled before the console is handed back.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Iterator

from ..errors import MedlibError

KERNEL_NAME = "medclip"


def _env_bin(python: str) -> Path | None:
    """The real folder holding ``python``: the interpreter itself is not followed (a venv's python links to the
    base one), the folders are (``checkout/.venv`` linked to a shared environment is that environment)."""
    p = Path(python)
    if not p.is_absolute():
        found = shutil.which(python)
        if not found:
            return None
        p = Path(found)
    return Path(os.path.abspath(p)).parent.resolve()


def _is_this_python(argv0: str) -> bool:
    here = _env_bin(sys.executable)
    return here is not None and _env_bin(argv0) == here


def ensure_kernel() -> str:
    """Make sure the kernel spec ``medclip`` that Jupyter resolves runs this environment's Python.

    Registers it in this environment (``sys.prefix``) when missing or when it starts another environment's
    Python; leaves a spec that starts this environment's Python alone, whatever path spells it (two checkouts
    sharing the environment then never rewrite it). Raises MedlibError with the fix when a spec elsewhere on
    Jupyter's path (typically ``~/.local/share/jupyter/kernels/medclip``) wins and starts another Python.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        spec = None
    if spec is not None and spec.argv and _is_this_python(spec.argv[0]):
        return KERNEL_NAME
    from ipykernel.kernelspec import install

    installed = install(kernel_name=KERNEL_NAME, display_name="Python (medclip)", prefix=sys.prefix)
    if installed:
        _spell_environment(Path(installed) / "kernel.json")
    resolved = KernelSpecManager().get_kernel_spec(KERNEL_NAME)  # a fresh manager: what papermill will start
    if not (resolved.argv and _is_this_python(resolved.argv[0])):
        argv0 = resolved.argv[0] if resolved.argv else "?"
        raise MedlibError(
            f"{Path(resolved.resource_dir) / 'kernel.json'}: Jupyter's kernel {KERNEL_NAME!r} starts {argv0}, "
            f"not this environment's {sys.executable} (that spec comes first on Jupyter's path). Fix: "
            f"{sys.executable} -m jupyter kernelspec remove -y {KERNEL_NAME} (removes that spec), or "
            f"{sys.executable} -m ipykernel install --user --name {KERNEL_NAME} (points it at this environment)")
    return KERNEL_NAME


def _spell_environment(spec_file: Path) -> None:
    """Write the spec's interpreter as the environment's own path (``env/bin/python``), not the path this
    process was started by (``checkout/.venv/bin/python`` where a checkout links to a shared environment): the
    spec stays valid whichever checkout wrote it, and after that checkout is gone."""
    bin_dir = _env_bin(sys.executable)
    if bin_dir is None:
        return
    spec = json.loads(spec_file.read_text())
    spec["argv"][0] = str(bin_dir / Path(sys.executable).name)
    tmp = spec_file.with_name(f".{spec_file.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(spec, indent=1))
    os.replace(tmp, spec_file)


def checkout_env(root: str | Path) -> dict[str, str]:
    """Environment entries that make a kernel import the medlib of checkout ``root`` and write under it:
    ``PYTHONPATH`` led by ``root`` (ahead of an editable install, which points at one checkout) and
    ``MEDLIB_ROOT``."""
    root = str(Path(root).resolve())
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    return {"PYTHONPATH": os.pathsep.join([root, *rest]), "MEDLIB_ROOT": root}


def kernel_manager_class(socket_dir: Path | None = None, log_path: Path | None = None,
                         env: dict[str, str] | None = None, pids: list[int] | None = None):
    """A jupyter_client kernel manager class for papermill's ``kernel_manager_class``.

    POSIX: IPC transport with socket files ``<socket_dir>/kernel-N``. Where ``log_path`` is given, the kernel
    process's stdout and stderr are appended to it (so nothing from the kernel process reaches the console).
    ``env`` is added to the kernel process's environment; the kernel's PID is appended to ``pids`` (for
    :func:`interrupt_kernels`).
    """
    from jupyter_client.manager import AsyncKernelManager

    if os.name != "posix" and log_path is None and not env and pids is None:
        return AsyncKernelManager

    class RunKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            if os.name == "posix":
                self.transport = "ipc"
                if socket_dir is not None:
                    self.ip = str(Path(socket_dir) / "kernel")

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            if env:
                kw["env"] = {**kw.get("env", os.environ), **env}
            with contextlib.ExitStack() as stack:
                if log_path is not None:
                    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
                    log = stack.enter_context(open(log_path, "ab"))  # Popen duplicates it; ours can close after
                    kw["stdout"] = kw["stderr"] = log
                result = await super()._async_launch_kernel(kernel_cmd, **kw)
            pid = getattr(self.provisioner, "pid", None)
            if pids is not None and pid:
                pids.append(int(pid))
            return result

    return RunKernelManager


def interrupt_kernels(pids: list[int]) -> None:
    """Send SIGINT to each kernel's process group (what Jupyter's interrupt does: the running cell raises
    KeyboardInterrupt; processes the cell started, such as torchrun, get it too). Safe in a signal handler."""
    for pid in pids:
        with contextlib.suppress(OSError):
            if os.name == "posix":
                os.killpg(os.getpgid(pid), signal.SIGINT)
            else:  # pragma: no cover
                os.kill(pid, signal.SIGINT)


# Loggers that report on the kernel from this side: papermill's (nbclient logs through it, e.g. "Kernel died
# while waiting for execute reply."), nbclient's and jupyter_client's own, traitlets', and asyncio's ("Task
# exception was never retrieved" for the poll tasks of a cell cut short).
CLIENT_LOGGERS = ("papermill", "nbclient", "jupyter_client", "traitlets", "asyncio")


_asyncio_handler: logging.Handler | None = None  # where asyncio reports after a notebook (see client_logs_to)


@contextlib.contextmanager
def client_logs_to(log_path: Path) -> Iterator[None]:
    """Route :data:`CLIENT_LOGGERS` to ``log_path`` (created only when something is logged) instead of the
    console; on the way out settle the event loop papermill ran on (:func:`settle_loop`) while still routed.

    asyncio's logger stays routed to the last notebook's log afterwards: a task a cut-short cell left behind may be
    collected later (its "Task exception was never retrieved" report then lands in that log, not on the console).
    """
    global _asyncio_handler
    handler = logging.FileHandler(log_path, delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    saved = []
    for name in CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate))
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        try:
            settle_loop()
        finally:
            late = logging.FileHandler(log_path, delay=True)
            late.setFormatter(handler.formatter)
            for logger, propagate in saved:
                logger.removeHandler(handler)
                logger.propagate = propagate
            handler.close()
            asyncio_logger = logging.getLogger("asyncio")
            if _asyncio_handler is not None:
                asyncio_logger.removeHandler(_asyncio_handler)
                _asyncio_handler.close()
            _asyncio_handler = late
            asyncio_logger.addHandler(late)
            asyncio_logger.propagate = False


def settle_loop(timeout: float = 10.0) -> None:
    """Cancel the tasks an interrupted or failed cell left on this thread's event loop (nbclient's output and
    kernel-alive polls), wait for them, and collect the finished ones nobody awaited, so that asyncio reports
    them now (to the routed log) rather than on the console at exit."""
    from jupyter_core.utils import ensure_event_loop

    loop = ensure_event_loop()
    if not loop.is_running() and not loop.is_closed():
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            with contextlib.suppress(asyncio.TimeoutError):
                loop.run_until_complete(asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), timeout))
    gc.collect()

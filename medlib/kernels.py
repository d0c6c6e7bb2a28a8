"""The Jupyter kernel the runner executes notebooks in.

* :func:`ensure_kernel`: the kernel spec named ``medclip`` that jupyter_client *resolves* (the first one on
  its search path; a user-level spec wins over this environment's) must start this environment's Python.
* :func:`kernel_manager_class`: on POSIX, kernels talk over IPC sockets in the run's private folder (no
  unencrypted TCP on localhost, no socket files in the repository, no clash between two runs), and the
  kernel process's own stdout/stderr (ipykernel's log, e.g. its shutdown noise after Ctrl-C) go to a log
  file instead of the console. What a cell prints still lands in the executed notebook.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from .errors import MedlibError

KERNEL_NAME = "medclip"


def _env_bin(python: str) -> Path | None:
    """The folder holding ``python`` *without* following symlinks (a venv's python links to the base one)."""
    p = Path(python)
    if not p.is_absolute():
        found = shutil.which(python)
        if not found:
            return None
        p = Path(found)
    return Path(os.path.abspath(p)).parent


def _is_this_python(argv0: str) -> bool:
    here = _env_bin(sys.executable)
    return here is not None and _env_bin(argv0) == here


def ensure_kernel() -> str:
    """Make sure the kernel spec ``medclip`` that Jupyter resolves runs this environment's Python.

    Registers it in this environment (``sys.prefix``) when missing; raises MedlibError with the fix when a
    spec elsewhere on Jupyter's path (typically ``~/.local/share/jupyter/kernels/medclip``) wins and starts
    another Python.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        spec = None
    if spec is not None and spec.argv and _is_this_python(spec.argv[0]):
        return KERNEL_NAME
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name="Python (medclip)", prefix=sys.prefix)
    resolved = KernelSpecManager().get_kernel_spec(KERNEL_NAME)  # a fresh manager: what papermill will start
    if not (resolved.argv and _is_this_python(resolved.argv[0])):
        argv0 = resolved.argv[0] if resolved.argv else "?"
        raise MedlibError(
            f"{Path(resolved.resource_dir) / 'kernel.json'}: Jupyter's kernel {KERNEL_NAME!r} starts {argv0}, "
            f"not this environment's {sys.executable} (that spec comes first on Jupyter's path). Fix: "
            f"{sys.executable} -m jupyter kernelspec remove -y {KERNEL_NAME} (removes that spec), or "
            f"{sys.executable} -m ipykernel install --user --name {KERNEL_NAME} (points it at this environment)")
    return KERNEL_NAME


def kernel_manager_class(socket_dir: Path | None = None, log_path: Path | None = None):
    """A jupyter_client kernel manager class for papermill's ``kernel_manager_class``.

    POSIX: IPC transport with socket files ``<socket_dir>/kernel-N``. Where ``log_path`` is given, the kernel
    process's stdout and stderr are appended to it (so nothing from the kernel process reaches the console).
    """
    from jupyter_client.manager import AsyncKernelManager

    if os.name != "posix" and log_path is None:
        return AsyncKernelManager

    class RunKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            if os.name == "posix":
                self.transport = "ipc"
                if socket_dir is not None:
                    self.ip = str(Path(socket_dir) / "kernel")

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            if log_path is None:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "ab") as log:  # Popen duplicates the descriptor; ours can close afterwards
                kw["stdout"] = kw["stderr"] = log
                return await super()._async_launch_kernel(kernel_cmd, **kw)

    return RunKernelManager

"""Run the numbered notebooks headless through papermill, then the report.

``python -m medlib.runner --profile smoke [--only 02] [--from 03] [--data-dir DIR] [--no-report] [--gpus N]``
(``run_all.sh`` calls this). Stops at the first failing notebook, prints that notebook's one-line error and
the path of its executed copy, and exits non-zero.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import time
from pathlib import Path

from .config import Profile, load_profile, project_root
from .errors import MedlibError

KERNEL_NAME = "medclip"


def discover_notebooks(root: Path) -> list[Path]:
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def select(notebooks: list[Path], only: list[str] | None, start: str | None) -> list[Path]:
    def num(p: Path) -> str:
        return p.name[:2]

    known = {num(p) for p in notebooks}
    for n in (only or []) + ([start] if start else []):
        if n.zfill(2) not in known:
            raise MedlibError(f"notebooks/: no notebook numbered {n!r}. Fix: use one of {sorted(known)}")
    if only:
        wanted = {n.zfill(2) for n in only}
        notebooks = [p for p in notebooks if num(p) in wanted]
    if start:
        notebooks = [p for p in notebooks if num(p) >= start.zfill(2)]
    return notebooks


def ensure_kernel() -> str:
    """Make sure a kernel named ``medclip`` runs this interpreter (registered in this environment)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    ksm = KernelSpecManager()
    try:
        spec = ksm.get_kernel_spec(KERNEL_NAME)
        if spec.argv and Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return KERNEL_NAME
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name="Python (medclip)", prefix=sys.prefix)
    return KERNEL_NAME


def error_line(exc: BaseException) -> str:
    """The one line a user needs from a failed notebook: the exception's type and message, no traceback."""
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    evalue = re.sub(r"\x1b\[[0-9;]*m", "", str(evalue)).strip().splitlines()
    return f"{ename}: {evalue[0] if evalue else ''}"


def _kernel_manager_class():
    """On POSIX, talk to the kernel over local IPC sockets instead of unencrypted TCP on localhost (and without
    ipykernel's warning about it on every notebook); elsewhere jupyter_client's default."""
    from jupyter_client.manager import AsyncKernelManager

    if os.name != "posix":
        return AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport = "ipc"

    return IPCKernelManager


def run_notebook(nb: Path, out: Path, profile_arg: str, profile: Profile, kernel: str, cwd: Path) -> None:
    import papermill as pm

    # profile_arg is what the user typed (a name or a YAML path): the notebook loads it the same way.
    params = {"profile": profile_arg, "data_dir": profile.data_dir}
    pm.execute_notebook(str(nb), str(out), parameters=params, kernel_name=kernel, cwd=str(cwd),
                        progress_bar=False, log_output=False, request_save_on_cell_execute=True,
                        kernel_manager_class=_kernel_manager_class())


def _resolve_caller_paths(args: argparse.Namespace) -> None:
    """run_all.sh changes into the repository; relative --data-dir / --profile PATH.yaml given by the user are
    relative to where they typed the command (``$MEDLIB_CALLER_CWD``)."""
    caller = os.environ.get("MEDLIB_CALLER_CWD")
    if not caller:
        return
    if args.data_dir and not Path(args.data_dir).is_absolute():
        args.data_dir = str(Path(caller) / args.data_dir)
    prof = Path(args.profile)
    if prof.suffix in (".yaml", ".yml") and not prof.is_absolute():
        args.profile = str(Path(caller) / prof)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medlib.runner", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full")
    ap.add_argument("--only", action="append", help="run only notebook NN (repeatable)")
    ap.add_argument("--from", dest="start", help="start at notebook NN")
    ap.add_argument("--data-dir", default=None, help="data folder (default: $MEDLIB_DATA_DIR, else data/)")
    ap.add_argument("--no-report", action="store_true", help="skip the report at the end")
    ap.add_argument("--gpus", type=int, default=None,
                    help="training processes per machine (torchrun + DDP; gloo on CPU); default: the profile's")
    args = ap.parse_args(argv)
    if args.gpus is not None:  # the kernels' load_profile reads it (distributed.nproc_per_node)
        os.environ["MEDLIB_GPUS"] = str(args.gpus)
    _resolve_caller_paths(args)
    root = project_root()
    command = "./run_all.sh " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    try:
        profile = load_profile(args.profile, data_dir=args.data_dir)
        Path(profile.data_dir).mkdir(parents=True, exist_ok=True)  # the notebooks get it as a user-chosen dir
        # Children (papermill kernels) see the same data dir and root.
        os.environ["MEDLIB_DATA_DIR"] = profile.data_dir
        os.environ["MEDLIB_ROOT"] = str(root)
        os.environ.setdefault("MEDLIB_PROGRESS", "0")  # headless: no per-epoch bars in the executed copies
        notebooks = select(discover_notebooks(root), args.only, args.start)
        if not notebooks:
            raise MedlibError(f"{root / 'notebooks'}: no numbered notebooks found. Fix: run from the repository root")
        from .preflight import preflight

        preflight(profile)
        from .runlog import record_notebook, start_manifest

        start_manifest(profile, command, [p.stem for p in notebooks])
        kernel = ensure_kernel()
    except MedlibError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    banner = " [SMOKE: tiny model, not results]" if profile.smoke else ""
    print(f"medclip: profile {profile.name}{banner}; data {profile.data_dir}; {len(notebooks)} notebook(s)")
    executed_dir = profile.reports_path / "executed"
    executed_dir.mkdir(parents=True, exist_ok=True)
    for nb in notebooks:
        out = executed_dir / nb.name
        tmp = executed_dir / f".{nb.stem}.running.ipynb"
        print(f"[{time.strftime('%H:%M:%S')}] {nb.stem} ...", flush=True)
        t0 = time.time()
        try:
            run_notebook(nb, tmp, args.profile, profile, kernel, root)
        except (Exception, KeyboardInterrupt) as exc:  # papermill raises PapermillExecutionError (ename/evalue)
            seconds = time.time() - t0
            if tmp.exists():
                os.replace(tmp, out)
            interrupted = isinstance(exc, KeyboardInterrupt)
            record_notebook(profile, nb.stem, seconds, "interrupted" if interrupted else "failed", str(out))
            what = "interrupted (checkpoints under runs/ let the next run resume)" if interrupted else error_line(exc)
            print(f"ERROR in {nb.stem}: {what}", file=sys.stderr)
            print(f"  executed copy: {out}", file=sys.stderr)
            return 130 if interrupted else 1
        seconds = time.time() - t0
        os.replace(tmp, out)
        record_notebook(profile, nb.stem, seconds, "ok", str(out))
        print(f"[{time.strftime('%H:%M:%S')}] {nb.stem} done in {seconds:.0f} s -> {out}", flush=True)
    if not args.no_report:
        # Same as `python -m medlib.report --profile <p> --reports-dir <dir>` (callable alone).
        from .report import main as report_main

        rc = report_main(["--profile", profile.name, "--reports-dir", profile.reports_dir])
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the numbered notebooks headless through papermill, then the report.

``python -m medlib.run --profile smoke|full|PATH.yaml [--set key=value ...] [--only 02[,03]] [--from 03]
[--downstream] [--fresh] [--data-dir DIR] [--no-report] [--report-only] [--gpus N]`` (``run_all.sh`` calls this).
Stops at the first failing notebook, prints that notebook's one-line error and the path of its executed copy, and
exits non-zero.

``--set`` overrides one setting of the profile (checked by the same schema; recorded in the manifest; the
notebooks' kernels get them in ``$MEDLIB_OVERRIDES``). A training run whose settings changed is trained again by
itself; ``--fresh`` starts every run of the selected notebooks over. A notebook whose study the profile leaves out
is skipped with one line. While a notebook runs, each training run prints its epochs and time left
(:class:`medlib.run.plan.ProgressTail`); the executed copies stay free of progress bars. After a partial run
(``--only``), the notebooks whose outputs it made stale are named with the one command that refreshes them
(:func:`medlib.run.manifest.stale`); ``--downstream`` runs them at once.

A bad argument, an error or Ctrl-C ends the run in one console line (a failing notebook's names the cell;
a second line gives the path of its executed copy): exit 2 for bad input, 1 for a failing notebook, 130 for
Ctrl-C, with nothing from papermill, nbclient or asyncio on the console.

Two runs in one checkout do not meet: one run per profile at a time (``reports/<profile>/.run.lock``; a second
stops at once naming the first), each run's kernel sockets in its own temporary folder, its temporary
executed copies named with its PID (see :mod:`medlib.runspace`). A failed or interrupted notebook is kept as
``executed/NN_*.failed.ipynb`` beside the last good copy. The first console line says which datasets are
generated stand-ins and which are real; a successful run repeats it as its last line.

Kernels run this checkout's code: the runner puts the checkout first on the kernel process's ``PYTHONPATH`` and
sets ``MEDLIB_ROOT`` (:func:`medlib.kernels.checkout_env`), whichever checkout an editable install points at.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from .. import progress
from ..config import OVERRIDES_ENV, Profile, load_profile, parse_overrides, project_root
from ..errors import MedlibError
from .kernel import KERNEL_NAME, checkout_env, client_logs_to, ensure_kernel, kernel_manager_class
from ..files.lock import ProfileLock
from ..config.notebooks import left_out
from .plan import ProgressTail, discover_notebooks, say_stale, select
from .workspace import LOCK_NAME, CtrlC, kernel_dir, remove_stale_running, running_path

__all__ = ["KERNEL_NAME", "ensure_kernel", "main", "select", "discover_notebooks", "error_line", "os_error_line",
           "failed_cell"]
INTERRUPTED = "interrupted (checkpoints under runs/ let the next run resume)"


def error_line(exc: BaseException) -> str:
    """The one line a user needs from a failed notebook: the exception's type and message, no traceback."""
    if isinstance(exc, OSError) and not hasattr(exc, "ename"):
        return os_error_line(exc)
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    evalue = re.sub(r"\x1b\[[0-9;]*m", "", str(evalue)).strip().splitlines()
    return f"{ename}: {evalue[0] if evalue else ''}"


def failed_cell(exc: BaseException, copy: Path | None = None) -> str:
    """``cell 5 (`for spec in P.models:`)``: the failed cell's execution count (its ``In [5]`` in the executed
    copy) and first source line. From papermill's error where it carries them, else from the executed copy: the
    last cell papermill started (a kernel that died or timed out mid-cell; numbered by the cells run up to it,
    which is the count it would have had). '' where neither tells."""
    count, source = getattr(exc, "exec_count", None), getattr(exc, "source", None)
    if source is None and copy is not None:
        with contextlib.suppress(Exception):  # a half-written copy: say nothing rather than fail here
            import nbformat

            started = [c for c in nbformat.read(str(copy), as_version=4).cells if c.cell_type == "code"
                       and c.source.strip() and c.get("metadata", {}).get("papermill", {}).get("start_time")]
            if started:  # a cell cut short has no count of its own: it is the n-th cell run
                count, source = started[-1].get("execution_count") or len(started), started[-1].source
    if source is None:
        return ""
    first = next((line.strip() for line in str(source).splitlines() if line.strip()), "")
    if len(first) > 60:
        first = first[:57] + "..."
    return f"cell {count} (`{first}`)" if count else f"a cell (`{first}`)"


_OS_FIXES = {
    errno.ENOSPC: ("no space left on device", "free space on the disk holding {folder} (df -h {folder}) and rerun"),
    errno.EDQUOT: ("disk quota exceeded", "free space in your quota on {folder} and rerun"),
    errno.EROFS: ("read-only file system", "point reports_dir/runs_dir in the profile at a writable folder"),
    errno.EACCES: ("permission denied", "make {folder} writable for you, or point the profile's reports_dir at "
                                        "a writable folder"),
    errno.EPERM: ("operation not permitted", "make {folder} writable for you"),
}


def os_error_line(exc: OSError, path: str | Path | None = None) -> str:
    """``<path>: no space left on device. Fix: ...`` for an OSError at a write step (one line)."""
    where = exc.filename or path or "?"
    reason, fix = _OS_FIXES.get(exc.errno, (exc.strerror or str(exc), "check the path and rerun"))
    folder = Path(str(where)).parent if Path(str(where)).suffix else Path(str(where))
    return (f"{where}: {reason}. Fix: {fix.format(folder=folder)} (finished notebooks are kept; "
            "--from NN resumes)")


@contextlib.contextmanager
def os_errors(path: str | Path) -> Iterator[None]:
    """Turn an OSError (disk full, permissions) at a write step into a one-line MedlibError naming ``path``."""
    try:
        yield
    except OSError as exc:
        raise MedlibError(os_error_line(exc, path)) from None


def notebook_source(nb: Path, profile: Profile) -> Any:
    """The notebook papermill executes: ``nb`` as it is, or, for a smoke or rehearsal run, with a first cell
    holding the run's notice, so its executed copy says NOT results from the moment it is written."""
    import nbformat

    source = nbformat.read(nb, as_version=4)
    if profile.notice:
        source.cells.insert(0, nbformat.v4.new_markdown_cell(f"> **{profile.notice}**", metadata={"medlib": "notice"}))
    return source


def run_notebook(nb: Path, out: Path, profile_arg: str, profile: Profile, kernel: str, cwd: Path,
                 socket_dir: Path | None = None, kernel_log: Path | None = None,
                 kernel_pids: list[int] | None = None, env: dict[str, str] | None = None) -> None:
    """Execute ``nb`` into ``out`` in a kernel that runs checkout ``cwd``'s code (its PID lands in ``kernel_pids``;
    ``env`` is added to its environment)."""
    import papermill as pm

    # profile_arg is what the user typed (a name or a YAML path): the notebook loads it the same way.
    params = {"profile": profile_arg, "data_dir": profile.data_dir}
    manager = kernel_manager_class(socket_dir, kernel_log, env={**checkout_env(cwd), **(env or {})}, pids=kernel_pids)
    pm.execute_notebook(notebook_source(nb, profile), str(out), parameters=params, kernel_name=kernel, cwd=str(cwd),
                        progress_bar=False, log_output=False, request_save_on_cell_execute=True,
                        kernel_manager_class=manager)


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


class _BadArgument(Exception):
    """argparse's complaint about the command line (raised instead of printing its usage block)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise _BadArgument(message)


def _process_count(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a process count. Fix: pass an integer >= 1 (--gpus 2), "
                                         "or leave --gpus out to use the profile's distributed.nproc_per_node")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="./run_all.sh", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full", help="full | smoke | path/to/your.yaml")
    ap.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                    help="override one setting, e.g. --set caption_finetune.train.epochs=4 --set seeds=[0] "
                         "(repeatable; checked like the profile; recorded in the manifest)")
    ap.add_argument("--only", action="append", help="run only notebook NN (repeatable, or a list: --only 04,05)")
    ap.add_argument("--from", dest="start", help="start at notebook NN")
    ap.add_argument("--downstream", action="store_true",
                    help="also run every notebook that reads the selected ones (--only 03 --downstream: 03-06)")
    ap.add_argument("--fresh", action="store_true",
                    help="start every training run of the selected notebooks over (a run whose settings changed "
                         "is trained again without it)")
    ap.add_argument("--data-dir", default=None, help="data folder (default: $MEDLIB_DATA_DIR, else data/)")
    ap.add_argument("--no-report", action="store_true", help="skip the report at the end")
    ap.add_argument("--report-only", action="store_true",
                    help="write the report from the profile's finished outputs; run no notebook")
    ap.add_argument("--rehearse", action="store_true",
                    help="rehearse the profile offline: its architectures at 224 px with random weights, fixture "
                         "data, capped steps; outputs to reports/<profile>-rehearsal/ with projection.csv")
    ap.add_argument("--device", default=None, choices=("cpu", "cuda"),
                    help="with --rehearse: cpu | cuda (default: the profile's)")
    ap.add_argument("--gpus", type=_process_count, default=None,
                    help="training processes per machine (torchrun + DDP; gloo on CPU); default: the profile's")
    return ap


def _final_origins(profile: Profile, planned: dict[str, str], since: float) -> dict[str, str]:
    """The preflight's {dataset: origin}, confirmed by notebook 01's data summary where this run wrote it."""
    table = profile.reports_path / "tables" / "data_summary.csv"
    origins = dict(planned)
    try:
        if table.stat().st_mtime >= since:
            import pandas as pd

            df = pd.read_csv(table)
            for _, row in df.iterrows():
                if row["dataset"] in origins:
                    origins[row["dataset"]] = "generated" if str(row["synthetic"]).lower() in ("true", "1") else "real"
    except (OSError, KeyError, ValueError):
        pass
    return origins


def main(argv: list[str] | None = None) -> int:
    """Run the notebooks; every way out is one line on the console (a bad argument, an error, Ctrl-C, a full
    disk). Ctrl-C at any moment exits 130 after one line, also where its KeyboardInterrupt was swallowed."""
    ctrl_c = CtrlC()
    rc: int | None = None
    try:
        with ctrl_c.installed():
            rc = _main(argv, ctrl_c)
    except KeyboardInterrupt:
        pass
    if rc is None or (ctrl_c.pressed and rc != 130):  # rc 130: the notebook step printed its own line
        print(f"ERROR: {INTERRUPTED}", file=sys.stderr)
        return 130
    return rc


def _main(argv: list[str] | None, ctrl_c: CtrlC) -> int:
    try:
        args = _parser().parse_args(argv)
    except _BadArgument as exc:
        fix = "" if "Fix:" in str(exc) else ". Fix: ./run_all.sh --help lists the options"
        print(f"ERROR: {exc}{fix}", file=sys.stderr)
        return 2
    if args.gpus is not None:  # the kernels' load_profile reads it (distributed.nproc_per_node)
        os.environ["MEDLIB_GPUS"] = str(args.gpus)
    _resolve_caller_paths(args)
    root = project_root()
    command = "./run_all.sh " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    rehearsal_info = None
    try:
        if args.rehearse:
            from . import rehearsal

            print(f"{rehearsal.NOTICE}. Preparing the rehearsal of profile {args.profile} (fixtures, model "
                  "folders) ...", flush=True)
            with os_errors(Path(args.data_dir or "data") / "rehearsal"):
                path, rehearsal_info = rehearsal.prepare(args.profile, args.data_dir, args.device)
            args.profile, args.data_dir = str(path), str(path.parent)
        overrides = parse_overrides(args.overrides)
        profile = load_profile(args.profile, overrides, data_dir=args.data_dir)
        if args.report_only:
            return _report(profile)
        os.environ[OVERRIDES_ENV] = json.dumps(overrides)  # the notebooks' setup.load applies them
        args.overrides = overrides
        Path(profile.data_dir).mkdir(parents=True, exist_ok=True)  # the notebooks get it as a user-chosen dir
        # Children (papermill kernels) see the same data dir and root.
        os.environ["MEDLIB_DATA_DIR"] = profile.data_dir
        os.environ["MEDLIB_ROOT"] = str(root)
        os.environ.setdefault("MEDLIB_PROGRESS", "0")  # headless: no per-epoch bars in the executed copies
        notebooks = select(discover_notebooks(root), args.only, args.start, args.downstream)
        if not notebooks:
            raise MedlibError(f"{root / 'notebooks'}: no numbered notebooks found. Fix: run from the repository root")
        lock = ProfileLock(profile.reports_path / LOCK_NAME, profile.name, command)
        with os_errors(lock.path):
            lock.acquire()
    except MedlibError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    try:
        with kernel_dir() as sockets:
            return _run(args, profile, notebooks, root, command, sockets, ctrl_c, rehearsal_info)
    finally:
        lock.release()


def _run(args: argparse.Namespace, profile: Profile, notebooks: list[Path], root: Path, command: str,
         sockets: Path, ctrl_c: CtrlC, rehearsal_info: dict | None = None) -> int:
    from . import rehearsal
    from .preflight import data_origins, origin_line, preflight

    t_start = time.time()
    origins = data_origins(profile)
    first = origin_line(origins)
    if rehearsal_info is not None:
        first = rehearsal.origin_line(rehearsal_info["origins"])
        needs = rehearsal_info["downloads"]
        print(first, flush=True)
        print("the real run would download: " + ("; ".join(needs) if needs else "nothing (all cached)"), flush=True)
        first = ""
        rehearsal.fresh_runs(profile.runs_path, [nb.stem for nb in notebooks])  # measure, never resume
    if first:
        print(first, flush=True)  # the run's first line: generated stand-ins or real data, before anything else
    executed_dir = profile.reports_path / "executed"
    try:
        preflight(profile)
        from .manifest import profile_arg_of, start_manifest

        with os_errors(profile.reports_path / "manifest.json"):
            start_manifest(profile, command, [p.stem for p in notebooks],
                           datasets=rehearsal.dataset_origins(rehearsal_info) if rehearsal_info else None,
                           profile_arg=profile_arg_of(args.profile, root), overrides=args.overrides)
        with os_errors(executed_dir):
            executed_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_running(executed_dir)
        kernel = ensure_kernel()
    except MedlibError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    banner = f" [{profile.label}: not results]" if profile.label else ""
    print(f"medclip: profile {profile.name}{banner}; data {profile.data_dir}; {len(notebooks)} notebook(s)")
    rc = 0
    try:
        rc = _notebooks(args, profile, notebooks, root, executed_dir, kernel, sockets, ctrl_c)
        if rc == 0 and not args.no_report:
            # Same as `python -m medlib.report --profile <p> --reports-dir <dir>` (callable alone).
            from ..report import main as report_main

            with os_errors(profile.reports_path / "report.md"):
                rc = report_main(["--profile", profile.name, "--reports-dir", profile.reports_dir])
        if rc == 0 and rehearsal_info is not None:
            rc = _finish_rehearsal(profile, rehearsal_info)
    except MedlibError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        rc = 2
    if rc:  # the error lines stay last: a closing data line would read as the end of a finished run
        return rc
    say_stale(profile)
    last = origin_line(_final_origins(profile, origins, t_start))
    if rehearsal_info is not None:
        last = rehearsal.origin_line(rehearsal_info["origins"])
    if last:
        print(last, flush=True)  # ... and a finished run's last line
    return rc


def _report(profile: Profile) -> int:
    """``--report-only``: the report of the profile's finished outputs (a name or a YAML path: its name and
    reports_dir, as the run that wrote them used)."""
    from ..report import main as report_main

    if not (profile.reports_path / "manifest.json").is_file():
        print(f"ERROR: {profile.reports_path}: no finished run of profile {profile.name!r} here. Fix: run it "
              f"first (./run_all.sh --profile {profile.name})", file=sys.stderr)
        return 2
    return report_main(["--profile", profile.name, "--reports-dir", profile.reports_dir])


def _finish_rehearsal(profile: Profile, info: dict) -> int:
    """Write and print the projection of the real run; drop the rehearsal's checkpoints."""
    from . import measure, projection, rehearsal

    with os_errors(profile.reports_path):
        table = projection.project(profile, info["full"], measure.measure_eval(profile))
        path = projection.write(profile, table)
        rehearsal.drop_checkpoints(profile.runs_path)
    print(projection.render(table, info["full"]), flush=True)
    print(f"projection: {path}", flush=True)
    return 0


def _notebooks(args: argparse.Namespace, profile: Profile, notebooks: list[Path], root: Path, executed_dir: Path,
               kernel: str, sockets: Path, ctrl_c: CtrlC) -> int:
    from .manifest import PeakMemory, read_manifest, record_notebook, upstream_finished

    manifest = profile.reports_path / "manifest.json"
    stems = [p.stem for p in discover_notebooks(root)]
    for nb in notebooks:
        skip = left_out(profile, nb.stem)
        if skip:
            print(f"[{time.strftime('%H:%M:%S')}] {nb.stem} skipped: {skip}", flush=True)
            with os_errors(manifest):
                record_notebook(profile, nb.stem, 0.0, "skipped", "", {"reason": skip})
            continue
        reads = upstream_finished(read_manifest(profile), nb.stem, stems)
        events = sockets / f"{nb.stem}.progress.jsonl"
        env = {progress.FILE_ENV: str(events), **({"MEDLIB_FRESH": nb.stem} if args.fresh else {})}
        out = executed_dir / nb.name
        failed = executed_dir / f"{nb.stem}.failed.ipynb"
        tmp = running_path(executed_dir, nb.stem)
        kernel_log = profile.reports_path / "logs" / f"{nb.stem}.kernel.log"
        with os_errors(kernel_log):
            kernel_log.parent.mkdir(parents=True, exist_ok=True)
            kernel_log.unlink(missing_ok=True)
        print(f"[{time.strftime('%H:%M:%S')}] {nb.stem} ...", flush=True)
        t0 = time.time()
        memory = PeakMemory()
        ctrl_c.kernels = []  # Ctrl-C interrupts this notebook's kernel
        try:
            with memory, client_logs_to(kernel_log), ProgressTail(events):
                run_notebook(nb, tmp, args.profile, profile, kernel, root, sockets, kernel_log, ctrl_c.kernels, env)
        except (Exception, KeyboardInterrupt) as exc:  # papermill raises PapermillExecutionError (ename/evalue)
            seconds = time.time() - t0
            kept = None
            with contextlib.suppress(OSError):
                if tmp.exists():
                    os.replace(tmp, failed)  # the last good executed copy stays as it is
                    kept = failed
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            interrupted = isinstance(exc, KeyboardInterrupt) or ctrl_c.pressed
            with os_errors(manifest):
                record_notebook(profile, nb.stem, seconds, "interrupted" if interrupted else "failed",
                                str(kept or ""), reads=reads)
            if interrupted:
                print(f"ERROR in {nb.stem}: {INTERRUPTED}" + (f"; partial copy: {kept}" if kept else ""),
                      file=sys.stderr)
                return 130
            cell = failed_cell(exc, kept)
            print(f"ERROR in {nb.stem}{', ' + cell if cell else ''}: {error_line(exc)}", file=sys.stderr)
            if kept:
                print(f"  executed copy: {kept}" + (f" (last good copy kept: {out})" if out.exists() else ""),
                      file=sys.stderr)
            return 1
        finally:
            ctrl_c.kernels = []
        seconds = time.time() - t0
        with os_errors(out):
            os.replace(tmp, out)
            failed.unlink(missing_ok=True)  # an older failed copy of this notebook is now stale
        if kernel_log.is_file() and kernel_log.stat().st_size == 0:
            kernel_log.unlink()
        with os_errors(manifest):
            record_notebook(profile, nb.stem, seconds, "ok", str(out), memory.result(), reads=reads)
        print(f"[{time.strftime('%H:%M:%S')}] {nb.stem} done in {seconds:.0f} s -> {out}", flush=True)
        if ctrl_c.pressed:  # pressed while its KeyboardInterrupt was swallowed: the notebook finished; stop here
            print(f"ERROR after {nb.stem}: {INTERRUPTED}", file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

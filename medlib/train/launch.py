"""Training on several processes: ``torchrun ... -m medlib.train.launch <run spec>`` and its launcher.

:func:`run_distributed` (what ``medlib.studies.runs.finetune`` calls when the profile's ``distributed`` section
asks for more than one process) writes a run spec -- JSON: the model's ``ModelSpec``, the training
arguments -- and the train/val splits as ``.npy`` files beside it, starts ``torchrun`` with it, streams its
output (rank 0's progress bars) and waits. Each rank (:func:`main`) joins the process group (NCCL on GPUs,
gloo on CPU), loads the model and the splits, and runs the same engine, which shards every batch and
validation across ranks and lets rank 0 alone write the checkpoints. The caller then calls train again
in its own process: it finds the finished run and returns its best model at once, exactly as with one process.

Each rank notes beside the spec that it started and, when it fails, its one-line error (marked where it is
only the loss of another rank: gloo's or NCCL's broken connection). torchrun stops the other ranks; the
launcher keeps torchrun's output in ``<run_dir>/launch/torchrun.log`` and raises one line naming the rank that
failed first and how -- its own error, a signal (``killed by SIGKILL``) or an exit code, from torchrun's
failure summary -- the log, and that a rerun resumes from ``last.pt``; never the gloo text of the ranks that
lost it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MedlibError

# Fault injection for the tests (kill or fail one rank at a given epoch/batch): "kill|raise:RANK:EPOCH:BATCH".
FAULT_ENV = "MEDLIB_TRAIN_FAULT"


# ---- the launcher (the notebook's process) ------------------------------------------------------------


def run_distributed(model_spec: Any, data: Any, *, kwargs: dict[str, Any], run_dir: Path,
                    nproc_per_node: int, nnodes: int = 1, node_rank: int = 0, rdzv_backend: str = "c10d",
                    rdzv_endpoint: str = "", rdzv_id: str = "medclip", backend: str = "auto",
                    device: str = "auto", seed: int = 0, env: dict[str, str] | None = None) -> None:
    """Run :func:`medlib.train.train` ``(bundle, data, run_dir=run_dir, **kwargs)`` under torchrun; return when it
    has finished."""
    run_dir = Path(run_dir)
    spec_dir = run_dir / "launch"
    shutil.rmtree(spec_dir, ignore_errors=True)
    spec_dir.mkdir(parents=True)
    try:
        json.dumps(kwargs)
    except TypeError as exc:
        raise MedlibError(f"trainer arguments are not plain values ({exc}); several processes need a JSON run spec. "
                          "Fix: pass plain values (no heads or tensors), or run on one process") from None
    spec = {"model": dataclasses.asdict(model_spec), "seed": seed, "device": device, "backend": backend,
            "kwargs": kwargs, "run_dir": str(run_dir.resolve()),
            "data": _write_data(data, spec_dir)}
    spec_path = spec_dir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc_per_node}", f"--nnodes={nnodes}"]
    if nnodes == 1 and not rdzv_endpoint:
        cmd.append("--standalone")
    else:
        cmd += [f"--rdzv-backend={rdzv_backend}", f"--rdzv-endpoint={rdzv_endpoint}", f"--rdzv-id={rdzv_id}",
                f"--node-rank={node_rank}"]
    cmd += ["-m", "medlib.train.launch", str(spec_path)]
    package_root = str(Path(__file__).resolve().parents[2])
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [child_env.get("PYTHONPATH")] if p])
    log_path = spec_dir / "torchrun.log"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=child_env)
    assert proc.stdout is not None
    try:
        with open(log_path, "wb") as log:
            for chunk in iter(lambda: proc.stdout.read1(4096), b""):  # progress bars use \r: pass chunks through
                log.write(chunk)
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
        rc = proc.wait()
    except BaseException:  # Ctrl-C in the notebook: stop the ranks too
        proc.send_signal(signal.SIGINT)
        proc.wait()
        raise
    if rc != 0:
        last = run_dir / "last.pt"
        resume = (f"run again to resume from {last}" if last.is_file()
                  else "run again (no checkpoint yet: it starts over)")
        detail = failure(spec_dir, rc)
        fix = (f"; then {resume} (every rank's output: {log_path})" if ". Fix: " in detail
               else f". Fix: see every rank's output in {log_path}; {resume}")
        raise MedlibError(f"{run_dir}: distributed training failed: {detail}{fix}")
    shutil.rmtree(spec_dir, ignore_errors=True)


# torchrun's failure summary: "rank      : 1 (local_rank: 1)" then "exitcode  : -9 (pid: 123)"
_SUMMARY = re.compile(r"rank\s*:\s*(\d+)\s*\(local_rank:\s*\d+\)\s*\n\s*exitcode\s*:\s*(-?\d+)")


def failure(spec_dir: Path, rc: int) -> str:
    """Which rank failed first, and how: its own one-line error; else, for a rank that left none (killed, or
    died in C code), the signal or exit code torchrun reported for it; else the rank that lost its connection
    to the others. Ranks report the loss of a peer as gloo/NCCL errors: those are never quoted."""
    errors = [json.loads(p.read_text()) for p in sorted(spec_dir.glob("error-rank*.json"),
                                                         key=lambda p: p.stat().st_mtime_ns)]
    own = [e for e in errors if not e["lost_peer"]]
    if own:
        return f"rank {own[0]['rank']}: {own[0]['message']}"
    log = spec_dir / "torchrun.log"
    text = log.read_text(errors="replace")[-65536:] if log.is_file() else ""
    codes = {int(r): int(c) for r, c in _SUMMARY.findall(text)}
    found = _SUMMARY.search(text.split("Root Cause", 1)[1]) if "Root Cause" in text else None
    root = int(found.group(1)) if found else None  # torchrun's "first observed failure"
    reported = {e["rank"] for e in errors}
    started = sorted(int(p.stem.removeprefix("started-rank")) for p in spec_dir.glob("started-rank*.txt"))
    silent = [r for r in started if r not in reported]  # ended without a word: the likely cause
    if root is not None and root not in reported and root not in silent:
        silent.append(root)
    # torchrun SIGTERMs the other ranks after a failure: a rank ended otherwise comes first, then its root cause
    silent.sort(key=lambda r: (codes.get(r) == -signal.SIGTERM, r != root))
    if silent:
        return f"rank {silent[0]} {_how(codes.get(silent[0]))}"
    if errors:
        return f"rank {errors[0]['rank']} lost its connection to the other ranks"
    return f"torchrun exited with code {rc}"


def _how(code: int | None) -> str:
    if code is None:
        return "stopped without an error message (killed?)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (kill -9, or the out-of-memory killer)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code}"


def _write_data(data: Any, spec_dir: Path) -> dict[str, Any]:
    """The train/val splits as .npy files (opened memory-mapped by the ranks) + the bundle's fields."""
    splits = {}
    for name in ("train", "val"):
        if name not in data.splits:
            continue
        s = data.splits[name]
        images = str(spec_dir / f"{name}_images.npy")
        src = getattr(s.images, "filename", None)  # a whole memory-mapped prepared split: the ranks map it too
        if isinstance(s.images, np.memmap) and src and str(src).endswith(".npy") and \
                np.load(src, mmap_mode="r").shape == s.images.shape:
            images = str(src)
        else:
            np.save(images, np.ascontiguousarray(s.images))
        np.save(spec_dir / f"{name}_labels.npy", np.asarray(s.labels))
        splits[name] = {"images": images, "captions": None if s.captions is None else list(map(str, s.captions)),
                        "ids": None if getattr(s, "ids", None) is None else list(map(str, s.ids))}
    return {"name": data.name, "task": data.task, "class_names": list(map(str, data.class_names)),
            "source": data.source, "synthetic": bool(data.synthetic), "domain": data.domain, "splits": splits}


def _read_data(meta: dict[str, Any], spec_dir: Path) -> Any:
    from ..data.base import DatasetBundle, Split

    splits = {name: Split(images=np.load(s["images"], mmap_mode="r"),
                          labels=np.load(spec_dir / f"{name}_labels.npy"), captions=s["captions"], ids=s["ids"])
              for name, s in meta["splits"].items()}
    return DatasetBundle(name=meta["name"], task=meta["task"], class_names=meta["class_names"], splits=splits,
                         source=meta["source"], synthetic=meta["synthetic"], domain=meta["domain"])


# ---- one rank ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    import torch
    import torch.distributed as dist

    spec_path = Path((argv or sys.argv[1:])[0])
    spec = json.loads(spec_path.read_text())
    rank, local_rank = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    (spec_path.parent / f"started-rank{rank}.txt").write_text(f"{os.getpid()}\n")
    try:
        use_cuda = spec["device"] != "cpu" and torch.cuda.is_available()
        backend = spec["backend"] if spec["backend"] != "auto" else ("nccl" if use_cuda else "gloo")
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend)
        from ..config import ModelSpec, TrainConfig
        from ..models import load_model
        from .variants import train

        device = torch.device(f"cuda:{local_rank}") if use_cuda else torch.device("cpu")
        bundle = load_model(ModelSpec(**spec["model"]), device, seed=spec["seed"])
        data = _read_data(spec["data"], spec_path.parent)
        kw = dict(spec["kwargs"])
        kw["cfg"] = TrainConfig(**kw["cfg"])
        _install_fault(rank)
        train(bundle, data, run_dir=Path(spec["run_dir"]), progress=rank == 0, **kw)
        dist.barrier()
        dist.destroy_process_group()
        return 0
    except BaseException as exc:  # noqa: BLE001 - every failure becomes the one line the launcher shows
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        msg = line if isinstance(exc, MedlibError) else f"{type(exc).__name__}: {line}"
        report = {"rank": rank, "message": msg[:300], "lost_peer": _lost_peer(exc)}
        (spec_path.parent / f"error-rank{rank}.json").write_text(json.dumps(report))
        print(f"medclip: rank {rank}: {msg}", file=sys.stderr, flush=True)
        return 1


def _lost_peer(exc: BaseException) -> bool:
    """True for the error a rank gets when another rank is gone: a collective's broken connection or timeout."""
    import torch.distributed as dist

    text = str(exc)
    return isinstance(exc, dist.DistError) or any(
        k in text for k in ("gloo", "NCCL", "Connection reset", "Connection closed", "Broken pipe"))


def _install_fault(rank: int) -> None:
    """Test hook: ``MEDLIB_TRAIN_FAULT=kill:1:2:0`` SIGKILLs rank 1 after batch 0 of epoch 2 (``raise``: fails)."""
    fault = os.environ.get(FAULT_ENV)
    if not fault:
        return
    kind, f_rank, f_epoch, f_batch = fault.split(":")
    if int(f_rank) != rank:
        return
    from . import engine

    init = engine.Engine.__init__

    def patched(self, *a, **k):
        init(self, *a, **k)

        def on_step(epoch: int, batch: int) -> None:
            if (epoch, batch) == (int(f_epoch), int(f_batch)):
                if kind == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise MedlibError(f"injected fault at epoch {epoch} batch {batch}. Fix: unset {FAULT_ENV}")

        self.on_step = on_step

    engine.Engine.__init__ = patched


if __name__ == "__main__":
    raise SystemExit(main())

"""The run manifest: reports/<profile>/manifest.json.

Records what is needed to repeat a run: git commit and dirty flag, package versions, the profile
(and its hash), seed, device, the exact command, and wall time per notebook.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from ..config import Profile
from ..files import write_json

PACKAGES = ("medlib", "torch", "torchvision", "open_clip_torch", "medmnist", "numpy", "scikit-learn", "pandas",
            "matplotlib", "datasets", "papermill")


def git_state(repo: Path | None = None) -> dict[str, Any]:
    """{"commit": sha or None, "dirty": bool or None} of the repository holding ``repo`` (default: cwd)."""
    cwd = str(repo or Path.cwd())
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=10)
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"commit": commit, "dirty": dirty}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info(device: str = "auto") -> dict[str, Any]:
    info: dict[str, Any] = {"requested": device, "platform": platform.platform(), "python": sys.version.split()[0],
                            "processor": platform.processor() or platform.machine()}
    try:
        import torch

        info["cuda_available"] = bool(torch.cuda.is_available())
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
        info["torch_threads"] = torch.get_num_threads()
    except Exception:  # pragma: no cover - torch is a hard dependency
        pass
    return info


def manifest_path(profile: Profile) -> Path:
    return profile.reports_path / "manifest.json"


def read_manifest(profile: Profile) -> dict[str, Any]:
    p = manifest_path(profile)
    if p.is_file():
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError:
            return {}
    return {}


def start_manifest(profile: Profile, command: str, notebooks: list[str],
                   datasets: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write the manifest at the start of a run; keeps timings of notebooks this run does not re-run.
    ``datasets``: what the runner knows of each dataset's origin before any notebook runs (the rehearsal's
    fixtures: ``{"synthetic": True, "origin": "generated (ChestMNIST layout)"}``); the report reads it."""
    old = read_manifest(profile)
    timings = old.get("notebooks", {}) if old.get("profile_hash") == profile.hash() else {}
    manifest = {
        "profile": profile.name,
        "kind": profile.kind,
        "profile_hash": profile.hash(),
        "profile_config": profile.to_dict(),
        "seed": profile.seed,
        "data_dir": profile.data_dir,
        "command": command,
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(),
        "packages": package_versions(),
        "device": device_info(profile.device),
        "notebooks": {k: v for k, v in timings.items()},
        "planned": notebooks,
        **({"datasets": datasets} if datasets else {}),
    }
    write_json(manifest_path(profile), manifest)
    return manifest


def record_notebook(profile: Profile, notebook: str, seconds: float, status: str, executed: str,
                    extra: dict[str, Any] | None = None) -> None:
    """Add one notebook's wall time and status (and ``extra``, e.g. peak memory) to the manifest (atomic
    read-modify-write)."""
    manifest = read_manifest(profile)
    manifest.setdefault("notebooks", {})[notebook] = {"seconds": round(seconds, 1), "status": status,
                                                      "executed": executed, **(extra or {})}
    manifest["wall_time_s"] = round(sum(v["seconds"] for v in manifest["notebooks"].values()), 1)
    manifest["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    write_json(manifest_path(profile), manifest)


class PeakMemory:
    """``with PeakMemory() as pm: ...; pm.result()``: the largest resident set (MB) of this process's children
    (the notebook's kernel) and, where ``nvidia-smi`` is present, the most GPU memory they used, sampled every
    ``every`` seconds in a background thread. (Sampling from outside, because the kernel is another process.)"""

    def __init__(self, every: float = 0.5):
        import threading

        self.every, self.peak_rss, self.peak_gpu = every, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import shutil

        try:
            import psutil
        except ImportError:  # pragma: no cover - psutil comes with jupyter
            return
        smi = shutil.which("nvidia-smi")
        me = psutil.Process()
        tick = 0
        while not self._stop.wait(self.every):
            try:
                kids = me.children(recursive=True)
                rss = sum(k.memory_info().rss for k in kids)
            except psutil.Error:
                continue
            self.peak_rss = max(self.peak_rss, rss / 2**20)
            tick += 1
            if smi and tick % 4 == 1:
                self.peak_gpu = max(self.peak_gpu, _gpu_used_mb(smi, {k.pid for k in kids}))

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def result(self) -> dict[str, float]:
        out = {"peak_rss_mb": round(self.peak_rss)} if self.peak_rss else {}
        if self.peak_gpu:
            out["peak_gpu_mb"] = round(self.peak_gpu)
        return out


def _gpu_used_mb(smi: str, pids: set[int]) -> float:
    try:
        res = subprocess.run([smi, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 0.0
    used = 0.0
    for line in res.stdout.splitlines():
        parts = [x.strip() for x in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit() and int(parts[0]) in pids:
            try:
                used += float(parts[1])
            except ValueError:
                pass
    return used

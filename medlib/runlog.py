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

from .config import Profile
from .io import write_json

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


def start_manifest(profile: Profile, command: str, notebooks: list[str]) -> dict[str, Any]:
    """Write the manifest at the start of a run; keeps timings of notebooks this run does not re-run."""
    old = read_manifest(profile)
    timings = old.get("notebooks", {}) if old.get("profile_hash") == profile.hash() else {}
    manifest = {
        "profile": profile.name,
        "smoke": profile.smoke,
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
    }
    write_json(manifest_path(profile), manifest)
    return manifest


def record_notebook(profile: Profile, notebook: str, seconds: float, status: str, executed: str) -> None:
    """Add one notebook's wall time and status to the manifest (atomic read-modify-write)."""
    manifest = read_manifest(profile)
    manifest.setdefault("notebooks", {})[notebook] = {"seconds": round(seconds, 1), "status": status,
                                                      "executed": executed}
    manifest["wall_time_s"] = round(sum(v["seconds"] for v in manifest["notebooks"].values()), 1)
    manifest["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    write_json(manifest_path(profile), manifest)

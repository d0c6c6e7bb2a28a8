"""The run manifest: reports/<profile>/manifest.json.

Records what is needed to repeat a run: git commit and dirty flag, package versions, the profile (and its hash),
the ``--set`` overrides, seed, device, the exact command, and -- one entry per notebook, kept across runs -- what
each notebook's outputs were made with: its status and wall time, when it finished, the settings it ran with (the
profile hash, the hash of the sections it reads, the overrides), the command that ran it, and the finish time of
each notebook upstream of it that it read (:data:`READS`).

:func:`stale` names every notebook whose outputs no longer match the latest run (other settings, or an upstream
notebook re-run after it, or a stale upstream), :func:`refresh_command` the one command that brings them up to
date, :func:`reproduce_command` the command that runs everything with the latest settings.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from ..config import Profile, format_overrides
from ..files import write_json

PACKAGES = ("medlib", "torch", "torchvision", "open_clip_torch", "medmnist", "numpy", "scikit-learn", "pandas",
            "matplotlib", "datasets", "papermill")

# Which earlier notebooks' outputs each notebook reads (by number): the data of 01 (every notebook), zero-shot
# runs of 02, the fine-tunes of 03/04 (04's PubMedVision table reads 03's; 05's diagnosis reads the best of 03/04),
# 05's remedies (06's paired differences). 07 reads only the data.
READS: dict[str, tuple[str, ...]] = {"01": (), "02": ("01",), "03": ("01", "02"), "04": ("01", "02", "03"),
                                     "05": ("01", "02", "03", "04"), "06": ("01", "02", "03", "04", "05"),
                                     "07": ("01",)}
# The profile sections each notebook's outputs depend on (its settings hash); a change elsewhere leaves it current.
_BASE = ("kind", "seed", "device", "models", "datasets", "zero_shot")
_TRAINED = _BASE + ("seeds", "seeded_methods")
SECTIONS: dict[str, tuple[str, ...]] = {"01": ("kind", "seed", "datasets"), "02": _BASE,
                                        "03": _TRAINED + ("caption_finetune",), "04": _TRAINED + ("label_finetune",),
                                        "05": _TRAINED + ("imbalance",),
                                        "06": _TRAINED + ("sota", "label_finetune", "caption_finetune"),
                                        "07": _TRAINED + ("retrieval_study",)}
# What a dataset spec says of the data only in notebook 01's tables (and the report): not a setting of the others.
DESCRIPTIVE = ("description", "citation", "license")


def settings_of(config: dict[str, Any], notebook: str) -> dict[str, Any]:
    """The part of a profile (``Profile.to_dict()``) that notebook ``notebook`` (a stem or its number) depends on."""
    nn = notebook[:2]
    keys = SECTIONS.get(nn, tuple(k for k in config if k not in ("data_dir", "reports_dir", "runs_dir")))
    out = {k: config.get(k) for k in keys}
    if nn != "01" and isinstance(out.get("datasets"), list):
        out["datasets"] = [{k: v for k, v in d.items() if k not in DESCRIPTIVE} if isinstance(d, dict) else d
                           for d in out["datasets"]]
    return out


def settings_hash(config: dict[str, Any], notebook: str) -> str:
    """sha256 (first 12 hex) of :func:`settings_of`: equal hashes, equal settings for that notebook."""
    blob = json.dumps(settings_of(config, notebook), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


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
                   datasets: dict[str, dict[str, Any]] | None = None, profile_arg: str | None = None,
                   overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the manifest at the start of a run: the run's settings (``profile_config``, ``overrides``,
    ``profile_arg``: the --profile given, a name or a YAML path) replace the previous run's; every notebook's entry
    is kept, whatever settings it ran with (:func:`stale` compares them). ``datasets``: what the runner knows of
    each dataset's origin before any notebook runs (the rehearsal's fixtures); the report reads it."""
    old = read_manifest(profile)
    config = profile.to_dict()
    configs = dict(old.get("profile_configs") or {})
    entries = dict(old.get("notebooks") or {})
    for stem, e in entries.items():  # entries of a manifest that kept no per-notebook settings: the old run's
        if isinstance(e, dict) and "profile_hash" not in e and old.get("profile_hash"):
            e.setdefault("profile_hash", old["profile_hash"])
            if isinstance(old.get("profile_config"), dict):
                configs.setdefault(old["profile_hash"], old["profile_config"])
                e.setdefault("settings_hash", settings_hash(old["profile_config"], stem))
    configs[profile.hash()] = config
    manifest = {
        "profile": profile.name,
        "profile_arg": profile_arg or profile.name,
        "kind": profile.kind,
        "profile_hash": profile.hash(),
        "profile_config": config,
        "overrides": dict(overrides or {}),
        "seed": profile.seed,
        "data_dir": profile.data_dir,
        "command": command,
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(),
        "packages": package_versions(),
        "device": device_info(profile.device),
        "data": data_descriptions(profile),
        "notebooks": entries,
        "profile_configs": _referenced(configs, entries, profile.hash()),
        "planned": notebooks,
        **({"datasets": datasets} if datasets else {}),
    }
    if old.get("finished"):
        manifest["finished"] = old["finished"]
    write_json(manifest_path(profile), manifest)
    return manifest


def data_descriptions(profile: Profile) -> dict[str, dict[str, str]]:
    """What the profile says of each dataset, for the report's data section and references: its source (the
    loader), where it is read from (``path``, ``flag``, ``hf_id``), ``description``, ``citation``, ``license``."""
    keys = ("source", "flag", "path", "hf_id", "description", "citation", "license")
    return {d.name: {k: getattr(d, k) for k in keys if getattr(d, k)} for d in profile.datasets}


def _referenced(configs: dict[str, Any], entries: dict[str, Any], latest: str) -> dict[str, Any]:
    used = {latest} | {e.get("profile_hash") for e in entries.values() if isinstance(e, dict)}
    return {h: c for h, c in configs.items() if h in used}


def upstream_finished(manifest: dict[str, Any], notebook: str, stems: list[str]) -> dict[str, str | None]:
    """{upstream stem: when it last finished} for each of ``stems`` (the checkout's notebooks) that ``notebook``
    reads (:data:`READS`; None: never finished). Recorded with ``notebook``'s entry when it starts, so a later
    run of an upstream notebook makes it stale."""
    entries = manifest.get("notebooks") or {}
    return {stem: (entries.get(stem) or {}).get("finished") for stem in sorted(stems)
            if stem[:2] in READS.get(notebook[:2], ())}


def record_notebook(profile: Profile, notebook: str, seconds: float, status: str, executed: str,
                    extra: dict[str, Any] | None = None, reads: dict[str, str | None] | None = None,
                    command: str | None = None) -> None:
    """Replace notebook ``notebook``'s entry (atomic read-modify-write): wall time, status (ok | failed |
    interrupted | skipped), executed copy, when it finished, the settings it ran with, the command, and ``reads``
    (:func:`upstream_finished`, taken when it started); ``extra``: e.g. peak memory."""
    manifest = read_manifest(profile)
    config = manifest.get("profile_config") or profile.to_dict()
    manifest.setdefault("notebooks", {})[notebook] = {
        "seconds": round(seconds, 1), "status": status, "executed": executed, "finished": _now(),
        "profile_hash": manifest.get("profile_hash") or profile.hash(), "settings_hash": settings_hash(config, notebook),
        "overrides": manifest.get("overrides") or {}, "command": command or manifest.get("command"),
        "reads": dict(reads or {}), "commit": (manifest.get("git") or {}).get("commit"), **(extra or {})}
    manifest["profile_configs"] = _referenced(manifest.get("profile_configs") or {}, manifest["notebooks"],
                                              manifest.get("profile_hash"))
    manifest["wall_time_s"] = round(sum(v.get("seconds") or 0 for v in manifest["notebooks"].values()), 1)
    manifest["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    write_json(manifest_path(profile), manifest)


def _changed(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ (lists of named entries compared by name: ``datasets[pneumoniamnist].size``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [c for k in sorted(set(old) | set(new)) for c in _changed(old.get(k), new.get(k), f"{prefix}{k}.")]
    named = (lambda xs: isinstance(xs, list) and xs and all(isinstance(x, dict) and "name" in x for x in xs))
    if named(old) and named(new):
        a, b = {x["name"]: x for x in old}, {x["name"]: x for x in new}
        return [c for k in sorted(set(a) | set(b)) for c in _changed(a.get(k), b.get(k), f"{prefix[:-1]}[{k}].")]
    if old == new:
        return []
    short = (lambda v: json.dumps(v) if len(json.dumps(v, default=str)) <= 30 else "...")
    return [f"{prefix[:-1]} {short(old)} -> {short(new)}"]


def stale(manifest: dict[str, Any]) -> dict[str, str]:
    """{notebook stem: one-line reason} for every notebook whose outputs are stale: it ran with other settings than
    the latest run's (in the sections it reads), its last run did not finish, a notebook it reads finished after it
    (or has not finished since), or a notebook it reads is stale. Notebooks in order; {} when all are current."""
    entries = {k: v for k, v in (manifest.get("notebooks") or {}).items() if isinstance(v, dict)}
    latest = manifest.get("profile_config") or {}
    configs = manifest.get("profile_configs") or {}
    out: dict[str, str] = {}
    for stem in sorted(entries):
        e = entries[stem]
        if e.get("status") == "skipped":
            continue
        if e.get("status") != "ok":
            out[stem] = f"its last run {e.get('status') or 'did not finish'}; its outputs are from an earlier run"
            continue
        if latest and e.get("settings_hash") != settings_hash(latest, stem):
            old = configs.get(e.get("profile_hash"))
            diff = _changed(settings_of(old, stem), settings_of(latest, stem)) if old else []
            what = ", ".join(diff[:3]) + (f" and {len(diff) - 3} more" if len(diff) > 3 else "") if diff else \
                f"profile hash {e.get('profile_hash')}, now {manifest.get('profile_hash')}"
            out[stem] = f"ran with other settings than the latest run ({what})"
            continue
        for up, seen in sorted((e.get("reads") or {}).items()):
            if up in out:
                out[stem] = f"reads {up}, which is stale"
                break
            now = (entries.get(up) or {}).get("finished")
            if now != seen:
                out[stem] = f"reads {up}, which ran again after it" if seen else f"ran before {up} had finished"
                break
    return out


def profile_arg_of(arg: str, root: Path) -> str:
    """The --profile as the manifest keeps it: a name, or a YAML path relative to the repository when inside it."""
    p = Path(arg)
    if p.suffix not in (".yaml", ".yml"):
        return arg
    try:
        return str(p.resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(p.resolve())


def command_for(manifest: dict[str, Any], *args: str) -> str:
    """``./run_all.sh --profile <the run's --profile> [--set k=v ...] <args>``: the latest run's settings."""
    sets = [a for kv in format_overrides(manifest.get("overrides") or {}) for a in ("--set", kv)]
    words = ["--profile", str(manifest.get("profile_arg") or manifest.get("profile") or "full"), *sets, *args]
    return " ".join(["./run_all.sh", *(shlex.quote(w) for w in words)])


def refresh_command(manifest: dict[str, Any]) -> str:
    """The one command that re-runs every stale notebook (:func:`stale`) with the latest run's settings, and
    nothing else (``--only 04,05,06``); '' when nothing is stale."""
    nums = sorted({stem[:2] for stem in stale(manifest)})
    return command_for(manifest, "--only", ",".join(nums)) if nums else ""


def reproduce_command(manifest: dict[str, Any]) -> str:
    """The command that runs every notebook with the latest run's settings (and writes the report)."""
    return command_for(manifest)


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

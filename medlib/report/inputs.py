"""Reading ``reports/<profile>/`` for the report: manifest, metrics files, tables, figures (and their vector copies),
the test labels of the predictions files (majority-class rate), which datasets are generated stand-ins, which runs
are degenerate, and which notebooks' outputs are stale. Reads only.

Every string read here is data: it passes :func:`~.escape.from_data` on its way in, so it is shown as text."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config.schema import RUN_KINDS
from ..errors import fail
from ..outputs.records import NOT_RESULTS, read_metrics
from ..config.notebooks import NOTEBOOKS
from ..run import manifest as run_manifest
from .escape import from_data
from .formatting import _truthy

TABLE_NOTEBOOK = {"data_summary": "01", "data_splits": "01", "skipped_datasets": "01", "sota_comparison": "06",
                  "paired_differences": None}
RUN_FIELDS = ("run", "notebook", "dataset", "model", "method", "task", "metrics")


class Inputs:
    """Everything the report reads from reports/<profile>/."""

    def __init__(self, base: Path, profile_name: str):
        if not base.is_dir():
            raise fail(base, "no reports folder for this profile",
                       f"run ./run_all.sh --profile {profile_name} first (or pass --reports-dir)")
        self.base, self.profile = base, from_data(profile_name)
        self.manifest = self._manifest()
        self.runs = [self._run(p) for p in sorted((base / "metrics").glob("*.json"))]
        self.tables = {p.stem: self._csv(p) for p in sorted((base / "tables").glob("*.csv"))}
        self.figures = sorted((base / "figures").glob("*.png"))
        cfg = self.manifest.get("profile_config")
        self.cfg = cfg if isinstance(cfg, dict) else {}
        self.models = [m for m in (self.cfg.get("models") or []) if isinstance(m, dict)]
        self.run_type = self._run_type()
        self.notebooks = self._notebook_names()
        self.synthetic = self._synthetic()
        self._majority: dict[str, float | None] = {}
        proj = base / "projection.csv"
        self.projection = self._csv(proj) if proj.is_file() else None
        self.by_run = {str(r["run"]): r for r in self.runs}
        self.stale, self.refresh = self._staleness()

    def _manifest(self) -> dict[str, Any]:
        path = self.base / "manifest.json"
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise fail(path, "unreadable manifest", "delete it and re-run ./run_all.sh") from None
        if not isinstance(data, dict):
            raise fail(path, "manifest is not a JSON object", "delete it and re-run ./run_all.sh")
        return from_data(data)

    @staticmethod
    def _run(path: Path) -> dict[str, Any]:
        rec = read_metrics(path)
        missing = [k for k in RUN_FIELDS if k not in rec]
        if missing:
            raise fail(path, f"metrics file lacks {missing}", "delete it and re-run the notebook that wrote it")
        return from_data(rec)

    @staticmethod
    def _csv(path: Path) -> pd.DataFrame:
        try:
            return from_data(pd.read_csv(path).drop(columns=[NOT_RESULTS], errors="ignore"))
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise fail(path, f"unreadable table ({type(exc).__name__})",
                       "delete it and re-run the notebook that wrote it") from None

    def _run_type(self) -> str:
        """SMOKE | REHEARSAL | FULL from the run's ``kind`` (the manifest's, as the runner wrote it; a manifest
        written before runs had a kind: its ``smoke`` flag, or a ``-rehearsal`` profile name)."""
        kind = self.manifest.get("kind") or self.cfg.get("kind")
        if not kind:
            smoke = self.manifest.get("smoke", self.cfg.get("smoke"))
            rehearsal = str(self.manifest.get("profile") or self.profile).endswith("-rehearsal")
            kind = "smoke" if _truthy(smoke) else "rehearsal" if rehearsal else "real"
        return RUN_KINDS.get(str(kind)) or "FULL"

    def _synthetic(self) -> dict[str, bool]:
        """dataset -> True when it is a generated stand-in (data_summary.csv, metrics files, the manifest)."""
        out: dict[str, bool] = {}
        for name in ("data_summary", "data_splits"):
            df = self.tables.get(name)
            if df is not None and {"dataset", "synthetic"} <= set(df.columns):
                for ds, syn in zip(df["dataset"].astype(str), df["synthetic"]):
                    out[ds] = out.get(ds, False) or _truthy(syn)
        for r in self.runs:
            if "synthetic" in r:
                out[str(r["dataset"])] = out.get(str(r["dataset"]), False) or _truthy(r["synthetic"])
        data = self.manifest.get("datasets")
        if isinstance(data, dict):
            for ds, info in data.items():
                if isinstance(info, dict) and "synthetic" in info:
                    out[str(ds)] = out.get(str(ds), False) or _truthy(info["synthetic"])
        return out

    def _notebook_names(self) -> dict[str, str]:
        names = dict(NOTEBOOKS)
        found = [r.get("notebook", "") for r in self.runs] + list((self.manifest.get("notebooks") or {}))
        found += [from_data(p.stem) for p in (self.base / "executed").glob("*.ipynb")]
        for nb in found:
            nb = Path(str(nb)).stem
            if re.match(r"^\d{2}_", nb):
                names[nb[:2]] = nb
        return names

    def _staleness(self) -> tuple[dict[str, str], str]:
        """{notebook number: why its outputs are stale} and the one command that refreshes them, from the manifest's
        provenance (:func:`medlib.run.manifest.stale`, :func:`~medlib.run.manifest.refresh_command`)."""
        if not self.manifest:
            return {}, ""
        try:
            found = run_manifest.stale(self.manifest)
            command = run_manifest.refresh_command(self.manifest) if found else ""
        except (KeyError, TypeError, ValueError, AttributeError):  # a manifest of another shape: nothing is marked
            return {}, ""
        return {str(nb)[:2]: from_data(str(why)) for nb, why in found.items()}, from_data(command)

    def stale_note(self, *notebooks: str | None) -> str:
        """' STALE: ...' for outputs built from any of ``notebooks`` (numbers or names) whose outputs are stale."""
        hit = [(nb[:2], self.stale[nb[:2]]) for nb in dict.fromkeys(str(n) for n in notebooks if n)
               if nb[:2] in self.stale]
        if not hit:
            return ""
        why = "; ".join(f"notebook {nn}: {reason}" for nn, reason in hit)
        return f" STALE ({why}); refresh with `{self.refresh or './run_all.sh --profile ' + self.profile}`."

    def degenerate(self, run: dict[str, Any] | str | None) -> str | None:
        """Why a run's decisions ignore the image, or None: the metrics file's ``degenerate`` where it records one;
        otherwise read from its per-class results (multi-label: no label ever predicted positive, every recall 0;
        multiclass: one class predicted for every image)."""
        rec = self.by_run.get(run) if isinstance(run, str) else run
        if not rec:
            return None
        if "degenerate" in rec:
            return str(rec["degenerate"]) if rec["degenerate"] else None
        per = rec.get("per_class") or {}
        vals = [v for v in per.values() if isinstance(v, dict)]
        if not vals or rec.get("task") not in ("multiclass", "multilabel"):
            return None
        if rec["task"] == "multilabel":
            pred = [v.get("predicted") for v in vals]
            if all(p is not None for p in pred):
                return f"no positive prediction on any of its {len(vals)} labels" if not any(pred) else None
            if all(float(v.get("recall") or 0) == 0 and float(v.get("precision") or 0) == 0 for v in vals):
                return f"recall 0 on every one of its {len(vals)} labels at its decision threshold"
            return None
        present = [(k, v) for k, v in per.items() if isinstance(v, dict) and (v.get("support") or 0) > 0]
        full = [k for k, v in present if float(v.get("recall") or 0) == 1.0]
        if len(present) > 1 and len(full) == 1 and all(float(v.get("recall") or 0) == 0 for k, v in present
                                                         if k != full[0]):
            return f"predicts one class only ({full[0]})"
        return None

    def task_of(self, ds: str) -> str | None:
        for r in self.runs:
            if r["dataset"] == ds and r.get("task"):
                return str(r["task"])
        for name in ("data_summary", "data_splits"):
            df = self.tables.get(name)
            if df is not None and {"dataset", "task"} <= set(df.columns):
                hit = df[df["dataset"].astype(str) == ds]
                if len(hit):
                    return str(hit["task"].iloc[0])
        return None

    def vector(self, png: Path) -> Path:
        """The figure's vector copy beside its PNG (``<name>.pdf``) where the notebook wrote one, else the PNG."""
        pdf = png.with_suffix(".pdf")
        try:
            ok = pdf.is_file() and pdf.read_bytes()[:5] == b"%PDF-"
        except OSError:
            ok = False
        return pdf if ok else png

    def generated(self) -> list[str]:
        return sorted(d for d, s in self.synthetic.items() if s)

    def data_kind(self, ds: str) -> str:
        return "GENERATED" if self.synthetic.get(ds) else ("real" if ds in self.synthetic else "unknown")

    def nn_of(self, name: str) -> str | None:
        return name[:2] if re.match(r"^\d{2}_", name) else TABLE_NOTEBOOK.get(name)

    def names_for(self, nn: str | None) -> str:
        return self.notebooks.get(nn or "", "an unknown notebook")

    def runs_of(self, nn: str) -> list[dict[str, Any]]:
        return [r for r in self.runs if str(r.get("notebook", "")).startswith(nn + "_")]

    def main_model(self) -> str | None:
        for m in self.models:
            if m.get("role") == "clip":
                return m.get("name")
        if self.models:
            return self.models[0].get("name")
        models = [r["model"] for r in self.runs_of("04") + self.runs_of("02")]
        return models[0] if models else None

    def aliases(self, model: str) -> set[str]:
        out = {model}
        for m in self.models:
            if model in (m.get("name"), m.get("display")):
                out |= {str(m.get("name")), str(m.get("display"))}
        return out

    def display(self, model: str) -> str:
        for m in self.models:
            if m.get("name") == model and m.get("display"):
                return f"{m['display']} (`{model}`)"
        return f"`{model}`"

    def majority_rate(self, ds: str) -> float | None:
        if ds not in self._majority:
            self._majority[ds] = self._majority_rate(ds)
        return self._majority[ds]

    def _majority_rate(self, ds: str) -> float | None:
        """Share of the most frequent class on the test split of a multiclass dataset, read from the test labels
        of any of its predictions files (the accuracy of always answering that class)."""
        for r in self.runs:
            if r["dataset"] != ds or r.get("task") != "multiclass" or not r.get("predictions"):
                continue
            path = self.base / str(r["predictions"])
            try:
                with np.load(path, allow_pickle=False) as z:
                    y = np.asarray(z["y_true"])
            except (OSError, KeyError, ValueError):
                continue
            if y.ndim == 1 and len(y):
                return float(np.bincount(y.astype(int)).max() / len(y))
        per = next((r.get("per_class") for r in self.runs if r["dataset"] == ds and r.get("task") == "multiclass"
                    and r.get("per_class")), None)  # fallback: test supports in the metrics file
        if per:
            sup = [float(v.get("support") or 0) for v in per.values()]
            return max(sup) / sum(sup) if sum(sup) else None
        return None



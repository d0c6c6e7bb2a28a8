"""The generated report: ``python -m medlib.report --profile <p> [--reports-dir reports]``.

Reads ``reports/<p>/`` (manifest.json, metrics/*.json, tables/*.csv, figures/*.png) and writes
``report.md`` and a self-contained ``report.html`` (figures embedded as base64 PNG) beside them, both
atomically and from scratch. Every number comes from those files; none is typed in here.

Formatting rule (one rule, used everywhere): metric values and floats read from tables are printed with
3 decimals (``0.853``), intervals as ``[0.824, 0.880]``, integers as they are, undefined values as ``n/a``.
Profile and manifest settings (learning rates, seconds, versions) are printed as recorded.
"""

from __future__ import annotations

import argparse
import base64
import html as html_lib
import json
import math
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import markdown
import pandas as pd

from .errors import MedlibError, fail
from .io import write_text
from .results import read_metrics

NOTEBOOKS = {  # the six notebooks of DESIGN.md; names found in the reports folder take precedence
    "01": "01_data_prep", "02": "02_zero_shot_baseline", "03": "03_caption_finetune",
    "04": "04_label_finetune", "05": "05_class_imbalance", "06": "06_sota_comparison",
}
TABLE_NOTEBOOK = {"data_summary": "01", "sota_comparison": "06"}  # tables named without an NN_ prefix
HEADLINE = ("acc", "top3", "balanced_acc", "macro_f1", "auroc", "worst_class_recall", "ece")
PRIMARY = {"multiclass": "acc", "multilabel": "auroc", "retrieval": "mean_recall"}
NOT_RUN = "not run"


# ---- formatting --------------------------------------------------------------------------------------------------


def fmt(value: Any) -> str:
    """The report's one number format: floats with 3 decimals, ints as is, None/NaN as 'n/a'."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.3f}"
    if hasattr(value, "item"):  # numpy scalar
        return fmt(value.item())
    return str(value)


def fmt_ci(ci: Sequence[float] | None) -> str:
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else ""


def fmt_metric(rec: dict[str, Any], name: str) -> str:
    """'0.853 [0.824, 0.880]' from a metrics record (no interval where none was computed)."""
    value = rec["metrics"].get(name)
    ci = (rec.get("ci95") or {}).get(name)
    return f"{fmt(value)} {fmt_ci(ci)}".strip()


def _cfg(value: Any) -> str:
    """Settings as recorded (not rounded): 1e-4 stays 0.0001."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return fmt(value)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-style markdown table (own code: pandas.to_markdown needs the extra 'tabulate' package)."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def df_table(df: pd.DataFrame) -> str:
    def one(v: Any) -> str:
        if isinstance(v, float) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "f"):
            return fmt(float(v))
        if hasattr(v, "item"):
            return fmt(v.item())
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)

    return md_table([str(c) for c in df.columns], [[one(v) for v in row] for row in df.itertuples(index=False)])


# ---- reading the reports folder ----------------------------------------------------------------------------------


class _Inputs:
    """Everything the report reads from reports/<profile>/."""

    def __init__(self, base: Path, profile_name: str):
        if not base.is_dir():
            raise fail(base, "no reports folder for this profile",
                       f"run ./run_all.sh --profile {profile_name} first (or pass --reports-dir)")
        self.base, self.profile = base, profile_name
        self.manifest = self._manifest()
        self.runs = [read_metrics(p) for p in sorted((base / "metrics").glob("*.json"))]
        self.tables = {p.stem: self._csv(p) for p in sorted((base / "tables").glob("*.csv"))}
        self.figures = sorted((base / "figures").glob("*.png"))
        self.smoke = self._smoke()
        self.notebooks = self._notebook_names()

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
        return data

    @staticmethod
    def _csv(path: Path) -> pd.DataFrame:
        try:
            return pd.read_csv(path)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise fail(path, f"unreadable table ({type(exc).__name__})",
                       "delete it and re-run the notebook that wrote it") from None

    def _smoke(self) -> bool:
        m = self.manifest
        if "smoke" in m:
            return bool(m["smoke"])
        if isinstance(m.get("profile_config"), dict) and "smoke" in m["profile_config"]:
            return bool(m["profile_config"]["smoke"])
        try:
            from .config import load_profile

            return load_profile(self.profile).smoke
        except MedlibError:
            return self.profile == "smoke"

    def _notebook_names(self) -> dict[str, str]:
        names = dict(NOTEBOOKS)
        found = [r.get("notebook", "") for r in self.runs] + list((self.manifest.get("notebooks") or {}))
        found += [p.stem for p in (self.base / "executed").glob("*.ipynb")]
        for nb in found:
            nb = Path(str(nb)).stem
            if re.match(r"^\d{2}_", nb):
                names[nb[:2]] = nb
        return names

    def notebook_of(self, name: str) -> str:
        nn = name[:2] if re.match(r"^\d{2}_", name) else TABLE_NOTEBOOK.get(name)
        return self.names_for(nn)

    def names_for(self, nn: str | None) -> str:
        return self.notebooks.get(nn or "", "an unknown notebook (name has no NN_ prefix)")

    def run_by_name(self) -> dict[str, dict[str, Any]]:
        return {r["run"]: r for r in self.runs}


# ---- sections ----------------------------------------------------------------------------------------------------


def _banner(inp: _Inputs) -> list[str]:
    if not inp.smoke:
        return []
    return ["> **SMOKE RUN — not results.** The numbers in this section come from a tiny random-init model "
            "(and small or generated data) run on CPU to test the pipeline; they are not results.", ""]


def _section(inp: _Inputs, title: str, body: list[str]) -> list[str]:
    return [f"## {title}", ""] + _banner(inp) + body + [""]


def _classification_runs(inp: _Inputs) -> list[dict[str, Any]]:
    return [r for r in inp.runs if r.get("task") in ("multiclass", "multilabel")]


def _abstract(inp: _Inputs) -> list[str]:
    if not inp.runs:
        return [f"No evaluated runs were found under `metrics/` ({NOT_RUN})."]
    datasets = sorted({r["dataset"] for r in inp.runs})
    models = sorted({r["model"] for r in inp.runs})
    out = [f"We adapt CLIP models to medical image-text data and evaluate {len(inp.runs)} runs on "
           f"{len(datasets)} dataset(s) ({', '.join(datasets)}) with {len(models)} model(s) "
           f"({', '.join(models)}). Headline numbers (test split, 95% bootstrap interval):", ""]
    for ds in datasets:
        runs = [r for r in inp.runs if r["dataset"] == ds]
        task = runs[0].get("task", "multiclass")
        key = PRIMARY.get(task, "acc")
        scored = [r for r in runs if r["metrics"].get(key) is not None]
        if not scored:
            continue
        best = max(scored, key=lambda r: r["metrics"][key])
        zs = [r for r in scored if "zero" in str(r.get("method", "")).lower()]
        parts = []
        if zs:
            z = max(zs, key=lambda r: r["metrics"][key])
            parts.append(f"zero-shot ({z['model']}) {key} {fmt_metric(z, key)}")
        extra = "" if key != "acc" or best["metrics"].get("auroc") is None else f", auroc {fmt_metric(best, 'auroc')}"
        parts.append(f"highest {key}: {best['notebook']} / {best['model']} / {best['method']}, "
                     f"{key} {fmt_metric(best, key)}{extra}")
        out.append(f"- **{ds}** ({task}, n = {fmt(best.get('n'))}): " + "; ".join(parts) + ".")
    return out


def _data(inp: _Inputs) -> list[str]:
    out = ["### Sources, counts and licences", ""]
    if "data_summary" in inp.tables:
        out += [f"Table: `tables/data_summary.csv` (made by notebook {inp.notebook_of('data_summary')}).", "",
                df_table(inp.tables["data_summary"]), ""]
    else:
        out += [f"`tables/data_summary.csv`: {NOT_RUN}.", ""]
    out += ["### Evaluated splits", ""]
    seen: dict[tuple, Any] = {}
    for r in inp.runs:
        seen.setdefault((r["dataset"], r.get("task"), r.get("split")), r.get("n"))
    if seen:
        out.append(md_table(["dataset", "task", "split", "n"], [[*k, fmt(v)] for k, v in sorted(seen.items(),
                                                                                             key=lambda kv: str(kv[0]))]))
    else:
        out.append(f"No evaluated splits ({NOT_RUN}).")
    if inp.manifest.get("data_dir"):
        out += ["", f"Data directory of the run: `{inp.manifest['data_dir']}`."]
    return out


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _flatten(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _methods(inp: _Inputs) -> list[str]:
    cfg = inp.manifest.get("profile_config")
    out = ["### Models", ""]
    if isinstance(cfg, dict) and cfg.get("models"):
        out.append(md_table(["name", "arch", "pretrained", "role", "display"],
                            [[m.get("name", ""), m.get("arch", ""), m.get("pretrained") or "(random init)",
                              m.get("role", ""), m.get("display", "")] for m in cfg["models"]]))
    else:
        out.append(f"Profile in `manifest.json`: {NOT_RUN}.")
    out += ["", "### Methods evaluated", ""]
    by_nb: dict[str, set] = {}
    for r in inp.runs:
        by_nb.setdefault(r.get("notebook", "?"), set()).add(str(r.get("method")))
    out.append(md_table(["notebook", "methods"], [[nb, ", ".join(sorted(m))] for nb, m in sorted(by_nb.items())])
               if by_nb else f"No evaluated runs ({NOT_RUN}).")
    out += ["", "### Hyper-parameters (from the profile recorded in `manifest.json`)", ""]
    if isinstance(cfg, dict):
        keys = ("seed", "device", "zero_shot", "caption_finetune", "label_finetune", "imbalance", "sota")
        rows = []
        for k in keys:
            if k in cfg:
                rows += _flatten(cfg[k], f"{k}.") if isinstance(cfg[k], dict) else [(k, cfg[k])]
        out.append(md_table(["setting", "value"], [[k, _cfg(v)] for k, v in rows]))
    else:
        out.append(f"{NOT_RUN}.")
    return out


def _runs_table(runs: list[dict[str, Any]]) -> str:
    metrics = [m for m in HEADLINE if any(m in r["metrics"] for r in runs)]
    return md_table(["notebook", "dataset", "model", "method", "split", "n", *metrics],
                    [[r.get("notebook"), r["dataset"], r["model"], r["method"], r.get("split"), fmt(r.get("n")),
                      *[fmt_metric(r, m) if m in r["metrics"] else "" for m in metrics]]
                     for r in sorted(runs, key=lambda r: r["run"])])


def _retrieval_table(runs: list[dict[str, Any]]) -> str:
    metrics = list(dict.fromkeys(k for r in runs for k in r["metrics"]))
    return md_table(["notebook", "dataset", "model", "method", "n", *metrics],
                    [[r.get("notebook"), r["dataset"], r["model"], r["method"], fmt(r.get("n")),
                      *[fmt_metric(r, m) if m in r["metrics"] else "" for m in metrics]]
                     for r in sorted(runs, key=lambda r: r["run"])])


def _tables(inp: _Inputs, names: list[str]) -> list[str]:
    out = []
    for name in names:
        out += [f"**Table `tables/{name}.csv`** — made by notebook {inp.notebook_of(name)}.", "",
                df_table(inp.tables[name]), ""]
    return out


def _figure_caption(inp: _Inputs, path: Path, number: int) -> str:
    stem = path.stem
    nb = inp.notebook_of(stem)
    rest = stem[3:] if re.match(r"^\d{2}_", stem) else stem
    parts = rest.split("__")
    what = parts[0].replace("_", " ")
    cap = f"Figure {number}: {what}"
    if len(parts) > 1:
        cap += " — " + " / ".join(parts[1:])
    cap += f". Made by notebook {nb}"
    run = f"{nb}__{'__'.join(parts[1:])}" if len(parts) == 4 else ""
    if run and run in inp.run_by_name():
        cap += f", run `{run}`"
    return cap + f" (`figures/{path.name}`)."


def _figures(inp: _Inputs, paths: list[Path], counter: list[int], img: Callable[[Path], str]) -> list[str]:
    out = []
    for p in paths:
        counter[0] += 1
        cap = _figure_caption(inp, p, counter[0])
        out += [f"![Figure {counter[0]}: {p.stem}]({img(p)})", "", f"*{cap}*", ""]
    return out


def _class_balance(inp: _Inputs) -> list[str]:
    out = []
    for ds in sorted({r["dataset"] for r in _classification_runs(inp)}):
        runs = [r for r in _classification_runs(inp) if r["dataset"] == ds and r.get("per_class")]
        if not runs:
            continue
        ref = max(runs, key=lambda r: r.get("n") or 0)
        support = {k: v.get("support", 0) for k, v in ref["per_class"].items()}
        total = ref.get("n") or sum(support.values()) or 1
        out += [f"**{ds}** — examples per class (support) in the {ref.get('split')} split (n = {fmt(ref.get('n'))}), "
                f"from `{ref['predictions']}`; share = count / n:", "",
                md_table(["class", "count", "share"], [[k, fmt(int(v)), fmt(v / total)] for k, v in support.items()]),
                ""]
        imb = [r for r in runs if r.get("notebook", "").startswith("05")] or runs
        classes = list(ref["per_class"])
        out += [f"Per-class recall on {ds} ({'notebook 05 runs' if imb is not runs else 'all runs'}):", "",
                md_table(["notebook", "model", "method", "worst_class_recall", *classes],
                         [[r.get("notebook"), r["model"], r["method"], fmt_metric(r, "worst_class_recall"),
                           *[fmt(r["per_class"].get(c, {}).get("recall")) for c in classes]]
                          for r in sorted(imb, key=lambda r: r["run"])]), ""]
    return out or [f"No per-class results ({NOT_RUN}).", ""]


def _limitations(inp: _Inputs) -> list[str]:
    out = []
    if inp.smoke:
        out.append("- This is a SMOKE run: a tiny randomly initialised model, few epochs, small or generated data. "
                   "It checks that the pipeline runs; none of its numbers is a result.")
    summary = inp.tables.get("data_summary")
    if summary is not None and "synthetic" in summary.columns and "dataset" in summary.columns:
        syn = sorted(summary.loc[summary["synthetic"].astype(str).str.lower().isin(["true", "1", "yes"]),
                                 "dataset"].astype(str).unique())
        if syn:
            out.append(f"- Generated stand-in data (not the real dataset) was used for: {', '.join(syn)}.")
    out += ["- Each test split is evaluated once; intervals are percentile bootstraps over test rows and do not "
            "include training randomness (seeds) or the choice among runs.",
            "- Picking the highest of several runs on the test split (as the abstract does for a summary) is "
            "optimistic; model selection inside the notebooks uses the validation split only.",
            "- Published numbers are quoted, not reproduced; they are compared only where split and metric match "
            "(see the `note` column of the comparison table)."]
    ci = [(r["run"], m, v[1] - v[0]) for r in inp.runs for m, v in (r.get("ci95") or {}).items() if v]
    if ci:
        run, m, width = max(ci, key=lambda t: t[2])
        out.append(f"- Widest 95% interval: {m} of `{run}` spans {fmt(width)}.")
    missing = [f"{nn} ({name})" for nn, name in sorted(inp.notebooks.items())
               if not any(r.get("notebook", "").startswith(nn) for r in inp.runs)
               and not any(p.name.startswith(nn + "_") for p in inp.figures)
               and not any(t.startswith(nn + "_") or TABLE_NOTEBOOK.get(t) == nn for t in inp.tables)]
    if missing:
        out.append(f"- Notebooks with no outputs in this folder ({NOT_RUN}): {', '.join(missing)}.")
    return out


def _reproducibility(inp: _Inputs, reports_arg: str) -> list[str]:
    m = inp.manifest
    regen = f"python -m medlib.report --profile {inp.profile} --reports-dir {reports_arg}"
    if not m:
        return [f"`manifest.json`: {NOT_RUN}.", "", f"Regenerate this report: `{regen}`"]
    git = m.get("git") or {}
    dev = m.get("device") or {}
    rows = [("git commit", git.get("commit")), ("uncommitted changes (dirty)", git.get("dirty")),
            ("profile", m.get("profile", inp.profile)), ("profile hash", m.get("profile_hash")),
            ("seed", m.get("seed")), ("device", ", ".join(f"{k}: {v}" for k, v in dev.items()) if isinstance(dev, dict)
                                      else dev),
            ("data dir", m.get("data_dir")), ("started", m.get("started")), ("finished", m.get("finished")),
            ("total notebook wall time (s)", m.get("wall_time_s"))]
    out = [md_table(["item", "value"], [[k, _cfg(v)] for k, v in rows if v is not None or k.startswith("git")]), ""]
    nbs = m.get("notebooks") or {}
    if nbs:
        out += ["Wall time per notebook:", "",
                md_table(["notebook", "seconds", "status", "executed copy"],
                         [[k, _cfg(v.get("seconds")) if isinstance(v, dict) else _cfg(v),
                           v.get("status", "") if isinstance(v, dict) else "",
                           v.get("executed", "") if isinstance(v, dict) else ""] for k, v in sorted(nbs.items())]),
                ""]
    pk = m.get("packages") or m.get("versions") or {}
    if pk:
        out += ["Package versions:", "", md_table(["package", "version"], [[k, _cfg(v)] for k, v in pk.items()]), ""]
    cmd = m.get("command")
    out += [f"Exact command: `{cmd}`" if cmd else f"Exact command: {NOT_RUN} (not in the manifest).", "",
            f"Regenerate this report: `{regen}`"]
    return out


# ---- assembling --------------------------------------------------------------------------------------------------


def _markdown(inp: _Inputs, img: Callable[[Path], str], reports_arg: str) -> str:
    title = f"medclip: adapting CLIP to medical image-text data — profile `{inp.profile}`"
    if inp.smoke:
        title = f"SMOKE — {title}"
    lines = [f"# {title}", ""] + _banner(inp)
    lines += [f"Generated by `python -m medlib.report --profile {inp.profile}` from `{inp.base}`. Every number is "
              "read from `metrics/*.json` or `tables/*.csv`. Format: 3 decimals; intervals are 95% bootstrap "
              "percentile intervals.", ""]
    by_nb = {nn: [p for p in inp.figures if p.name.startswith(nn + "_")] for nn in ("05", "06")}
    other_figs = [p for p in inp.figures if p not in by_nb["05"] + by_nb["06"]]
    t_special = {"data_summary", "sota_comparison"}
    t_imb = [t for t in inp.tables if t.startswith("05_") or "imbalance" in t]
    t_sota = [t for t in inp.tables if t.startswith("06_") and t not in t_special]
    t_other = [t for t in inp.tables if t not in t_special and t not in t_imb and t not in t_sota]
    counter = [0]

    lines += _section(inp, "Abstract", _abstract(inp))
    lines += _section(inp, "1. Data", _data(inp))
    lines += _section(inp, "2. Methods", _methods(inp))
    res = ["### All evaluated classification runs", ""]
    cls = _classification_runs(inp)
    res += [_runs_table(cls) if cls else f"{NOT_RUN}.", ""]
    ret = [r for r in inp.runs if r.get("task") == "retrieval"]
    if ret:
        res += ["### Retrieval runs (Recall@K)", "", _retrieval_table(ret), ""]
    res += ["### Tables", ""] + (_tables(inp, t_other) or [f"No further tables ({NOT_RUN}).", ""])
    res += ["### Figures", ""] + (_figures(inp, other_figs, counter, img) or [f"No figures ({NOT_RUN}).", ""])
    lines += _section(inp, "3. Results", res)
    imb = _class_balance(inp) + _tables(inp, t_imb) + _figures(inp, by_nb["05"], counter, img)
    if not t_imb and not by_nb["05"]:
        imb.append(f"Notebook {inp.names_for('05')}: {NOT_RUN}.")
    lines += _section(inp, "4. Class imbalance", imb)
    sota = []
    if "sota_comparison" in inp.tables:
        sota += [f"Measured rows have `source = measured`; all other rows are published numbers quoted with their "
                 f"citation, never our results.", ""] + _tables(inp, ["sota_comparison"])
    else:
        sota += [f"`tables/sota_comparison.csv`: {NOT_RUN}.", ""]
    sota += _tables(inp, t_sota) + _figures(inp, by_nb["06"], counter, img)
    lines += _section(inp, "5. Comparison with the state of the art", sota)
    lines += _section(inp, "6. Limitations", _limitations(inp))
    lines += _section(inp, "7. Reproducibility", _reproducibility(inp, reports_arg))
    return "\n".join(lines).rstrip() + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
line-height:1.45;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}th,td{border:1px solid #ccc;padding:.25em .5em}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}
blockquote{background:#fff3cd;border-left:6px solid #d39e00;margin:.5em 0;padding:.4em 1em}
code{background:#f6f6f6;padding:0 .2em}
"""


def build_report(reports_dir: Path, profile_name: str) -> tuple[str, str]:
    """Build (markdown, html) for ``reports_dir/<profile_name>/``; writes nothing."""
    reports_dir = Path(reports_dir)
    inp = _Inputs(reports_dir / profile_name, profile_name)
    md_text = _markdown(inp, lambda p: f"figures/{p.name}", str(reports_dir))
    embedded = _markdown(inp, lambda p: "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode(),
                         str(reports_dir))
    body = markdown.markdown(embedded, extensions=["tables", "fenced_code", "sane_lists"])
    title = html_lib.escape(md_text.splitlines()[0].lstrip("# ").replace("`", ""))
    html_text = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
                 f"<style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n")
    return md_text, html_text


def write_report(reports_dir: Path, profile_name: str) -> tuple[Path, Path]:
    """Build the report and write report.md and report.html atomically; returns both paths."""
    md_text, html_text = build_report(reports_dir, profile_name)
    base = Path(reports_dir) / profile_name
    return write_text(base / "report.md", md_text), write_text(base / "report.html", html_text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medlib.report", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full", help="profile name (reports/<profile>/)")
    ap.add_argument("--reports-dir", default="reports", help="folder holding <profile>/ (default: reports)")
    args = ap.parse_args(argv)
    try:
        md_path, html_path = write_report(Path(args.reports_dir), args.profile)
    except MedlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {md_path} and {html_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

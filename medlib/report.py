"""The generated report: ``python -m medlib.report --profile <p> [--reports-dir reports]``.

Reads ``reports/<p>/`` (manifest.json, metrics/*.json, tables/*.csv, figures/*.png) and writes
``report.md`` and a self-contained ``report.html`` (figures embedded as base64 PNG) beside them, both
atomically and from scratch. Every number comes from those files; none is typed in here.

Shape: a course-project report. The abstract answers the study's question for the main model (profile role
``clip``): zero-shot (02) vs caption fine-tune (03) vs label fine-tune (04), plus the class-imbalance remedy
(05) and the ResNet-18 baseline (06). Results have one part per notebook: its runs from ``metrics/*.json``
(few-shot and WiSE-FT sweeps as pivots), then each of its CSV tables, unless every row of that table repeats
numbers already shown from the metrics files (then only a pointer), and all its figures.
No "best" is ever picked over sweeps by test score; where a remedy is named as highest, it is said to be
descriptive (best on test among those listed).

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
    "07": "07_general_retrieval",
}
TITLES = {"02": "Zero-shot baseline", "03": "Caption fine-tuning (contrastive)", "04": "Label fine-tuning",
          "05": "Class imbalance", "06": "Comparison with the state of the art",
          "07": "Small-data image-text matching on general data (Flickr30K, COCO)"}
TABLE_NOTEBOOK = {"data_summary": "01", "data_splits": "01", "skipped_datasets": "01",
                  "sota_comparison": "06"}  # tables named without an NN_ prefix
HEADLINE = ("acc", "top3", "balanced_acc", "macro_f1", "auroc", "worst_class_recall", "ece")
PRIMARY = {"multiclass": "acc", "multilabel": "auroc", "retrieval": "mean_recall"}
CI_MAIN = ("acc", "auroc")  # intervals shown in the run tables (all intervals are in the metrics files)
CI_IMBALANCE = ("macro_f1", "worst_class_recall", "auroc")
COUNT_COLUMNS = {"n", "support", "train", "val", "test", "n_train", "classes", "count"}
MAX_ROWS = 10  # longer CSV tables are truncated with a pointer to the file
MAX_CLASSES = 6  # per-class pivots wider than this show the rarest classes only
NOT_RUN = "not run"
RUN_FIELDS = ("run", "notebook", "dataset", "model", "method", "task", "metrics")  # read by every section
STUDY = {("02", "zero-shot"), ("03", "caption-ft-plain"), ("04", "label-ft"), ("04", "multilabel-ft")}
FEW_SHOT = re.compile(r"^(?P<base>.+)-(?P<k>\d+)shot$")
WISE = re.compile(r"^(?P<base>(?:.+-)?wise-ft)-a(?P<alpha>\d+(?:\.\d+)?)$")


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


def fmt_metric(rec: dict[str, Any], name: str, ci: bool = True) -> str:
    """'0.853 [0.824, 0.880]' from a metrics record (no interval where none was computed or ci=False)."""
    value = rec["metrics"].get(name)
    interval = (rec.get("ci95") or {}).get(name) if ci else None
    return f"{fmt(value)} {fmt_ci(interval)}".strip()


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


def _missing(v: Any) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _value(v: Any, column: str = "") -> str:
    """One table cell: counts as integers, other floats with 3 decimals, missing as 'n/a'."""
    if _missing(v):
        return "n/a"
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and column in COUNT_COLUMNS and v.is_integer():
        return str(int(v))
    return fmt(v)


def df_table(df: pd.DataFrame) -> str:
    return md_table([str(c) for c in df.columns],
                    [[_value(v, str(c)) for c, v in zip(df.columns, row)] for row in df.itertuples(index=False)])


# ---- reading the reports folder ----------------------------------------------------------------------------------


class _Inputs:
    """Everything the report reads from reports/<profile>/."""

    def __init__(self, base: Path, profile_name: str):
        if not base.is_dir():
            raise fail(base, "no reports folder for this profile",
                       f"run ./run_all.sh --profile {profile_name} first (or pass --reports-dir)")
        self.base, self.profile = base, profile_name
        self.manifest = self._manifest()
        self.runs = [self._run(p) for p in sorted((base / "metrics").glob("*.json"))]
        self.tables = {p.stem: self._csv(p) for p in sorted((base / "tables").glob("*.csv"))}
        self.figures = sorted((base / "figures").glob("*.png"))
        self.smoke = self._smoke()
        self.notebooks = self._notebook_names()
        cfg = self.manifest.get("profile_config")
        self.models = [m for m in (cfg.get("models") or []) if isinstance(m, dict)] if isinstance(cfg, dict) else []
        self.refs: list[str] = []  # published sources, cited as [1], [2] ... in order of first use

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
    def _run(path: Path) -> dict[str, Any]:
        rec = read_metrics(path)
        missing = [k for k in RUN_FIELDS if k not in rec]
        if missing:
            raise fail(path, f"metrics file lacks {missing}", "delete it and re-run the notebook that wrote it")
        return rec

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

    def nn_of(self, name: str) -> str | None:
        return name[:2] if re.match(r"^\d{2}_", name) else TABLE_NOTEBOOK.get(name)

    def notebook_of(self, name: str) -> str:
        return self.names_for(self.nn_of(name))

    def names_for(self, nn: str | None) -> str:
        return self.notebooks.get(nn or "", "an unknown notebook (name has no NN_ prefix)")

    def runs_of(self, nn: str) -> list[dict[str, Any]]:
        return [r for r in self.runs if str(r.get("notebook", "")).startswith(nn + "_")]

    def run_by_name(self) -> dict[str, dict[str, Any]]:
        return {r["run"]: r for r in self.runs}

    def main_model(self) -> str | None:
        """The model the study is about: role 'clip' in the recorded profile, else the first listed model."""
        for m in self.models:
            if m.get("role") == "clip":
                return m.get("name")
        return self.models[0].get("name") if self.models else None

    def aliases(self, model: str) -> set[str]:
        """A model's name and its display name (tables may use either)."""
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

    def cite(self, source: Any) -> str:
        """'measured' stays; a citation becomes [k], listed in the References section."""
        s = str(source)
        if _missing(source) or s == "measured":
            return s if s == "measured" else ""
        if s not in self.refs:
            self.refs.append(s)
        return f"[{self.refs.index(s) + 1}]"


# ---- shared pieces -----------------------------------------------------------------------------------------------


def _banner(inp: _Inputs) -> list[str]:
    if not inp.smoke:
        return []
    return ["> **SMOKE RUN — not results.** These numbers come from a tiny random-init model on small or generated "
            "data, run on CPU to test the pipeline.", ""]


def _section(inp: _Inputs, title: str, body: list[str]) -> list[str]:
    return [f"## {title}", ""] + _banner(inp) + body + [""]


def _classification(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if r.get("task") in ("multiclass", "multilabel")]


def _is_sweep(method: str) -> bool:
    return bool(FEW_SHOT.match(method) or WISE.match(method))


def _primary(task: Any) -> str:
    return PRIMARY.get(str(task), "acc")


def _runs_table(runs: list[dict[str, Any]], ci_for: Sequence[str] = CI_MAIN) -> str:
    """One row per run: dataset, model, method, n and the headline metrics (intervals for ``ci_for``)."""
    metrics = [m for m in HEADLINE if any(m in r["metrics"] for r in runs)]
    header = [m + (" [95% CI]" if m in ci_for else "") for m in metrics]
    return md_table(["dataset", "model", "method", "n", *header],
                    [[r["dataset"], r["model"], r["method"], fmt(r.get("n")),
                      *[fmt_metric(r, m, m in ci_for) if m in r["metrics"] else "" for m in metrics]]
                     for r in sorted(runs, key=lambda r: (r["dataset"], r["model"], r["method"]))])


def _retrieval_table(runs: list[dict[str, Any]]) -> str:
    metrics = list(dict.fromkeys(k for r in runs for k in r["metrics"]))
    return md_table(["dataset", "model", "method", "n", *metrics],
                    [[r["dataset"], r["model"], r["method"], fmt(r.get("n")),
                      *[fmt_metric(r, m) if m in r["metrics"] else "" for m in metrics]]
                     for r in sorted(runs, key=lambda r: r["run"])])


def _sweep_table(runs: list[dict[str, Any]], pattern: re.Pattern, key: str, label: str) -> list[str]:
    """A sweep (few-shot sizes, WiSE-FT alphas) as one pivot: rows dataset/model/method, columns the swept value,
    cells the task's primary metric. Descriptive: no point of a sweep is picked by its test score."""
    groups: dict[tuple, dict[str, dict[str, Any]]] = {}
    for r in runs:
        m = pattern.match(str(r.get("method", "")))
        if m:
            groups.setdefault((r["dataset"], r["model"], m.group("base"), _primary(r.get("task"))), {})[
                m.group(key)] = r
    if not groups:
        return []
    cols = sorted({v for g in groups.values() for v in g}, key=float)
    rows = [[ds, model, base, metric, *[fmt_metric(g[c], metric, False) if c in g else "" for c in cols]]
            for (ds, model, base, metric), g in sorted(groups.items())]
    return [md_table(["dataset", "model", "method", "metric", *[f"{label}={c}" for c in cols]], rows), ""]


# ---- CSV tables: render compactly unless every row repeats numbers shown from the metrics files --------------------


def _ci_merge(df: pd.DataFrame) -> pd.DataFrame:
    """Columns X, X_lo, X_hi (or value, ci_low, ci_high) become one text column 'X [lo, hi]'."""
    df = df.copy()
    pairs = [(c, f"{c}_lo", f"{c}_hi") for c in df.columns if f"{c}_lo" in df.columns and f"{c}_hi" in df.columns]
    if {"value", "ci_low", "ci_high"} <= set(df.columns):
        pairs.append(("value", "ci_low", "ci_high"))
    for c, lo, hi in pairs:
        df[c] = [_value(v) + ("" if _missing(a) or _missing(b) else f" [{fmt(float(a))}, {fmt(float(b))}]")
                 for v, a, b in zip(df[c], df[lo], df[hi])]
        df = df.drop(columns=[lo, hi])
    return df


def _text_cells(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy().astype(object)
    for c in out.columns:
        out[c] = [_value(v, str(c)) if not isinstance(v, str) else v for v in df[c]]
    return out


def _compact(inp: _Inputs, df: pd.DataFrame) -> pd.DataFrame:
    """Pivot long tables (metric, value) into one column per metric; a single float column per method into one
    column per method; citations to [k]; empty columns dropped."""
    df = df.dropna(axis=1, how="all")
    if "source" in df.columns:
        df = df.assign(source=[inp.cite(s) for s in df["source"]])
    if {"metric", "value"} <= set(df.columns):
        df = _text_cells(_ci_merge(df))
        index = [c for c in df.columns if c not in ("metric", "value", "n", "note")]
        wide = df.pivot_table(index=index, columns="metric", values="value", aggfunc="first", sort=False)
        wide = wide.reset_index()
        wide.columns.name = None
        return wide.fillna("")
    floats = [c for c in df.columns if df[c].dtype.kind == "f" and c not in COUNT_COLUMNS]
    if "method" in df.columns and len(floats) == 1:
        index = [c for c in df.columns if c not in ("method", floats[0])]
        df = _text_cells(df)
        wide = df.pivot_table(index=index, columns="method", values=floats[0], aggfunc="first", sort=False)
        wide = wide.reset_index()
        wide.columns.name = None
        return wide.fillna("")
    return _text_cells(_ci_merge(df))


def _close(a: Any, b: Any) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    except (TypeError, ValueError):
        return False


def _covered(inp: _Inputs, name: str, df: pd.DataFrame) -> bool:
    """True when every row of a table repeats numbers of a run already shown from its metrics file.

    A row matches a run by dataset (column, or the ``__<dataset>`` part of the table name), model (name or display
    name), method (``method`` or ``remedy`` column, with or without a ``remedy-``/``-retrieval`` affix) and every
    metric value it has. Published rows (``source`` other than ``measured``) are never covered."""
    runs = [r for r in inp.runs if r.get("task") == "retrieval" or not _is_sweep(str(r.get("method")))]  # shown whole
    if df.empty or not runs:
        return False
    parts = name.split("__")
    known = {k for r in runs for k in r["metrics"]}
    long = {"metric", "value"} <= set(df.columns)
    metric_cols = [] if long else [c for c in df.columns if c in known]
    if not long and not metric_cols:
        return False
    for row in df.to_dict("records"):
        if "source" in row and str(row["source"]) != "measured":
            return False
        ds = row.get("dataset", parts[1] if len(parts) > 1 else None)
        method = row.get("method", row.get("remedy"))
        ok = False
        for r in runs:
            if ds is not None and r["dataset"] != ds:
                continue
            if "model" in row and str(row["model"]) not in inp.aliases(r["model"]):
                continue
            if method is not None and r["method"] not in (method, f"remedy-{method}", f"{method}-retrieval"):
                continue
            checks = {row["metric"]: row["value"]} if long else {c: row[c] for c in metric_cols}
            if all(not _missing(v) and k in r["metrics"] and _close(r["metrics"][k], v) for k, v in checks.items()
                   if not (_missing(v) and k not in r["metrics"])):
                ok = True
                break
        if not ok:
            return False
    return True


def _table_block(inp: _Inputs, name: str) -> list[str]:
    df = inp.tables[name]
    nb = inp.notebook_of(name)
    if _covered(inp, name, df):
        return [f"`tables/{name}.csv` (notebook {nb}) repeats numbers of runs shown in this report.", ""]
    shown = _compact(inp, df)
    more = ""
    if len(shown) > MAX_ROWS:
        more = f" First {MAX_ROWS} of {len(shown)} rows; the full table is `tables/{name}.csv`."
        shown = shown.head(MAX_ROWS)
    return [f"**Table `tables/{name}.csv`** — notebook {nb}.{more}", "",
            df_table(shown), ""]


PER_CLASS = re.compile(r"^(?P<nn>\d{2})_per_class__(?P<ds>[^_]+(?:_[^_]+)*?)__(?P<run>.+)$")


def _per_class_tables(inp: _Inputs, nn: str) -> tuple[list[str], set[str]]:
    """Tables ``NN_per_class__<dataset>__<run>.csv`` (one row per class) as one pivot per dataset: class, support,
    training frequency and the recall of each run. Precision and F1 stay in the CSV files."""
    fam: dict[str, list[tuple[str, str]]] = {}
    for name, df in inp.tables.items():
        m = PER_CLASS.match(name)
        if m and m.group("nn") == nn and {"class", "recall"} <= set(df.columns):
            fam.setdefault(m.group("ds"), []).append((m.group("run"), name))
    out, used = [], set()
    for ds, members in fam.items():
        base = inp.tables[members[0][1]]
        keep = [c for c in ("class", "support", "train_frequency") if c in base.columns]
        wide = base[keep].copy()
        for run, name in members:
            rec = inp.tables[name].set_index("class")["recall"]
            wide[f"recall: {run}"] = [rec.get(c) for c in wide["class"]]
            used.add(name)
        files = ", ".join(f"`tables/{n}.csv`" for _, n in members)
        more = ""
        if len(wide) > MAX_ROWS + 3:
            more = f" First {MAX_ROWS} of {len(wide)} classes."
            wide = wide.head(MAX_ROWS)
        out += [f"**Recall per class on {ds}** — notebook {inp.names_for(nn)}, from {files} (precision and F1 "
                f"there).{more}", "", df_table(wide), ""]
    return out, used


# ---- figures -----------------------------------------------------------------------------------------------------


def _figure_source(inp: _Inputs, stem: str) -> str:
    """Which run(s) a figure was made from, read from its name ``NN_<kind>__<dataset>__<model>__<method>``."""
    nb = inp.notebook_of(stem)
    parts = (stem[3:] if re.match(r"^\d{2}_", stem) else stem).split("__")
    out = f"notebook {inp.nn_of(stem) or nb}"
    if len(parts) == 4:
        ds, model, method = parts[1:]
        exact = f"{nb}__{ds}__{model}__{method}"
        same = [r for r in inp.runs if r.get("notebook") == nb and r["dataset"] == ds and r["model"] == model]
        if exact in inp.run_by_name():
            return f"{out}, run `{exact}`"
        other = [r["run"] for r in inp.runs if (r["dataset"], r["model"], r["method"]) == (ds, model, method)]
        if other:  # a figure of an earlier notebook's run, drawn again here
            return f"{out}, run `{other[0]}`"
        if any(r["method"].startswith(method) for r in same):
            return f"{out}, runs `{exact}*`"
        if same:
            return f"{out}, runs `{nb}__{ds}__{model}__*`"
    if stem.startswith("06_sota"):
        return f"{out}, {' / '.join(parts[1:])} from `tables/sota_comparison.csv`"
    if len(parts) == 2:
        return f"{out}, dataset `{parts[1]}`"
    return out


def _figures(inp: _Inputs, paths: list[Path], counter: list[int], img: Callable[[Path], str]) -> list[str]:
    """All figures of one part, in a grid (md_in_html keeps the markdown inside readable on GitHub too)."""
    if not paths:
        return []
    out = ['<div class="figs" markdown="1">', ""]
    for p in paths:
        counter[0] += 1
        what = (p.stem[3:] if re.match(r"^\d{2}_", p.stem) else p.stem).split("__")[0].replace("_", " ")
        out += [f"![Figure {counter[0]}]({img(p)})",
                f"*Figure {counter[0]}: {what} ({_figure_source(inp, p.stem)}).*", ""]
    return out + ["</div>", ""]


def _figs_of(inp: _Inputs, nn: str) -> list[Path]:
    return [p for p in inp.figures if p.name.startswith(nn + "_")]


# ---- sections ----------------------------------------------------------------------------------------------------


def _abstract(inp: _Inputs) -> list[str]:
    if not inp.runs:
        return [f"No evaluated runs were found under `metrics/` ({NOT_RUN})."]
    main = inp.main_model()
    out = [f"**Question.** Does adapting a CLIP model to medical images help, and is it better to fine-tune on "
           f"captions or on labels? For the main model, {inp.display(main) if main else NOT_RUN}, we compare "
           "zero-shot classification (notebook 02) with contrastive fine-tuning on captions (03, `caption-ft-plain`) "
           "and supervised fine-tuning on labels (04, `label-ft`; `multilabel-ft` for multi-label sets), each on the "
           "dataset's test split, with a ResNet-18 trained by us as a plain-CNN reference (06). Cells give the "
           "task's main metric and its 95% bootstrap interval.", ""]

    def pick(nn: str, methods: Sequence[str], ds: str, model: str | None) -> dict[str, Any] | None:
        for m in methods:
            for r in _classification(inp.runs_of(nn)):
                if r["dataset"] == ds and r["method"] == m and (model is None or r["model"] == model):
                    return r
        return None

    datasets = sorted({r["dataset"] for r in _classification(inp.runs_of("02") + inp.runs_of("03")
                                                               + inp.runs_of("04")) if r["model"] == main})
    rows = []
    for ds in datasets:
        cells = [pick("02", ["zero-shot"], ds, main), pick("03", ["caption-ft-plain"], ds, main),
                 pick("04", ["label-ft", "multilabel-ft"], ds, main), pick("06", ["supervised"], ds, "resnet18")
                 or next((r for r in _classification(inp.runs_of("06")) if r["dataset"] == ds
                          and r["model"] == "resnet18"), None)]
        ref = next((r for r in cells if r is not None), None)
        if ref is None:  # the main model ran on this dataset, but none of the abstract's fixed methods
            continue
        key = _primary(ref.get("task"))
        rows.append([ds, f"{ref.get('task')}, {key}", fmt(ref.get("n")),
                     *[fmt_metric(r, key) if r is not None and key in r["metrics"] else NOT_RUN for r in cells]])
    if rows:
        out += [md_table(["dataset", "task, metric", "n (test)", "zero-shot (02)", "caption FT (03)",
                          "label FT (04)", "ResNet-18 (06)"], rows), ""]
    out += _remedy_headline(inp)
    out += ["Few-shot, WiSE-FT and retrieval runs are reported in the Results as sweeps; none of them is picked by "
            "its test score."]
    return out


def _remedy_headline(inp: _Inputs) -> list[str]:
    """Worst-class recall without a remedy vs the remedy chosen on validation (the table's ``chosen`` column)."""
    lines = []
    for name in sorted(t for t in inp.tables if t.startswith("05_remedies__")):
        df = inp.tables[name]
        if not {"remedy", "worst_class_recall", "chosen"} <= set(df.columns) or df["worst_class_recall"].isna().all():
            continue
        best = df[df["chosen"].astype(str).str.lower().isin(["true", "1"])]  # chosen on validation, never on test
        if best.empty:
            continue
        tie = ""

        def cell(row: pd.Series) -> str:
            ci = (f" [{fmt(float(row['worst_class_recall_lo']))}, {fmt(float(row['worst_class_recall_hi']))}]"
                  if {"worst_class_recall_lo", "worst_class_recall_hi"} <= set(row.index)
                  and not _missing(row["worst_class_recall_lo"]) else "")
            return f"{_value(row['worst_class_recall'])}{ci}"

        none = df[df["remedy"].astype(str) == "none"]
        base = f"no remedy {cell(none.iloc[0])}; " if len(none) else ""
        lines.append(f"- **{name.split('__', 1)[1]}**: {base}`{best.iloc[0]['remedy']}`{tie} "
                     f"{cell(best.iloc[0])} among {len(df)} remedies (`tables/{name}.csv`).")
    if not lines:
        return []
    return ["**Class imbalance (05).** Worst-class recall without a remedy and for the remedy chosen on the "
            "validation split (paired differences with intervals: `tables/paired_differences.csv`):", "",
            *lines, ""]


def _data(inp: _Inputs, counter: list[int], img: Callable[[Path], str]) -> list[str]:
    compact = next((n for n in ("data_summary", "data_splits") if n in inp.tables
                    and {"train", "test"} <= set(inp.tables[n].columns)), None)
    counts = next((n for n in ("01_class_counts", "data_summary") if n in inp.tables
                   and {"class", "n", "split"} <= set(inp.tables[n].columns)), None)
    out = []
    if compact:
        df = inp.tables[compact]
        cols = [c for c in ("dataset", "task", "classes", "train", "val", "test", "synthetic", "license", "source")
                if c in df.columns]
        out += [f"Table `tables/{compact}.csv` (notebook {inp.notebook_of(compact)}): images per split "
                "(a multi-label image counts once).", "", df_table(df[cols]), ""]
    else:
        out += [f"`tables/data_summary.csv`: {NOT_RUN}.", ""]
    if counts:
        df = inp.tables[counts]
        lines = []
        for ds, g in df[df["split"] == "train"].groupby("dataset", sort=False):
            g = g[g["class"].astype(str) != "(pairs)"]
            if g.empty:
                continue
            g = g.sort_values("n", ascending=False)
            if len(g) <= 4:
                desc = ", ".join(f"{c} {_value(n, 'n')}" for c, n in zip(g["class"], g["n"]))
            else:
                desc = (f"{len(g)} classes, most frequent {g['class'].iloc[0]} {_value(g['n'].iloc[0], 'n')}, "
                        f"rarest {g['class'].iloc[-1]} {_value(g['n'].iloc[-1], 'n')}")
            lines.append(f"- {ds}: {desc}.")
        if lines:
            out += [f"Training examples per class (from `tables/{counts}.csv`; all splits in that file and in the "
                    "class-count figures):", "", *lines, ""]
    if "skipped_datasets" in inp.tables:
        sk = inp.tables["skipped_datasets"]
        if not sk.empty and {"dataset", "reason"} <= set(sk.columns):
            out += ["Skipped datasets (`tables/skipped_datasets.csv`):", ""]
            out += [f"- {d} (notebook {nb}): {reason}" for d, nb, reason in
                    zip(sk["dataset"], sk.get("notebook", [""] * len(sk)), sk["reason"])] + [""]
    if inp.manifest.get("data_dir"):
        out += [f"Data directory of the run: `{inp.manifest['data_dir']}`.", ""]
    return out + _figures(inp, _figs_of(inp, "01"), counter, img)


def _methods(inp: _Inputs) -> list[str]:
    cfg = inp.manifest.get("profile_config")
    out = []
    if inp.models:
        out += [md_table(["model", "arch", "pretrained", "role", "display"],
                         [[m.get("name", ""), m.get("arch", ""), m.get("pretrained") or "(random init)",
                           m.get("role", ""), m.get("display", "")] for m in inp.models]), ""]
    else:
        out += [f"Models (profile in `manifest.json`): {NOT_RUN}.", ""]
    by_nb: dict[str, list[str]] = {}
    for r in inp.runs:
        m = FEW_SHOT.sub(r"\g<base>-Nshot", str(r.get("method")))
        m = WISE.sub(r"\g<base>-a*", m)
        by_nb.setdefault(r.get("notebook", "?"), [])
        if m not in by_nb[r.get("notebook", "?")]:
            by_nb[r.get("notebook", "?")].append(m)
    out += ["Methods evaluated per notebook (`-Nshot`: few-shot sizes; `-a*`: WiSE-FT mixing weights):", ""]
    out += ([f"- {nb}: {', '.join(sorted(ms))}" for nb, ms in sorted(by_nb.items())] if by_nb
            else [f"No evaluated runs ({NOT_RUN})."]) + [""]
    if not isinstance(cfg, dict):
        return out + [f"Hyper-parameters: {NOT_RUN}."]
    stages = {f"{sec}.{k}": v for sec in ("caption_finetune", "label_finetune", "imbalance")
              if isinstance(cfg.get(sec), dict) for k, v in cfg[sec].items() if isinstance(v, dict)}
    keys = list(dict.fromkeys(k for v in stages.values() for k in v))
    varying = [k for k in keys if len({json.dumps(v.get(k)) for v in stages.values()}) > 1
               or k in ("epochs", "batch_size", "lr")]
    same = [k for k in keys if k not in varying]
    if stages:
        out += ["Training settings (from the profile recorded in `manifest.json`):", "",
                md_table(["stage", *varying], [[s, *[_cfg(v.get(k)) for k in varying]] for s, v in stages.items()]),
                ""]
        first = next(iter(stages.values()))
        if same:
            out += ["Same in every stage: " + "; ".join(f"{k} {_cfg(first.get(k))}" for k in same) + ".", ""]
    other = []
    for sec in ("seed", "device", "zero_shot", "caption_finetune", "label_finetune", "imbalance", "sota"):
        v = cfg.get(sec)
        if isinstance(v, dict):
            other += [f"{sec}.{k} = {_cfg(x)}" for k, x in v.items()
                      if not isinstance(x, dict) and not k.endswith("datasets")]  # datasets: see the tables
        elif v is not None:
            other.append(f"{sec} = {_cfg(v)}")
    if other:
        out += ["Other settings: " + "; ".join(other) + ".", ""]
    return out


def _notebook_part(inp: _Inputs, nn: str, counter: list[int], img: Callable[[Path], str],
                   ci_for: Sequence[str] = CI_MAIN) -> list[str]:
    runs = inp.runs_of(nn)
    cls = [r for r in _classification(runs) if not _is_sweep(r["method"])]
    out = []
    if cls:
        out += [f"Runs of notebook {inp.names_for(nn)} (`metrics/*.json`; all intervals are in those files):", "",
                _runs_table(cls, ci_for), ""]
    shots_table = any(n.startswith(nn + "_") and "shots_per_class" in t.columns for n, t in inp.tables.items())
    few = [] if shots_table else _sweep_table(_classification(runs), FEW_SHOT, "k", "shots")
    if few:
        out += ["Few-shot runs (training examples per class; test split, descriptive):", "", *few]
    wise = _sweep_table(_classification(runs), WISE, "alpha", "alpha")
    if wise:
        out += ["WiSE-FT: weights interpolated between zero-shot (alpha=0) and fine-tuned (alpha=1):", "", *wise]
    ret = [r for r in runs if r.get("task") == "retrieval"]
    if ret:
        out += ["Retrieval runs (Recall@K):", "", _retrieval_table(ret), ""]
    per_class, used = _per_class_tables(inp, nn)
    repeated = []
    for name in inp.tables:
        if name.startswith(nn + "_") and name not in used:
            if _covered(inp, name, inp.tables[name]):
                repeated.append(f"`tables/{name}.csv`")
            else:
                out += _table_block(inp, name)
    out += per_class
    if repeated:
        out += [f"Also written by this notebook, repeating numbers of runs shown in this report: "
                f"{', '.join(repeated)}.", ""]
    if not out:
        out = [f"Notebook {inp.names_for(nn)}: {NOT_RUN}.", ""]
    return out + _figures(inp, _figs_of(inp, nn), counter, img)


def _per_class_recall(inp: _Inputs) -> list[str]:
    """Per-class recall per dataset: notebook 05's runs where there are any, else the main model's zero-shot,
    caption and label fine-tunes; wide class lists show the rarest classes (by test support) only."""
    out = []
    cls = _classification(inp.runs)
    for ds in sorted({r["dataset"] for r in cls}):
        runs = [r for r in cls if r["dataset"] == ds and r.get("per_class") and not _is_sweep(r["method"])]
        if not runs:
            continue
        imb = [r for r in runs if str(r.get("notebook", "")).startswith("05")]
        fixed = [r for r in runs if r["model"] == inp.main_model() and (r.get("notebook", "")[:2], r["method"])
                 in STUDY]  # no notebook-05 runs on this dataset: the abstract's fixed methods
        use = imb or fixed
        if not use:
            continue
        ref = max(use, key=lambda r: r.get("n") or 0)
        support = {k: v.get("support", 0) or 0 for k, v in ref["per_class"].items()}
        classes = sorted(support, key=lambda c: support[c])[:MAX_CLASSES] if len(support) > MAX_CLASSES \
            else list(support)
        note = (f" the {len(classes)} rarest of {len(support)} classes (all classes: `per_class` in each metrics "
                "file)") if len(classes) < len(support) else ""
        who = "notebook 05 runs" if imb else "main model, the methods of the abstract"
        out += [f"Recall per class on **{ds}** ({who}; test support in brackets{';' + note if note else ''}):", "",
                md_table(["notebook", "model", "method", *[f"{c} ({fmt(support[c])})" for c in classes]],
                         [[r.get("notebook", "")[:2], r["model"], r["method"],
                           *[fmt(r["per_class"].get(c, {}).get("recall")) for c in classes]]
                          for r in sorted(use, key=lambda r: r["run"])]), ""]
    return out


def _sota(inp: _Inputs, counter: list[int], img: Callable[[Path], str]) -> list[str]:
    out = []
    sota = inp.tables.get("sota_comparison")
    if sota is None:
        out += [f"`tables/sota_comparison.csv`: {NOT_RUN}.", ""]
    else:
        measured = sota[sota["source"].astype(str) == "measured"] if "source" in sota.columns else sota
        published = sota[sota["source"].astype(str) != "measured"] if "source" in sota.columns else sota.iloc[:0]
        out += ["From `tables/sota_comparison.csv`. **Measured by us** (same splits and metrics as above):", ""]
        if len(measured) and "model" in measured.columns:  # display names -> the short names of the Methods table
            short = {str(m.get("display")): str(m.get("name")) for m in inp.models if m.get("display")}
            measured = measured.assign(model=[short.get(str(x), x) for x in measured["model"]])
        out += [df_table(_compact(inp, measured.drop(columns=["source"], errors="ignore"))), ""] \
            if len(measured) else [f"No measured rows ({NOT_RUN}).", ""]
        out += ["**Published, quoted — not our results.** Source numbers refer to the References; read the note "
                "before comparing (`NOT COMPARABLE` = different data, split or metric).", ""]
        if len(published):
            pub = published.copy()
            keys: list[str] = []  # each distinct note once, below the table; rows point to it as n1, n2 ...
            if "note" in pub.columns:
                notes = [str(n) if not _missing(n) else "" for n in pub["note"]]
                keys = list(dict.fromkeys(n for n in notes if n))
                pub["note"] = [f"n{keys.index(n) + 1}" if n else "" for n in notes]
                pub = pub.rename(columns={"note": "notes"})  # kept as a row id column by the pivot
            out += [df_table(_compact(inp, pub)), ""]
            out += [f"- n{i}: {n}" for i, n in enumerate(keys, 1)] + ([""] if keys else [])
        else:
            out += [f"No published rows ({NOT_RUN}).", ""]
    out += _notebook_part(inp, "06", counter, img)
    return out


def _limitations(inp: _Inputs) -> list[str]:
    out = []
    if inp.smoke:
        out.append("- This is a SMOKE run: a tiny randomly initialised model, few epochs, small or generated data. "
                   "It checks that the pipeline runs; none of its numbers is a result.")
    summary = next((inp.tables[n] for n in ("data_summary", "data_splits") if n in inp.tables), None)
    if summary is not None and "synthetic" in summary.columns and "dataset" in summary.columns:
        syn = sorted(summary.loc[summary["synthetic"].astype(str).str.lower().isin(["true", "1", "yes"]),
                                 "dataset"].astype(str).unique())
        if syn:
            out.append(f"- Generated stand-in data (not the real dataset) was used for: {', '.join(syn)}.")
    out += ["- Each test split is evaluated once; intervals are percentile bootstraps over test rows and do not "
            "include training randomness (seeds).",
            "- Model selection inside the notebooks uses the validation split only. The abstract fixes its methods "
            "in advance; the remedy it names is chosen on the validation split.",
            "- Published numbers are quoted, not reproduced; they are compared only where split and metric match "
            "(see the notes of the comparison table)."]
    ci = [(r["run"], m, v[1] - v[0]) for r in inp.runs for m, v in (r.get("ci95") or {}).items() if v]
    if ci:
        run, m, width = max(ci, key=lambda t: t[2])
        out.append(f"- Widest 95% interval: {m} of `{run}` spans {fmt(width)}.")
    missing = [f"{nn} ({name})" for nn, name in sorted(inp.notebooks.items())
               if not inp.runs_of(nn) and not _figs_of(inp, nn)
               and not any(inp.nn_of(t) == nn for t in inp.tables)]
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
                md_table(["notebook", "seconds", "status"],
                         [[k, _cfg(v.get("seconds")) if isinstance(v, dict) else _cfg(v),
                           v.get("status", "") if isinstance(v, dict) else ""] for k, v in sorted(nbs.items())]),
                "", "Executed copies: `executed/NN_*.ipynb`.", ""]
    pk = m.get("packages") or m.get("versions") or {}
    if pk:
        out += ["Package versions: " + ", ".join(f"{k} {_cfg(v)}" for k, v in pk.items()) + ".", ""]
    cmd = m.get("command")
    out += [f"Exact command: `{cmd}`" if cmd else f"Exact command: {NOT_RUN} (not in the manifest).", "",
            f"Regenerate this report: `{regen}`"]
    return out


# ---- assembling --------------------------------------------------------------------------------------------------


def _markdown(inp: _Inputs, img: Callable[[Path], str], reports_arg: str) -> str:
    inp.refs = []
    title = f"medclip: adapting CLIP to medical image-text data — profile `{inp.profile}`"
    if inp.smoke:
        title = f"SMOKE — {title}"
    lines = [f"# {title}", ""] + _banner(inp)
    lines += [f"Generated by `python -m medlib.report --profile {inp.profile}` from `{inp.base}`. Every number is "
              "read from `metrics/*.json` or `tables/*.csv`. Format: 3 decimals; intervals are 95% bootstrap "
              "percentile intervals over the test rows.", ""]
    counter = [0]
    lines += _section(inp, "Abstract", _abstract(inp))
    lines += _section(inp, "1. Data", _data(inp, counter, img))
    lines += _section(inp, "2. Methods", _methods(inp))
    res = []
    for i, nn in enumerate(("02", "03", "04"), 1):
        res += [f"### 3.{i} {TITLES[nn]} (notebook {inp.names_for(nn)})", ""] + _notebook_part(inp, nn, counter, img)
    res += [f"### 3.4 {TITLES['07']} (notebook {inp.names_for('07')})", ""] + _notebook_part(inp, "07", counter, img)
    other_t = [t for t in inp.tables if inp.nn_of(t) is None]
    other_f = [p for p in inp.figures if not re.match(r"^0[1-7]_", p.name)]
    if other_t or other_f:
        res += ["### 3.5 Other outputs", ""] + [x for t in other_t for x in _table_block(inp, t)]
        res += _figures(inp, other_f, counter, img)
    lines += _section(inp, "3. Results", res)
    imb = _notebook_part(inp, "05", counter, img, ci_for=CI_IMBALANCE) if (inp.runs_of("05") or _figs_of(inp, "05")
                                                                          or any(t.startswith("05_")
                                                                                 for t in inp.tables)) \
        else [f"Notebook {inp.names_for('05')}: {NOT_RUN}.", ""]
    lines += _section(inp, f"4. Class imbalance (notebook {inp.names_for('05')})", _per_class_recall(inp) + imb)
    lines += _section(inp, f"5. Comparison with the state of the art (notebook {inp.names_for('06')})",
                      _sota(inp, counter, img))
    lines += _section(inp, "6. Limitations", _limitations(inp))
    lines += _section(inp, "7. Reproducibility", _reproducibility(inp, reports_arg))
    refs = [f"{i}. {s}" for i, s in enumerate(inp.refs, 1)] or ["No published numbers are quoted."]
    lines += _section(inp, "References", refs)
    return "\n".join(lines).rstrip() + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;
line-height:1.45;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:.82em;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:.2em .45em}
th{background:#f3f3f3}td{white-space:nowrap}img{max-width:100%;border:1px solid #eee}
blockquote{background:#fff3cd;border-left:6px solid #d39e00;margin:.5em 0;padding:.4em 1em}
code{background:#f6f6f6;padding:0 .2em;white-space:normal}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:.8em;align-items:start}
.figs p{margin:0;font-size:.8em}.figs img{display:block;margin-bottom:.2em}
"""


def build_report(reports_dir: Path, profile_name: str) -> tuple[str, str]:
    """Build (markdown, html) for ``reports_dir/<profile_name>/``; writes nothing."""
    reports_dir = Path(reports_dir)
    inp = _Inputs(reports_dir / profile_name, profile_name)
    md_text = _markdown(inp, lambda p: f"figures/{p.name}", str(reports_dir))
    embedded = _markdown(inp, lambda p: "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode(),
                         str(reports_dir))
    body = markdown.markdown(embedded, extensions=["tables", "fenced_code", "sane_lists", "md_in_html"])
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

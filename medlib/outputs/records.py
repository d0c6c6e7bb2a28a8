"""Run records, the output contract (DESIGN.md): run names, reports/<profile>/{metrics,predictions,figures,tables} paths,
and saving/loading evaluated runs.

``save_run`` evaluates predictions (:func:`medlib.metrics.evaluate`) and writes ``predictions/<run>.npz``
and ``metrics/<run>.json`` atomically; ``load_runs`` gathers every metrics file into one DataFrame.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..config import Profile
from ..errors import fail
from ..files import write_npz, write_text
from ..metrics import check_predictions, evaluate, recall_from_ranks, retrieval_ranks

_BAD = re.compile(r"[^a-z0-9_.-]+")


def slug(text: str) -> str:
    """Lowercase, ``[a-z0-9_.-]`` only (other runs of characters become '-')."""
    return _BAD.sub("-", str(text).lower()).strip("-")


def run_name(notebook: str, dataset: str, model: str, method: str, seed: int | None = None,
             first_seed: int | None = None) -> str:
    """``<notebook>__<dataset>__<model>__<method>`` (DESIGN.md), each part slugged, with ``__s<seed>`` appended
    when ``seed`` is given and is not ``first_seed`` (the profile's first seed keeps the plain name)."""
    name = "__".join(slug(p) for p in (notebook, dataset, model, method))
    return name if seed is None or seed == first_seed else f"{name}__s{int(seed)}"


def seeded_run_name(profile: Profile, notebook: str, dataset: str, model: str, method: str,
                    seed: int | None = None) -> str:
    """The run name of ``seed``'s run (default: the profile's first seed, whose run has no ``__s`` suffix)."""
    return run_name(notebook, dataset, model, method, seed, profile.seed_list[0])


def reports_dir(profile: Profile, sub: str = "") -> Path:
    """reports/<profile>/<sub>/, created on demand."""
    p = profile.reports_path / sub if sub else profile.reports_path
    p.mkdir(parents=True, exist_ok=True)
    return p


def run_dir(profile: Profile, run: str) -> Path:
    """runs/<profile>/<run>/ : checkpoints and training logs."""
    p = profile.runs_path / run
    p.mkdir(parents=True, exist_ok=True)
    return p


SECOND_VIEW = "at_0.5"  # a multilabel record's decisions at the fixed 0.5 when its thresholds were tuned
RUN_KEYS = ("run", "notebook", "dataset", "model", "method", "task", "split", "n", "seed")


def _json_safe(obj: Any) -> Any:
    """NaN/inf -> None (JSON has no NaN), numpy scalars/arrays -> Python, recursively."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _dumps(record: dict[str, Any], path: Path) -> str:
    try:
        return json.dumps(_json_safe(record), indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise fail(path, f"cannot write the metrics record as JSON ({exc})",
                   "pass only numbers, strings, lists and dicts in `extra`") from None


def _write_run(profile: Profile, run: str, record: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Write predictions then metrics, each atomically; the JSON is rendered first so a bad ``extra`` writes
    nothing at all."""
    mpath = reports_dir(profile, "metrics") / f"{run}.json"
    text = _dumps(record, mpath)
    write_npz(reports_dir(profile, "predictions") / f"{run}.npz", **arrays)
    write_text(mpath, text)
    return json.loads(text)


def _record(profile: Profile, run: str, notebook: str, dataset: str, split: str, task: str, model: str,
            method: str, n: int, seed: int | None = None) -> dict[str, Any]:
    return {"run": run, "notebook": notebook, "profile": profile.name, "dataset": dataset, "split": split,
            "task": task, "model": model, "method": method, "n": int(n),
            "seed": int(profile.seed if seed is None else seed)}


def save_run(
    profile: Profile,
    *,
    notebook: str,
    dataset: str,
    model: str,
    method: str,
    task: str,
    split: str,
    y_true: np.ndarray,
    y_score: np.ndarray,
    class_names: Sequence[str],
    n_boot: int | None = None,
    extra: dict[str, Any] | None = None,
    threshold: float | Sequence[float] | np.ndarray | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Evaluate one run and write ``predictions/<run>.npz`` and ``metrics/<run>.json`` (DESIGN.md contract).

    ``n_boot`` defaults to the profile's ``zero_shot.n_boot``. ``seed`` is the training seed of the run (default:
    the profile's seed); it is recorded, names the run (``__s<seed>`` unless it is the profile's first seed) and
    seeds the bootstrap, so each seed's interval is recomputable from its own predictions file. Nothing is written
    when evaluation fails. Returns the metrics record as written (``record["metrics"]`` holds the headline
    numbers). Multilabel predictions (and binary ones evaluated with a ``threshold``) also store the
    ``threshold`` so every number is recomputable; a multilabel run evaluated at tuned thresholds also keeps the
    fixed-0.5 decisions as a second view (``record["at_0.5"]``: metrics, per_class, confusion, degenerate; no
    intervals). ``degenerate``: why the run's decisions ignore the image (one class only, no positive predictions),
    else None; ``bootstrap``: replicates kept and redrawn (:func:`medlib.metrics.evaluate`).
    The predictions file holds the arrays exactly as evaluated: ``y_true`` int64 (N,) or (N, C), ``y_score`` float64.
    """
    seed = profile.seed if seed is None else int(seed)
    run = seeded_run_name(profile, notebook, dataset, model, method, seed)
    n_boot = profile.zero_shot.n_boot if n_boot is None else n_boot
    class_names = [str(c) for c in class_names]
    y_true, y_score = check_predictions(y_true, y_score, task, class_names)
    result = evaluate(y_true, y_score, task, class_names, n_boot=n_boot, seed=seed, threshold=threshold)
    record = _record(profile, run, notebook, dataset, split, task, model, method, len(y_true), seed)
    record.update({"n_boot": int(n_boot), "metrics": result["metrics"], "ci95": result["ci95"],
                   "bootstrap": result["bootstrap"], "per_class": result["per_class"],
                   "confusion": result["confusion"], "degenerate": result["degenerate"]})
    arrays = {"y_true": y_true, "y_score": y_score, "class_names": np.asarray(class_names)}
    if "threshold" in result:  # multilabel, or binary with a tuned threshold: stored so metrics recompute
        record["threshold"] = result["threshold"]
        arrays["threshold"] = np.asarray(result["threshold"])
    if task == "multilabel":
        record["auroc_skipped"] = result["auroc_skipped"]
        if threshold is not None:  # tuned thresholds decide; the fixed 0.5 stays as a labelled second view
            at = evaluate(y_true, y_score, task, class_names, n_boot=0, threshold=0.5)
            record[SECOND_VIEW] = {"threshold": 0.5, **{k: at[k] for k in ("metrics", "per_class", "confusion",
                                                                           "degenerate")}}
    record["predictions"] = f"predictions/{run}.npz"
    record["extra"] = dict(extra or {})
    return _write_run(profile, run, record, arrays)


def save_retrieval_run(
    profile: Profile,
    *,
    notebook: str,
    dataset: str,
    model: str,
    method: str,
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    text_to_image: np.ndarray | None = None,
    ks: Sequence[int] = (1, 5, 10),
    split: str = "test",
    extra: dict[str, Any] | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Image<->text Recall@K for one run; writes the embeddings (``image_emb``, ``text_emb``, ``text_to_image``,
    ``y_true`` = ``text_to_image``), the per-query ranks (``i2t_rank`` (N_img,), ``t2i_rank`` (N_txt,); a query
    is a hit at K when its rank < K: the vectors a paired bootstrap over queries resamples) and a metrics record
    with ``task: retrieval``. Returns the record. The embeddings are stored as float32 and the metrics are computed
    from those stored arrays, so they recompute exactly from the predictions file. ``n`` is the number of images,
    ``n_text`` the number of captions. ``seed``: the training seed (recorded; ``__s<seed>`` in the run name unless it
    is the profile's first seed), as in :func:`save_run`."""
    run = seeded_run_name(profile, notebook, dataset, model, method, seed)
    image_emb, text_emb = np.asarray(image_emb, dtype=np.float32), np.asarray(text_emb, dtype=np.float32)
    i2t_rank, t2i_rank = retrieval_ranks(image_emb, text_emb, text_to_image)
    metrics = recall_from_ranks(i2t_rank, t2i_rank, ks)
    t2i = np.arange(len(image_emb)) if text_to_image is None else np.asarray(text_to_image, dtype=np.int64)
    record = _record(profile, run, notebook, dataset, split, "retrieval", model, method, len(image_emb), seed)
    record.update({"n_text": int(len(text_emb)), "metrics": metrics, "ci95": {}, "per_class": {},
                   "predictions": f"predictions/{run}.npz", "extra": dict(extra or {})})
    arrays = {"y_true": t2i, "text_to_image": t2i, "image_emb": image_emb, "text_emb": text_emb,
              "i2t_rank": i2t_rank, "t2i_rank": t2i_rank}
    return _write_run(profile, run, record, arrays)


def reports_base(profile_or_dir: Profile | str | Path) -> Path:
    """reports/<profile>/ from a Profile, or a directory given directly (reports/<profile>/)."""
    return profile_or_dir.reports_path if isinstance(profile_or_dir, Profile) else Path(profile_or_dir)


def read_metrics(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise fail(path, f"unreadable metrics file ({type(exc).__name__})",
                   "delete it and re-run the notebook that wrote it") from None
    if not isinstance(data, dict) or "metrics" not in data or "run" not in data:
        raise fail(path, "not a metrics file (no 'run'/'metrics' keys)",
                   "delete it and re-run the notebook that wrote it")
    return data


def load_run(profile: Profile | str | Path, run: str) -> dict[str, Any]:
    """The metrics record ``metrics/<run>.json``."""
    path = reports_base(profile) / "metrics" / f"{run}.json"
    if not path.is_file():
        raise fail(path, "no such run", "run the notebook that makes it (see the run name's NN prefix)")
    return read_metrics(path)


def load_predictions(profile: Profile | str | Path, run: str) -> dict[str, np.ndarray]:
    """The arrays of ``predictions/<run>.npz`` (``y_true``, ``y_score``, ``class_names``, ...)."""
    path = reports_base(profile) / "predictions" / f"{run}.npz"
    if not path.is_file():
        raise fail(path, "no such predictions file", "run the notebook that makes it (see the run name's NN prefix)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise fail(path, f"unreadable predictions file ({type(exc).__name__})",
                   "delete it and re-run the notebook that wrote it") from None


def load_runs(profile_or_reports_dir: Profile | str | Path) -> pd.DataFrame:
    """One row per ``metrics/*.json``: run, notebook, dataset, model, method, task, split, n, then for each
    metric ``m`` the columns ``m``, ``m_lo``, ``m_hi`` (NaN where undefined or without an interval)."""
    folder = reports_base(profile_or_reports_dir) / "metrics"
    rows = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        rec = read_metrics(path)
        row: dict[str, Any] = {k: rec.get(k) for k in RUN_KEYS}
        ci = rec.get("ci95") or {}
        for name, value in rec["metrics"].items():
            row[name] = np.nan if value is None else value
            lo_hi = ci.get(name) or [np.nan, np.nan]
            row[f"{name}_lo"], row[f"{name}_hi"] = lo_hi
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else list(RUN_KEYS))


NOT_RESULTS = "not_results"  # the last column of a smoke or rehearsal run's tables: the run's notice on every row


def save_table(profile: Profile | str | Path, name: str, df: pd.DataFrame) -> Path:
    """Write ``reports/<profile>/tables/<name>.csv`` atomically (no index column) and beside it ``<name>.tex``, the
    same table as a LaTeX booktabs ``tabular`` (values with 3 decimals, text escaped; ``\\usepackage{booktabs}``,
    longer tables as ``longtable``) for a paper of one's own. A smoke or rehearsal run's table gets a last column
    :data:`NOT_RESULTS` holding the run's notice (in the .tex: its caption). Returns the CSV's path."""
    if not name or slug(name) != name:
        raise fail("save_table", f"table name {name!r} must be lowercase [a-z0-9_.-]", f"use {slug(name)!r}")
    notice = profile.notice if isinstance(profile, Profile) else ""
    if notice:
        df = df.assign(**{NOT_RESULTS: notice})
    folder = reports_base(profile) / "tables"
    path = write_text(folder / f"{name}.csv", df.to_csv(index=False))
    tex = df.drop(columns=[NOT_RESULTS], errors="ignore").copy()
    for c in tex.columns:  # counts stored as floats (a missing value made the column float) print as integers
        v = tex[c]
        if pd.api.types.is_float_dtype(v) and v.notna().any() and (v.dropna() % 1 == 0).all():
            tex[c] = v.astype("Int64")
    special = {c: "\\" + c for c in "&%$#_{}"} | {"~": "\\textasciitilde{}", "^": "\\textasciicircum{}",
                                                     "\\": "\\textbackslash{}"}
    caption = "".join(special.get(ch, ch) for ch in f"{name}.csv" + (f" ({notice})" if notice else ""))
    latex = tex.to_latex(index=False, escape=True, float_format="%.3f", na_rep="", caption=caption,
                         label=f"tab:{name}", longtable=len(tex) > 40)
    write_text(folder / f"{name}.tex", "% requires \\usepackage{booktabs}" + (", longtable" if len(tex) > 40 else "")
               + f"; written with {name}.csv\n" + latex)
    return path

"""Building blocks of the report data model: numbered tables (with column widths and a font size that fit the PDF
page; a cut table says "first N of M rows" and names its CSV) and figures (their vector copy for the PDF, a caption
with the GENERATED, NOT COMPARABLE and STALE marks the data call for; a figure that does not apply to its data set is
left out with one sentence), in two numbering spaces (the paper: Table 1, Figure 1; the appendix: Table A1, Figure
A1) with cross-references between them, citations, and the fixed writing of ``text.yaml``."""

from __future__ import annotations

import contextlib
import math
import re
import struct
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import pandas as pd
import yaml

from ..outputs.names import DATASETS, augmentation_name, dataset_name, method_name, metric_name
from .escape import from_data
from .formatting import _missing, _value
from .inputs import Inputs

FIGURE_DPI = 110  # medlib.plots saves at this resolution: pixels / DPI = the figure's natural print width
PAGE_WIDTH_IN = 6.3  # A4 text width of the PDF template (portrait)
PAPER_FIGURE_IN = 5.6  # figures in the paper are at most this wide and PAPER_FIGURE_H_IN high (vector: they scale)
PAPER_FIGURE_H_IN = 3.8
APPENDIX_FIGURE_H_IN = 8.0
MIN_SCALE = 0.5  # a figure the paper would shrink below half its size (text below ~4 pt) is shown in the appendix
LANDSCAPE_WIDTH_IN = 9.9  # ... on a landscape page
REF = re.compile(r"\u27e6([^\u27e7]+)\u27e7")  # a cross-reference placeholder, resolved when the model is complete

# What each figure shows (the part of its name after NN_), for captions.
FIGURE_WHAT = {
    "class_counts": "Examples per class and split", "samples": "Sample images with their captions",
    "text_stats": "Caption length and label prevalence", "confusion": "Confusion matrix (rows: true class)",
    "per_class_recall": "Recall per class", "accuracy": "Test accuracy per method (mean over seeds)",
    "learning_curve": "Training loss and validation metric per epoch",
    "label_efficiency": "Test metric against training examples per class",
    "wise_ft": "WiSE-FT: test metric along the interpolation from zero-shot to fine-tuned weights",
    "per_body_part": "Recall per body part", "pr_curves": "Precision-recall curves",
    "tradeoff": "Worst-class recall against the overall metric, one point per remedy",
    "recall_by_prevalence": "Recall per label at validation-tuned thresholds, most to least prevalent",
    "sota": "Measured (solid) and published (hatched) numbers",
    "general_domain_cost": "Medical accuracy and general-domain retrieval along WiSE-FT",
    "general_vs_medical": "Medical accuracy against general-domain recall along WiSE-FT",
    "paired_differences": "Paired differences A - B with their 95% intervals",
    "recall_vs_train_size": "Recall@K against the number of training images",
}
# A figure drawn from a table applies to a data set only where the table has rows for it (and the metric).
FIGURE_SOURCE = {"accuracy": ("03_caption_finetune", "acc"), "label_efficiency": ("04_label_efficiency_summary", None),
                 "sota": ("sota_comparison", "from name"), "tradeoff": ("05_remedies__{ds}", None)}
# Per-figure uses of the general-domain retrieval sets (their data also counts for the GENERATED mark).
GENERAL = ("general_domain_cost", "general_vs_medical")


def _load_yaml(name: str) -> Any:
    return yaml.safe_load(resources.files("medlib.report").joinpath(name).read_text(encoding="utf-8"))


def _png_size_in(path: Path) -> tuple[float, float]:
    """A PNG's natural (width, height) in inches at the DPI medlib.plots saves with (its IHDR chunk)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
        width, height = struct.unpack(">II", head[16:24])
    except (OSError, struct.error):
        return PAGE_WIDTH_IN, PAGE_WIDTH_IN * 0.6
    return max(1.0, width / FIGURE_DPI), max(0.5, height / FIGURE_DPI)


def print_width(path: Path, paper: bool) -> tuple[float, float]:
    """(width to print, scale against the natural size): as wide as the figure is, at most the page's figure
    width, and narrower where its height would pass the page's figure height (the paper keeps figures short)."""
    w, h = _png_size_in(path)
    cap_w, cap_h = (PAPER_FIGURE_IN, PAPER_FIGURE_H_IN) if paper else (PAGE_WIDTH_IN, APPENDIX_FIGURE_H_IN)
    width = round(min(cap_w, w, cap_h * w / h), 2)
    return width, width / w


def _column_weight(header: str, cells: Sequence[str]) -> int:
    """A column's share of the table width (in characters): at least its longest unbreakable word, header included
    (the PDF breaks identifiers after _ / :), at most what its longest body cell needs, capped so prose wraps."""
    words = [w for c in [header, *cells] for w in re.split(r"[\s_/:]+", str(c)) if w]
    longest_word = max((_ems(w) for w in words), default=1)
    longest_cell = max((_ems(str(c)) for c in cells), default=1)
    numbers = all(_NUMBERS.match(str(c)) for c in cells if str(c)) and any(str(c) for c in cells)
    return max(3, longest_word + 1, min(longest_cell + 1, 20 if numbers else 14))


_NUMBERS = re.compile(r"^[+-]?\d[\d.]*( ± [\d.]+)?( \[[^\]]*\])?( \(.*\))?[ †‡]*$|^n/a$|^not run$")  # kept on one line


def _ems(text: str) -> int:
    """Width of ``text`` in 'average characters': capitals count 1.5 (GENERATED is wider than generated)."""
    return math.ceil(len(text) + 0.5 * sum(ch.isupper() for ch in text))


def _table_font(chars: int, landscape_ok: bool = True) -> tuple[float, bool]:
    """The PDF's font size for a table whose columns need ``chars`` characters side by side, and whether it goes on
    a landscape page: the largest size at which every column's longest word fits (a character is about half an
    em wide), so nothing is cut off or runs into the next cell. Without ``landscape_ok`` (the paper) the table stays
    on the portrait page at the smallest size and its cells wrap."""
    for pt in (8.5, 7.5, 6.5):
        if chars * 0.5 * pt <= PAGE_WIDTH_IN * 72 - 12:
            return pt, False
    if not landscape_ok:
        return 6.5, False
    for pt in (7.5, 6.5, 6.0):
        if chars * 0.5 * pt <= LANDSCAPE_WIDTH_IN * 72 - 12:
            return pt, True
    return 5.5, True


def _png_ok(path: Path) -> bool:
    """True when the PNG decodes (a broken file would stop the PDF typesetter)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except Exception:  # noqa: BLE001 - PIL raises many types for a broken file; any of them means "skip it"
        return False


def cut_rows(df: pd.DataFrame, limit: int) -> tuple[pd.DataFrame, str]:
    """At most ``limit`` rows of ``df`` and what was cut: with a ``dataset`` column, the first rows of every data
    set in turn (so no data set disappears); the note says "first N of M rows" (empty when nothing was cut)."""
    if len(df) <= limit:
        return df, ""
    if "dataset" in df.columns and df["dataset"].nunique() > 1:
        groups = [g for _, g in df.groupby("dataset", sort=False)]
        each = max(1, limit // len(groups))
        kept = pd.concat([g.head(each) for g in groups])
        how = f" (the first {each} of each data set)"
    else:
        kept, how = df.head(limit), ""
    return kept, f"First {len(kept)} of {len(df)} rows{how}."


class Builder:
    """Numbers blocks, collects citations and cross-references while the sections are built."""

    def __init__(self, inp: Inputs, regenerate: str):
        self.inp = inp
        self.regenerate = regenerate
        self.text = _load_yaml("text.yaml")
        self.bib = _load_yaml("bibliography.yaml")
        self.cited: list[str] = []
        self.doc = "paper"
        self.count = {"paper": {"table": 0, "figure": 0}, "appendix": {"table": 0, "figure": 0}}
        self.labels: dict[str, str] = {}  # cross-reference key -> "Table A3", "Figure 2"
        self.shown_figures: set[str] = set()
        self.used_tables: set[str] = set()
        self.skipped_figures: dict[str, str] = {}  # figure stem -> why it does not apply
        self.main = inp.main_model()
        self.lead = self._lead_dataset()

    @contextlib.contextmanager
    def appendix(self) -> Iterator[None]:
        """Blocks built inside are numbered in the appendix (Table A1, Figure A1)."""
        self.doc = "appendix"
        try:
            yield
        finally:
            self.doc = "paper"

    # -- citations, cross-references, fixed text --
    def cite(self, key: str) -> str:
        if key not in self.bib:
            return ""
        if key not in self.cited:
            self.cited.append(key)
        return f"[{self.cited.index(key) + 1}]"

    def cite_source(self, source: Any) -> str:
        """A `source` string of medlib/references.py (or a table) -> [k]; 'measured' stays."""
        s = str(source)
        if _missing(source) or s == "measured":
            return "" if _missing(source) else s
        for key, entry in self.bib.items():
            if any(m.lower() in s.lower() for m in entry.get("matches") or []):
                return self.cite(key)
        key = "src:" + s  # a source the bibliography does not know: listed as given
        self.bib[key] = {"authors": "", "title": s, "venue": "", "year": ""}
        return self.cite(key)

    def ref(self, key: str) -> str:
        """A placeholder for the label of block ``key`` ("Table A3"), filled in when the whole model is built."""
        return f"\u27e6{key}\u27e7"

    def resolve(self, model: Any) -> Any:
        """Fill every cross-reference placeholder of ``model`` (a block that was never built: "the appendix")."""
        if isinstance(model, str):
            return REF.sub(lambda m: self.labels.get(m.group(1), "the appendix"), model)
        if isinstance(model, list):
            return [self.resolve(v) for v in model]
        if isinstance(model, dict):
            return {k: self.resolve(v) for k, v in model.items()}
        return model

    def prose(self, key: str) -> list[dict[str, Any]]:
        raw = self.text.get(key) or ""
        raw = re.sub(r"\{cite:([a-z0-9_]+)\}", lambda m: self.cite(m.group(1)), raw)
        return [{"kind": "text", "text": " ".join(p.split())} for p in raw.split("\n\n") if p.strip()]

    def _number(self, kind: str) -> str:
        self.count[self.doc][kind] += 1
        return ("A" if self.doc == "appendix" else "") + str(self.count[self.doc][kind])

    # -- blocks --
    def table(self, caption: str, header: Sequence[str], rows: Iterable[Sequence[Any]], notes: Sequence[str] = (),
              key: str | None = None) -> dict[str, Any]:
        number = self._number("table")
        if key:
            self.labels[key] = f"Table {number}"
        rows = [[str(c) for c in row] for row in rows]
        widths = [_column_weight(str(h), [r[i] for r in rows if i < len(r)]) for i, h in enumerate(header)]
        font, landscape = _table_font(sum(widths), landscape_ok=self.doc == "appendix")
        return {"kind": "table", "number": number, "caption": caption, "header": [str(h) for h in header],
                "rows": rows, "notes": [n for n in notes if n], "widths": widths, "font_pt": font,
                "landscape": landscape, "wide": landscape or font < 7.5}

    def df_table(self, caption: str, df: pd.DataFrame, notes: Sequence[str] = (), key: str | None = None,
                 limit: int | None = None, csv: str | None = None) -> dict[str, Any]:
        """A table of a DataFrame (column names shown by their human names); with ``limit``, cut by
        :func:`cut_rows`, the caption saying "first N of M rows" and naming ``csv`` for the whole table."""
        cut = ""
        if limit is not None:
            df, cut = cut_rows(df, limit)
        if cut:
            caption = f"{caption} {cut}" + (f" All rows: `tables/{csv}.csv`." if csv else "")
        header = [_column_name(str(c)) for c in df.columns]
        rows = [[_cell(v, str(c)) for c, v in zip(df.columns, row)] for row in df.itertuples(index=False)]
        return self.table(caption, header, rows, notes, key)

    def figure(self, path: Path, key: str | None = None, extra: str = "") -> dict[str, Any]:
        if not _png_ok(path):
            name = from_data(path.name)
            return {"kind": "text", "text": f"Figure `figures/{name}` could not be read (a broken PNG): re-run "
                                            f"notebook {self.inp.nn_of(path.stem) or ''} to redraw it."}
        number = self._number("figure")
        if key:
            self.labels[key] = f"Figure {number}"
        self.shown_figures.add(path.name)
        vector = self.inp.vector(path)
        return {"kind": "figure", "number": number, "path": f"figures/{path.name}",
                "vector": f"figures/{vector.name}", "caption": self.figure_caption(from_data(path.stem)) + extra,
                "width_in": print_width(path, self.doc == "paper")[0]}

    def figure_datasets(self, stem: str) -> list[str]:
        """The data sets a figure shows: the one it is named after, the general-domain sets of a general-domain
        figure, every data set of a figure named after no data set (the paired differences)."""
        nn = self.inp.nn_of(stem)
        parts = (stem[3:] if nn else stem).split("__")
        what = parts[0]
        shown = [parts[1]] if len(parts) > 1 else []
        if what in GENERAL:
            shown += [d for d in self.inp.synthetic if self.inp.task_of(d) == "retrieval"]
        if len(parts) == 1:
            shown += sorted(self.inp.synthetic)
        return list(dict.fromkeys(shown))

    def figure_caption(self, stem: str) -> str:
        """'<what>, <data set> · <model> · <method>.' with the marks its data call for and its files."""
        inp = self.inp
        nn = inp.nn_of(stem)
        parts = (stem[3:] if nn else stem).split("__")
        what = FIGURE_WHAT.get(parts[0], parts[0].replace("_", " ").capitalize())
        rest = parts[1:]
        displays = {str(m.get("name")): str(m.get("display") or m.get("name")) for m in inp.models}
        if parts[0] == "sota":
            bits = [dataset_name(rest[0])] + [metric_name(x) for x in rest[1:]] if rest else []
        else:
            bits = [(dataset_name, lambda x: displays.get(x, x))[min(i, 1)](p) if i < 2 else method_name(p)
                    for i, p in enumerate(rest)]
        label = what + (f", {' · '.join(bits)}" if bits else "")
        marks = ""
        gen = [d for d in self.figure_datasets(stem) if inp.synthetic.get(d)]
        if gen:
            marks += f" GENERATED data ({', '.join(dataset_name(d) for d in gen)}): a stand-in, not the real data set."
        if parts[0] in ("sota",) and self._not_comparable(parts[1] if len(parts) > 1 else None):
            marks += " NOT COMPARABLE rows (grey, hatched) differ in data, sample, split or resolution; see their notes."
        marks += inp.stale_note(nn)
        return f"{label}.{marks} (Notebook {nn or '?'}; `figures/{stem}.png`, vector `.pdf`/`.svg` beside it.)"

    def _not_comparable(self, ds: str | None) -> bool:
        sota = self.inp.tables.get("sota_comparison")
        if sota is None or "note" not in sota.columns:
            return False
        rows = sota if ds is None or "dataset" not in sota.columns else sota[sota["dataset"].astype(str) == ds]
        return bool(rows["note"].astype(str).str.contains("NOT COMPARABLE", na=False).any())

    def applies(self, path: Path) -> str | None:
        """Why a figure does not apply to its data set (its source table has no rows for it, or it shows an
        accuracy of a multi-label set), or None when it does. Such a figure is left out with that sentence."""
        stem = from_data(path.stem)
        nn = self.inp.nn_of(stem)
        parts = (stem[3:] if nn else stem).split("__")
        what, ds = parts[0], parts[1] if len(parts) > 1 else None
        if ds is None:
            return None
        task = self.inp.task_of(ds)
        if what == "accuracy" and task == "multilabel":
            return (f"The accuracy figure of notebook {nn} does not apply to {dataset_name(ds)}: a multi-label set has "
                    "no single-label accuracy (its AUROC is in the tables).")
        source = FIGURE_SOURCE.get(what)
        if source is None:
            return None
        name, metric = source
        df = self.inp.tables.get(name.format(ds=ds))
        if df is None or "dataset" not in df.columns and "{ds}" not in name:
            return None
        rows = df[df["dataset"].astype(str) == ds] if "dataset" in df.columns else df
        if metric == "from name":
            metric = parts[2] if len(parts) > 2 else None
        if metric and "metric" in rows.columns:
            rows = rows[rows["metric"].astype(str) == metric]
        if len(rows):
            return None
        what_name = FIGURE_WHAT.get(what, what).split(",")[0].lower()
        return (f"The figure '{what_name}' of notebook {nn} does not apply to {dataset_name(ds)}: "
                f"`tables/{name.format(ds=ds)}.csv` has no {metric_name(metric) + ' ' if metric else ''}rows for it.")

    # -- which dataset leads --
    def _lead_dataset(self) -> str | None:
        """The dataset the short Results parts show: real data first, then the most runs of the main model."""
        runs = [r for r in self.inp.runs if r.get("task") in ("multiclass", "multilabel")]
        if not runs:
            return None
        count: dict[str, int] = {}
        for r in runs:
            count[r["dataset"]] = count.get(r["dataset"], 0) + (2 if r["model"] == self.main else 1)
        return sorted(count, key=lambda d: (self.inp.synthetic.get(d, False), -count[d], d))[0]

    def find_figures(self, pattern: str) -> list[Path]:
        """Figures whose name matches ``pattern`` (``{ds}`` = the lead data set, ``{m}`` = the main model)."""
        glob = pattern.format(ds=self.lead or "*", m=self.main or "*")
        return [p for p in self.inp.figures if Path(p.stem).match(glob) or p.stem == glob]

    def key_figure(self, *patterns: str, key: str | None = None) -> list[dict[str, Any]]:
        """The first figure matching one of ``patterns`` that applies (lead data set first), as a block; a
        matching figure that does not apply is left out with one sentence. Nothing when none exists."""
        out: list[dict[str, Any]] = []
        for pat in patterns:
            for p in self.find_figures(pat):
                if p.name in self.shown_figures or p.stem in self.skipped_figures:
                    continue
                why = self.applies(p)
                if why:
                    self.skipped_figures[p.stem] = why
                    out.append({"kind": "text", "text": why})
                    continue
                if _png_ok(p) and print_width(p, paper=True)[1] < MIN_SCALE:  # too tall or wide to read here
                    what = FIGURE_WHAT.get(from_data(p.stem)[3:].split("__")[0], "The figure").split(",")[0]
                    return out + [{"kind": "text", "text": f"{what}: {self.ref('fig:' + from_data(p.stem))} in "
                                                           "the appendix (too large to read at the paper's size)."}]
                return out + [self.figure(p, key)]
        return out


def _column_name(column: str) -> str:
    """A CSV column's human name: metrics by name (``worst_class_recall`` -> worst-class recall), ``_sd`` etc. as
    words, other identifiers with spaces."""
    for suffix, word in (("_sd", " (sd)"), ("_min", " (min)"), ("_max", " (max)"), ("_lo", " (low)"),
                         ("_hi", " (high)")):
        if column.endswith(suffix) and len(column) > len(suffix):
            return _column_name(column[: -len(suffix)]) + word
    if column == "dataset":
        return "data set"
    named = metric_name(column)
    return named if named != column else column.replace("_", " ")


def _cell(v: Any, column: str) -> str:
    if isinstance(v, str):
        if column in ("method", "method_a", "method_b"):
            return method_name(v)
        if column == "dataset":
            return dataset_name(v) if v in DATASETS else v
        if column == "augmentation":
            return augmentation_name(v)
        return v
    return _value(v, column)

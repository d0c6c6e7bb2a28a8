"""Building blocks of the report data model: numbered tables (with column widths and a font size that fit the PDF
page) and figures (natural print width, broken PNGs skipped), citations, the fixed writing of ``text.yaml`` and the
bibliography of ``bibliography.yaml``, and the key figures each Results part shows."""

from __future__ import annotations

import math
import re
import struct
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd
import yaml

from .escape import from_data
from .formatting import _missing, _value
from .inputs import Inputs

KEY_FIGURES = {
    "01": ["01_class_counts__{ds}"],
    "02": ["02_confusion__{ds}__{m}__zero-shot", "02_confusion__*__{m}__zero-shot"],
    "03": ["03_accuracy__{ds}__*", "03_accuracy__*"],
    "04": ["04_label_efficiency__{ds}__*", "04_wise_ft__{ds}__*", "04_label_efficiency__*", "04_wise_ft__*"],
    "05": ["05_tradeoff__{ds}__*", "05_tradeoff__*", "05_recall_by_prevalence__*"],
    "06": ["06_sota__{ds}__acc", "06_sota__{ds}__auroc", "06_general_domain_cost__*"],
    "07": ["07_*"],
    "paired": ["06_paired_differences*", "*paired_differences*"],
}
MAX_KEY_FIGURES = 2
FIGURE_DPI = 110  # medlib.plots saves at this resolution: pixels / DPI = the figure's natural print width
PAGE_WIDTH_IN = 6.3  # A4 text width of the PDF template (portrait)
LANDSCAPE_WIDTH_IN = 9.9  # ... on a landscape page




def _load_yaml(name: str) -> Any:
    return yaml.safe_load(resources.files("medlib.report").joinpath(name).read_text(encoding="utf-8"))


def _png_width_in(path: Path) -> float:
    """A PNG's width at the DPI medlib.plots saves with (the IHDR chunk; no image library needed)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
        width = struct.unpack(">I", head[16:20])[0]
    except (OSError, struct.error):
        return PAGE_WIDTH_IN
    return round(min(PAGE_WIDTH_IN, max(1.0, width / FIGURE_DPI)), 2)


def _column_weight(header: str, cells: Sequence[str]) -> int:
    """A column's share of the table width (in characters): at least its longest unbreakable word, header included
    (the PDF breaks identifiers after _ / :), at most what its longest body cell needs, capped so prose wraps."""
    words = [w for c in [header, *cells] for w in re.split(r"[\s_/:]+", str(c)) if w]
    longest_word = max((_ems(w) for w in words), default=1)
    longest_cell = max((_ems(str(c)) for c in cells), default=1)
    return max(3, longest_word + 1, min(longest_cell + 1, 14))


def _ems(text: str) -> int:
    """Width of ``text`` in 'average characters': capitals count 1.5 (GENERATED is wider than generated)."""
    return math.ceil(len(text) + 0.5 * sum(ch.isupper() for ch in text))


def _table_font(chars: int) -> tuple[float, bool]:
    """The PDF's font size for a table whose columns need ``chars`` characters side by side, and whether it goes on
    a landscape page: the largest size at which every column's longest word fits (a character is about half an
    em wide), so nothing is cut off or runs into the next cell."""
    for pt in (8.5, 7.5, 6.5):
        if chars * 0.5 * pt <= PAGE_WIDTH_IN * 72 - 12:
            return pt, False
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


class Builder:
    def __init__(self, inp: Inputs, regenerate: str):
        self.inp = inp
        self.regenerate = regenerate
        self.text = _load_yaml("text.yaml")
        self.bib = _load_yaml("bibliography.yaml")
        self.cited: list[str] = []
        self.n_table = 0
        self.n_figure = 0
        self.shown_figures: set[str] = set()
        self.used_tables: set[str] = set()
        self.main = inp.main_model()
        self.lead = self._lead_dataset()

    # -- citations and fixed text --
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

    def prose(self, key: str) -> list[dict[str, Any]]:
        raw = self.text.get(key) or ""
        raw = re.sub(r"\{cite:([a-z0-9_]+)\}", lambda m: self.cite(m.group(1)), raw)
        return [{"kind": "text", "text": " ".join(p.split())} for p in raw.split("\n\n") if p.strip()]

    # -- blocks --
    def table(self, caption: str, header: Sequence[str], rows: Iterable[Sequence[Any]],
              notes: Sequence[str] = ()) -> dict[str, Any]:
        self.n_table += 1
        rows = [[str(c) for c in row] for row in rows]
        widths = [_column_weight(str(h), [r[i] for r in rows if i < len(r)]) for i, h in enumerate(header)]
        font, landscape = _table_font(sum(widths))
        return {"kind": "table", "number": self.n_table, "caption": caption, "header": [str(h) for h in header],
                "rows": rows, "notes": [n for n in notes if n], "widths": widths, "font_pt": font,
                "landscape": landscape, "wide": landscape or font < 7.5}

    def df_table(self, caption: str, df: pd.DataFrame, notes: Sequence[str] = ()) -> dict[str, Any]:
        return self.table(caption, [str(c) for c in df.columns],
                          [[_value(v, str(c)) if not isinstance(v, str) else v for c, v in zip(df.columns, row)]
                           for row in df.itertuples(index=False)], notes)

    def figure(self, path: Path) -> dict[str, Any]:
        if not _png_ok(path):
            name = from_data(path.name)
            return {"kind": "text", "text": f"Figure `figures/{name}` could not be read (a broken PNG): re-run "
                                            f"notebook {self.inp.nn_of(path.stem) or ''} to redraw it."}
        self.n_figure += 1
        self.shown_figures.add(path.name)
        return {"kind": "figure", "number": self.n_figure, "path": f"figures/{path.name}",
                "caption": self._figure_caption(from_data(path.stem)), "width_in": _png_width_in(path)}

    def _figure_caption(self, stem: str) -> str:
        nn = self.inp.nn_of(stem)
        parts = (stem[3:] if nn else stem).split("__")
        what = parts[0].replace("_", " ")
        bits = [p for p in parts[1:]]
        ds = bits[0] if bits else None
        label = f"{what}" + (f", {' · '.join(bits)}" if bits else "")
        gen = " GENERATED data (a stand-in, not the real data set)." if ds and self.inp.synthetic.get(ds) else ""
        return f"{label} (notebook {nn or '?'}; `figures/{stem}.png`).{gen}"

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

    def key_figures(self, nn: str) -> list[Path]:
        out: list[Path] = []
        for pat in KEY_FIGURES.get(nn, []):
            if "{ds}" in pat and not self.lead:
                continue
            glob = pat.format(ds=self.lead or "", m=self.main or "*")
            hit = next((p for p in self.inp.figures if Path(p.stem).match(glob) or p.stem == glob), None)
            if hit is not None and hit not in out:
                out.append(hit)
            if len(out) >= MAX_KEY_FIGURES:
                break
        return out

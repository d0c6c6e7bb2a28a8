"""The report's one number format and display names (used by the data model and the README block).

Metric values with 3 decimals (``0.853``), intervals ``[0.824, 0.880]``, differences signed (``+0.120``), integers
as they are, undefined values ``n/a``; settings as recorded (``1e-4`` stays ``0.0001``).
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import pandas as pd

METRIC_NAMES = {"acc": "accuracy", "top3": "top-3 accuracy", "balanced_acc": "balanced accuracy",
                "macro_f1": "macro-F1", "auroc": "AUROC", "worst_class_recall": "worst-class recall", "ece": "ECE"}
METHOD_NAMES = {"zero-shot": "zero-shot", "caption-ft-plain": "caption FT", "caption-ft": "caption FT",
                "label-ft": "label FT", "multilabel-ft": "multi-label FT", "linear-probe": "linear probe",
                "lp-ft": "LP-FT", "supervised": "ResNet-18", "remedy-none": "no remedy", "none": "no remedy"}
COUNT_COLUMNS = {"n", "support", "train", "val", "test", "n_train", "classes", "count", "shots_per_class"}


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
    if hasattr(value, "item"):
        return fmt(value.item())
    return str(value)


def fmt_diff(value: Any) -> str:
    """A signed difference: '+0.120', '-0.031'."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if not math.isfinite(v) else f"{v:+.3f}"


def fmt_ci(ci: Sequence[float] | None) -> str:
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else ""


def fmt_metric(rec: dict[str, Any], name: str, ci: bool = True) -> str:
    value = rec["metrics"].get(name)
    interval = (rec.get("ci95") or {}).get(name) if ci else None
    return f"{fmt(value)} {fmt_ci(interval)}".strip()


def _cfg(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return fmt(value)


def _missing(v: Any) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _value(v: Any, column: str = "") -> str:
    if _missing(v):
        return "n/a"
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and column in COUNT_COLUMNS and v.is_integer():
        return str(int(v))
    return fmt(v)


def method_name(method: str) -> str:
    return METHOD_NAMES.get(str(method), str(method))


def _truthy(v: Any) -> bool:
    return str(v).strip().lower() in ("true", "1", "yes")


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False

"""The report's one number format and display names (used by the data model and the README block).

Metric values with 3 decimals (``0.853``), intervals ``[0.824, 0.880]``, differences signed (``+0.120``) with as
many more decimals as a difference or an interval bound needs to show its sign (``+0.0004``, never ``+0.000``),
integers as they are, undefined values ``n/a``; settings as recorded (``1e-4`` stays ``0.0001``). Names of metrics
and methods come from :mod:`medlib.outputs.names` (the one mapping tables, figures and the report share).
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import pandas as pd

from ..outputs.names import method_name, metric_name


__all__ = ["fmt", "fmt_diff", "fmt_interval", "fmt_ci", "fmt_metric", "metric_name", "method_name"]
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
    """A signed difference: '+0.120', '-0.031'; a small nonzero one with the decimals its sign needs ('+0.0004');
    exactly zero as '0.000'."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "n/a"
    if not math.isfinite(v):
        return "n/a"
    if v == 0:
        return "0.000"
    digits = 3
    while round(abs(v), digits) == 0 and digits < 8:
        digits += 1
    return f"{v:+.{digits}f}"


def fmt_interval(lo: Any, hi: Any) -> str:
    """A signed interval '[+0.012, +0.095]' whose bounds show their sign (see :func:`fmt_diff`)."""
    return f"[{fmt_diff(lo)}, {fmt_diff(hi)}]"


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


def _truthy(v: Any) -> bool:
    return str(v).strip().lower() in ("true", "1", "yes")


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False

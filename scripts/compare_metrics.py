"""Compare two runs' metrics folders: the same run names, and every point metric equal bit for bit.

    python scripts/compare_metrics.py reports/smoke/metrics /path/to/baseline/metrics [--also ci95,per_class]

Exits 0 when every run of the baseline exists in the candidate with identical ``metrics`` (and, with ``--also``,
identical other fields); prints one line per difference otherwise. Used to check that a restructuring changes
no number (the smoke run on the real PneumoniaMNIST before and after).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def load(folder: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("candidate", type=Path)
    ap.add_argument("baseline", type=Path)
    ap.add_argument("--also", default="", help="comma-separated record fields compared too (ci95, per_class, confusion)")
    args = ap.parse_args(argv)
    new, old = load(args.candidate), load(args.baseline)
    fields = ["metrics"] + [f for f in args.also.split(",") if f]
    problems = [f"missing in candidate: {run}" for run in sorted(set(old) - set(new))]
    problems += [f"new in candidate: {run}" for run in sorted(set(new) - set(old))]
    same = 0
    for run in sorted(set(old) & set(new)):
        for field in fields:
            a, b = old[run].get(field), new[run].get(field)
            if a != b:
                keys = sorted(k for k in set(a or {}) | set(b or {}) if (a or {}).get(k) != (b or {}).get(k)) \
                    if isinstance(a, dict) and isinstance(b, dict) else ["(value)"]
                problems.append(f"{run}: {field} differs in {keys}")
            else:
                same += 1
    for line in problems:
        print(line)
    print(f"{len(set(old) & set(new))} runs in both; {same} field comparisons equal; {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

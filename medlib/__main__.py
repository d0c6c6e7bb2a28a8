"""``python -m medlib`` / ``medlib``: small command-line entry points.

  medlib run --profile smoke [...]     same as ./run_all.sh
  medlib profile smoke                 print the resolved profile (and its hash), or the error
"""

from __future__ import annotations

import json
import sys

from .errors import MedlibError


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "run":
        from .run.runner import main as run_main

        return run_main(rest)
    if cmd == "profile":
        from .config import load_profile

        try:
            p = load_profile(rest[0] if rest else "smoke")
        except MedlibError as exc:
            print(f"ERROR: {exc}", file=sys.stderr)
            return 2
        print(json.dumps({"hash": p.hash(), **p.to_dict()}, indent=2))
        return 0
    print(f"ERROR: unknown command {cmd!r}. Fix: use `medlib run --profile NAME [...]` or `medlib profile NAME` "
          "(medlib --help)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

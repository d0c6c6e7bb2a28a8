"""``python -m medlib`` / ``medlib``: small command-line entry points.

  medlib run --profile smoke [...]     same as ./run_all.sh
  medlib profile smoke                 print the resolved profile (and its hash), or the error
  medlib export RUN_DIR OUT_DIR [--profile NAME|PATH]
                                       write a finished run's model in open_clip's folder layout (the folder
                                       open_clip.create_model_and_transforms("local-dir:OUT_DIR") loads), with
                                       its model card and classifier head (docs/export.md)
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
    if cmd == "export":
        return export(rest)
    print(f"ERROR: unknown command {cmd!r}. Fix: use `medlib run --profile NAME [...]`, `medlib profile NAME` or "
          "`medlib export RUN_DIR OUT_DIR` (medlib --help)", file=sys.stderr)
    return 2


def export(argv: list[str]) -> int:
    """``medlib export RUN_DIR OUT_DIR [--profile NAME|PATH]`` (:func:`medlib.models.export.export_run`)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m medlib export",
                                     description="Write a finished run's model in open_clip's folder layout.")
    parser.add_argument("run_dir", help="runs/<profile>/<run>/ of a finished run")
    parser.add_argument("out_dir", help="the folder to write (new, empty, or an earlier export)")
    parser.add_argument("--profile", default=None,
                        help="the profile that trained the run (default: the folder above RUN_DIR names it)")
    args = parser.parse_args(argv)
    from .models.export import export_run

    try:
        export_run(args.run_dir, args.out_dir, args.profile)
    except MedlibError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

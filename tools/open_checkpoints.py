"""Open every checkpoint of a finished run folder with torch alone, then with medlib, and compare the tensors.

    python -m tools.open_checkpoints runs/smoke

A child process that never imports medlib reads each ``*.pt`` with ``torch.load(weights_only=True)`` and
fingerprints its ``"model"`` tensors (sha256 of the bytes, shape); this process reads the same files with
``medlib.train.checkpoint.load`` (digest checked) and compares. Exit 0 when every file matches.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import hashlib, json, sys, pathlib, torch
out = {}
for p in sorted(pathlib.Path(sys.argv[1]).rglob("*.pt")):
    m = torch.load(p, weights_only=True).get("model", {})
    out[str(p)] = {k: hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest() + str(tuple(v.shape))
                   for k, v in m.items() if torch.is_tensor(v)}
assert not any(name == "medlib" or name.startswith("medlib.") for name in sys.modules)
print(json.dumps(out))
"""


def fingerprints_with_medlib(folder: Path) -> dict[str, dict[str, str]]:
    import torch

    from medlib.train import checkpoint

    out = {}
    for p in sorted(folder.rglob("*.pt")):
        m = checkpoint.load(p).get("model", {})
        out[str(p)] = {k: hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest() + str(tuple(v.shape))
                       for k, v in m.items() if torch.is_tensor(v)}
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0] if args else "runs/smoke")
    child = subprocess.run([sys.executable, "-c", CHILD, str(folder)], capture_output=True, text=True, check=True)
    plain = json.loads(child.stdout)
    ours = fingerprints_with_medlib(folder)
    same = [p for p in ours if plain.get(p) == ours[p]]
    best = sum(p.endswith("best.pt") for p in plain)
    print(f"{folder}: {len(plain)} checkpoint files ({best} best.pt, {sum(len(v) for v in plain.values())} tensors) "
          f"open with torch alone; {len(same)}/{len(ours)} hold the tensors medlib reads")
    return 0 if len(same) == len(ours) == len(plain) else 1


if __name__ == "__main__":
    sys.exit(main())

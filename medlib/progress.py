"""Progress: bars in JupyterLab, one console line per training run and epoch under ``./run_all.sh``.

Bars: on by default, off when ``MEDLIB_PROGRESS=0``. ``run_all.sh`` sets ``MEDLIB_PROGRESS=0`` for its headless
notebook runs (unless you set it yourself), so the executed copies under ``reports/`` are not filled with hundreds
of finished per-epoch bars.

Events: where ``$MEDLIB_PROGRESS_FILE`` is set (the runner sets it for each notebook's kernel), each training run
appends JSON lines to that file -- one ``epoch`` per trained epoch, ``done`` (trained, or reused as it was) and
``retrain`` when its settings changed -- and the runner prints each as one console line (:func:`describe`: the run, epoch x/y and the
time left). Nothing of it reaches the notebook's own output.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

FILE_ENV = "MEDLIB_PROGRESS_FILE"


def enabled(requested: bool = True) -> bool:
    return bool(requested) and os.environ.get("MEDLIB_PROGRESS", "1") != "0"


def event(kind: str, run: str, **fields: Any) -> None:
    """Append one event (``kind``: epoch | done | retrain) of training run ``run`` to
    ``$MEDLIB_PROGRESS_FILE``; nothing where it is unset, and a failed write never stops training."""
    path = os.environ.get(FILE_ENV)
    if not path:
        return
    line = json.dumps({"kind": kind, "run": run, "time": round(time.time(), 3), **fields}, default=str)
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError:
        pass


class EpochEvents:
    """``on_epoch_end(epoch, row)`` for the training loop: one ``epoch`` event per epoch, with the epochs of its
    stage (``stages``: e.g. LP-FT's probe and fine-tune epochs; a stage starts where the epoch count starts over)
    and the time left at this stage's mean seconds per epoch (an upper bound: early stopping ends runs sooner)."""

    def __init__(self, run: str, stages: list[int]):
        self.run, self.stages, self.stage, self.last, self.seconds = run, list(stages) or [1], 0, 0, []

    def __call__(self, epoch: int, row: dict[str, Any]) -> None:
        if epoch <= self.last and self.stage + 1 < len(self.stages):  # the next stage started over at epoch 1
            self.stage, self.seconds = self.stage + 1, []
        self.last = epoch
        self.seconds.append(float(row.get("seconds") or 0.0))
        total = self.stages[self.stage]
        per = sum(self.seconds) / len(self.seconds)
        left = per * (max(total - epoch, 0) + sum(self.stages[self.stage + 1:]))
        stage = f"stage {self.stage + 1}/{len(self.stages)}" if len(self.stages) > 1 else ""
        event("epoch", self.run, epoch=epoch, epochs=total, stage=stage, seconds=round(per, 2), eta_s=round(left),
              val_metric=row.get("val_metric"))


def short_name(run: str) -> str:
    """``03_caption_finetune__pneumoniamnist__tiny__caption-ft-plain__s1`` -> ``pneumoniamnist · tiny ·
    caption-ft-plain · seed 1`` (the notebook is on the line above)."""
    parts = run.split("__")[1:] or [run]
    if parts and parts[-1].startswith("s") and parts[-1][1:].isdigit():
        parts[-1] = f"seed {parts[-1][1:]}"
    return " · ".join(parts)


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def describe(ev: dict[str, Any]) -> str:
    """The console line of one event ('' for an unknown one)."""
    name, kind = short_name(str(ev.get("run", "?"))), ev.get("kind")
    if kind == "epoch":
        stage = f" ({ev['stage']})" if ev.get("stage") else ""
        return (f"  {name}: epoch {ev.get('epoch')}/{ev.get('epochs')}{stage}, {ev.get('seconds', 0):.1f} s/epoch, "
                f"ETA {_clock(ev.get('eta_s') or 0)}")
    if kind == "done":
        return f"  {name}: done in {_clock(ev.get('seconds') or 0)}" if ev.get("trained") else \
            f"  {name}: finished earlier, reused"
    if kind == "retrain":
        return f"  {name}: settings changed ({ev.get('reason', '?')}): training it again"
    return ""

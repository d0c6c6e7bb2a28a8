"""tools/open_checkpoints.py: a run folder's checkpoints opened with torch alone match medlib's reading."""

import torch

from medlib.train import checkpoint
from tools.open_checkpoints import main


def test_checkpoints_of_a_run_folder_open_with_torch_alone_and_match_medlibs_reading(tmp_path, capsys):
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    checkpoint.save(run / "best.pt", {"model": {"w": torch.arange(6.0).reshape(2, 3)}})
    assert main([str(tmp_path / "runs")]) == 0
    assert "1 checkpoint files (1 best.pt, 1 tensors) open with torch alone; 1/1" in capsys.readouterr().out

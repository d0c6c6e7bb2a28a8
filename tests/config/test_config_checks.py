"""Profile input checks (issue 9): out-of-range numbers, the variants/shots combination notebook 04 cannot run,
YAML's '1e-3' string, YAML syntax errors with their line, each a one-line error at load time."""

from __future__ import annotations

import pytest
import yaml

from conftest import REPO
from medlib.config import load_profile
from medlib.errors import MedlibError


def _write(tmp_path, edit) -> str:
    raw = yaml.safe_load((REPO / "medlib" / "config" / "profiles" / "smoke.yaml").read_text())
    edit(raw)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _error(*args, **kw) -> str:
    with pytest.raises(MedlibError) as e:
        load_profile(*args, **kw)
    msg = str(e.value)
    assert "\n" not in msg and "Fix:" in msg
    return msg


@pytest.mark.parametrize("key,value,needle", [
    ("label_finetune.train.batch_size", 0, "label_finetune.train.batch_size = 0 is out of range"),
    ("imbalance.train.epochs", -1, "imbalance.train.epochs = -1 is out of range"),
    ("caption_finetune.train.lr", -0.001, "caption_finetune.train.lr = -0.001 is out of range"),
    ("zero_shot.batch_size", 0, "zero_shot.batch_size = 0"),
    ("sota.cnn_batch_size", 0, "sota.cnn_batch_size = 0"),
    ("label_finetune.probe_lr", 0.0, "label_finetune.probe_lr = 0.0"),
    ("label_finetune.shots", [4, -1], "label_finetune.shots[1] = -1"),
])
def test_numbers_out_of_range_are_errors_at_load_time(key, value, needle):
    assert needle in _error("smoke", {key: value})


def test_shots_with_all_data_need_the_full_data_variants():
    # Notebook 04 looks up the full-data linear-probe and label-ft runs for shots 0 ("all"): IndexError today.
    msg = _error("smoke", {"label_finetune.variants": ["full", "lp_ft"]})
    assert "label_finetune.shots includes 0" in msg and "linear_probe" in msg
    msg = _error("smoke", {"label_finetune.variants": ["linear_probe"]})
    assert "'full'" in msg
    load_profile("smoke", {"label_finetune.variants": ["linear_probe", "wise_ft"]})  # wise_ft trains label-ft
    load_profile("smoke", {"label_finetune.variants": ["lp_ft"], "label_finetune.shots": [1, 4]})  # no "all"


def test_exponent_without_dot_is_explained_as_yaml_reading_a_string(tmp_path):
    path = tmp_path / "p.yaml"
    text = (REPO / "medlib" / "config" / "profiles" / "smoke.yaml").read_text().replace("probe_lr: 1.0e-2", "probe_lr: 1e-2")
    path.write_text(text)
    msg = _error(str(path))
    assert "probe_lr" in msg and "read by YAML as a string" in msg and "write 1.0e-2" in msg


@pytest.mark.parametrize("bad_line, kind", [
    ("seed: [0", "unclosed list"),
    ("seed: {a: 1", "unclosed mapping"),
    ("seed", "key without a colon"),
    ("seed: 0: 1", "second colon"),
    ("  seed: 0", "indented key"),
    ("- 0", "list item inside a mapping"),
    ("seed: *zero", "undefined alias"),
    ("\tseed: 0", "tab"),
])
def test_yaml_syntax_error_names_the_line_to_fix(tmp_path, bad_line, kind):
    path = tmp_path / "p.yaml"
    lines = (REPO / "medlib" / "config" / "profiles" / "smoke.yaml").read_text().splitlines()
    lines[9] = bad_line  # line 10
    path.write_text("\n".join(lines) + "\n")
    msg = _error(str(path))
    assert "not valid YAML at line 10," in msg, (kind, msg)


def test_yaml_unclosed_quote_names_the_line_it_opens_on(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text('kind: smoke\nname: "smoke\nseed: 0\n')  # the string runs to the end of the file
    msg = _error(str(path))
    assert "not valid YAML at line 2, column 7" in msg and "at line 4" in msg  # where it began; where it ended


def test_data_dir_that_is_a_file_is_an_error(tmp_path, monkeypatch):
    f = tmp_path / "data.txt"
    f.write_text("x")
    monkeypatch.setenv("MEDLIB_DATA_DIR", str(f))
    assert "data dir is a file" in _error("smoke")


def test_data_workers_is_a_profile_key_that_does_not_change_the_hash():
    p = load_profile("smoke", {"data_workers": 3})
    assert p.data_workers == 3 and load_profile("smoke").data_workers == 0  # 0 = every core
    assert p.hash() == load_profile("smoke").hash()  # results do not depend on it
    assert "data_workers = -1" in _error("smoke", {"data_workers": -1})

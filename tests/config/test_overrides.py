"""Settings from the command line: --set key=value, checked by the same schema as the YAML, handed to the notebooks."""

import json

import pytest

from medlib.config import (OVERRIDES_ENV, env_overrides, format_overrides, load_profile, parse_overrides)
from medlib.errors import MedlibError


def test_set_values_are_read_as_yaml_and_round_trip():
    got = parse_overrides(["caption_finetune.train.epochs=4", "seeds=[0]", "sota.retrieval_dataset=",
                           "label_finetune.train.lr=1.0e-3", "caption_finetune.train.augment=false"])
    assert got == {"caption_finetune.train.epochs": 4, "seeds": [0], "sota.retrieval_dataset": "",
                   "label_finetune.train.lr": 1e-3, "caption_finetune.train.augment": False}
    assert parse_overrides(format_overrides(got)) == got
    p = load_profile("smoke", got)
    assert p.caption_finetune.train.epochs == 4 and p.seeds == [0] and p.hash() != load_profile("smoke").hash()


@pytest.mark.parametrize("item, words", [
    ("epochs", "not key=value"),
    ("caption_finetune.train.epochz=4", "has no setting 'epochz'"),
    ("caption_finetune.train.epochs=four", "expected an integer"),
    ("caption_finetune.train.epochs=0", "out of range"),
    ("caption_finetune.variants=[plain, fancy]", "unknown value(s) ['fancy']"),
    ("caption_finetune=3", "is a section"),
    ("seeds.first=1", "is a setting, not a section"),
    ("seeds=[0", "not valid YAML"),
])
def test_a_bad_set_is_one_line_naming_it_and_the_fix(item, words):
    with pytest.raises(MedlibError) as err:
        parse_overrides([item])
    msg = str(err.value)
    assert msg.startswith(f"--set {item.split('=')[0]}") or msg.startswith(f"--set {item!r}")
    assert words in msg and "Fix:" in msg and "\n" not in msg


def test_the_runner_refuses_a_bad_set_before_running_anything(capsys):
    from medlib.run.runner import main

    assert main(["--profile", "smoke", "--set", "caption_finetune.train.epochs=0", "--only", "01"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "caption_finetune.train.epochs" in err[0] and ">= 1" in err[0]


def test_the_notebooks_apply_the_runs_overrides(monkeypatch, capsys):
    from medlib.studies import setup

    monkeypatch.setenv(OVERRIDES_ENV, json.dumps({"caption_finetune.train.epochs": 4, "seeds": [0]}))
    p = setup.load("smoke")
    assert p.caption_finetune.train.epochs == 4 and p.seeds == [0]
    assert "--set caption_finetune.train.epochs=4 seeds=[0]" in capsys.readouterr().out  # the banner says so
    assert setup.load("smoke", seed=0, **{"caption_finetune.train.epochs": 2}).caption_finetune.train.epochs == 2
    monkeypatch.setenv(OVERRIDES_ENV, '{"caption_finetune.train.epochz": 4}')
    with pytest.raises(MedlibError, match=OVERRIDES_ENV):
        env_overrides()
    monkeypatch.delenv(OVERRIDES_ENV)
    assert env_overrides() == {}


def test_prompt_templates_and_class_texts_are_checked(tmp_path):
    base = (tmp_path / "p.yaml")
    text = ("name: p\nmodels: [{name: m, arch: medclip-tiny}]\n"
            "datasets: [{name: d, source: csv_pairs, path: x.csv, templates: ['{}TEMPLATE'], class_texts: {a: ''}}]\n")
    base.write_text(text.replace("{}TEMPLATE", "a photo of two {} {}"))
    with pytest.raises(MedlibError, match=r"datasets\[d\].templates.*exactly one"):
        load_profile(base)
    base.write_text(text.replace("{}TEMPLATE", "a photo of {}"))
    with pytest.raises(MedlibError, match=r"class_texts: no text for class\(es\) \['a'\]"):
        load_profile(base)
    base.write_text(text.replace("{}TEMPLATE", "a photo of {}").replace("class_texts: {a: ''}", "domain: skin"))
    with pytest.raises(MedlibError, match="domain: unknown value"):
        load_profile(base)

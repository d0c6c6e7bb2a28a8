import pytest

from medlib.config import Profile, available_profiles, load_profile
from medlib.errors import MedlibError


def test_both_profiles_load_and_are_typed():
    assert {"smoke", "full"} <= set(available_profiles())
    smoke, full = load_profile("smoke"), load_profile("full")
    assert isinstance(smoke, Profile) and smoke.kind == "smoke" and smoke.label == "SMOKE"
    assert full.kind == "real" and full.label == ""
    assert full.model("vit-b-32-openai").pretrained == "openai"
    assert full.model("biomedclip").arch.startswith("hf-hub:microsoft/BiomedCLIP")
    assert full.dataset("pubmedvision").n == 4096
    # every dataset a notebook section names exists in the profile
    for p in (smoke, full):
        names = {d.name for d in p.datasets}
        used = (p.zero_shot.datasets + p.caption_finetune.datasets + p.label_finetune.datasets
                + p.label_finetune.multilabel_datasets + p.imbalance.datasets + p.sota.datasets)
        assert set(used) <= names


def test_override_one_key_changes_only_that_key():
    base = load_profile("smoke")
    p = load_profile("smoke", {"label_finetune.train.epochs": 7, "seed": 3, "device": None})
    assert p.label_finetune.train.epochs == 7 and p.seed == 3
    assert p.caption_finetune.train.epochs == base.caption_finetune.train.epochs
    assert p.device == base.device  # None means "keep the profile's value"
    assert p.hash() != base.hash()


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"bogus": 1}, "bogus"),
        ({"label_finetune.train.epoch": 1}, "epoch"),
        ({"seed": "zero"}, "seed"),
        ({"label_finetune.train.lr": "fast"}, "lr"),
        ({"smoke": "yes"}, "smoke"),
    ],
)
def test_unknown_or_mistyped_keys_are_errors(overrides, needle):
    with pytest.raises(MedlibError, match=needle):
        load_profile("smoke", overrides)


def test_missing_and_malformed_profile_files(tmp_path):
    with pytest.raises(MedlibError, match="profile not found"):
        load_profile("no-such-profile")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1, 2\n")
    with pytest.raises(MedlibError, match="bad.yaml"):
        load_profile(bad)
    unknown_model_key = tmp_path / "m.yaml"
    unknown_model_key.write_text("kind: smoke\nmodels:\n  - {name: a, arch: b, weights: c}\n")
    with pytest.raises(MedlibError, match="weights"):
        load_profile(unknown_model_key)


def test_data_dir_precedence_and_hash_ignores_locations(tmp_path, monkeypatch):
    (tmp_path / "env").mkdir(), (tmp_path / "arg").mkdir()  # a data dir the user names must exist
    monkeypatch.setenv("MEDLIB_DATA_DIR", str(tmp_path / "env"))
    assert load_profile("smoke").data_dir == str(tmp_path / "env")
    assert load_profile("smoke", data_dir=tmp_path / "arg").data_dir == str(tmp_path / "arg")
    monkeypatch.delenv("MEDLIB_DATA_DIR")
    assert load_profile("smoke").hash() == load_profile("smoke", data_dir=tmp_path).hash()


def test_unknown_dataset_or_model_name_is_an_error():
    p = load_profile("smoke")
    with pytest.raises(MedlibError, match="no dataset named"):
        p.dataset("imagenet")
    with pytest.raises(MedlibError, match="no model named"):
        p.model("gpt")


@pytest.mark.parametrize(
    "yaml_text, needle",
    [
        ("kind: smoke\ndatasets:\n  - {name: a, source: medmnst}\n", "medmnst"),
        ("kind: smoke\ndatasets:\n  - {name: a, source: medmnist, synthetic: sometimes}\n", "sometimes"),
        ("kind: smoke\nimbalance: {remedies: [none, smote]}\n", "smote"),
        ("kind: smoke\ncaption_finetune: {train: {precision: fp16}}\n", "fp16"),
        ("kind: smoke\nmodels:\n  - {name: a, arch: x, role: domain}\n", "exactly one model"),
        ("kind: smoke\nmodels:\n  - {name: a, arch: x}\n  - {name: a, arch: y, role: domain}\n", "more than once"),
        ("kind: smoke\ndatasets:\n  - {name: a, source: medmnist}\nsota: {datasets: [b]}\n", "unknown dataset"),
        ("kind: smoke\ndatasets:\n  - {name: a, source: chestxray14, fallback: chestmnist}\n", "chestmnist"),
    ],
)
def test_bad_values_and_dangling_names_are_errors_at_load_time(tmp_path, yaml_text, needle):
    path = tmp_path / "p.yaml"
    path.write_text(yaml_text)
    with pytest.raises(MedlibError, match=needle):
        load_profile(path)


def test_seeds_default_to_the_seed_and_shift_with_a_seed_override():
    from medlib.config import load_profile as load

    smoke = load("smoke")
    assert smoke.seed_list == [0, 1] and smoke.seed_list[0] == smoke.seed
    assert load("full").seed_list == [0, 1, 2]
    shifted = load("smoke", {"seed": 3})
    assert shifted.seed == 3 and shifted.seed_list == [3, 4]
    assert load("smoke", {"seeds": []}).seed_list == [0]


@pytest.mark.parametrize("overrides, message", [({"seeds": [1, 2]}, "first seed"), ({"seeds": [0, 0]}, "distinct"),
                                                ({"seeded_methods": ["label_ft", "magic"]}, "magic")])
def test_bad_seeds_are_profile_errors(overrides, message):
    from medlib.config import load_profile as load
    from medlib.errors import MedlibError

    with pytest.raises(MedlibError, match=message):
        load("smoke", overrides)

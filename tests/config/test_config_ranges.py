"""Every number of the profile schema has a declared range, checked when the profile loads: one line naming the
file, the key, the value and the allowed range."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import yaml

from conftest import REPO
from medlib.config import Profile, load_profile
from medlib.errors import MedlibError

SMOKE = REPO / "medlib" / "config" / "profiles" / "smoke.yaml"
SMOKE_DATASET = yaml.safe_load(SMOKE.read_text())["datasets"][0]["name"]


def _numeric_fields(cls: type = Profile, path: tuple = ()) -> list[tuple[tuple, dataclasses.Field, type]]:
    """(path, field, number type) of every int/float or list-of-int/float field reachable from ``cls``; a list of
    sections (``datasets``) contributes its first entry's path, ``("datasets", 0, "size")``."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        item = typing.get_args(tp)[0] if typing.get_origin(tp) is list else None
        if tp in (int, float) or item in (int, float):
            out.append((path + (f.name,), f, tp if item is None else item))
        elif dataclasses.is_dataclass(tp):
            out += _numeric_fields(tp, path + (f.name,))
        elif item is not None and dataclasses.is_dataclass(item):
            out += _numeric_fields(item, path + (f.name, 0))
    return out


FIELDS = _numeric_fields()


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def test_the_walk_finds_every_section():
    sections = {p[0] for p, _, _ in FIELDS}
    assert {"seed", "seeds", "data_workers", "datasets", "zero_shot", "caption_finetune", "label_finetune",
            "imbalance", "sota", "distributed", "retrieval_study"} <= sections
    assert len(FIELDS) > 50


@pytest.mark.parametrize("path", [_dotted(p) for p, _, _ in FIELDS])
def test_every_numeric_field_declares_a_range(path):
    (f,) = [f for p, f, _ in FIELDS if _dotted(p) == path]
    assert f.metadata.get("range") is not None, f"{path}: give the field a range (medlib.config.ranged)"


def _outside(rng, tp):
    """A value just outside ``rng`` (of type ``tp``)."""
    step = 1 if tp is int else 0.5
    if rng.ge is not None:
        return tp(rng.ge - step)
    if rng.gt is not None:
        return tp(rng.gt)
    if rng.le is not None:
        return tp(rng.le + step)
    return tp(rng.lt)


def _load_with(tmp_path, path: tuple, value) -> str:
    raw = yaml.safe_load(SMOKE.read_text())
    node = raw
    for part in path[:-1]:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    node[path[-1]] = value
    file = tmp_path / "p.yaml"
    file.write_text(yaml.safe_dump(raw))
    with pytest.raises(MedlibError) as e:
        load_profile(file)
    return str(e.value)


@pytest.mark.parametrize("path", [_dotted(p) for p, _, _ in FIELDS])
def test_every_numeric_field_out_of_range_is_one_line_at_load(tmp_path, path):
    (p, f, tp) = [x for x in FIELDS if _dotted(x[0]) == path][0]
    rng = f.metadata["range"]
    bad = _outside(rng, tp)
    is_list = typing.get_origin(typing.get_type_hints(_owner(p))[p[-1]]) is list
    msg = _load_with(tmp_path, p, [bad] if is_list else bad)
    key = ".".join(f"[{SMOKE_DATASET}]" if isinstance(x, int) else x for x in p).replace(".[", "[")
    key += "[0]" if is_list else ""
    assert msg == f"{tmp_path / 'p.yaml'}:{key} = {bad!r} is out of range. Fix: use a value {rng.text()}"



def _owner(path: tuple) -> type:
    cls: type = Profile
    for part in path[:-1]:
        if isinstance(part, int):
            continue
        tp = typing.get_type_hints(cls)[part]
        cls = typing.get_args(tp)[0] if typing.get_origin(tp) is list else tp
    return cls


@pytest.mark.parametrize("key, value, needle", [
    ("retrieval_study.train.batch_size", 0,
     "retrieval_study.train.batch_size = 0 is out of range. Fix: use a value >= 1"),
    ("retrieval_study.train.epochs", -2, "retrieval_study.train.epochs = -2 is out of range"),
    ("retrieval_study.train.lr", 0, "retrieval_study.train.lr = 0.0 is out of range. Fix: use a value > 0"),
    ("retrieval_study.wise_alpha", 5,
     "retrieval_study.wise_alpha = 5.0 is out of range. Fix: use a value >= 0 and <= 1"),
    ("retrieval_study.n_boot", -1, "retrieval_study.n_boot = -1 is out of range"),
    ("retrieval_study.train_sizes", [16, -5], "retrieval_study.train_sizes[1] = -5 is out of range"),
    ("retrieval_study.word_dropout", 1.5, "retrieval_study.word_dropout = 1.5"),
    ("label_finetune.shot_draws", 0, "label_finetune.shot_draws = 0 is out of range. Fix: use a value >= 1"),
    ("label_finetune.wise_alphas", [0.5, 7.0], "label_finetune.wise_alphas[1] = 7.0 is out of range"),
    ("imbalance.focal_gamma", -1.0, "imbalance.focal_gamma = -1.0 is out of range. Fix: use a value >= 0"),
    ("imbalance.cb_beta", 1.0, "imbalance.cb_beta = 1.0 is out of range. Fix: use a value >= 0 and < 1"),
    ("imbalance.la_tau", -0.5, "imbalance.la_tau = -0.5 is out of range"),
    ("distributed.nnodes", 0, "distributed.nnodes = 0 is out of range"),
    ("seed", -1, "seed = -1 is out of range"),
])
def test_listed_bad_values_are_errors_at_load_time(key, value, needle):
    with pytest.raises(MedlibError) as e:
        load_profile("smoke", {key: value})
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and msg.startswith(str(SMOKE))


@pytest.mark.parametrize("key, value", [
    ("imbalance.cb_beta", 0.0), ("imbalance.focal_gamma", 0.0), ("retrieval_study.wise_alpha", 1.0),
    ("retrieval_study.n_boot", 0), ("label_finetune.wise_alphas", [0.0, 1.0]), ("retrieval_study.train_sizes", [0]),
])
def test_values_on_the_edge_of_a_range_load(key, value):
    P = load_profile("smoke", {key: value})
    obj = P
    for part in key.split("."):
        obj = getattr(obj, part)
    assert obj == value


def test_shipped_profiles_are_in_range():
    for name in ("smoke", "full"):
        load_profile(name)

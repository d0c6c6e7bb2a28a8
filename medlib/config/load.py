"""Loading a profile: a name (``smoke``, ``full``: ``medlib/config/profiles/<name>.yaml``) or a YAML path, with
dotted-key overrides, every key, type, choice and range checked; an error names the file (and line) and the fix.

``load_profile("smoke", {"seed": 1, "label_finetune.train.epochs": 2})``. Overrides from the command line
(``./run_all.sh --set caption_finetune.train.epochs=4 --set seeds=[0]``) are read by :func:`parse_overrides` and
checked key by key by :func:`check_overrides`; the runner hands them to the notebooks' kernels in
``$MEDLIB_OVERRIDES`` (:func:`env_overrides`), which ``medlib.studies.setup.load`` applies.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from ..errors import MedlibError
from .schema import CHOICES, Profile

PROFILE_DIR = Path(__file__).parent / "profiles"
OVERRIDES_ENV = "MEDLIB_OVERRIDES"  # JSON {dotted key: value}: the run's --set overrides, for the notebooks' kernels


def profile_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        return p
    return PROFILE_DIR / f"{name_or_path}.yaml"


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(
    name_or_path: str | Path = "smoke",
    overrides: dict[str, Any] | None = None,
    data_dir: str | Path | None = None,
) -> Profile:
    """Load a profile by name (``smoke``, ``full``) or YAML path, apply overrides, validate.

    ``overrides`` maps dotted keys to values (``{"label_finetune.train.epochs": 1}``); ``None``
    values are ignored so notebook parameters can default to "use the profile". The data dir is,
    in order of precedence: ``data_dir`` argument, ``overrides['data_dir']``, ``$MEDLIB_DATA_DIR``,
    the profile's ``data_dir``.
    """
    path = profile_path(name_or_path)
    if not path.is_file():
        raise MedlibError(
            f"{path}: profile not found. Fix: use one of {available_profiles()} or pass a path to a YAML file"
        )
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise MedlibError(f"{path}: {_yaml_problem(exc)}. Fix: correct the file at that line") from None
    if not isinstance(raw, dict):
        raise MedlibError(f"{path}: a profile must be a mapping of keys to values. Fix: correct the file")
    raw.setdefault("name", path.stem)
    env_dir = os.environ.get("MEDLIB_DATA_DIR")
    given = None  # where a data dir the user chose (not the profile's default) came from
    if env_dir:
        raw["data_dir"], given = env_dir, "MEDLIB_DATA_DIR"
    gpus = os.environ.get("MEDLIB_GPUS")  # ./run_all.sh --gpus N: training processes per machine
    if gpus:
        if not gpus.isdigit() or int(gpus) < 1:
            raise MedlibError(f"MEDLIB_GPUS={gpus!r} (--gpus): not a process count. Fix: pass an integer >= 1")
        _set_dotted(raw, "distributed.nproc_per_node", int(gpus), path)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    _shift_seeds(raw, overrides)
    for key, value in overrides.items():
        _set_dotted(raw, key, value, path)
        if key == "data_dir":
            given = "the data_dir parameter"
    if data_dir is not None:
        raw["data_dir"], given = str(data_dir), "--data-dir / data_dir"
    profile = _build(Profile, raw, where=str(path))
    _check_names(profile, str(path))
    _check_values(profile, str(path))
    _check_seeds(profile, str(path))
    root = project_root()
    for key in ("data_dir", "reports_dir", "runs_dir"):
        setattr(profile, key, str((root / getattr(profile, key)).resolve()))
    _check_data_dir(Path(profile.data_dir), given)
    return profile


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["caption_finetune.train.epochs=4", "seeds=[0]"]`` -> ``{"caption_finetune.train.epochs": 4, "seeds": [0]}``:
    each value read as YAML (numbers, true/false, lists ``[0, 1]``; an empty value is the empty string), each key and
    value checked against the schema (:func:`check_overrides`); a later ``--set`` of the same key wins."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise MedlibError(f"--set {item!r}: not key=value. Fix: write --set section.key=value, "
                              "e.g. --set caption_finetune.train.epochs=4")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            raise MedlibError(f"--set {item!r}: the value is not valid YAML. Fix: quote it, e.g. --set "
                              f"'{key}=[0, 1]'") from None
        out[key] = value
    check_overrides(out)
    return out


def format_overrides(overrides: dict[str, Any]) -> list[str]:
    """``{"seeds": [0], "caption_finetune.train.epochs": 4}`` -> ``["seeds=[0]", "caption_finetune.train.epochs=4"]``:
    the ``--set`` arguments that give the same overrides back (:func:`parse_overrides`)."""
    return [f"{k}={yaml.safe_dump(v, default_flow_style=True, width=10**6).strip().removesuffix('...').strip()}"
            for k, v in overrides.items()]


def check_overrides(overrides: dict[str, Any], label: str = "--set") -> None:
    """Each dotted key names a setting of the schema (not a section) and its value has that setting's type, one
    of its choices and a number in its range; else a one-line MedlibError naming ``label key=value`` and the fix."""
    for key, value in overrides.items():
        where = f"{label} {key}"
        cls, parts = Profile, key.split(".")
        for i, part in enumerate(parts):
            fields = {f.name: f for f in dataclasses.fields(cls)}
            if part not in fields:
                at = ".".join(parts[:i]) or "the profile"
                raise MedlibError(f"{where}: {at} has no setting {part!r}. Fix: use one of {sorted(fields)}")
            tp = typing.get_type_hints(cls)[part]
            if i < len(parts) - 1:
                if not dataclasses.is_dataclass(tp):
                    raise MedlibError(f"{where}: {'.'.join(parts[:i + 1])} is a setting, not a section. Fix: "
                                      f"--set {'.'.join(parts[:i + 1])}=VALUE")
                cls = tp
                continue
            if dataclasses.is_dataclass(tp):
                raise MedlibError(f"{where}: {key} is a section. Fix: set one of its keys, e.g. --set "
                                  f"{key}.{dataclasses.fields(tp)[0].name}=VALUE")
            try:
                coerced = _coerce(tp, value, where)
            except MedlibError as exc:
                raise MedlibError(str(exc).replace("correct the profile", "correct the value")) from None
            allowed = CHOICES.get((cls.__name__, part))
            values = coerced if isinstance(coerced, list) else [coerced]
            bad = [v for v in values if allowed and v not in allowed]
            if bad:
                raise MedlibError(f"{where}: unknown value(s) {bad}. Fix: use one of {list(allowed)}")
            rng = fields[part].metadata.get("range")
            for v in values if rng is not None else []:
                if not rng.allows(v):
                    raise MedlibError(f"{where} = {value!r} is out of range. Fix: use a value {rng.text()}")


def env_overrides() -> dict[str, Any]:
    """The run's ``--set`` overrides as the runner passed them to this kernel (``$MEDLIB_OVERRIDES``); {} when unset."""
    text = os.environ.get(OVERRIDES_ENV, "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise MedlibError(f"{OVERRIDES_ENV}={text[:60]!r}: not a JSON object of dotted keys. Fix: unset it, or use "
                          "./run_all.sh --set key=value")
    check_overrides(value, label=OVERRIDES_ENV)
    return value


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """'not valid YAML at line L, column C (<problem>)': the line a user would point at (1-based).

    PyYAML marks where it *noticed* the problem (``problem_mark``) and, for a construct left open, where that
    construct began (``context_mark``): an unclosed ``[``, ``{`` or quote, or a key without its ``:``, is
    noticed on a later line (often the next one), so the line shown is where it began."""
    problem_mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    context = str(getattr(exc, "context", None) or "")
    opened = context.startswith(("while parsing a flow", "while scanning"))
    mark = context_mark if (opened and context_mark is not None) or problem_mark is None else problem_mark
    problem = " ".join(str(getattr(exc, "problem", None) or str(exc).splitlines()[0]).split())
    if mark is context_mark and context and problem_mark is not None and problem_mark.line != mark.line:
        began = context.split(" ", 2)[-1]  # "while parsing a flow sequence" -> "a flow sequence"
        problem = f"{began} begins here; {problem} at line {problem_mark.line + 1}"
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"not valid YAML{where} ({problem})"


def _check_data_dir(data: Path, given: str | None) -> None:
    """A data dir that is a file is always an error; one the user chose must exist (no silent generated data)."""
    if data.exists() and not data.is_dir():
        raise MedlibError(f"{data}: the data dir is a file, not a folder. Fix: pass a folder as --data-dir "
                          "(or MEDLIB_DATA_DIR / data_dir)")
    if given and not data.exists():
        raise MedlibError(f"{data}: data dir (from {given}) does not exist. Fix: correct the path, or create it "
                          f"(mkdir -p {data}) to let the run fill it")


def check_ranges(obj: Any, where: str, prefix: str = "") -> None:
    """Every number of ``obj`` (a profile or one of its sections) within the range declared on its field
    (:func:`ranged`), sections and list entries included; the first one out of range raises a one-line error
    naming its key: ``<file>:retrieval_study.train.batch_size = 0 is out of range. Fix: use a value >= 1``."""
    for f in dataclasses.fields(obj):
        value, key = getattr(obj, f.name), f"{prefix}{f.name}"
        rng = f.metadata.get("range")
        if rng is not None:
            items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
            for i, v in items:
                if not rng.allows(v):
                    at = key if i is None else f"{key}[{i}]"
                    raise MedlibError(f"{where}:{at} = {v!r} is out of range. Fix: use a value {rng.text()}")
        elif dataclasses.is_dataclass(value):
            check_ranges(value, where, f"{key}.")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    check_ranges(item, where, f"{key}[{getattr(item, 'name', i)}].")


def _check_values(p: Profile, where: str) -> None:
    """Numbers in range (batch_size >= 1, epochs >= 1, lr > 0, ...) and combinations the notebooks can run."""
    check_ranges(p, where)
    _check_prompts(p, where)
    lf = p.label_finetune
    # Notebook 04 compares k-shot runs with the full-data runs ("all" = shots 0) of the same methods.
    if 0 in lf.shots and lf.datasets:
        need = [v for v, ok in (("linear_probe", "linear_probe" in lf.variants),
                                ("full", "full" in lf.variants or "wise_ft" in lf.variants)) if not ok]
        if need:
            raise MedlibError(f"{where}:label_finetune.shots includes 0 (all data), which notebook 04 compares with "
                              f"the full-data runs of variant(s) {need}, absent from label_finetune.variants "
                              f"{lf.variants}. Fix: add {need} to variants, or remove 0 from shots")


def _check_prompts(p: Profile, where: str) -> None:
    """Every prompt template has exactly one ``{}`` (the class phrase); class texts map names to non-empty text."""
    lists = [("zero_shot.templates", p.zero_shot.templates)] + [(f"datasets[{d.name}].templates", d.templates)
                                                                 for d in p.datasets]
    for key, templates in lists:
        for t in templates:
            if t.count("{}") != 1:
                raise MedlibError(f"{where}:{key}: template {t!r} must hold exactly one '{{}}' (the class phrase). "
                                  "Fix: e.g. 'a dermoscopy image of {}.'")
    for d in p.datasets:
        bad = [k for k, v in d.class_texts.items() if not isinstance(v, str) or not v.strip()]
        if bad:
            raise MedlibError(f"{where}:datasets[{d.name}].class_texts: no text for class(es) {bad}. Fix: map each "
                              "class name to a phrase, e.g. {mel: melanoma}")


def _check_names(p: Profile, where: str) -> None:
    """Unique model/dataset names, one main CLIP (role 'clip'), and every dataset a section names exists."""
    for kind, names in (("models", [m.name for m in p.models]), ("datasets", [d.name for d in p.datasets])):
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise MedlibError(f"{where}: {kind} named {dup} more than once. Fix: give each a unique name")
    if p.models and sum(m.role == "clip" for m in p.models) != 1:
        raise MedlibError(f"{where}: models: exactly one model must have role 'clip' (the one notebooks 03-05 "
                          "fine-tune). Fix: set role: clip on one model and role: domain on the others")
    known = {d.name for d in p.datasets}
    sections = {"zero_shot.datasets": p.zero_shot.datasets, "caption_finetune.datasets": p.caption_finetune.datasets,
                "label_finetune.datasets": p.label_finetune.datasets,
                "label_finetune.multilabel_datasets": p.label_finetune.multilabel_datasets,
                "imbalance.datasets": p.imbalance.datasets, "sota.datasets": p.sota.datasets,
                "sota.retrieval_dataset": [p.sota.retrieval_dataset] if p.sota.retrieval_dataset else [],
                "retrieval_study.datasets": p.retrieval_study.datasets,
                "datasets[].fallback": [d.fallback for d in p.datasets if d.fallback]}
    for key, names in sections.items():
        missing = [n for n in names if n not in known]
        if missing:
            raise MedlibError(f"{where}: {key} names unknown dataset(s) {missing}. Fix: use one of {sorted(known)} "
                              "or add them under 'datasets:'")


def _shift_seeds(raw: dict, overrides: dict[str, Any]) -> None:
    """A ``seed`` override without a ``seeds`` override moves the profile's seeds along: 3 -> [3, 4, ...]."""
    seed, seeds = overrides.get("seed"), raw.get("seeds")
    if "seeds" in overrides or not isinstance(seed, int) or isinstance(seed, bool) or not isinstance(seeds, list):
        return
    if seeds and seed != seeds[0]:
        overrides["seeds"] = [seed + i for i in range(len(seeds))]


def _check_seeds(p: Profile, where: str) -> None:
    if len(set(p.seeds)) != len(p.seeds) or any(s < 0 for s in p.seeds):
        raise MedlibError(f"{where}:seeds: {p.seeds} must be distinct non-negative integers. Fix: e.g. seeds: [0, 1, 2]")
    if p.seeds and p.seeds[0] != p.seed:
        raise MedlibError(f"{where}:seeds: the first seed ({p.seeds[0]}) must be the profile's seed ({p.seed}). "
                          f"Fix: set seed: {p.seeds[0]} or start seeds with {p.seed}")


def project_root(start: Path | None = None) -> Path:
    """The repository root: ``$MEDLIB_ROOT``, else the nearest folder at or above ``start`` (default: the
    current directory) that holds ``run_all.sh``, else ``start`` itself.

    Relative profile paths (``data``, ``reports``, ``runs``) are resolved against it, so a notebook run from
    ``notebooks/`` in JupyterLab and one run by papermill from the root write to the same place.
    """
    env = os.environ.get("MEDLIB_ROOT")
    if env:
        return Path(env).resolve()
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "run_all.sh").is_file():
            return folder
    return start


def _set_dotted(raw: dict, key: str, value: Any, path: Path) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise MedlibError(f"{path}: override {key!r}: {part!r} is not a section. Fix: check the key")
        node = nxt
    node[parts[-1]] = value


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise MedlibError(f"{where}: expected a mapping for {cls.__name__}, got {raw!r}. Fix: correct the profile")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown == ["smoke"] and cls is Profile:  # the key before `kind`
        raise MedlibError(f"{where}: unknown key 'smoke'. Fix: write kind: smoke (or drop it for a real run)")
    if unknown:
        raise MedlibError(
            f"{where}: unknown key(s) {unknown} in {cls.__name__}. Fix: remove them or use one of {sorted(fields)}"
        )
    kwargs = {}
    for name, f in fields.items():
        if name in raw:
            kwargs[name] = _coerce(hints[name], raw[name], f"{where}:{name}")
            allowed = CHOICES.get((cls.__name__, name))
            values = kwargs[name] if isinstance(kwargs[name], list) else [kwargs[name]]
            bad = [v for v in values if allowed and v not in allowed]
            if bad:
                raise MedlibError(f"{where}:{name}: unknown value(s) {bad}. Fix: use one of {list(allowed)}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            raise MedlibError(f"{where}: missing required key {name!r} in {cls.__name__}. Fix: add it")
    return cls(**kwargs)


def _looks_like_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _yaml_float(text: str) -> str:
    """'1e-3' -> '1.0e-3', '5E4' -> '5.0e+4': the spelling PyYAML (YAML 1.1) reads as a float."""
    t = text.strip()
    mant, _, exp = t.lower().partition("e")
    if "." not in mant:
        mant += ".0"
    if exp and exp[0] not in "+-":
        exp = "+" + exp
    return f"{mant}e{exp}" if exp else mant


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where)
            except MedlibError as exc:
                errors.append(str(exc))
        raise MedlibError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise MedlibError(f"{where}: expected a list, got {value!r}. Fix: correct the profile")
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise MedlibError(f"{where}: expected a mapping, got {value!r}. Fix: correct the profile")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise MedlibError(f"{where}: expected true/false, got {value!r}. Fix: correct the profile")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise MedlibError(f"{where}: expected an integer, got {value!r}. Fix: correct the profile")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _looks_like_float(value):
            fixed = _yaml_float(value)
            raise MedlibError(f"{where}: {value!r} is read by YAML as a string, not a number (YAML 1.1 numbers "
                              f"need a dot and a signed exponent). Fix: write {fixed}")
        raise MedlibError(f"{where}: expected a number, got {value!r}. Fix: correct the profile")
    if tp is str:
        if isinstance(value, str):
            return value
        raise MedlibError(f"{where}: expected a string, got {value!r}. Fix: correct the profile")
    return value

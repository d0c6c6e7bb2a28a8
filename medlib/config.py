"""Run profiles: every knob of a run, as YAML inside the package, loaded into typed dataclasses.

``load_profile("smoke", {"seed": 1, "train.epochs": 2})`` reads ``medlib/profiles/smoke.yaml``
(or a path to any YAML file), applies dotted-key overrides, and checks every key and type:
an unknown key or a value of the wrong type raises :class:`~medlib.errors.MedlibError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import MedlibError

PROFILE_DIR = Path(__file__).parent / "profiles"


@dataclass(frozen=True)
class Range:
    """The values a number may take: above ``gt`` (or from ``ge``), below ``lt`` (or up to ``le``)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def allows(self, value: float) -> bool:
        return not ((self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt)
                    or (self.le is not None and value > self.le) or (self.lt is not None and value >= self.lt))

    def text(self) -> str:
        """'>= 1', '> 0', '>= 0 and < 1' (the words after "use a value")."""
        parts = [f"{op} {_num(v)}" for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
                 if v is not None]
        return " and ".join(parts)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def ranged(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, ge: float | None = None,
           gt: float | None = None, le: float | None = None, lt: float | None = None) -> Any:
    """A dataclass field holding a number (or a list of numbers) with its allowed range; the loader checks every
    such field of the profile (:func:`check_ranges`): ``epochs: int = ranged(3, ge=1)``."""
    return field(default=default, default_factory=factory, metadata={"range": Range(ge=ge, gt=gt, le=le, lt=lt)})


@dataclass
class ModelSpec:
    name: str  # short id used in run names, e.g. "vit-b-32-openai"
    arch: str  # open_clip architecture ("ViT-B-32", "medclip-tiny") or an "hf-hub:org/repo" id
    pretrained: str = ""  # open_clip tag ("openai"), a local checkpoint path, or "" for random init
    role: str = "clip"  # "clip" (the main model) | "domain" (a domain-specific CLIP such as BiomedCLIP)
    display: str = ""  # label used in tables and figures; defaults to arch:pretrained


@dataclass
class DatasetSpec:
    name: str  # id used in run names and file names, e.g. "pneumoniamnist"
    source: str  # medmnist | pubmedvision | chestxray14 | mimic_cxr | csv_pairs | retrieval
    flag: str = ""  # medmnist flag ("pneumoniamnist", "chestmnist"), retrieval set ("flickr30k", "coco")
    size: int = ranged(28, ge=1)  # image side in pixels after loading (medmnist: 28/64/128/224)
    download: bool = False  # may the loader download (medmnist, hub datasets)?
    synthetic: str = "never"  # never | auto (generate a fixture when the real data is absent) | always
    n: int = ranged(0, ge=0)  # number of records to sample (PubMedVision: 4096); 0 = all
    max_per_split: int = ranged(0, ge=0)  # cap per split after loading (0 = no cap); for quick runs
    path: str = ""  # local copy: CSV file, NIH/MIMIC root, PubMedVision folder; relative to data_dir
    fallback: str = ""  # name of another dataset spec to use when this one's files are absent
    uncertain: str = "zero"  # MIMIC/CheXpert -1 policy: zero | one | ignore
    hf_id: str = ""  # hub dataset id (PubMedVision, Flickr30K, COCO)
    hf_config: str = ""  # hub dataset config name
    fixture_n: int = ranged(0, ge=0)  # size of a generated fixture (0 = the loader's default)


@dataclass
class TrainConfig:
    epochs: int = ranged(3, ge=1)
    batch_size: int = ranged(128, ge=1)
    lr: float = ranged(1e-4, gt=0)
    weight_decay: float = ranged(0.1, ge=0)
    warmup_steps: int = ranged(20, ge=0)
    grad_accum: int = ranged(1, ge=1)
    precision: str = "auto"  # auto (bf16 on cuda, fp32 on cpu) | fp32 | bf16
    lock_image: bool = False
    lock_text: bool = True  # label/multilabel modes: text tower only provides the head init
    augment: bool = True  # image augmentation (random resized crop, small rotation, brightness/contrast)
    hflip: bool = False  # horizontal flip (off for chest X-rays by default)
    text_augment: bool = True  # sample a prompt template per example (contrastive mode)
    label_aware: bool = False  # contrastive: same-label pairs in a batch are positives
    patience: int = ranged(2, ge=0)  # early stopping on the validation metric
    max_train: int = ranged(0, ge=0)  # cap on training examples (0 = all)
    optimizer: str = "adamw"  # adamw | adam
    scheduler: str = "cosine"  # cosine | constant
    num_workers: int = ranged(0, ge=0)


@dataclass
class ZeroShotConfig:
    datasets: list[str] = field(default_factory=list)  # notebook 02's datasets (classification sets)
    templates: list[str] = field(default_factory=list)  # empty = the domain's default ensemble in medlib.text
    n_boot: int = ranged(1000, ge=0)  # bootstrap resamples for 95% intervals (0 = none)
    batch_size: int = ranged(256, ge=1)


@dataclass
class CaptionFinetuneConfig:
    datasets: list[str] = field(default_factory=list)
    variants: list[str] = field(default_factory=lambda: ["plain", "label_aware", "no_augment"])
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class LabelFinetuneConfig:
    datasets: list[str] = field(default_factory=list)  # multiclass
    multilabel_datasets: list[str] = field(default_factory=list)
    variants: list[str] = field(default_factory=lambda: ["full", "linear_probe", "lp_ft", "wise_ft"])
    wise_alphas: list[float] = ranged(factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0], ge=0, le=1)
    shots: list[int] = ranged(factory=lambda: [1, 4, 16, 64, 0], ge=0)  # 0 = all
    probe_epochs: int = ranged(3, ge=1)
    # linear-probe (and LP-FT probe stage) learning rate: a head alone takes a larger step
    probe_lr: float = ranged(1e-3, gt=0)
    # k-shot runs train at least this many optimizer steps (tiny sets have ~1 step/epoch)
    few_shot_min_steps: int = ranged(0, ge=0)
    # label efficiency: nested random draws of the k-shot train/val subsets per k (mean ± sd)
    shot_draws: int = ranged(5, ge=1)
    train: TrainConfig = field(default_factory=TrainConfig)
    multilabel_train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class ImbalanceConfig:
    datasets: list[str] = field(default_factory=list)
    remedies: list[str] = field(
        default_factory=lambda: ["none", "inverse_freq", "effective_number", "focal", "logit_adjust",
                                 "balanced_sampler", "threshold"]
    )
    focal_gamma: float = ranged(2.0, ge=0)  # focal loss focusing parameter (0 = cross-entropy)
    cb_beta: float = ranged(0.999, ge=0, lt=1)  # class-balanced (effective number) beta
    la_tau: float = ranged(1.0, ge=0)  # logit adjustment temperature
    threshold_metric: str = "balanced_acc"  # what the threshold remedy maximises on validation
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class SotaConfig:
    datasets: list[str] = field(default_factory=list)
    retrieval_dataset: str = ""
    cnn_epochs: int = ranged(3, ge=1)
    cnn_batch_size: int = ranged(128, ge=1)
    cnn_lr: float = ranged(1e-3, gt=0)
    cnn_weights: str = "imagenet"  # imagenet (where loadable) | none


@dataclass
class DistributedConfig:
    """Training on several processes (GPUs) with torchrun + DistributedDataParallel; 1 process: in the notebook."""
    # processes per machine (one per GPU); > 1 launches `torchrun -m medlib.train.launch`
    nproc_per_node: int = ranged(1, ge=1)
    nnodes: int = ranged(1, ge=1)  # machines; > 1 needs rdzv_endpoint (and the same command on every machine)
    node_rank: int = ranged(0, ge=0)  # this machine's rank (static rendezvous); ignored with rdzv_backend c10d
    rdzv_backend: str = "c10d"  # torchrun --rdzv-backend
    rdzv_endpoint: str = ""  # host:port of the rendezvous (several machines); "" = this machine, a free port
    rdzv_id: str = "medclip"  # torchrun --rdzv-id: the same on every machine of one job
    backend: str = "auto"  # auto (nccl on CUDA, gloo on CPU) | nccl | gloo


@dataclass
class RetrievalStudyConfig:
    """Notebook 07: caption fine-tuning on small general-domain training sets (Flickr30K, COCO), augmentation ablation."""

    datasets: list[str] = field(default_factory=list)  # retrieval sets: train on a train subset, test on test
    train_sizes: list[int] = ranged(factory=lambda: [1000, 5000, 0], ge=0)  # training images (0 = all), nested
    augmentations: list[str] = field(default_factory=lambda: ["none", "image", "text", "both"])
    variants: list[str] = field(default_factory=lambda: ["lock_text", "lock_image", "wise_ft"])  # label-free, on
    # the largest subset with both augmentations
    # text augmentation: perturbed copies of each caption added to the sampled pool
    perturbed_copies: int = ranged(1, ge=0)
    word_dropout: float = ranged(0.1, ge=0, le=1)  # caption perturbation: drop each word with this probability
    # caption perturbation: swap each adjacent word pair with this probability
    word_swap: float = ranged(0.1, ge=0, le=1)
    wise_alpha: float = ranged(0.5, ge=0, le=1)  # WiSE-FT mixing weight of the wise_ft variant
    # each run takes at least this many optimizer steps (small subsets get more epochs)
    min_steps: int = ranged(0, ge=0)
    n_boot: int = ranged(1000, ge=0)  # paired-bootstrap resamples (over queries) for the differences against zero-shot
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class Profile:
    name: str
    smoke: bool  # True: tiny model / generated data; every figure and the report say SMOKE
    seed: int = ranged(0, ge=0)  # the first of `seeds`: zero-shot, sweeps and single-seed runs use it
    # Seeds of the trained headline runs (each seed's run keeps its own metrics/predictions; runs of every seed but
    # the first get `__s<seed>` in their name). Empty = [seed]. Overriding `seed` alone shifts them: seed 3 -> 3, 4, ...
    seeds: list[int] = ranged(factory=list, ge=0)
    # Which trained methods run once per seed; the others (ablations, sweeps, few-shot) use the first seed only.
    seeded_methods: list[str] = field(
        default_factory=lambda: ["caption_ft", "label_ft", "multilabel_ft", "lp_ft", "cnn", "remedies",
                                 "retrieval_ft"])  # retrieval_ft: notebook 07's study
    device: str = "auto"  # auto | cpu | cuda
    data_dir: str = "data"  # MEDLIB_DATA_DIR or --data-dir override it
    reports_dir: str = "reports"
    runs_dir: str = "runs"
    data_workers: int = ranged(0, ge=0)  # processes that decode images when splits are prepared; 0 = every core
    # Which finished runs keep their weights (best.pt): "all", or "reused" -- only runs a later step loads again
    # (headline fine-tunes, LP-FT, the WiSE-FT base, the imbalance study's "none" model); a sweep's run (few-shot
    # draws, other imbalance remedies, the retrieval study's arms) keeps its log and metrics once evaluated.
    keep_weights: str = "reused"
    models: list[ModelSpec] = field(default_factory=list)
    datasets: list[DatasetSpec] = field(default_factory=list)
    zero_shot: ZeroShotConfig = field(default_factory=ZeroShotConfig)
    caption_finetune: CaptionFinetuneConfig = field(default_factory=CaptionFinetuneConfig)
    label_finetune: LabelFinetuneConfig = field(default_factory=LabelFinetuneConfig)
    imbalance: ImbalanceConfig = field(default_factory=ImbalanceConfig)
    sota: SotaConfig = field(default_factory=SotaConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    retrieval_study: RetrievalStudyConfig = field(default_factory=RetrievalStudyConfig)

    # ---- convenience -------------------------------------------------------------------------
    @property
    def label(self) -> str:
        """'SMOKE' for smoke profiles (put it in every figure title and the report), else ''."""
        return "SMOKE" if self.smoke else ""

    def dataset(self, name: str) -> DatasetSpec:
        for d in self.datasets:
            if d.name == name:
                return d
        raise MedlibError(
            f"profile {self.name!r}: no dataset named {name!r}. Fix: use one of "
            f"{[d.name for d in self.datasets]} or add it under 'datasets:'"
        )

    def model(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        raise MedlibError(
            f"profile {self.name!r}: no model named {name!r}. Fix: use one of {[m.name for m in self.models]}"
        )

    @property
    def seed_list(self) -> list[int]:
        """The seeds of trained headline runs (``seeds``, or ``[seed]`` when it is empty); the first is ``seed``."""
        return list(self.seeds) or [self.seed]

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def reports_path(self) -> Path:
        """reports/<profile>/"""
        return Path(self.reports_dir) / self.name

    @property
    def runs_path(self) -> Path:
        """runs/<profile>/"""
        return Path(self.runs_dir) / self.name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """sha256 (first 12 hex) of the profile's canonical JSON: two runs with the same hash used the same knobs.

        Folder locations, the number of decoding processes, the training processes (``distributed``: the same
        global batch gives the same run) and which weights are kept on disk are left out: the same knobs on another machine give the same hash.
        """
        d = self.to_dict()
        for key in ("data_dir", "reports_dir", "runs_dir", "data_workers", "distributed", "keep_weights"):
            d.pop(key)
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


# Allowed values of string (or list-of-string) fields: a typo is an error at load time, not an hour into a run.
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("ModelSpec", "role"): ("clip", "domain"),
    ("Profile", "keep_weights"): ("reused", "all"),
    ("DatasetSpec", "source"): ("medmnist", "pubmedvision", "chestxray14", "mimic_cxr", "csv_pairs", "retrieval"),
    ("DatasetSpec", "synthetic"): ("never", "auto", "always"),
    ("DatasetSpec", "uncertain"): ("zero", "one", "ignore"),
    ("TrainConfig", "precision"): ("auto", "fp32", "bf16"),
    ("TrainConfig", "optimizer"): ("adamw", "adam"),
    ("TrainConfig", "scheduler"): ("cosine", "constant"),
    ("CaptionFinetuneConfig", "variants"): ("plain", "label_aware", "no_augment"),
    ("LabelFinetuneConfig", "variants"): ("full", "linear_probe", "lp_ft", "wise_ft"),
    ("ImbalanceConfig", "remedies"): ("none", "inverse_freq", "effective_number", "focal", "logit_adjust",
                                      "balanced_sampler", "threshold"),
    ("SotaConfig", "cnn_weights"): ("imagenet", "none"),
    ("ImbalanceConfig", "threshold_metric"): ("balanced_acc", "f1", "youden"),
    ("DistributedConfig", "backend"): ("auto", "nccl", "gloo"),
    ("Profile", "seeded_methods"): ("caption_ft", "label_ft", "multilabel_ft", "lp_ft", "cnn", "remedies",
                                    "retrieval_ft"),
    ("RetrievalStudyConfig", "augmentations"): ("none", "image", "text", "both"),
    ("RetrievalStudyConfig", "variants"): ("lock_text", "lock_image", "wise_ft"),
}


# ---- loading ------------------------------------------------------------------------------------


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
    lf = p.label_finetune
    # Notebook 04 compares k-shot runs with the full-data runs ("all" = shots 0) of the same methods.
    if 0 in lf.shots and lf.datasets:
        need = [v for v, ok in (("linear_probe", "linear_probe" in lf.variants),
                                ("full", "full" in lf.variants or "wise_ft" in lf.variants)) if not ok]
        if need:
            raise MedlibError(f"{where}:label_finetune.shots includes 0 (all data), which notebook 04 compares with "
                              f"the full-data runs of variant(s) {need}, absent from label_finetune.variants "
                              f"{lf.variants}. Fix: add {need} to variants, or remove 0 from shots")


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

"""The profile schema: every knob of a run as typed dataclasses, with the allowed values of each choice
(:data:`CHOICES`) and the allowed range of each number (:func:`ranged`). :mod:`medlib.config.load` reads a YAML
file into it and checks it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MedlibError

# What kind of run a profile makes: its short mark and the sentence every output of a run that is not "real" carries
# (figure titles, tables, executed notebooks, the report), written with the output.
RUN_KINDS = {"real": "", "smoke": "SMOKE", "rehearsal": "REHEARSAL"}
NOTICES = {"real": "",
           "smoke": "SMOKE RUN: a tiny random-init model on small local data. These numbers test the code path; "
                    "they are NOT results.",
           "rehearsal": "REHEARSAL — random weights, capped steps: tests the full profile's code paths, NOT results"}


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
    # What the report says of the data (its data section and references): a sentence or two on what it is, how to
    # cite it, and its licence ("" = the source's own: MedMNIST CC BY 4.0, a CSV "user-provided").
    description: str = ""
    citation: str = ""
    license: str = ""
    # Prompts: the template family (chest_xray | medical | general; "" = the source's: chest X-ray sets chest_xray,
    # Flickr30K/COCO general, the others medical), or this dataset's own templates (each with one "{}"), and the
    # phrase each class name stands for in them ({mel: melanoma}; a class left out reads as its cleaned name).
    domain: str = ""
    templates: list[str] = field(default_factory=list)
    class_texts: dict[str, str] = field(default_factory=dict)


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
    # What kind of run this is: real | smoke (a tiny model on small data) | rehearsal (the full profile's code paths
    # with random weights); every output of a smoke or rehearsal run is marked NOT results as it is written.
    kind: str = "real"
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
    # Where training curves go besides each run's log.csv: [] or [tensorboard] (train loss, validation metric and
    # learning rate per epoch under runs/<profile>/<run>/tensorboard/, as open_clip's training script logs them;
    # needs `pip install tensorboard`). It changes no number: left out of the profile's hash.
    log_to: list[str] = field(default_factory=list)
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
        """The mark every output of this run carries: 'SMOKE', 'REHEARSAL', or '' for a real run."""
        return RUN_KINDS[self.kind]

    @property
    def notice(self) -> str:
        """The sentence every output of a smoke or rehearsal run carries ('' for a real run)."""
        return NOTICES[self.kind]

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
        global batch gives the same run), which weights are kept on disk and where curves are logged are left out:
        the same knobs on another machine give the same hash.
        """
        d = self.to_dict()
        for key in ("data_dir", "reports_dir", "runs_dir", "data_workers", "distributed", "keep_weights", "log_to"):
            d.pop(key)
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


# Allowed values of string (or list-of-string) fields: a typo is an error at load time, not an hour into a run.
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("Profile", "kind"): tuple(RUN_KINDS),
    ("ModelSpec", "role"): ("clip", "domain"),
    ("Profile", "keep_weights"): ("reused", "all"),
    ("Profile", "log_to"): ("tensorboard",),
    ("DatasetSpec", "source"): ("medmnist", "pubmedvision", "chestxray14", "mimic_cxr", "csv_pairs", "retrieval"),
    ("DatasetSpec", "synthetic"): ("never", "auto", "always"),
    ("DatasetSpec", "uncertain"): ("zero", "one", "ignore"),
    ("DatasetSpec", "domain"): ("", "chest_xray", "medical", "general"),
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

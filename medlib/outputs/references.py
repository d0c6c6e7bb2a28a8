"""Published reference numbers (from ../shared/REFERENCES.md), each with its citation.

All values are stored as FRACTIONS in [0, 1] (a published "83.81 %" is stored as 0.8381), the same scale as
our metrics files. ``metric`` uses our metric names (``acc``, ``top3``, ``auroc``) so rows join with
``medlib.outputs.records.load_runs``; ``label`` is set for per-class numbers (e.g. CheXNet per pathology) and empty for
whole-dataset numbers. ``dataset`` uses our dataset ids where we run the set (``pneumoniamnist``,
``chestmnist``, ``chestxray14``, ``pubmedvision``). These are quotes, never our results: compare only where
``split``, ``resolution`` and metric match ours. ``note`` starts with ``NOT COMPARABLE`` where the published number
is on another sample or split than any run of ours can be (the PubMedVision study's own 4,096 sample, CheXNet's
patient split); :func:`medlib.studies.sota.sota_table` adds the mark where resolution or data differ from a given run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd

MEDMNIST_V2 = ('Yang et al., "MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D biomedical image '
               'classification", Scientific Data 10, 41 (2023), table of 2D results')
MEDMNIST_PLUS = ('Doerrich et al., "Rethinking model prototyping through the MedMNIST+ dataset collection", '
                 'arXiv:2404.15786')
PUBMEDVISION_STUDY = ("The original PubMedVision CLIP fine-tuning study (this project's seed; 4,096 sampled "
                      "image-caption pairs from FreedomIntelligence/PubMedVision, body-part label, CLIP ViT-B/32), "
                      "as quoted in REFERENCES.md")
CHEXNET = ('Rajpurkar et al., "CheXNet: Radiologist-Level Pneumonia Detection on Chest X-Rays with Deep Learning", '
           'arXiv:1711.05225 (2017)')
BIOMEDCLIP = "Zhang et al. (2023), BiomedCLIP, arXiv:2303.00915"
OPEN_CLIP_TABLE = "OpenCLIP results table (mlfoundations/open_clip, zero-shot ImageNet-1k top-1)"
CLIP_BENCHMARK = ("CLIP_benchmark (LAION-AI/CLIP_benchmark), benchmark/benchmark.csv: zero-shot retrieval "
                  "(zeroshot_retrieval), ViT-B-32 openai")

# Works cited as methods only (no number of theirs is quoted).
METHOD_CITATIONS = {
    "wise-ft": "Wortsman et al., Robust fine-tuning of zero-shot models (WiSE-FT), CVPR 2022",
    "medclip": "Wang et al., MedCLIP, EMNLP 2022 (cited as a method only; its tables are reported hard to reproduce)",
}

# Official split sizes and record counts quoted in REFERENCES.md (counts, not metrics).
DATASET_FACTS = {
    "pneumoniamnist": {"train": 4708, "val": 524, "test": 624, "source": MEDMNIST_V2},
    "chestmnist": {"train": 78468, "val": 11219, "test": 22433, "source": MEDMNIST_V2},
    "pubmedvision": {"records_per_config": 647031, "sampled_pairs": 4096, "source": PUBMEDVISION_STUDY},
}


@dataclass(frozen=True)
class Reference:
    dataset: str
    model: str
    method: str
    metric: str
    value: float  # fraction in [0, 1]
    split: str
    source: str
    note: str = ""
    label: str = ""  # class / pathology for per-class numbers; "" for the whole dataset
    resolution: str = ""  # input side the number was measured at, e.g. "28 px", "224 px (28 px images resized)"

    @property
    def resolution_px(self) -> int | None:
        """The input side in pixels (the first number of ``resolution``), or None when unknown."""
        head = self.resolution.split(" ", 1)[0]
        return int(head) if head.isdigit() else None


def _medmnist(dataset: str, model: str, method: str, auc: float, acc: float | None) -> list[Reference]:
    split = "official MedMNIST test split"
    # MedMNIST v2's 2D images are 28 x 28; its "(224)" models read them resized to 224 px.
    resolution = "224 px (28 px images resized)" if "(224)" in model else "28 px"
    note = ("AUC macro over labels, ACC mean over labels at threshold 0.5" if dataset == "chestmnist"
            else "AUC one-vs-rest (binary: AUC), ACC of the argmax")
    rows = [Reference(dataset, model, method, "auroc", auc, split, MEDMNIST_V2, note, resolution=resolution)]
    if acc is not None:
        rows.append(Reference(dataset, model, method, "acc", acc, split, MEDMNIST_V2, note, resolution=resolution))
    return rows


def _build() -> list[Reference]:
    r: list[Reference] = []
    scratch, automl = "supervised, trained from scratch by the authors", "AutoML"
    for dataset, model, method, auc, acc in [
        ("pneumoniamnist", "ResNet-18 (28)", scratch, 0.944, 0.854),
        ("pneumoniamnist", "ResNet-18 (224)", scratch, 0.956, 0.864),
        ("pneumoniamnist", "ResNet-50 (28)", scratch, 0.948, 0.854),
        ("pneumoniamnist", "ResNet-50 (224)", scratch, 0.962, 0.884),
        ("pneumoniamnist", "auto-sklearn", automl, 0.942, 0.855),
        ("pneumoniamnist", "AutoKeras", automl, 0.947, 0.878),
        ("pneumoniamnist", "Google AutoML Vision", automl, 0.991, 0.946),
        ("chestmnist", "ResNet-18 (224)", scratch, 0.773, 0.947),
        ("chestmnist", "ResNet-50 (224)", scratch, 0.773, 0.948),
        ("chestmnist", "auto-sklearn", automl, 0.649, 0.779),
        ("chestmnist", "AutoKeras", automl, 0.742, 0.937),
        ("chestmnist", "Google AutoML Vision", automl, 0.778, 0.948),
        ("breastmnist", "ResNet-18 (28)", scratch, 0.901, 0.863),
        ("breastmnist", "ResNet-50 (224)", scratch, 0.866, 0.842),
        ("dermamnist", "ResNet-18 (28)", scratch, 0.917, 0.735),
        ("dermamnist", "ResNet-50 (224)", scratch, 0.912, 0.731),
    ]:
        r += _medmnist(dataset, model, method, auc, acc)

    plus_split = "official MedMNIST test split, 224 px (zero-padded)"
    for dataset, model, method, acc, auc in [
        ("pneumoniamnist", "CLIP ViT-B/16", "end-to-end fine-tune", 0.8381, 0.9559),
        ("pneumoniamnist", "CLIP ViT-B/16", "linear probe", 0.8499, 0.9717),
        ("pneumoniamnist", "DINO ViT-B/16", "linear probe (best there)", 0.9156, 0.9892),
        ("chestmnist", "CLIP ViT-B/16", "end-to-end fine-tune", None, 0.7777),
        ("chestmnist", "DenseNet-121", "best AUC there", None, 0.8222),
    ]:
        if acc is not None:
            r.append(Reference(dataset, model, method, "acc", acc, plus_split, MEDMNIST_PLUS, "published in %",
                               resolution="224 px"))
        r.append(Reference(dataset, model, method, "auroc", auc, plus_split, MEDMNIST_PLUS, "published in %",
                           resolution="224 px"))

    pmv_split = "4,096 sampled pairs (the study's own sample and split)"
    pmv_note = ("NOT COMPARABLE: the study's own sample of 4,096 records and its split, not ours; published in %; "
                "top-1 = acc")
    for method, top1, top3 in [("zero-shot (pretrained)", 0.494, 0.789), ("fine-tuned on captions", 0.643, 0.831),
                               ("fine-tuned on labels", 0.769, 0.921)]:
        for metric, value in (("acc", top1), ("top3", top3)):
            r.append(Reference("pubmedvision", "CLIP ViT-B/32", method, metric, value, pmv_split, PUBMEDVISION_STUDY,
                               pmv_note, resolution="224 px"))

    chex_split = "CheXNet's own patient split (not the official ChestX-ray14 test list)"
    chex_note = ("NOT COMPARABLE: CheXNet's own patient split, not the official test list; DenseNet-121 on "
                 "224 px inputs downscaled from the 1024 px images")
    for label, auc in [("Atelectasis", 0.8094), ("Cardiomegaly", 0.9248), ("Effusion", 0.8638),
                       ("Infiltration", 0.7345), ("Mass", 0.8676), ("Nodule", 0.7802), ("Pneumonia", 0.7680),
                       ("Pneumothorax", 0.8887), ("Consolidation", 0.7901), ("Edema", 0.8878),
                       ("Emphysema", 0.9371), ("Fibrosis", 0.8047), ("Pleural Thickening", 0.8062),
                       ("Hernia", 0.9164)]:
        r.append(Reference("chestxray14", "DenseNet-121 (CheXNet)", "supervised", "auroc", auc, chex_split, CHEXNET,
                           chex_note, label=label, resolution="224 px"))
    r.append(Reference("chestxray14", "DenseNet-121 (CheXNet)", "supervised", "auroc", 0.841, chex_split, CHEXNET,
                       chex_note + "; mean over the 14 pathologies", resolution="224 px"))

    for dataset, acc in [("pcam", 0.7341), ("lc25000_lung", 0.6523), ("lc25000_colon", 0.9298),
                         ("tcga_til", 0.6704), ("rsna_pneumonia", 0.7895)]:
        r.append(Reference(dataset, "BiomedCLIP", "zero-shot", "acc", acc, "as reported by the authors", BIOMEDCLIP,
                           "published in %; hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
                           resolution="224 px"))

    for tag, acc in [("openai", 0.6332), ("laion2b_s34b_b79k", 0.6656)]:
        r.append(Reference("imagenet-1k", f"ViT-B-32:{tag}", "zero-shot", "acc", acc, "ImageNet-1k validation",
                           OPEN_CLIP_TABLE, "published in %; general-domain, not a medical benchmark",
                           resolution="224 px"))

    # ---- general-domain retrieval anchors (notebook 07): published zero-shot Recall@5, every caption of each
    # test image (five), CLIP_benchmark's protocol; comparable to our zero-shot rows of the same model at 224 px.
    for dataset, split, i2t, t2i in [
        ("flickr30k", "Flickr30K 1k test (Karpathy), 5 captions per image", 0.9490, 0.8338),
        ("coco", "MSCOCO 5k test (Karpathy), 5 captions per image", 0.7482, 0.5585),
    ]:
        for metric, value in (("i2t_R@5", i2t), ("t2i_R@5", t2i)):
            r.append(Reference(dataset, "ViT-B-32:openai", "zero-shot", metric, value, split, CLIP_BENCHMARK,
                               "published; image->text R@5 (hit when any of the 5 captions is in the top 5), "
                               "text->image R@5 (each caption a query)", resolution="224 px"))
    return r


REFERENCES: list[Reference] = _build()


def published(dataset: str | None = None, metric: str | None = None) -> pd.DataFrame:
    """Published numbers as a DataFrame (columns: dataset, model, method, metric, value, split, source, note,
    label, resolution), optionally filtered by dataset id and metric name; values are fractions in [0, 1]."""
    cols = [f.name for f in dataclasses.fields(Reference)]
    df = pd.DataFrame([dataclasses.asdict(x) for x in REFERENCES], columns=cols)
    if dataset is not None:
        df = df[df["dataset"] == dataset]
    if metric is not None:
        df = df[df["metric"] == metric]
    return df.reset_index(drop=True)


def published_recall(dataset: str) -> dict[str, float]:
    """Published zero-shot Recall@K of ViT-B-32 openai on ``dataset`` (CLIP_benchmark), by metric name."""
    df = published(dataset=dataset)
    df = df[df["metric"].str.match(r"^(i2t|t2i)_R@\d+$")]
    return dict(zip(df["metric"], df["value"].astype(float)))

"""Human names for metrics, methods, remedies, datasets and axes: the one mapping that tables, figures and the
report use, so a reader never meets a raw identifier (``balanced_acc``, ``ft-nall-both-wise_ft``, ``general_R@5``).

:func:`metric_name` (``auroc`` -> ``AUROC``, ``i2t_R@5`` -> ``image→text R@5``), :func:`method_name`
(``label-ft`` -> ``label fine-tune``, ``label-ft-16shot-d1`` -> ``label fine-tune, 16 shots (draw 1)``,
``remedy-focal`` -> ``remedy: focal loss``, ``ft-n32-both-wise_ft`` -> ``fine-tune, 32 images, image+text
augmentation, WiSE-FT``), :func:`axis_label` for a column name (``medical_acc`` -> ``medical accuracy``,
``worst_class_recall`` -> ``worst-class recall``) and :func:`dataset_name`. Unknown identifiers come back readable
(underscores and hyphens as spaces) rather than raising.
"""

from __future__ import annotations

import re

METRICS = {
    "acc": "accuracy", "top3": "top-3 accuracy", "balanced_acc": "balanced accuracy", "macro_f1": "macro-F1",
    "auroc": "AUROC", "worst_class_recall": "worst-class recall", "ece": "ECE", "elementwise_acc":
    "element-wise accuracy", "mean_recall": "mean Recall@K", "precision": "precision", "recall": "recall",
    "f1": "F1", "support": "support", "ap": "average precision", "val_metric": "validation metric",
    "train_loss": "training loss", "loss": "loss",
}
METHODS = {
    "zero-shot": "zero-shot", "caption-ft": "caption fine-tune", "caption-ft-plain": "caption fine-tune",
    "caption-ft-label_aware": "caption fine-tune, label-aware captions",
    "caption-ft-no_augment": "caption fine-tune, no augmentation", "label-ft": "label fine-tune",
    "multilabel-ft": "multi-label fine-tune", "linear-probe": "linear probe", "lp-ft": "LP-FT",
    "wise-ft": "WiSE-FT", "few-shot": "few-shot", "supervised": "ResNet-18 (supervised)",
    "remedy-none": "no remedy", "none": "no remedy", "remedies": "remedies",
}
REMEDIES = {
    "none": "no remedy", "inverse_freq": "inverse-frequency weights", "effective_number": "effective-number weights",
    "focal": "focal loss", "logit_adjust": "logit adjustment", "balanced_sampler": "balanced sampling",
    "threshold": "tuned thresholds",
}
AUGMENTATIONS = {"none": "no augmentation", "image": "image augmentation", "text": "text augmentation",
                 "both": "image+text augmentation", "zero-shot": "zero-shot"}
VARIANTS = {"wise_ft": "WiSE-FT", "lock_text": "text tower frozen", "lock_image": "image tower frozen"}
DATASETS = {"pneumoniamnist": "PneumoniaMNIST", "chestmnist": "ChestMNIST", "chestxray14": "ChestX-ray14",
            "pubmedvision": "PubMedVision", "mimic_cxr": "MIMIC-CXR", "flickr30k": "Flickr30K", "coco": "COCO"}
DIRECTIONS = {"i2t": "image→text", "t2i": "text→image"}
# Column names of tables and figures that name a measure of one domain (notebook 06's general-domain cost).
PREFIXES = {"medical": "medical", "general": "general-domain", "val": "validation", "test": "test",
            "train": "training"}

_FEW_SHOT = re.compile(r"^(?P<base>.+?)-(?P<k>\d+)shot(?:-d(?P<draw>\d+))?$")
_WISE = re.compile(r"^(?P<base>(?:.+-)?wise-ft)-a(?P<alpha>\d+(?:\.\d+)?)$")
_RETRIEVAL_ARM = re.compile(r"^ft-n(?P<n>\d+|all)-(?P<aug>[a-z]+)(?:-(?P<variant>[a-z_]+))?$")
_RECALL = re.compile(r"^(?:(?P<dir>i2t|t2i)_)?R@(?P<k>\d+)$")


def _plain(ident: str) -> str:
    return str(ident).replace("_", " ").replace("-", " ").strip()


def metric_name(metric: str) -> str:
    """``auroc`` -> ``AUROC``, ``i2t_R@5`` -> ``image→text R@5``, ``R@10`` -> ``R@10``; unknown: readable."""
    m = str(metric)
    if m in METRICS:
        return METRICS[m]
    hit = _RECALL.match(m)
    if hit:
        return (f"{DIRECTIONS[hit['dir']]} " if hit["dir"] else "") + f"R@{hit['k']}"
    return _plain(m) if "_" in m else m


def remedy_name(remedy: str) -> str:
    r = str(remedy).removeprefix("remedy-")
    return REMEDIES.get(r, _plain(r))


def dataset_name(dataset: str) -> str:
    """``pneumoniamnist`` -> ``PneumoniaMNIST``; a dataset of one's own keeps its name."""
    return DATASETS.get(str(dataset), str(dataset))


def method_name(method: str) -> str:
    """A method id (as in run names and metrics files) -> what a reader calls it. Labels that are already
    readable (``label fine-tune``, ``best remedy: focal (chosen on validation ...)``) come back unchanged."""
    m = str(method)
    if m in METHODS:
        return METHODS[m]
    if " " in m:  # already a label (the paired table's method columns): only its identifiers named
        return humanize(m)
    if m.endswith("-retrieval"):
        return method_name(m.removesuffix("-retrieval"))
    if m.startswith("remedy-"):
        return f"remedy: {remedy_name(m)}"
    hit = _FEW_SHOT.match(m)
    if hit:
        draw = f" (draw {hit['draw']})" if hit["draw"] is not None else ""
        return f"{method_name(hit['base'])}, {hit['k']} shot{'s' if hit['k'] != '1' else ''}{draw}"
    hit = _WISE.match(m)
    if hit:
        base = hit["base"].removesuffix("wise-ft").rstrip("-")
        return (f"{dataset_name(base)} " if base else "") + f"WiSE-FT α={float(hit['alpha']):g}"
    hit = _RETRIEVAL_ARM.match(m)
    if hit:
        n = "all images" if hit["n"] == "all" else f"{hit['n']} images"
        parts = ["fine-tune", n, AUGMENTATIONS.get(hit["aug"], _plain(hit["aug"]))]
        if hit["variant"]:
            parts.append(VARIANTS.get(hit["variant"], _plain(hit["variant"])))
        return ", ".join(parts)
    if m.startswith("caption-ft-"):
        return f"caption fine-tune, {_plain(m.removeprefix('caption-ft-'))}"
    return _plain(m) if "_" in m else m


def axis_label(column: str) -> str:
    """A table column or figure axis -> its human label: ``medical_acc`` -> ``medical accuracy``,
    ``general_R@5`` -> ``general-domain R@5``, ``worst_class_recall`` -> ``worst-class recall``,
    ``shots_per_class`` -> ``shots per class``."""
    c = str(column)
    if " " in c:
        return humanize(c)
    if c in METRICS or _RECALL.match(c):
        return metric_name(c)
    head, _, rest = c.partition("_")
    if rest and head in PREFIXES:
        return f"{PREFIXES[head]} {metric_name(rest)}"
    return metric_name(c)


def augmentation_name(aug: str) -> str:
    return AUGMENTATIONS.get(str(aug), _plain(aug))


_TOKEN = re.compile(r"(?<![\w@.-])[a-z][a-z0-9]*(?:[_-][A-Za-z0-9@]+(?:\.\d+)?)+(?![\w@-])|(?<![\w@.-])(?:" +
                    "|".join(sorted((k for k in {**DATASETS, **METRICS} if "_" not in k and "-" not in k), key=len,
                                    reverse=True)) + r")(?![\w@-])")


def humanize(text: str) -> str:
    """Known identifiers inside free text (a figure title written by a notebook, an axis label) replaced by their
    names: ``pneumoniamnist · caption-ft-plain`` -> ``PneumoniaMNIST · caption fine-tune``,
    ``flickr30k mean R@5`` -> ``Flickr30K mean R@5``, ``val balanced_acc`` -> ``val balanced accuracy``. Words that
    are not identifiers are left alone."""
    def one(m: re.Match) -> str:
        w = m.group(0)
        if w in DATASETS:
            return DATASETS[w]
        if w in METRICS or _RECALL.match(w):
            return metric_name(w)
        if w in METHODS or w.startswith(("remedy-", "caption-ft-", "ft-n")) or _FEW_SHOT.match(w) or _WISE.match(w):
            return method_name(w)
        if w in REMEDIES:
            return remedy_name(w)
        head, _, rest = w.partition("_")
        if rest and (head in PREFIXES or rest in METRICS):
            return axis_label(w)
        return w
    return _TOKEN.sub(one, str(text))

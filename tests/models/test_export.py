"""A fine-tuned model leaves medlib in open_clip's own folder layout: open_clip alone (a process that never imports
medlib) loads it and gets medlib's features; the folder carries a model card and, for a label fine-tune, its head."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml

from medlib.config import load_profile
from medlib.errors import MedlibError
from medlib.models import load_model
from medlib.models.export import export_run
from medlib.studies import runs
from medlib.train import checkpoint, cnn
from medlib.train.fit import fit
from helpers import CFG, CLASS_TEXTS, make_data

REPO = Path(__file__).resolve().parents[2]
ONE = dataclasses.replace(CFG, epochs=1)
TEXTS = ["a chest x-ray showing pneumonia", "normal lungs", "a photo of a cat with a very long caption " * 3]

# Run in a fresh process with no path to this checkout: open_clip (and safetensors) alone.
OPEN_CLIP_ALONE = r"""
import json, sys
import numpy as np, open_clip, torch, torch.nn.functional as F
from PIL import Image
job = torch.load(sys.argv[1], weights_only=True)
results = {}
for folder in job["folders"]:
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    model.eval()
    out = results[folder] = {"tokens": tokenizer(job["texts"])}
    with torch.no_grad():
        out["image"] = F.normalize(model.encode_image(job["x"]), dim=-1)
        out["text"] = F.normalize(model.encode_text(out["tokens"]), dim=-1)
        pixels = torch.stack([preprocess(Image.fromarray(a)) for a in job["uint8"].numpy()])
        out["image_from_pixels"] = F.normalize(model.encode_image(pixels), dim=-1)
        try:
            from safetensors.torch import load_file
            head = load_file(f"{folder}/classifier_head.safetensors")
            out["logits"] = out["image"] @ head["weight"].T + head["bias"]
        except FileNotFoundError:
            pass
assert "medlib" not in sys.modules, "medlib was imported"
torch.save(results, sys.argv[2])
"""


def _open_clip_alone(folders: list[Path], x: torch.Tensor, uint8: np.ndarray, tmp: Path) -> list[dict]:
    """What open_clip alone computes with each exported folder, in one fresh process."""
    job, out = tmp / "job.pt", tmp / "out.pt"
    torch.save({"folders": [str(f) for f in folders], "x": x, "texts": TEXTS, "uint8": torch.from_numpy(uint8)}, job)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", OPEN_CLIP_ALONE, str(job), str(out)], cwd=tmp, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(out, weights_only=True)
    return [got[str(f)] for f in folders]


def _medlib_features(bundle, head, x: torch.Tensor, uint8: np.ndarray) -> dict:
    from medlib.models.zeroshot import image_features

    model = bundle.model.eval()
    with torch.no_grad():
        out = {"tokens": bundle.tokenizer(TEXTS), "image": F.normalize(model.encode_image(x), dim=-1)}
        out["text"] = F.normalize(model.encode_text(out["tokens"]), dim=-1)
        out["image_from_pixels"] = image_features(bundle, uint8)
        if head is not None:
            out["logits"] = head(out["image"])
    return out


def _same_features(ours: dict, theirs: dict, pixels: bool = True) -> None:
    assert torch.equal(ours["tokens"], theirs["tokens"])
    keys = ["image", "text"] + (["image_from_pixels"] if pixels else []) + (["logits"] if "logits" in ours else [])
    assert ("logits" in ours) == ("logits" in theirs)
    for k in keys:
        assert (ours[k] - theirs[k]).abs().max() <= 1e-6, k


def _profile(tmp: Path, **over):
    return load_profile("smoke", {"reports_dir": str(tmp / "reports"), "runs_dir": str(tmp / "runs"), **over})


def _data_summary(P, rows: list[dict]) -> None:
    """tables/data_summary.csv as notebook 01 writes it."""
    folder = P.reports_path / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "data_summary.csv", index=False)


TOY_ROW = {"dataset": "toy", "task": "multiclass", "classes": 2, "train": 128, "val": 64, "test": 64,
           "source": "generated in test", "synthetic": True, "license": "generated (no licence needed)"}


@pytest.fixture(scope="module")
def tiny_runs(bundle, tmp_path_factory):
    """A label fine-tune and a caption fine-tune of the tiny model, trained and evaluated as the notebooks do."""
    tmp = tmp_path_factory.mktemp("tiny")
    P = _profile(tmp)
    _data_summary(P, [TOY_ROW])
    data = make_data(n_train=128)
    label, _ = runs.finetune(P, bundle, data, notebook="04_label_finetune", method="label-ft", mode="label", cfg=ONE,
                             class_texts=CLASS_TEXTS)
    caption, _ = runs.finetune(P, bundle, data, notebook="03_caption_finetune", method="caption-ft-plain",
                               mode="contrastive", cfg=dataclasses.replace(ONE, lock_text=False),
                               class_texts=CLASS_TEXTS)
    return P, data, label, caption


def test_a_fine_tuned_tiny_model_loads_with_open_clip_alone_and_gives_medlibs_features(tiny_runs, tmp_path):
    P, data, label, caption = tiny_runs
    x = torch.randn(3, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    uint8 = data.splits["test"].images[:4]
    outs = [export_run(r.run_dir, tmp_path / r.run_dir.name, profile=P, quiet=True) for r in (label, caption)]
    for result, theirs in zip((label, caption), _open_clip_alone(outs, x, uint8, tmp_path)):
        _same_features(_medlib_features(result.model, result.head if result.mode == "label" else None, x, uint8),
                       theirs)
    head = json.loads((tmp_path / label.run_dir.name / "classifier_head.json").read_text())
    assert head["classes"] == ["normal", "pneumonia"] and head["task"] == "multiclass"
    assert not (tmp_path / caption.run_dir.name / "classifier_head.json").exists()
    # the architecture travels inline: open_clip needs nothing registered by medlib
    cfg = json.loads((tmp_path / label.run_dir.name / "open_clip_config.json").read_text())
    assert cfg["model_cfg"]["vision_cfg"]["image_size"] == 28 and set(cfg["preprocess_cfg"]) >= {"mean", "std"}


@pytest.fixture(scope="module")
def biomedclip_dir(tmp_path_factory):
    from medlib.run.rehearsal import build_biomedclip_dir

    return build_biomedclip_dir(tmp_path_factory.mktemp("bm") / "biomedclip")


def test_the_biomedclip_architecture_exports_with_its_tokenizer_and_hf_text_tower(biomedclip_dir, tmp_path):
    """timm ViT-B/16 + Hugging Face BERT (the rehearsal's random-weight BiomedCLIP): fine-tuned, exported, then the
    model's source folder moved away -- the export alone loads, with its own tokenizer files and text-tower
    configuration, and gives the same tokens and features."""
    src = tmp_path / "src"
    shutil.copytree(biomedclip_dir, src)
    cfg = json.loads((src / "open_clip_config.json").read_text())
    for key in ("hf_model_name", "hf_tokenizer_name"):
        cfg["model_cfg"]["text_cfg"][key] = str(src)
    (src / "open_clip_config.json").write_text(json.dumps(cfg))
    raw = yaml.safe_load((REPO / "medlib" / "config" / "profiles" / "smoke.yaml").read_text())
    raw["models"] = [{"name": "biomedclip", "arch": f"local-dir:{src}", "pretrained": "", "role": "clip"}]
    raw.update(name="bm", reports_dir=str(tmp_path / "reports"), runs_dir=str(tmp_path / "runs"))
    (tmp_path / "bm.yaml").write_text(yaml.safe_dump(raw))
    P = load_profile(tmp_path / "bm.yaml")
    bundle = load_model(P.model("biomedclip"), seed=P.seed)
    data = make_data(n_train=4, n_val=4)
    cfg = dataclasses.replace(ONE, batch_size=4, lock_text=True, augment=False)
    result = fit(bundle, data, mode="label", cfg=cfg, seed=0, class_texts=CLASS_TEXTS, progress=False,
                 run_dir=P.runs_path / "04_label_finetune__toy__biomedclip__label-ft")
    out = export_run(result.run_dir, tmp_path / "export", profile=P, quiet=True)
    assert (out / "tokenizer_config.json").is_file() and (out / "config.json").is_file()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    ours = _medlib_features(result.model, result.head, x, data.splits["test"].images[:2])
    shutil.move(src, tmp_path / "moved-away")
    _same_features(ours, _open_clip_alone([out], x, data.splits["test"].images[:2], tmp_path)[0], pixels=False)


def _front_matter(card: str) -> tuple[dict, str]:
    assert card.startswith("---\n")
    head, body = card[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


def test_the_model_card_has_hub_metadata_data_training_settings_and_metrics_with_intervals(tiny_runs, tmp_path):
    P, _, label, _ = tiny_runs
    out = export_run(label.run_dir, tmp_path / "card", profile=P, quiet=True)
    meta, body = _front_matter((out / "README.md").read_text())
    assert meta["library_name"] == "open_clip" and meta["license"] and meta["datasets"] == ["toy"]
    assert "accuracy" in meta["metrics"] and "clip" in meta["tags"]
    record = json.loads((P.reports_path / "metrics" / f"{label.run_dir.name}.json").read_text())
    lo, hi = record["ci95"]["acc"]
    assert f"| acc | {record['metrics']['acc']:.4f} | {lo:.4f} – {hi:.4f} |" in body
    assert "GENERATED" in body and "generated (no licence needed)" in body and "128 training" in body
    assert "| lr | 0.001 |" in body and "| epochs | 1 |" in body
    assert "not for clinical use" in body and "NOT RESULTS" in body  # a smoke run's model is marked
    assert "classifier_head.safetensors" in body


def test_a_real_runs_card_is_not_marked_as_a_smoke_run(bundle, tmp_path):
    P = _profile(tmp_path, kind="real")
    _data_summary(P, [{**TOY_ROW, "synthetic": False, "license": "CC BY 4.0"}])
    res, _ = runs.finetune(P, bundle, make_data(n_train=128), notebook="04_label_finetune", method="label-ft",
                           mode="label", cfg=ONE, class_texts=CLASS_TEXTS)
    out = export_run(res.run_dir, tmp_path / "out", profile=P, quiet=True)
    meta, body = _front_matter((out / "README.md").read_text())
    assert "NOT RESULTS" not in body and "real data" in body and "CC BY 4.0" in body
    assert "not for clinical use" in body and not any("not-results" in t for t in meta["tags"])


@pytest.mark.parametrize("generated", [False, True])
def test_a_model_trained_on_mimic_cxr_names_the_data_use_agreement_and_export_warns(bundle, tmp_path, capsys,
                                                                                    generated):
    P = _profile(tmp_path)
    _data_summary(P, [{**TOY_ROW, "dataset": "mimic_cxr", "synthetic": generated,
                       "license": "generated (no licence needed)" if generated else "PhysioNet"}])
    data = dataclasses.replace(make_data(n_train=128), name="mimic_cxr")
    res, _ = runs.finetune(P, bundle, data, notebook="04_label_finetune", method="label-ft", mode="label", cfg=ONE,
                           class_texts=CLASS_TEXTS)
    capsys.readouterr()
    body = (export_run(res.run_dir, tmp_path / "out", profile=P) / "README.md").read_text()
    printed = capsys.readouterr().out
    warnings = [line for line in printed.splitlines() if line.startswith("WARNING")]
    if generated:  # a generated stand-in carries no patient data: no agreement covers it
        assert not warnings and "GENERATED" in body
    else:
        assert len(warnings) == 1 and "data use agreement" in warnings[0] and "mimic_cxr" in warnings[0]
        assert "PhysioNet Credentialed Health Data License" in body and "data use" in body


def _one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and "Fix:" in msg, msg
    return msg


def test_exports_that_cannot_be_made_are_one_line_errors_and_leave_folders_as_they_were(tiny_runs, tmp_path):
    P, data, label, _ = tiny_runs
    # a folder that is not an earlier export is never replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(MedlibError, match="not an earlier export") as e:
        export_run(label.run_dir, tmp_path / "mine", profile=P, quiet=True)
    assert str(tmp_path / "mine") in _one_line(e) and (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    # an earlier export is replaced whole
    out = export_run(label.run_dir, tmp_path / "again", profile=P, quiet=True)
    (out / "stale.txt").write_text("from before")
    export_run(label.run_dir, out, profile=P, quiet=True)
    assert not (out / "stale.txt").exists() and (out / "open_clip_model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind
    # a run whose weights were dropped (keep_weights: reused), and the ResNet-18 baseline
    dropped = tmp_path / "runs" / "smoke" / "04_label_finetune__toy__tiny__label-ft-1shot-d0"
    shutil.copytree(label.run_dir, dropped)
    checkpoint.drop_weights(dropped)
    with pytest.raises(MedlibError, match="not kept") as e:
        export_run(dropped, tmp_path / "x", profile=P, quiet=True)
    assert "keep_weights: all" in _one_line(e)
    resnet = tmp_path / "runs" / "smoke" / "06_sota_comparison__toy__resnet18__supervised"
    cnn.train_cnn(make_data(n_train=64), epochs=1, batch_size=32, lr=1e-3, seed=0, run_dir=resnet, weights="none",
                  progress=False)
    with pytest.raises(MedlibError, match="ResNet-18") as e:
        export_run(resnet, tmp_path / "x", profile=P, quiet=True)
    _one_line(e)
    assert not (tmp_path / "x").exists()


def test_the_export_command_writes_the_folder_and_names_a_bad_run_dir_in_one_line(tiny_runs, tmp_path, capsys,
                                                                                    monkeypatch):
    """``python -m medlib export RUN_DIR OUT_DIR``: the profile named by the folder above RUN_DIR (runs/smoke/)."""
    from medlib.__main__ import main

    P, _, label, _ = tiny_runs
    monkeypatch.chdir(Path(P.runs_dir).parent)  # the profile's reports/ are found beside runs/
    assert main(["export", str(label.run_dir), str(tmp_path / "out")]) == 0
    assert "exported" in capsys.readouterr().out and (tmp_path / "out" / "open_clip_config.json").is_file()
    assert main(["export", str(tmp_path / "nowhere"), str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ERROR: ") and err.count("\n") == 1 and "Fix:" in err and not (tmp_path / "o2").exists()

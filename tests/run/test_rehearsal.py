"""The full profile's rehearsal: BiomedCLIP's architecture offline, the profile overlay, fixtures at 224 px,
the REHEARSAL labels and the projection (issue 11)."""

import json
import math

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from medlib.run import projection, rehearsal
from medlib.config import ModelSpec, load_profile, profile_path
from medlib.errors import MedlibError


@pytest.fixture(scope="module")
def biomedclip_dir(tmp_path_factory):
    return rehearsal.build_biomedclip_dir(tmp_path_factory.mktemp("models") / rehearsal.BIOMEDCLIP_DIR)


def test_biomedclip_architecture_builds_offline_and_runs_a_forward_pass(biomedclip_dir):
    from medlib.models import load_model

    b = load_model(ModelSpec(name="biomedclip", arch=f"local-dir:{biomedclip_dir}", role="domain"))
    m = b.model
    assert b.image_size == 224
    assert tuple(m.visual.trunk.patch_embed.patch_size) == (16, 16)  # timm ViT-B/16
    assert len(m.visual.trunk.blocks) == 12 and m.visual.trunk.embed_dim == 768
    assert m.text.transformer.config.model_type == "bert" and m.text.transformer.config.num_hidden_layers == 12
    assert 190e6 < sum(p.numel() for p in m.parameters()) < 200e6  # BiomedCLIP: ~196M parameters
    tokens = b.tokenizer(["a chest x-ray showing pneumonia", "normal"])
    assert tokens.shape == (2, 256)  # BiomedCLIP's context length
    assert tokens[0, 0] != tokens[0, 1] and (tokens[0] != 0).sum() > 5  # real word pieces, not all padding
    with torch.no_grad():
        img = m.encode_image(torch.randn(2, 3, 224, 224), normalize=True)
        txt = m.encode_text(tokens, normalize=True)
    assert img.shape == txt.shape == (2, 512)
    assert torch.isfinite(img).all() and torch.isfinite(txt).all()


def test_a_broken_model_folder_is_a_one_line_error(biomedclip_dir, tmp_path):
    import shutil

    from medlib.models import load_model

    broken = tmp_path / "broken"
    broken.mkdir()
    for f in biomedclip_dir.iterdir():  # the big weights file by link, the rest copied
        (broken / f.name).symlink_to(f) if f.suffix == ".safetensors" else shutil.copy(f, broken / f.name)
    (broken / "open_clip_config.json").write_text("{not json")  # a broken model folder
    with pytest.raises(MedlibError) as exc:
        load_model(ModelSpec(name="biomedclip", arch=f"local-dir:{broken}", role="domain"))
    assert "\n" not in str(exc.value) and str(broken) in str(exc.value) and "Fix:" in str(exc.value)


def test_overlay_keeps_the_full_architectures_and_caps_every_run(tmp_path):
    raw = yaml.safe_load(profile_path("full").read_text())
    over = rehearsal.overlay(raw, tmp_path / "rehearsal", device="cpu")
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(over))
    P, full = load_profile(path), load_profile("full")
    assert P.name == "full-rehearsal" and P.kind == "rehearsal"
    assert [m.arch for m in P.models][0] == "ViT-B-32" and all(m.pretrained == "" for m in P.models)
    assert P.model("biomedclip").arch == f"local-dir:{tmp_path / 'rehearsal' / rehearsal.BIOMEDCLIP_DIR}"
    assert [d.size for d in P.datasets] == [d.size for d in full.datasets] == [224] * len(full.datasets)
    assert all(d.max_per_split == rehearsal.ROWS_PER_SPLIT and not d.download for d in P.datasets)
    for t in (P.caption_finetune.train, P.label_finetune.train, P.label_finetune.multilabel_train, P.imbalance.train):
        assert t.epochs == 1 and t.max_train <= 16 and t.batch_size <= 8
    # what is compared stays the full profile's: same datasets, variants, remedies, shots
    assert P.label_finetune.variants == full.label_finetune.variants and P.imbalance.remedies == full.imbalance.remedies
    assert P.zero_shot.datasets == full.zero_shot.datasets and P.zero_shot.n_boot < full.zero_shot.n_boot
    assert P.sota.cnn_weights == "none"

    def walk(node, path=""):  # every section, including ones the overlay does not name
        if isinstance(node, dict):
            if "epochs" in node and "batch_size" in node:
                assert node["epochs"] == 1 and node["batch_size"] <= 8, path
            for k, v in node.items():
                if k == "min_steps" or k.endswith("_min_steps"):
                    assert v <= 2, f"{path}.{k}"
                if k == "n_boot":
                    assert v <= 50, f"{path}.{k}"
                walk(v, f"{path}.{k}")

    walk(over)


def test_pneumonia_224_upscales_the_real_file_in_the_medmnist_layout(tmp_path, shared_pneumonia):
    dest = tmp_path / "medmnist" / "pneumoniamnist_224.npz"
    assert rehearsal.pneumonia_224(shared_pneumonia, dest, per_split=5) == "real-upscaled"
    with np.load(dest) as z, np.load(shared_pneumonia) as real:
        assert z["train_images"].shape == (5, 224, 224) and z["train_images"].dtype == np.uint8
        assert np.array_equal(z["test_labels"], real["test_labels"][:5])
        want = np.asarray(Image.fromarray(real["val_images"][3]).resize((224, 224), Image.BICUBIC))
        assert np.array_equal(z["val_images"][3], want)


def test_pneumonia_224_is_generated_without_the_real_file(tmp_path):
    dest = tmp_path / "p.npz"
    assert rehearsal.pneumonia_224(tmp_path / "absent.npz", dest) == "generated"
    with np.load(dest) as z:
        assert z["train_images"].shape[1:] == (224, 224)


@pytest.mark.parametrize("kind", ["smoke", "rehearsal", "real"])
def test_every_output_carries_the_runs_kind_as_it_is_written(tmp_path, kind):
    """One field (the profile's kind) marks figures, tables and executed notebooks when they are written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medlib.config import NOTICES, Profile
    from medlib.outputs import plots
    from medlib.outputs.records import NOT_RESULTS, save_table
    from medlib.run.runner import notebook_source

    P = Profile(name="p", kind=kind, reports_dir=str(tmp_path))
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1])
    fig.suptitle("a figure")
    png = plots.save_figure(fig, P, "01_x__d")
    plt.close(fig)
    label = {"smoke": "SMOKE", "rehearsal": "REHEARSAL", "real": ""}[kind]
    assert fig.get_suptitle() == (f"{label} — a figure" if label else "a figure")
    assert Image.open(png).info.get("Warning") == (NOTICES[kind] or None)
    table = pd.read_csv(save_table(P, "t", pd.DataFrame({"a": [1, 2]})))
    assert list(table.columns) == (["a", NOT_RESULTS] if label else ["a"])
    assert not label or (table[NOT_RESULTS] == NOTICES[kind]).all()
    nb_path = tmp_path / "01_x.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), nb_path)
    cells = notebook_source(nb_path, P).cells
    assert len(cells) == (2 if label else 1)
    assert not label or NOTICES[kind] in cells[0].source and cells[1].source == "1"


def test_projection_scales_measured_throughput_to_the_real_sizes(tmp_path):
    over = rehearsal.overlay(yaml.safe_load(profile_path("full").read_text()), tmp_path / "data")
    over.update(reports_dir=str(tmp_path / "reports"), runs_dir=str(tmp_path / "runs"))
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(over))
    P, full = load_profile(tmp_path / "r.yaml"), load_profile("full")
    rep = P.reports_path
    (rep / "tables").mkdir(parents=True)
    (rep / "metrics").mkdir()
    pd.DataFrame([{"dataset": "pneumoniamnist", "train": 24, "val": 10, "test": 24}]).to_csv(
        rep / "tables" / "data_summary.csv", index=False)
    run = "05_class_imbalance__pneumoniamnist__vit-b-32-openai__focal"
    (P.runs_path / run).mkdir(parents=True)
    # epoch 0: validating 10 rows took 2 s (0.2 s/image); epoch 1 trained at 4 images/s
    pd.DataFrame([{"epoch": 0, "seconds": 2.0, "images_per_s": math.nan},
                  {"epoch": 1, "seconds": 6.0, "images_per_s": 4.0}]).to_csv(P.runs_path / run / "log.csv", index=False)
    (rep / "metrics" / f"{run}.json").write_text(json.dumps({"run": run, "n": 24}))
    (rep / "manifest.json").write_text(json.dumps({"notebooks": {"05_class_imbalance": {
        "seconds": 30.0, "status": "ok", "peak_rss_mb": 1234}}, "device": {"processor": "x86_64"}}))
    table = projection.project(P, full)
    row = table[table.notebook == "05_class_imbalance"].iloc[0]
    epochs = full.imbalance.train.epochs
    seeds = len(full.seed_list)  # the remedies repeat per seed of the full profile
    # real train images / throughput + a validation pass per epoch and the epoch-0 pass before training
    train = seeds * (4708 * epochs / 4.0 + 524 * (epochs + 1) * 0.2)
    evaluation = seeds * 624 * 0.2  # each seed's run is evaluated on the test split
    overhead = 30.0 - (8.0 + 24 * 0.2)  # the rehearsal's wall time not explained by measured compute
    assert row.projected_s == round(train + evaluation + overhead)
    assert row.peak_memory_mb == 1234 and row.memory_kind == "cpu peak RSS"
    assert table.iloc[-1].notebook == "TOTAL"
    out = projection.write(P, table)
    assert pd.read_csv(out)["rehearsal"].iloc[0] == rehearsal.NOTICE
    assert "05_class_imbalance" in projection.render(table, full)


def test_projection_counts_seeds_per_method_and_the_weights_runs_keep(tmp_path):
    import torch

    from medlib.train import checkpoint

    over = rehearsal.overlay(yaml.safe_load(profile_path("full").read_text()), tmp_path / "data")
    over.update(reports_dir=str(tmp_path / "reports"), runs_dir=str(tmp_path / "runs"))
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(over))
    P, full = load_profile(tmp_path / "r.yaml"), load_profile("full")
    (P.reports_path / "metrics").mkdir(parents=True)
    (P.reports_path / "manifest.json").write_text(json.dumps({"notebooks": {"04_label_finetune": {
        "seconds": 10.0, "status": "ok"}}, "device": {"processor": "x86_64"}}))
    w = {"w": torch.zeros(12_500_000)}  # 50 MB of float32
    for method in ("label-ft", "label-ft-4shot-d0", "linear-probe-4shot-d1"):
        run = P.runs_path / f"04_label_finetune__pneumoniamnist__vit-b-32-openai__{method}"
        run.mkdir(parents=True)
        pd.DataFrame([{"epoch": 1, "seconds": 1.0, "images_per_s": 8.0}]).to_csv(run / "log.csv", index=False)
        if method != "linear-probe-4shot-d1":  # a dropped sweep run keeps its log alone
            checkpoint.save(run / "best.pt", {"model": w})
    row = projection.project(P, full).iloc[0]
    assert row.trained_runs == 3
    # label-ft stands for one run per seed of the full profile, the rehearsal's one few-shot draw for every draw
    assert P.label_finetune.shot_draws == 1 < full.label_finetune.shot_draws
    assert row.runs_gb == pytest.approx((len(full.seed_list) + full.label_finetune.shot_draws) * 0.05, abs=0.01)
    assert "GB" in projection.render(projection.project(P, full), full)


def test_the_resnet_baseline_logs_its_epochs_for_the_projection(tmp_path):
    from medlib.train import cnn
    from helpers import make_data

    cnn.train_cnn(make_data(n_train=96), epochs=2, batch_size=32, lr=1e-3, seed=0, run_dir=tmp_path, weights="none",
                  progress=False)
    log = pd.read_csv(tmp_path / "log.csv")
    assert log["epoch"].tolist() == [1, 2] and (log["images_per_s"] > 0).all() and (log["seconds"] > 0).all()


def test_projection_counts_every_real_retrieval_size_from_the_rehearsed_one(tmp_path):
    over = rehearsal.overlay(yaml.safe_load(profile_path("full").read_text()), tmp_path / "data")
    over.update(reports_dir=str(tmp_path / "reports"), runs_dir=str(tmp_path / "runs"))
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(over))
    P, full = load_profile(tmp_path / "r.yaml"), load_profile("full")
    assert P.retrieval_study.train_sizes == [0] and full.retrieval_study.train_sizes == [1000, 5000, 0]
    (P.reports_path / "metrics").mkdir(parents=True)
    (P.reports_path / "manifest.json").write_text(json.dumps({"notebooks": {"07_general_retrieval": {
        "seconds": 1.0, "status": "ok"}}, "device": {"processor": "x86_64"}}))
    run = P.runs_path / "07_general_retrieval__flickr30k__vit-b-32-openai__ft-nall-both"
    run.mkdir(parents=True)
    pd.DataFrame([{"epoch": 1, "seconds": 1.0, "images_per_s": 100.0}]).to_csv(run / "log.csv", index=False)
    (P.reports_path / "metrics" / f"{run.name}-retrieval.json").write_text(json.dumps({"run": f"{run.name}-retrieval",
                                                                                        "n": 16}))
    row = projection.project(P, full).iloc[0]
    t = full.retrieval_study.train
    # contrastive epochs drop the last partial batch; small sets run enough epochs for min_steps optimizer steps
    steps = {n: n // t.batch_size for n in (1000, 5000, 29000)}  # Flickr30K: 29,000 training images
    images = sum(s * t.batch_size * max(t.epochs, math.ceil(full.retrieval_study.min_steps / s))
                 for s in steps.values())
    assert row.trained_runs == 1 and row.train_images == images * len(full.seed_list)
    assert row.eval_images == 3 * 1000 * len(full.seed_list)  # each size's run is evaluated on the 1k test images


def test_a_tokenizer_without_its_vocabulary_is_a_one_line_error(biomedclip_dir, tmp_path):
    import shutil

    rehearsal.check_tokenizer(biomedclip_dir)  # the built one tokenizes real words
    broken = tmp_path / "no-vocab"
    broken.mkdir()
    for name in ("open_clip_config.json", "config.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(biomedclip_dir / name, broken / name)
    with pytest.raises(MedlibError) as exc:  # transformers would silently map every word to [UNK]
        rehearsal.check_tokenizer(broken)
    assert "\n" not in str(exc.value) and "vocab.txt" in str(exc.value)


def test_rehearsal_fixtures_are_reported_as_generated(tmp_path):
    """The rehearsal's fixtures are read by the real loaders (which call them real); the manifest records their
    origin and the report says GENERATED for every fixture, real only for the upscaled real PneumoniaMNIST."""
    import json

    from medlib.run.rehearsal import dataset_origins
    from medlib.report.inputs import Inputs

    origins = {"pneumoniamnist": "real-upscaled", "chestxray14": "generated (ChestMNIST layout)",
               "flickr30k": "generated (Karpathy layout)"}
    base = tmp_path / "full-rehearsal"
    (base / "tables").mkdir(parents=True)
    (base / "tables" / "data_summary.csv").write_text(
        "dataset,synthetic\npneumoniamnist,False\nchestxray14,False\nflickr30k,False\n")
    (base / "manifest.json").write_text(json.dumps({"profile": "full-rehearsal",
                                                    "datasets": dataset_origins({"origins": origins})}))
    inp = Inputs(base, "full-rehearsal")
    assert inp.generated() == ["chestxray14", "flickr30k"]
    assert inp.data_kind("pneumoniamnist") == "real"

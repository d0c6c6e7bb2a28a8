"""Recall@K with several captions per image (one implementation) and the general-domain retrieval study."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch

from medlib import metrics
from medlib.studies import general_retrieval as study
from medlib.config import DatasetSpec, Profile, RetrievalStudyConfig, TrainConfig
from medlib.data import load_dataset
from medlib.data.base import Split, caption_index
from medlib.errors import MedlibError
from medlib.metrics import recall_from_ranks, retrieval_hits, retrieval_ranks, retrieval_recall


# ---- Recall@K -------------------------------------------------------------------------------------------------


def brute_force(img: np.ndarray, txt: np.ndarray, t2i: np.ndarray, ks=(1, 5, 10)) -> dict[str, float]:
    """The standard protocol by explicit sorting, query by query: candidates ordered by score, ties broken
    AGAINST the query (the correct candidates go after the wrong ones that tie with them); t2i hit when the
    caption's image is in the top K; i2t hit when any of the image's captions is in the top K."""
    a = img / np.linalg.norm(img, axis=1, keepdims=True)
    b = txt / np.linalg.norm(txt, axis=1, keepdims=True)
    sim = a @ b.T
    out = {}
    i2t_top = []
    for i in range(len(a)):
        order = sorted(range(len(b)), key=lambda j: (-sim[i, j], t2i[j] == i))
        i2t_top.append([t2i[j] == i for j in order])
    t2i_top = []
    for j in range(len(b)):
        order = sorted(range(len(a)), key=lambda i: (-sim[i, j], i == t2i[j]))
        t2i_top.append([i == t2i[j] for i in order])
    for k in ks:
        out[f"i2t_R@{k}"] = float(np.mean([any(row[:k]) for row in i2t_top]))
    for k in ks:
        out[f"t2i_R@{k}"] = float(np.mean([any(row[:k]) for row in t2i_top]))
    out["mean_recall"] = float(np.mean(list(out.values())))
    return out


def old_retrieval_recall(image_emb, text_emb, ks=(1, 5, 10)):
    """Today's (pre-change) implementation for one caption per image, kept verbatim as the reference."""
    a = np.asarray(image_emb, dtype=np.float64)
    b = np.asarray(text_emb, dtype=np.float64)
    a = a / np.clip(np.linalg.norm(a, axis=1, keepdims=True), 1e-12, None)
    b = b / np.clip(np.linalg.norm(b, axis=1, keepdims=True), 1e-12, None)
    sim = a @ b.T
    n_img, n_txt = sim.shape
    t2i = np.arange(n_img)
    own = np.full(sim.shape, False)
    own[t2i, np.arange(n_txt)] = True
    best_own = np.where(own, sim, -np.inf).max(axis=1)
    i2t_rank = ((sim >= best_own[:, None]) & ~own).sum(axis=1)
    correct = sim[t2i, np.arange(n_txt)]
    t2i_rank = ((sim >= correct[None, :]) & ~own).sum(axis=0)
    out = {}
    for k in ks:
        out[f"i2t_R@{k}"] = float(np.mean(i2t_rank < k))
    for k in ks:
        out[f"t2i_R@{k}"] = float(np.mean(t2i_rank < k))
    out["mean_recall"] = float(np.mean(list(out.values())))
    return out


def hand_made_five_captions():
    """4 images x 5 captions in 3-D with integer coordinates (so several scores tie exactly)."""
    img = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], float)
    txt = np.array([
        [1, 0, 0], [2, 1, 0], [1, 0, 1], [0, 1, 1], [3, 0, 1],  # image 0: one caption closer to image 1/2
        [0, 1, 0], [1, 1, 0], [0, 2, 1], [1, 0, 0], [0, 1, 0],  # image 1: a duplicate of image 0's first caption
        [0, 0, 1], [1, 0, 1], [0, 1, 2], [0, 0, 3], [1, 1, 1],  # image 2
        [1, 1, 0], [2, 2, 1], [1, 0, 0], [0, 1, 0], [1, 2, 0],  # image 3: ties with image 1's caption 6
    ], float)
    return img, txt, np.repeat(np.arange(4), 5)


def test_five_captions_per_image_agree_with_brute_force_on_a_hand_made_case():
    img, txt, t2i = hand_made_five_captions()
    ks = (1, 2, 5, 10)
    r = retrieval_recall(img, txt, ks=ks, text_to_image=t2i)
    assert r == pytest.approx(brute_force(img, txt, t2i, ks))
    # by hand: each image has an exact copy of itself among its captions (cosine 1), but foreign exact copies tie
    # with it: image 0 = (1,0,0) with captions 8 and 17 (rank 2), image 1 = (0,1,0) with caption 18 (rank 1),
    # image 3 = (1,1,0) with caption 6 (rank 1); image 2 = (0,0,1) has no foreign copy (rank 0).
    assert r["i2t_R@1"] == pytest.approx(1 / 4)
    assert r["i2t_R@2"] == pytest.approx(3 / 4)
    assert r["i2t_R@5"] == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_five_caption_cases_with_ties_agree_with_brute_force(seed):
    rng = np.random.default_rng(seed)
    img = rng.integers(-2, 3, size=(12, 3)).astype(float)
    img[np.all(img == 0, axis=1)] = 1.0
    t2i = rng.permutation(np.repeat(np.arange(12), 5))  # captions in any order
    txt = img[t2i] + rng.integers(-1, 2, size=(60, 3))
    txt[np.all(txt == 0, axis=1)] = 1.0
    ks = (1, 5, 10)
    assert retrieval_recall(img, txt, ks=ks, text_to_image=t2i) == pytest.approx(brute_force(img, txt, t2i, ks))


def test_single_caption_equals_the_previous_implementation():
    rng = np.random.default_rng(3)
    img, txt = rng.normal(size=(50, 8)), rng.normal(size=(50, 8))
    txt[10:15] = txt[10]  # ties
    img[30] = img[31]
    assert retrieval_recall(img, txt) == old_retrieval_recall(img, txt)


def test_matches_clip_benchmark_topk_protocol_without_ties():
    """CLIP_benchmark's zeroshot_retrieval: t2i via topk over images; i2t via topk over texts, a hit when any of
    the image's texts is among them (a text->image index)."""
    rng = np.random.default_rng(4)
    img, txt = rng.normal(size=(20, 16)), rng.normal(size=(100, 16))
    t2i = np.repeat(np.arange(20), 5)
    txt += 2 * img[t2i]
    scores = torch.from_numpy(metrics.similarity(img, txt)).T  # (texts, images), as CLIP_benchmark
    positive = torch.zeros_like(scores, dtype=torch.bool)
    positive[torch.arange(100), torch.from_numpy(t2i)] = True
    r = retrieval_recall(img, txt, ks=(1, 5), text_to_image=t2i)
    for k in (1, 5):
        t2i_hit = positive.gather(1, scores.topk(k, dim=1).indices).any(1).float().mean()
        i2t_hit = positive.T.gather(1, scores.T.topk(k, dim=1).indices).any(1).float().mean()
        assert r[f"t2i_R@{k}"] == pytest.approx(float(t2i_hit))
        assert r[f"i2t_R@{k}"] == pytest.approx(float(i2t_hit))


def test_chunked_ranks_equal_one_block(monkeypatch):
    rng = np.random.default_rng(5)
    img, txt = rng.normal(size=(23, 4)), rng.normal(size=(69, 4))
    t2i = np.repeat(np.arange(23), 3)
    whole = retrieval_ranks(img, txt, t2i)
    monkeypatch.setattr(metrics.retrieval, "_SIM_CHUNK", 4)
    chunked = retrieval_ranks(img, txt, t2i)
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_array_equal(whole[1], chunked[1])


def test_hit_vectors_are_per_query_and_give_the_recall():
    img, txt, t2i = hand_made_five_captions()
    i2t_rank, t2i_rank = retrieval_ranks(img, txt, t2i)
    hits = retrieval_hits(i2t_rank, t2i_rank, (1, 5))
    assert hits["i2t_R@1"].shape == (4,) and hits["t2i_R@5"].shape == (20,)
    assert recall_from_ranks(i2t_rank, t2i_rank, (1, 5)) == retrieval_recall(img, txt, (1, 5), t2i)


def test_an_image_without_captions_is_an_error():
    with pytest.raises(MedlibError, match="no caption"):
        retrieval_recall(np.eye(3), np.eye(3)[:2], text_to_image=np.array([0, 1]))


# ---- caption index (several captions per image in a Split) -----------------------------------------------------


def test_caption_index_flattens_every_caption_image_by_image():
    s = Split(np.zeros((3, 2, 2), np.uint8), np.zeros(3, np.int64), ["a", "b", "c"], None,
              all_captions=[["a", "a2"], ["b"], ["c", "c2", "c3"]])
    texts, t2i = caption_index(s)
    assert texts == ["a", "a2", "b", "c", "c2", "c3"] and t2i.tolist() == [0, 0, 1, 2, 2, 2]
    sub = s.subset(np.array([2, 0]))
    assert sub.captions == ["c", "a"] and sub.all_captions == [["c", "c2", "c3"], ["a", "a2"]]
    one = Split(np.zeros((2, 2, 2), np.uint8), np.zeros(2, np.int64), ["x", "y"])
    assert caption_index(one)[0] == ["x", "y"] and caption_index(one)[1].tolist() == [0, 1]


# ---- the study --------------------------------------------------------------------------------------------------


def _profile(tmp_path, **study_kw) -> Profile:
    spec = DatasetSpec(name="flickr30k", source="retrieval", flag="flickr30k", size=16, synthetic="always",
                       fixture_n=40)
    cfg = RetrievalStudyConfig(datasets=["flickr30k"], train_sizes=[8, 0], augmentations=["none", "text"],
                               variants=["wise_ft"], n_boot=50,
                               train=TrainConfig(epochs=1, batch_size=8, lr=1e-3, warmup_steps=1, lock_text=False))
    cfg = dataclasses.replace(cfg, **study_kw)
    return Profile(name="t", kind="smoke", data_dir=str(tmp_path / "data"), reports_dir=str(tmp_path / "reports"),
                   runs_dir=str(tmp_path / "runs"), datasets=[spec], retrieval_study=cfg)


def test_subsets_are_nested_and_seeded():
    s = Split(np.arange(100 * 4, dtype=np.uint8).reshape(100, 2, 2), np.zeros(100, np.int64),
              [str(i) for i in range(100)])
    small, big = study.train_subset(s, 10, 0), study.train_subset(s, 30, 0)
    assert set(small.captions) < set(big.captions) and len(big) == 30
    assert study.train_subset(s, 10, 0).captions == small.captions
    assert study.train_subset(s, 10, 1).captions != small.captions
    assert study.train_subset(s, 0, 0) is s and study.train_subset(s, 500, 0) is s


def test_caption_perturbations_keep_the_original_first_and_are_seeded():
    rng = np.random.default_rng(0)
    assert study.perturb_caption("a b c d", rng, word_dropout=1.0, word_swap=0.0) in list("abcd")  # never empty
    assert study.perturb_caption("a b", rng, word_dropout=0.0, word_swap=1.0) == "b a"
    s = Split(np.zeros((2, 2, 2), np.uint8), np.zeros(2, np.int64), ["a red ball on grass", "two dogs"],
              all_captions=[["a red ball on grass", "red ball"], ["two dogs"]])
    p = study.with_perturbations(s, 2, 0.3, 0.3, seed=0)
    assert p.captions == s.captions and [c[:len(o)] for c, o in zip(p.all_captions, s.all_captions)] == s.all_captions
    assert [len(c) for c in p.all_captions] == [6, 3]
    assert study.with_perturbations(s, 2, 0.3, 0.3, seed=0).all_captions == p.all_captions


def test_paired_interval_is_the_mean_difference_over_the_same_queries():
    a = np.array([1, 1, 0, 1, 0, 1, 1, 1.0])
    b = np.array([0, 1, 0, 1, 0, 0, 1, 0.0])
    from medlib.metrics import mean_statistic, paired_interval

    out = paired_interval([(mean_statistic(a), mean_statistic(b))], len(a), 500, 0)
    lo, hi = out["ci_low"], out["ci_high"]
    assert 0 <= lo <= 3 / 8 <= hi <= 0.75  # b never beats a on a query
    same = paired_interval([(mean_statistic(a), mean_statistic(a))], len(a), 100, 0)
    assert (same["ci_low"], same["ci_high"], same["p_value"]) == (0.0, 0.0, 1.0)
    # pooled over seeds: the mean of the per-seed differences, queries (and seeds) resampled
    a2 = np.array([1, 1, 1, 1, 0, 1, 1, 1.0])
    pooled = paired_interval([(mean_statistic(a), mean_statistic(b)), (mean_statistic(a2), mean_statistic(b))],
                             len(a), 500, 0)
    lo2, hi2 = pooled["ci_low"], pooled["ci_high"]
    assert lo2 <= (3 / 8 + 4 / 8) / 2 <= hi2 and lo2 >= 0


def test_arms_cover_sizes_by_augmentation_then_variants(tmp_path):
    P = _profile(tmp_path)
    assert [a.method for a in study.arms(P)] == ["ft-n8-none", "ft-n8-text", "ft-nall-none", "ft-nall-text",
                                                  "ft-nall-both-wise_ft"]


def test_study_runs_on_the_fixture_and_stores_per_query_ranks(tmp_path):
    from medlib.config import ModelSpec
    from medlib.outputs.records import load_predictions
    from medlib.studies import setup

    P = _profile(tmp_path, train_sizes=[0], augmentations=["none"], variants=["wise_ft"])
    P = dataclasses.replace(P, models=[ModelSpec(name="tiny", arch="medclip-tiny", pretrained="", role="clip")],
                            seeds=[0, 1], seeded_methods=["retrieval_ft"])
    clip = setup.load_clip(P, "tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_dataset(P, "flickr30k")
    recs = [study.zero_shot(P, clip, data, "07_general_retrieval")]
    recs += [study.fine_tune(P, clip, data, arm, s, "07_general_retrieval") for s in study.seeds(P) for arm in study.arms(P)]
    assert [(r["method"], r["seed"]) for r in recs] == [
        ("zero-shot-retrieval", 0), ("ft-nall-none-retrieval", 0), ("ft-nall-both-wise_ft-retrieval", 0),
        ("ft-nall-none-retrieval", 1), ("ft-nall-both-wise_ft-retrieval", 1)]
    assert recs[3]["run"].endswith("__ft-nall-none-retrieval__s1") and not recs[1]["run"].endswith("__s0")
    test = data.splits["test"]
    assert all(r["n"] == len(test) and r["n_text"] == 5 * len(test) for r in recs)  # all five captions
    pred = load_predictions(P, recs[1]["run"])
    assert pred["i2t_rank"].shape == (len(test),) and pred["t2i_rank"].shape == (5 * len(test),)
    again = retrieval_recall(pred["image_emb"], pred["text_emb"], text_to_image=pred["text_to_image"])
    assert again == recs[1]["metrics"]
    from medlib.studies import comparisons

    diffs = comparisons.paired_differences(P, study.comparisons(recs), n_boot=P.retrieval_study.n_boot, seed=P.seed)
    assert set(diffs["method_a"]) == {"ft-nall-none", "ft-nall-both-wise_ft"} and len(diffs) == 2 * 6 * 3
    zs = load_predictions(P, recs[0]["run"])
    row = diffs[(diffs.method_a == "ft-nall-none") & (diffs.metric == "t2i_R@5") & (diffs.seed == "0")].iloc[0]
    assert row["diff"] == pytest.approx(np.mean(pred["t2i_rank"] < 5) - np.mean(zs["t2i_rank"] < 5))
    assert row["ci_low"] <= row["diff"] <= row["ci_high"] and row["n"] == 5 * len(test)
    per_seed = diffs[(diffs.method_a == "ft-nall-none") & (diffs.metric == "t2i_R@5") & (diffs.seed != "pooled")]
    pooled = diffs[(diffs.method_a == "ft-nall-none") & (diffs.metric == "t2i_R@5") & (diffs.seed == "pooled")]
    assert pooled["diff"].iloc[0] == pytest.approx(per_seed["diff"].mean())
    table = study.results_table(recs)
    assert table["n_train"].tolist() == [0] + [len(data.splits["train"])] * 4
    summary = study.summary_table(table)
    assert summary.loc[summary.method == "ft-nall-none", "seeds"].iloc[0] == 2
    # keep_weights: reused -- once the WiSE-FT arm has read its base run, no arm keeps best.pt, and a re-run
    # returns each arm's saved record
    assert P.keep_weights == "reused" and not list(P.runs_path.rglob("best.pt"))
    again = [study.fine_tune(P, clip, data, arm, 0, "07_general_retrieval") for arm in study.arms(P)]
    assert [r["metrics"] for r in again] == [recs[1]["metrics"], recs[2]["metrics"]]


# ---- the engine: validation metric and caption sampling ---------------------------------------------------------


def test_contrastive_validation_metric_is_the_one_recall_with_ties_against_the_query():
    from medlib.train.validation import retrieval_r1

    img = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # two identical images
    txt = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # argmax (the old metric) gave the tie to image 0 and scored 0.5; ties count against the query: 0.25
    assert retrieval_r1(img, txt) == pytest.approx(0.25)
    rng = np.random.default_rng(6)
    i, t = rng.normal(size=(10, 4)), rng.normal(size=(30, 4))
    t2i = np.repeat(np.arange(10), 3)
    r = retrieval_recall(i, t, ks=(1,), text_to_image=t2i)
    assert retrieval_r1(torch.from_numpy(i), torch.from_numpy(t), t2i) == pytest.approx((r["i2t_R@1"] + r["t2i_R@1"]) / 2)


def _caption_data(extra_captions: bool) -> "DatasetBundle":
    from medlib.data.base import DatasetBundle

    rng = np.random.default_rng(0)
    splits = {}
    for name, n in (("train", 16), ("val", 8), ("test", 8)):
        caps = [[f"image {name} {i} caption {k}" + " word" * k for k in range(5)] for i in range(n)]
        splits[name] = Split(rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8), np.full(n, -1, np.int64),
                             [c[0] for c in caps], all_captions=caps if extra_captions else None)
    return DatasetBundle(name="toy", task="retrieval", class_names=[], splits=splits, source="test", domain="general")


@pytest.fixture(scope="module")
def tiny():
    from medlib.config import ModelSpec
    from medlib.models import load_model

    return load_model(ModelSpec(name="tiny", arch="medclip-tiny"))


def test_text_augmentation_samples_among_every_caption_of_an_image(tiny, tmp_path):
    from medlib.train import train

    cfg = TrainConfig(epochs=1, batch_size=8, lr=1e-3, warmup_steps=1, lock_text=False, augment=False, patience=0)

    def fit(data, text_augment, name):
        r = train(tiny, data, mode="contrastive", cfg=dataclasses.replace(cfg, text_augment=text_augment),
                  run_dir=tmp_path / name, seed=0, progress=False)
        return torch.cat([p.detach().flatten() for p in r.model.model.parameters()])

    one, five = _caption_data(False), _caption_data(True)
    base = fit(one, True, "one")
    # without text augmentation the extra captions are not used: the same run as with one caption per image
    assert torch.equal(fit(five, False, "five-fixed"), base)
    # with it, other captions than the first are drawn: training differs
    assert not torch.equal(fit(five, True, "five-sampled"), base)


def test_published_anchors_are_clip_benchmark_vit_b_32_openai():
    from medlib.outputs.references import published, published_recall

    assert published_recall("flickr30k") == {"i2t_R@5": 0.9490, "t2i_R@5": 0.8338}  # 0.949 / 0.834 rounded
    assert published_recall("coco") == {"i2t_R@5": 0.7482, "t2i_R@5": 0.5585}
    rows = published(dataset="coco")
    assert set(rows["model"]) == {"ViT-B-32:openai"} and rows["source"].str.contains("CLIP_benchmark").all()
    assert rows["note"].str.startswith("published").all()


def test_profiles_configure_the_study():
    from medlib.config import load_profile

    full = load_profile("full")
    assert full.retrieval_study.train_sizes == [1000, 5000, 0]
    assert {d.name: d.hf_id for d in full.datasets if d.source == "retrieval"} == {
        "flickr30k": "umaru97/flickr30k_train_val_test", "coco": "yerevann/coco-karpathy"}
    assert full.retrieval_study.augmentations == ["none", "image", "text", "both"]
    with pytest.raises(MedlibError, match="augmentations"):
        load_profile("smoke", {"retrieval_study.augmentations": ["none", "mixup"]})

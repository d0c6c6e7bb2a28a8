"""The report as a paper a student can hand in: built on outputs holding every known defect (an accuracy figure of a
multi-label set, a 108-row table, crowded trade-off labels, a degenerate multi-label fine-tune whose AUROC gain is
the largest, figures of a generated Flickr30K, a bound that rounds to 0.000, raw identifiers), it shows none of
them; the paper stays short with its appendix in a file of its own, and the Typst sources beside the PDFs
recompile to the same PDFs."""

import re
import shutil

import pytest
from matplotlib.text import Text

from medlib.report import write_report
from paper_fixture import FIGURES, build

pypdf = pytest.importorskip("pypdf")
typst = pytest.importorskip("typst")

FILES = ("report.md", "report.html", "report.pdf", "report.typ", "report-appendix.md", "report-appendix.html",
         "report-appendix.pdf", "report-appendix.typ")
ABSTRACT_WORDS = 250
RAW = ("balanced_acc", "worst_class_recall", "medical_acc", "general_R@5", "ft-nall-both-wise_ft", "logit_adjust",
       "multilabel-ft", "caption-ft-plain")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    base = build(root)
    write_report(root, "smoke")
    md = (base / "report.md").read_text()
    appendix = base / "report-appendix.md"
    return {"base": base, "md": md, "appendix": appendix.read_text() if appendix.is_file() else "",
            "abstract": md.split("\n## Abstract", 1)[1].split("\n## ", 1)[0],
            "body": md.split("\n## 1. Introduction", 1)[1].split("\n## References", 1)[0]}


def _pdf_text(path):
    return re.sub(r"\s+", " ", " ".join(p.extract_text() or "" for p in pypdf.PdfReader(str(path)).pages)) \
        .replace("\u200b", "").replace("\u2212", "-")


def _plain(md):
    """The Markdown's text without code spans (file names) and image links."""
    return re.sub(r"!\[[^\]]*\]\([^)]*\)|`[^`]*`", "", md)


def test_paper_and_appendix_are_files_of_their_own_and_the_paper_is_short(report):
    base = report["base"]
    for name in FILES:
        assert (base / name).is_file(), name
    paper = pypdf.PdfReader(str(base / "report.pdf"))
    assert len(paper.pages) <= 12
    assert len(pypdf.PdfReader(str(base / "report-appendix.pdf")).pages) >= 2
    assert "Appendix to:" in _pdf_text(base / "report-appendix.pdf")[:400]
    heads = [line[3:] for line in report["md"].splitlines() if line.startswith("## ")]
    assert heads[:2] == ["Abstract", "Contents"] and heads[-1] == "References"
    assert [h.split(". ", 1)[1] for h in heads[2:-1]] == ["Introduction", "Data", "Methods", "Results", "Discussion",
                                                          "Limitations", "Conclusion", "Reproducibility"]
    assert "Appendix" not in " ".join(heads)  # the appendix is not inside the paper


def test_abstract_is_prose_of_at_most_250_words_with_paired_findings(report):
    abstract = report["abstract"]
    text = " ".join(line for line in abstract.splitlines() if line.strip())
    assert len(text.split()) <= ABSTRACT_WORDS
    assert not re.search(r"^\s*[-|*]", abstract, re.M)  # no bullets, no tables
    findings = re.findall(r"[+-]\d\.\d+ \(95% CI \[[+-]?\d\.\d+, [+-]?\d\.\d+\]", abstract)
    assert 3 <= len(findings) <= 5, findings
    assert "+0.229 (95% CI [+0.199, +0.261], 2 seeds)" in abstract


def test_a_degenerate_model_is_never_headlined_without_saying_so(report):
    for where in (report["abstract"], report["body"]):
        if "+0.312" in where:  # the degenerate fine-tune's AUROC gain, the largest of the table
            sentence = next(s for s in re.split(r"(?<=\.)\s", where) if "+0.312" in s)
            assert "degenerate" in sentence or "‡" in sentence, sentence
    discussion = report["body"].split("## 5. Discussion", 1)[1].split("\n## ", 1)[0]
    assert "degenerate" in discussion.lower() and "ChestX-ray14" in discussion


def test_each_paired_difference_appears_once_in_the_body(report):
    body = report["body"]
    for cell in ("+0.229 [+0.199, +0.261]", "+0.012 [+0.0004, +0.024]", "+0.031 [-0.010, +0.073]",
                 "+0.312 [+0.257, +0.360]", "+0.0001 [-0.020, +0.020]"):
        assert body.count(cell) == 1, cell
    for text in (report["md"], report["appendix"]):
        assert not re.search(r"[+-]0\.000(?!\d)", text)  # a bound shows its sign: never "+0.000"
    row = next(line for line in body.splitlines() if "+0.0004" in line)
    assert "caption FT higher" in row  # the table's own verdict, with a bound that shows it


def test_no_empty_figure_and_inapplicable_figures_are_said_once(report):
    both = report["md"] + report["appendix"]
    assert "03_accuracy__mimic_cxr" not in re.sub(r"`[^`]*`", "", both.replace("](figures/", "]("))
    assert "figures/03_accuracy__mimic_cxr__tiny__caption-ft.png)" not in both
    assert both.count("does not apply to MIMIC-CXR") == 1


def test_cut_tables_say_first_n_of_m_and_name_their_csv(report):
    appendix = report["appendix"]
    caption = next(line for line in appendix.splitlines() if "07_retrieval_runs.csv" in line and "Table" in line)
    assert "First 40 of 108 rows" in caption and "All rows: `tables/07_retrieval_runs.csv`" in caption
    rows = appendix.split(caption, 1)[1].split("\n\n*Table", 1)[0]
    assert "COCO" in rows and "Flickr30K" in rows  # no data set disappears from a cut table
    assert rows.count("Karpathy split; every caption") <= 1  # a repeated paragraph is said once, in a note


def test_crowded_trade_off_labels_do_not_overlap_in_the_figure_the_paper_shows(report):
    name = "05_tradeoff__pneumoniamnist__tiny__remedies"
    assert f"`figures/{name}.png`" in report["body"]
    fig = FIGURES[name]
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    labels = [t for t in fig.axes[0].texts]
    boxes = [Text.get_window_extent(t, r) for t in labels]  # the text, not its leader line
    assert len(boxes) == 7 and not any(a.overlaps(c) for i, a in enumerate(boxes) for c in boxes[i + 1:])
    assert {"no remedy", "logit adjustment", "focal loss"} <= {t.get_text() for t in labels}


def test_generated_data_is_marked_on_every_figure_that_uses_it(report):
    both = report["md"] + report["appendix"]
    for stem in ("07_recall_vs_train_size__flickr30k__tiny", "06_general_vs_medical__pneumoniamnist__tiny__wise-ft",
                 "01_samples__flickr30k"):
        caption = next(line for line in both.splitlines() if f"`figures/{stem}.png`" in line)
        assert "GENERATED" in caption and "Flickr30K" in caption, caption


def test_human_names_everywhere_and_sections_in_notebook_order(report):
    for text in (_plain(report["md"]), _plain(report["appendix"])):
        for raw in RAW:
            assert raw not in text, raw
    results = report["body"].split("## 4. Results", 1)[1].split("\n## 5.", 1)[0]
    notebooks = [int(n) for n in re.findall(r"\(Notebook (\d\d);", results.replace("(Notebook 06; `figures/06_paired", ""))]
    assert notebooks == sorted(notebooks) and notebooks, notebooks
    subs = re.findall(r"^### 4\.\d (.+)$", results, re.M)
    assert subs[0] == "Does fine-tuning help?" and subs[-1] == "What does adapting cost outside medicine?"


def test_captions_stay_with_their_table_or_figure(report):
    typ = (report["base"] / "report.typ").read_text()
    assert "#let tbl(" in typ and "#let fig(" in typ and typ.count("breakable: false") >= 2
    body = typ.split("---- the text ----", 1)[1]
    assert "#figure(" not in body and "#table(" not in body  # every table and figure goes through tbl/fig
    for path in (report["base"] / "report.pdf", report["base"] / "report-appendix.pdf"):
        for page in pypdf.PdfReader(str(path)).pages:
            text = (page.extract_text() or "").rstrip()
            last = text.splitlines()[-2:] if text else []  # the page number is last
            assert not any(re.match(r"(Table|Figure) A?\d+:", line) for line in last), last


def test_vector_figures_latex_tables_and_sources_that_recompile(report):
    base = report["base"]
    typ = (base / "report.typ").read_text() + (base / "report-appendix.typ").read_text()
    used_figs = set(re.findall(r"path: \"figures/([^\"]+)\"", typ))
    assert used_figs and all(f.endswith(".pdf") for f in used_figs)  # the PDFs embed the vector figures
    for f in used_figs:
        assert (base / "figures" / f).read_bytes()[:5] == b"%PDF-"
        assert (base / "figures" / f).with_suffix(".svg").is_file()
    used_csv = {n for n in re.findall(r"tables/([a-z0-9_.-]+)\.csv", report["md"] + report["appendix"])
                if (base / "tables" / f"{n}.csv").is_file()}
    assert used_csv
    for name in used_csv:
        assert (base / "tables" / f"{name}.tex").is_file(), name
    folder = (base / "report").resolve()  # the written set: sources beside the PDFs, figures/ linked in
    for stem in ("report", "report-appendix"):
        again = typst.compile(str(folder / f"{stem}.typ"), root=str(folder))
        assert again == (folder / f"{stem}.pdf").read_bytes(), stem
    copy = base / "mine"  # a student's copy beside report/: edit the text, recompile
    shutil.copytree(base / "report", copy, symlinks=True)
    src = (copy / "report.typ").read_text().replace("= Introduction", "= My introduction", 1)
    (copy / "report.typ").write_text(src)
    pdf = typst.compile(str(copy / "report.typ"), root=str(copy))
    assert "My introduction" in " ".join(p.extract_text() for p in pypdf.PdfReader(__import__("io").BytesIO(pdf)).pages)


def test_methods_say_what_intervals_carry_holm_and_recall_at_k(report):
    methods = report["body"].split("## 3. Methods", 1)[1].split("\n## ", 1)[0]
    assert "test images and training seeds (2)" in methods  # the table's own variance column
    assert "Holm-adjusted p-value" in methods
    assert "Recall@K" in methods and "ties never help" in methods
    assert "Holm-corrected" in report["abstract"]


def test_outputs_of_a_stale_notebook_are_marked_with_the_command_that_refreshes_them(tmp_path, monkeypatch):
    """Where the manifest's provenance says notebook 04 changed since it ran, every table, figure and abstract line
    built from its outputs says STALE and names the one command that refreshes them."""
    import medlib.run.manifest as run_manifest

    base = build(tmp_path)
    monkeypatch.setattr(run_manifest, "stale", lambda m: {"04_label_finetune": "its code changed after it ran"})
    monkeypatch.setattr(run_manifest, "refresh_command", lambda m: "./run_all.sh --profile smoke --from 04")
    write_report(tmp_path, "smoke")
    md = (base / "report.md").read_text()
    abstract = md.split("\n## Abstract", 1)[1].split("\n## ", 1)[0]
    assert "STALE" in abstract and "./run_all.sh --profile smoke --from 04" in abstract
    main = next(line for line in md.splitlines() if line.startswith("*Table") and "Main metric" in line)
    assert "STALE (notebook 04: its code changed after it ran)" in main
    appendix = (base / "report-appendix.md").read_text()
    runs04 = next(line for line in appendix.splitlines() if "Runs of notebook 04_label_finetune" in line)
    assert "STALE" in runs04 and "--from 04" in runs04
    runs02 = next(line for line in appendix.splitlines() if "Runs of notebook 02_zero_shot_baseline" in line)
    assert "STALE" not in runs02  # only what notebook 04 built


def test_a_gain_left_open_by_the_seeds_or_holm_says_which():
    from medlib.report.opening import why_open

    row = {"ci_low": 0.40, "ci_high": 0.51, "seed_ci_low": -0.1, "seed_ci_high": 0.9, "p_holm": 0.2}
    assert why_open(row) == " (the interval over seeds, [-0.100, +0.900], includes zero)"
    row.update(seed_ci_low=0.39, seed_ci_high=0.54, p_holm=0.091)
    assert why_open(row) == " after Holm's correction for the comparisons reported together (adjusted p = 0.091)"
    assert why_open({**row, "ci_low": -0.01}) == ""  # the row-level interval itself includes zero

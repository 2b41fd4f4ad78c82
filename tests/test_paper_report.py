"""The paper's anchors (crossgran.analysis.paper) and the paper-vs-reproduced report
(crossgran.analysis.report) on real smoke-profile probe results.

The results are computed here, on the real smoke MIBiG tables, for the two product-class
feature sets that need no trained model (Pfam domain counts and random vectors); every other anchor then has no CSV row, which exercises the "not run" path.
"""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from crossgran.analysis import features, halogenation, paper, probes, report, spread
from crossgran.data.mibig import PRODUCT_CLASSES
from crossgran.data.tables import load_table
from crossgran.profiles import Profile

N_BOOTSTRAP = 200
MEASURED = {"pc_pfam2vec_f1", "pc_pfam2vec_auc", "pc_random_f1", "pc_random_auc"}


@pytest.fixture(scope="module")
def measured(smoke_profile: Profile, smoke_build) -> Profile:
    """Probe real smoke BGCs and write product_class_probe.csv as notebook 05 does."""
    settings = smoke_profile
    classes = load_table(settings, "mibig_classes")
    counts = load_table(settings, "mibig_domain_counts")
    bgc_ids = np.array(sorted(counts["bgc_id"].unique()))
    mask, targets, _ = features.product_class_targets(
        classes, bgc_ids, PRODUCT_CLASSES, min_positives=settings.probe_folds
    )
    counted, _ = features.count_matrix(counts, bgc_ids[mask])
    results = {
        "pfam_counts": probes.cross_validated_scores(
            counted, targets, task="multilabel", folds=settings.probe_folds, seeds=(0,)
        ),
        "random": probes.cross_validated_scores(
            features.random_features(len(targets), 64, settings.seed),
            targets,
            task="multilabel",
            folds=settings.probe_folds,
            seeds=(0,),
        ),
    }
    settings.results_dir.mkdir(parents=True, exist_ok=True)
    probes.summarise(results, N_BOOTSTRAP).to_csv(
        settings.results_dir / "product_class_probe.csv", index=False
    )
    return settings


def test_one_row_per_anchor_with_ours_where_measured(measured: Profile) -> None:
    rows = report.report_rows(measured).set_index("key")
    assert list(rows.index) == [anchor.key for anchor in paper.ANCHORS]
    assert rows.loc[sorted(MEASURED), "ours"].notna().all()
    unmeasured = rows.drop(index=sorted(MEASURED))
    assert unmeasured["ours"].isna().all()
    assert (unmeasured["holds"] == "not run").all()
    table = pd.read_csv(measured.results_dir / "product_class_probe.csv")
    auc = table.set_index(["feature_set", "metric"]).loc[("pfam_counts", "auc")]
    assert rows.loc["pc_pfam2vec_auc", "ours"] == pytest.approx(auc["mean"])
    assert rows.loc["pc_pfam2vec_auc", "ci_low"] == pytest.approx(auc["ci_low"])
    assert (rows["profile"] == "smoke").all()


def test_directions_on_real_results(measured: Profile) -> None:
    rows = report.report_rows(measured).set_index("key")
    ours = rows["ours"]
    # Domain counts beat random vectors on real MIBiG classes: the "above" check says so.
    assert ours["pc_pfam2vec_auc"] > ours["pc_random_auc"]
    assert rows.loc["pc_pfam2vec_auc", "holds"] == "yes"
    assert rows.loc["pc_pfam2vec_f1", "holds"] == "yes"
    # Random vectors: the chance check follows the CI.
    low, high = rows.loc["pc_random_auc", ["ci_low", "ci_high"]]
    assert rows.loc["pc_random_auc", "holds"] == ("yes" if low <= 0.5 <= high else "no")
    # Its F1 is compared with ESM, which was not run: no verdict without the reference.
    assert rows.loc["pc_random_f1", "holds"] == "not run"


def test_a_reversed_expectation_fails(measured: Profile) -> None:
    """The same real numbers, asked the opposite question, must give "no"."""
    tables = spread.read_tables(measured.results_dir)
    ours = {anchor.key: report._ours(anchor, tables) for anchor in paper.ANCHORS}
    pfam = next(a for a in paper.ANCHORS if a.key == "pc_pfam2vec_auc")
    assert report._verdict(pfam, ours)[1] == "yes"
    assert report._verdict(replace(pfam, expect="below"), ours)[1] == "no"


def test_ambiguous_selection_is_refused(measured: Profile, tmp_path) -> None:
    table = pd.read_csv(measured.results_dir / "product_class_probe.csv")
    copy = replace(measured, root=tmp_path)
    copy.results_dir.mkdir(parents=True)
    pd.concat([table, table]).to_csv(copy.results_dir / "product_class_probe.csv", index=False)
    with pytest.raises(ValueError, match="rows for"):
        report.report_rows(copy)


def test_written_report(measured: Profile) -> None:
    path = report.write_report(measured)
    assert path == measured.results_dir / "paper_vs_reproduced.md"
    text = path.read_text()
    table_lines = [
        line for line in text.splitlines() if line.startswith("| ") and "---" not in line
    ]
    assert len(table_lines) == 1 + len(paper.ANCHORS)  # header + one row per anchor
    assert "not run" in text and "0.954" in text
    assert report.write_report(measured).read_text() == text  # deterministic bytes


def test_anchor_expectations_agree_with_the_papers_own_numbers() -> None:
    """Each stated direction must be the one the paper's figures show."""
    value = {anchor.key: anchor.paper for anchor in paper.ANCHORS}
    for anchor in paper.ANCHORS:
        if anchor.expect in ("above", "below"):
            reference = max(value[r] for r in anchor.refs) if anchor.refs else paper.CHANCE_AUC
            assert (anchor.paper > reference) == (anchor.expect == "above"), anchor.key
        elif anchor.expect == "chance":
            assert abs(anchor.paper - paper.CHANCE_AUC) < 0.05, anchor.key
    assert len({anchor.key for anchor in paper.ANCHORS}) == len(paper.ANCHORS)


def test_paper_cka_figures_are_the_cka_anchors() -> None:
    """The notebooks read the paper's CKA numbers from PAPER_CKA; it must hold the anchors'."""
    cka_anchors = [a for a in paper.ANCHORS if a.source == "cka_summary"]
    assert len(paper.PAPER_CKA) == len(cka_anchors) == 4
    for anchor in cka_anchors:
        key = (anchor.select["comparison"], anchor.select["run_a"], anchor.select["run_b"])
        assert paper.PAPER_CKA[key] == anchor.paper
    assert paper.PAPER_CKA["token_table_vs_init", "esm", "esm"] == 0.954


def test_halogenation_anchors_read_its_csv(measured: Profile, tmp_path) -> None:
    """``halogenation_probe.csv`` (probes.summarise's shape) fills the three halogenation anchors.

    Stand-in rows: real binary probes of smoke BGCs (NRP or not, from Pfam counts and from random
    vectors) saved under the halogenation feature-set names; the test checks how the report reads
    the file, not what the numbers mean.
    """
    copy = replace(measured, root=tmp_path)
    copy.results_dir.mkdir(parents=True)
    shutil.copy(measured.results_dir / "product_class_probe.csv", copy.results_dir)
    without = report.write_report(copy).read_text()
    assert "Halogenation (" not in without
    assert (
        report.report_rows(copy)
        .set_index("key")
        .loc[["halo_fused", "halo_esm", "halo_bigcarp"], "holds"]
        == "not run"
    ).all()

    counts = load_table(measured, "mibig_domain_counts")
    bgc_ids = sorted(counts["bgc_id"].unique())
    labels = (
        load_table(measured, "mibig_classes").set_index("bgc_id").loc[bgc_ids, "NRP"].astype(int)
    )
    matrix, _ = features.count_matrix(counts, bgc_ids)
    cv = {"task": "binary", "folds": measured.probe_folds, "seeds": (0,)}
    counted = probes.cross_validated_scores(matrix, labels.to_numpy(), **cv)
    chance = probes.cross_validated_scores(
        features.random_features(len(bgc_ids), 64, 0), labels.to_numpy(), **cv
    )
    results = {halogenation.FUSED: counted, "esm": counted, "bigcarp_domain": chance}
    table = probes.summarise(results, N_BOOTSTRAP)
    table.to_csv(copy.results_dir / "halogenation_probe.csv", index=False)

    rows = report.report_rows(copy).set_index("key")
    auc = table[table["metric"] == "auc"].set_index("feature_set")
    assert rows.loc["halo_fused", "ours"] == pytest.approx(auc.loc[halogenation.FUSED, "mean"])
    assert rows.loc["halo_bigcarp", "ci_low"] == pytest.approx(auc.loc["bigcarp_domain", "ci_low"])
    assert (rows.loc[["halo_fused", "halo_esm", "halo_bigcarp"], "holds"] != "not run").all()
    assert rows.loc["halo_esm", "holds"] == "yes"  # domain counts beat random vectors on NRP
    text = report.write_report(copy).read_text()
    assert "Halogenation (`halogenation_probe.csv`): logreg probe" in text

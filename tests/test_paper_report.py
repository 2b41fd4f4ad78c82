"""The paper's anchors (crossgran.analysis.paper) and the paper-vs-reproduced report
(crossgran.analysis.report) on real smoke-profile probe results.

Stand-ins, computed here on the real smoke MIBiG tables: Pfam domain counts play the learned
representation ``esm`` (a real signal), standard-normal vectors per BGC play its controls and
the Pfam2vec baseline. Their paired tests are written in the shared tests format, so the
report reaches real verdicts through the same code as the notebooks' tables; every other
anchor has no row, which exercises the "not testable here" path.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from crossgran.analysis import (
    comparisons,
    features,
    occurrence_cka,
    paper,
    probes,
    report,
    spread,
    verdicts,
)
from crossgran.data.mibig import PROBE_CLASSES
from crossgran.data.tables import load_table
from crossgran.profiles import Profile

N_BOOTSTRAP = 200
F1_CONTROLS = ["pc:esm>esm~random:f1", "pc:esm>esm~untrained:f1"]


def _write(settings: Profile, out: Profile, untrained_equals_learned: bool) -> Profile:
    """Probe real smoke BGCs (tables of ``settings``) and write product_class_probe.csv and
    fusion_tests.csv into ``out``'s results."""
    classes = load_table(settings, "mibig_classes")
    counts = load_table(settings, "mibig_domain_counts")
    bgc_ids = np.array(sorted(counts["bgc_id"].unique()))
    mask, targets, _ = features.product_class_targets(
        classes, bgc_ids, PROBE_CLASSES, min_positives=settings.probe_folds
    )
    counted, _ = features.count_matrix(counts, bgc_ids[mask])
    noise = {
        name: features.random_features(len(targets), 64, seed)
        for seed, name in enumerate(["esm~random", "esm~untrained", "pfam2vec"])
    }
    blocks = {"esm": counted, **noise}
    if untrained_equals_learned:
        blocks["esm~untrained"] = counted
    results = {
        name: probes.cross_validated_scores(
            x, targets, task="multilabel", folds=settings.probe_folds, seeds=(0,)
        )
        for name, x in blocks.items()
    }
    out.results_dir.mkdir(parents=True, exist_ok=True)
    probes.summarise(results, N_BOOTSTRAP).to_csv(
        out.results_dir / "product_class_probe.csv", index=False
    )
    tests = comparisons.run_comparisons(
        results,
        [
            *comparisons.control_comparisons(["esm"], ["random", "untrained"]),
            comparisons.Comparison("esm", ("pfam2vec",)),
        ],
        task="product_class",
        n_bootstrap=N_BOOTSTRAP,
        seed=0,
    )
    tests.to_csv(out.results_dir / "fusion_tests.csv", index=False)
    return out


@pytest.fixture(scope="module")
def measured(smoke_profile: Profile, smoke_build) -> Profile:
    return _write(smoke_profile, smoke_profile, untrained_equals_learned=False)


def test_one_row_per_anchor_with_real_verdicts(measured: Profile) -> None:
    rows = report.report_rows(measured).set_index("key")
    assert list(rows.index) == [anchor.key for anchor in paper.ANCHORS]
    # Domain counts beat per-BGC noise on real classes: the control rows hold after Holm.
    assert (rows.loc[F1_CONTROLS, "verdict"] == "holds").all()
    assert (rows.loc[F1_CONTROLS, "p_holm"] < paper.SIGNIFICANCE).all()
    assert (rows.loc[F1_CONTROLS, "p_holm"] >= rows.loc[F1_CONTROLS, "p_value"]).all()
    # Its controls held, so the claim resting on it is tested: counts beat the noise stand-in.
    assert rows.loc["pc:esm>pfam2vec:f1", "verdict"] == "holds"
    table = pd.read_csv(measured.results_dir / "product_class_probe.csv")
    f1 = table.set_index(["feature_set", "metric"]).loc[("esm", "f1")]
    assert rows.loc["pc:esm>pfam2vec:f1", "ours"] == pytest.approx(f1["mean"])
    # No test row: not testable here, with the reason; halogenation says what it needs.
    untested = rows.loc["pc:bigcarp_last>bigcarp_last~random:f1"]
    assert untested["verdict"] == "not testable here"
    assert "not run" in untested["reason"]
    assert "MIBiG release" in rows.loc["halo:esm", "reason"]
    # Rows that are not claims say why.
    shown = rows[rows["kind"] == "none"]
    assert (shown["verdict"] == report.NOT_A_CLAIM).all() and shown["reason"].str.len().gt(0).all()


def test_an_unbeaten_control_makes_the_claim_untestable(
    smoke_profile: Profile, smoke_build, tmp_path
) -> None:
    """The untrained stand-in equal to the learned one: its control test cannot hold, so the
    claim resting on it turns "not testable here" although its own test would hold."""
    settings = _write(
        smoke_profile, replace(smoke_profile, root=tmp_path), untrained_equals_learned=True
    )
    rows = report.report_rows(settings).set_index("key")
    assert rows.loc["pc:esm>esm~untrained:f1", "verdict"] != "holds"
    assert rows.loc["pc:esm>pfam2vec:f1", "verdict"] == "not testable here"
    assert "its untrained model" in rows.loc["pc:esm>pfam2vec:f1", "reason"]


def test_the_reversed_question_does_not_hold(measured: Profile) -> None:
    """The same real tests, asked the opposite way round, give "does not hold"."""
    tests = pd.read_csv(measured.results_dir / "fusion_tests.csv")
    reversed_tests = tests.assign(delta=-tests["delta"], low=-tests["high"], high=-tests["low"])
    reversed_tests["p_value"] = 1.0
    decided = verdicts.decide(reversed_tests[reversed_tests["metric"] == "f1"])
    assert (decided["verdict"] == "does not hold").all()


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
    assert "not testable here" in text and "0.954" in text and "Holm" in text
    assert report.write_report(measured).read_text() == text  # deterministic bytes


def test_anchors_are_consistent() -> None:
    """Unique keys; every control a claim needs is itself an anchor; rows that are not claims
    say why; tested rows name the tests table and the rivals that may answer them."""
    keys = [anchor.key for anchor in paper.ANCHORS]
    assert len(set(keys)) == len(keys)
    for anchor in paper.ANCHORS:
        assert set(anchor.controls) <= set(keys), anchor.key
        if anchor.kind == "none":
            assert anchor.note, anchor.key
        else:
            assert anchor.tests and anchor.rivals and anchor.test_select, anchor.key
    cka = [a for a in paper.ANCHORS if a.source == "cka_occurrences"]
    for anchor in cka:
        key = (anchor.select["comparison"], anchor.select["run_a"], anchor.select["run_b"])
        assert paper.PAPER_CKA.get(key) == anchor.paper
    assert paper.PAPER_CKA["layer0_vs_epoch0", "esm", "esm"] == 0.954


def _two_probes(measured: Profile, root, shift: float, probes: tuple[str, str]) -> Profile:
    """``measured``'s real tables under two probe names: the first as written, the second a
    copy with every number moved by ``shift``, so a test can see which probe's row was read."""
    copy = replace(measured, root=root)
    copy.results_dir.mkdir(parents=True)
    for name in ("product_class_probe", "fusion_tests"):
        table = pd.read_csv(measured.results_dir / f"{name}.csv")
        moved = table.copy()
        floats = moved.select_dtypes("float").columns
        moved[floats] += shift
        both = pd.concat([table.assign(probe=probes[0]), moved.assign(probe=probes[1])])
        both[["probe", *table.columns]].to_csv(copy.results_dir / f"{name}.csv", index=False)
    return copy


def test_a_row_reads_the_papers_probe_where_it_ran(measured: Profile, tmp_path) -> None:
    mlp, linear = "MLP (512, 256)", probes.LINEAR_PROBE
    assert paper.PROBES_BY_TABLE["product_class_probe"][1:] == (mlp, linear)
    assert probes.probe_label("mlp", (512, 256)) == mlp
    assert (
        probes.probe_label("bilstm", (512, 512)) == paper.PROBES_BY_TABLE["product_class_probe"][0]
    )
    assert probes.probe_label("mlp", (512, 128)) == paper.PROBES_BY_TABLE["halogenation_probe"][0]
    base = report.report_rows(measured).set_index("key")
    both = report.report_rows(_two_probes(measured, tmp_path / "a", 0.01, (linear, mlp)))
    both = both.set_index("key")
    key = "pc:esm>pfam2vec:f1"
    assert both.loc[key, "probe"] == mlp and base.loc[key, "probe"] == ""
    assert both.loc[key, "ours"] == pytest.approx(base.loc[key, "ours"] + 0.01)
    assert both.loc[key, "delta"] == pytest.approx(base.loc[key, "delta"] + 0.01)
    text = report.write_report(_two_probes(measured, tmp_path / "b", 0.0, (linear, mlp)))
    assert f"| {mlp} |" in text.read_text() and "| probe |" in text.read_text()
    # Only the linear probe there: the row reads it and says so.
    alone = _two_probes(measured, tmp_path / "c", 0.0, (linear, linear))
    for name in ("product_class_probe", "fusion_tests"):
        path = alone.results_dir / f"{name}.csv"
        pd.read_csv(path).drop_duplicates().to_csv(path, index=False)
    assert report.report_rows(alone).set_index("key").loc[key, "probe"] == linear
    # Two probes, neither named by the anchor: reading either would be arbitrary.
    odd = _two_probes(measured, tmp_path / "d", 0.0, ("probe A", "probe B"))
    with pytest.raises(ValueError, match="names none of them"):
        report.report_rows(odd)


def _claim2_tests(settings: Profile) -> Profile:
    """Claim 2's tests from the real sentence bootstrap (``occurrence_cka``) on per-sentence
    outputs where layer 0 barely moves from epoch 0 (a copy plus 10% noise) and the last layer
    is unrelated to the embedder (independent draws): each run's layer 0 stays closer to its
    start than to its last layer."""
    rng = np.random.default_rng(0)
    sentences = [rng.normal(size=(int(rng.integers(4, 12)), 8)) for _ in range(60)]
    near = [x + 0.1 * rng.normal(size=x.shape) for x in sentences]
    runs = ("random", "esm", "esm-frozen")
    pairs = {}
    for init in runs:
        pairs[f"{init} layer0_vs_epoch0"] = (sentences, near)
        pairs[f"{init} embedder0_vs_last"] = (sentences, [rng.normal(size=x.shape) for x in near])
    pairs["esm embedder0 vs random last"] = (sentences, [rng.normal(size=x.shape) for x in near])
    boot = occurrence_cka.sentence_cka(pairs, n_bootstrap=N_BOOTSTRAP, seed=0)
    settings.results_dir.mkdir(parents=True, exist_ok=True)
    occurrence_cka._claim2_tests(boot, runs).to_csv(
        settings.results_dir / "cka_occurrence_tests.csv", index=False
    )
    return settings


def test_claim2_rows_on_an_imported_runs_epoch0_are_not_testable(tmp_path) -> None:
    """An imported official run's epoch 0 is a fresh initialisation: the claim-2 rows that
    measure movement from it say so, leave Holm's family, and the other rows keep their test."""
    settings = _claim2_tests(Profile(name="scratch", root=tmp_path))
    tables = spread.read_tables(settings.results_dir)
    trained = report._rows("scratch", tables).set_index("key")
    imported = report._rows("scratch", tables, frozenset({"random"})).set_index("key")
    on_random = ["cka:random_layer0>random_depth", "cka:esm_layer0>random_layer0"]
    assert trained.loc["cka:random_layer0>random_depth", "verdict"] == "holds"
    assert (imported.loc[on_random, "verdict"] == "not testable here").all()
    assert imported.loc[on_random, "reason"].str.contains("never published").all()
    assert imported.loc[on_random, "p_holm"].isna().all()
    own = "cka:esm_layer0>esm_depth"  # ESM-init run's own start: still tested, fewer to correct
    assert imported.loc[own, "verdict"] == trained.loc[own, "verdict"] == "holds"
    assert imported.loc[own, "p_holm"] <= trained.loc[own, "p_holm"]
    assert imported.loc[own, "reason"] == ""


def test_a_paper_probe_run_at_other_sizes_is_read_as_the_papers(measured: Profile, tmp_path):
    """A profile's smaller BiLSTM (``Profile.sequence_probe``) stands where the paper's would:
    the row reads it and names its sizes; two probes of that kind would make it arbitrary."""
    small = probes.probe_label("bilstm", (16, 16))
    assert small == "BiLSTM (2 x 16)" != paper.PROBES_BY_TABLE["product_class_probe"][0]
    key = "pc:esm>pfam2vec:f1"
    read = report.report_rows(
        _two_probes(measured, tmp_path / "a", 0.01, (probes.LINEAR_PROBE, small))
    )
    assert read.set_index("key").loc[key, "probe"] == small
    twice = _two_probes(measured, tmp_path / "b", 0.0, ("BiLSTM (2 x 8)", small))
    with pytest.raises(ValueError, match="nor one probe of their kinds"):
        report.report_rows(twice)

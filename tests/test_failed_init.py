"""crossgran.analysis.failed_init (notebook 03, claim 1) on the real smoke MIBiG labels.

The runs' per-BGC representations are stand-ins (notebook 02's trained runs take minutes):
every layer is random columns except the last layer of random-init, which is planted to carry
the product classes, and ESM-init's last layer, which is random-init's plus a little noise.
So claim 1 (ESM-init no better or worse than random-init) must hold on the last layer, fail
for ``esm-frozen`` (whose last layer lost the signal, and with it its controls), and be "not
testable here" on the embedder layer, where no run beats its controls. The untrained epoch-0
exports are noise. One complete BGC is made unlabelled (the first of a pair with identical
domain bags, so the second must take its place) and one BGC gets a NaN row in one block.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from crossgran.analysis import comparisons, failed_init, labelled_rows
from crossgran.analysis.controls import random_family_vectors
from crossgran.analysis.features import count_weighted_mean, unique_bag_rows
from crossgran.analysis.probes import cross_validated_scores
from crossgran.data.mibig import PROBE_CLASSES
from crossgran.data.tables import load_table
from crossgran.models.bigcarp import Representations

INITS = ["random", "esm", "esm-frozen"]
WIDTH = 8
LAST = 2


@pytest.fixture(scope="module")
def settings(smoke_profile, smoke_build):
    return replace(smoke_profile, probe_jobs=1, n_bootstrap=200)


def _bags(settings) -> pd.Series:
    """Each BGC's domain bag as one string (the identity ``unique_bag_rows`` deduplicates)."""
    counts = load_table(settings, "mibig_domain_counts")
    totals = counts.groupby(["bgc_id", "pfam"])["count"].sum().reset_index()
    items = totals["pfam"] + ":" + totals["count"].astype(str)
    return items.groupby(totals["bgc_id"]).agg(" ".join)


@pytest.fixture(scope="module")
def planted(settings) -> dict:
    """The ids the test plants: a duplicate pair whose first BGC is made unlabelled, and a
    complete, distinct BGC given a NaN row in one control block."""
    bags = _bags(settings)
    repeated = bags[bags.duplicated(keep=False)].sort_index()
    first = repeated.index[0]
    twin = repeated[repeated == repeated[first]].index[1]
    distinct = bags[~bags.duplicated(keep=False)].index
    return {"unlabelled": first, "twin": twin, "nan": distinct[5]}


@pytest.fixture(scope="module")
def classes(settings, planted) -> pd.DataFrame:
    """The real smoke classes with one BGC's label removed."""
    table = load_table(settings, "mibig_classes").copy()
    row = table["bgc_id"] == planted["unlabelled"]
    table.loc[row, "labelled"] = False
    table.loc[row, list(PROBE_CLASSES)] = False
    table.loc[row, "classes"] = ""
    return table


@pytest.fixture(scope="module")
def exports(classes, planted) -> dict[str, Representations]:
    bgc_ids = sorted(classes["bgc_id"])
    rng = np.random.default_rng(0)
    labels = classes.set_index("bgc_id").loc[bgc_ids, list(PROBE_CLASSES)].to_numpy(float)
    signal = np.hstack([5.0 * labels, np.zeros((len(bgc_ids), WIDTH - labels.shape[1]))])

    def noise() -> np.ndarray:
        return rng.normal(size=(len(bgc_ids), WIDTH))

    def run(last: np.ndarray) -> Representations:
        bgc = {0: noise(), 1: noise(), LAST: last}
        return Representations([0, 1, LAST], [], {}, bgc_ids, bgc, [], {})

    random_last = signal + noise()
    runs = {
        "random": run(random_last),
        "esm": run(random_last + 0.3 * noise()),
        "esm-frozen": run(noise()),
    }
    for init in INITS:
        runs[f"{init}~untrained"] = run(noise())
    runs["esm~untrained"].bgc[LAST][bgc_ids.index(planted["nan"])] = np.nan
    return runs


@pytest.fixture(scope="module")
def probed(settings, classes, exports):
    real_load = labelled_rows.load_table

    def load(profile, name):
        return classes if name == "mibig_classes" else real_load(profile, name)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(labelled_rows, "load_table", load)
        return failed_init.product_class_probes(settings, exports)


@pytest.fixture(scope="module")
def tables(settings, probed):
    results, _ = probed
    return failed_init.probe_table(settings, results, INITS)


def test_every_run_layer_and_control_is_probed_on_the_same_rows(
    settings, classes, planted, probed
) -> None:
    results, rows = probed
    layers = failed_init.LAYERS
    assert set(results) == {
        f"{init}/{layer}{suffix}"
        for init in INITS
        for layer in layers
        for suffix in ("", "~untrained", "~random")
    } | {f"{layer}~random" for layer in layers}
    # Rows: complete in every block (BGCs without domains have no random-projection row; the
    # planted NaN), labelled, then the first of each identical bag (the unlabelled BGC's twin
    # takes its place).
    counts = load_table(settings, "mibig_domain_counts")
    with_domains = sorted(set(counts["bgc_id"]) - {planted["nan"], planted["unlabelled"]})
    keep, n_duplicates = unique_bag_rows(counts, with_domains)
    assert rows.bgc_ids.tolist() == [with_domains[i] for i in keep]
    assert rows.n_duplicates == n_duplicates > 0
    assert planted["twin"] in rows.bgc_ids and planted["unlabelled"] not in rows.bgc_ids
    assert unique_bag_rows(counts, rows.bgc_ids)[1] == 0
    labels = classes.set_index("bgc_id").loc[rows.bgc_ids, list(PROBE_CLASSES)]
    assert rows.class_names == [c for c in PROBE_CLASSES if labels[c].sum() >= settings.probe_folds]
    assert np.array_equal(rows.targets, labels[rows.class_names].to_numpy(np.int64))
    assert all(np.array_equal(result.y_true, rows.targets) for result in results.values())
    # One random projection per layer, shared by every init under its alias.
    for init in INITS:
        for layer in layers:
            assert results[f"{init}/{layer}~random"] is results[f"{layer}~random"]


def test_the_random_control_is_domain_consistent_family_vectors_pooled_per_bgc(
    settings, exports, probed
) -> None:
    results, rows = probed
    counts = load_table(settings, "mibig_domain_counts")
    families = sorted(counts["pfam"].unique())
    vectors = random_family_vectors(families[::-1], WIDTH, settings.seed)[::-1]  # any order
    pooled = count_weighted_mean(counts, exports["random"].bgc_ids, families, vectors)
    expected = cross_validated_scores(
        pooled[rows.rows],
        rows.targets,
        task="multilabel",
        folds=settings.probe_folds,
        seeds=range(settings.probe_seeds),
        n_jobs=1,
    )
    for got, want in zip(results["last~random"].oof_scores, expected.oof_scores, strict=True):
        np.testing.assert_allclose(got, want)


def test_probe_table_labels_feature_sets_and_lists_claim1_and_control_tests(tables) -> None:
    summary, tests = tables
    names = set(summary["feature_set"])
    assert "last~random" not in names and "esm/last~random" in names
    for row in summary.itertuples():
        suffix = f"~{row.control}" if row.control else ""
        assert row.feature_set == f"{row.init}/{row.layer}{suffix}"
        assert row.control in {"", "untrained", "random"} and row.layer in failed_init.LAYERS
    labelled = summary.set_index("feature_set")
    assert tuple(
        labelled.loc["esm-frozen/embedder~untrained", ["init", "layer", "control"]].iloc[0]
    ) == (
        "esm-frozen",
        "embedder",
        "untrained",
    )
    means = summary.pivot(index="feature_set", columns="metric", values="mean")
    pd.testing.assert_series_equal(
        means.loc["esm/last~random"], means.loc["random/last~random"], check_names=False
    )
    assert list(tests.columns) == comparisons.TEST_COLUMNS
    assert (tests["task"] == "product_class").all() and (tests["property"] == "").all()
    pairs = tests.groupby(["kind", "candidate", "rival"])["metric"].agg(frozenset)
    assert (pairs == frozenset({"f1", "auc"})).all()
    assert set(pairs["equivalent"].index) == {
        (f"{init}/{layer}", f"random/{layer}")
        for init in ("esm", "esm-frozen")
        for layer in failed_init.LAYERS
    }
    assert set(pairs["above"].index) == {
        (f"{init}/{layer}", f"{init}/{layer}~{control}")
        for init in INITS
        for layer in failed_init.LAYERS
        for control in ("untrained", "random")
    }
    np.testing.assert_allclose(
        tests["delta"], tests["candidate_mean"] - tests["rival_mean"], atol=1e-9
    )


def test_planted_gain_and_loss_reach_the_verdicts(tables) -> None:
    _, tests = tables
    decided = comparisons.claim_verdicts(tests)
    verdict = decided.set_index(["candidate", "rival", "metric"])["verdict"]
    for metric in ("f1", "auc"):
        assert verdict["esm/last", "random/last", metric] == "holds"
        assert verdict["esm-frozen/last", "random/last", metric] == "does not hold"
        for init in ("random", "esm"):
            for control in ("untrained", "random"):
                assert verdict[f"{init}/last", f"{init}/last~{control}", metric] == "holds"
        assert verdict["esm-frozen/last", "esm-frozen/last~untrained", metric] != "holds"
        for init in INITS:  # noise never beats the untrained noise
            assert verdict[f"{init}/embedder", f"{init}/embedder~untrained", metric] != "holds"


def test_claim1_lines_require_both_runs_to_beat_their_controls(tables) -> None:
    _, tests = tables
    decided = comparisons.claim_verdicts(tests)
    lines = failed_init.claim1_lines(decided)
    assert len(lines) == (decided["kind"] == "equivalent").sum() == 8
    assert "Claim 1: esm/last vs random/last, auc: holds (all controls beaten)" in lines
    assert "Claim 1: esm/last vs random/last, f1: holds (all controls beaten)" in lines
    frozen = [line for line in lines if line.startswith("Claim 1: esm-frozen/last vs")]
    assert len(frozen) == 2 and all(": not testable here (not beaten: " in x for x in frozen)
    assert all("esm-frozen/last vs esm-frozen/last~untrained" in line for line in frozen)
    assert all(
        "not testable here" in line for line in lines if "/embedder vs random/embedder" in line
    )
    # The rival's controls gate the claim as well: if random-init's last layer had not beaten
    # its untrained checkpoint on AUC, ESM-init's equivalence there could not be tested.
    weakened = decided.copy()
    missed = (weakened["candidate"] == "random/last") & (
        weakened["rival"] == "random/last~untrained"
    )
    weakened.loc[missed & (weakened["metric"] == "auc"), "verdict"] = "inconclusive"
    lines = failed_init.claim1_lines(weakened)
    assert (
        "Claim 1: esm/last vs random/last, auc: not testable here "
        "(not beaten: random/last vs random/last~untrained)"
    ) in lines
    assert "Claim 1: esm/last vs random/last, f1: holds (all controls beaten)" in lines

"""crossgran.analysis.fusion (notebook 05, claim 4) on the real smoke tables and labels.

The model representations are stand-ins (the trained runs and ESM embeddings take minutes),
with planted signals where a verdict must follow from them: the ESM family vectors carry each
family's share of NRP BGCs and random-init BiGCARP's last layer carries Saccharide, so their
concatenation must beat both alone (claim 4 holds on the product-class task) and beat the
concatenation of their random projections. The untrained controls are noise. The A-domain ESM
rows are shuffled, with the domain's number in column 0, so the test sees that rows were
aligned by id. A spy on ``cross_validated_scores`` records every matrix that was probed, so the
feature sets themselves (not only their scores) can be checked. The smoke profile runs the
linear probe only; the paper's probes (``paper_probes``) are checked with a small MLP and, for
the BiLSTM's wiring, a stand-in sequence probe (the BiLSTM itself: tests/test_probes_sequence.py).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from crossgran.analysis import comparisons, fusion
from crossgran.analysis.controls import random_family_vectors, random_residue_features
from crossgran.analysis.features import (
    count_matrix,
    count_weighted_mean,
    random_features,
    unique_bag_rows,
)
from crossgran.analysis.probes import (
    LINEAR_PROBE,
    bootstrap_ci,
    cross_validated_scores,
    paired_bootstrap,
)
from crossgran.data.adomains import PROPERTIES
from crossgran.data.pfam import AMP_BINDING
from crossgran.data.tables import load_table
from crossgran.models.bigcarp import Representations
from crossgran.models.esm import EmbeddingResult

ESM_WIDTH, BIGCARP_WIDTH, PFAM2VEC_WIDTH = 6, 4, 5
THIN = "is_Gly"  # the property the test thins out until it must be skipped


@pytest.fixture(scope="module")
def settings(smoke_profile, smoke_build):
    return replace(smoke_profile, probe_jobs=1, n_bootstrap=200, count_probe_model="rf")


def _esm(ids: list[str], mean: np.ndarray, positions: np.ndarray | None = None) -> EmbeddingResult:
    return EmbeddingResult(
        ids=ids,
        layers=(0, 1),
        model_id="stand-in",
        num_layers=1,
        mean={1: mean},
        positions=None if positions is None else {1: positions},
    )


def _run(bgc_ids, bgc: dict, adomain_ids, adomain: np.ndarray) -> Representations:
    return Representations([0, 1], [], {}, bgc_ids, bgc, adomain_ids, {1: adomain})


@pytest.fixture(scope="module")
def stand_ins(settings) -> dict:
    rng = np.random.default_rng(0)
    counts = load_table(settings, "mibig_domain_counts")
    classes = load_table(settings, "mibig_classes").set_index("bgc_id")
    families = sorted(counts["pfam"].unique())
    bgc_ids = sorted(classes.index)
    domain_ids = load_table(settings, "adomains")["domain_id"].tolist()
    # Each family's share of NRP BGCs among those that contain it: pooled per BGC, it marks NRPs.
    nrp = counts["bgc_id"].map(classes["NRP"]).astype(float)
    share = nrp.groupby(counts["pfam"]).mean().reindex(families).to_numpy()
    esm_vectors = rng.normal(size=(len(families), ESM_WIDTH))
    esm_vectors[:, 0] = 3.0 * share + 0.1 * esm_vectors[:, 0]
    bigcarp_last = rng.normal(size=(len(bgc_ids), BIGCARP_WIDTH))
    bigcarp_last[:, 0] += 4.0 * classes.loc[bgc_ids, "Saccharide"].to_numpy(float)
    shuffled = rng.permutation(len(domain_ids))
    number = np.arange(len(domain_ids), dtype=float)[shuffled, None]  # row -> domain number

    def adomain_esm() -> EmbeddingResult:
        def block() -> np.ndarray:
            return np.hstack([number, rng.normal(size=(len(domain_ids), ESM_WIDTH - 1))])

        return _esm([domain_ids[i] for i in shuffled], block(), block())

    def bgc_noise() -> np.ndarray:
        return rng.normal(size=(len(bgc_ids), BIGCARP_WIDTH))

    def adomain_noise() -> np.ndarray:
        return rng.normal(size=(len(domain_ids), BIGCARP_WIDTH))

    return {
        "esm_pfam": {
            "": _esm(families, esm_vectors),
            "~untrained": _esm(families, rng.normal(size=(len(families), ESM_WIDTH))),
        },
        "esm_adomains": {"": adomain_esm(), "~untrained": adomain_esm()},
        "bigcarp_runs": {
            "": _run(bgc_ids, {0: bgc_noise(), 1: bigcarp_last}, domain_ids, adomain_noise()),
            "~untrained": _run(
                bgc_ids, {0: bgc_noise(), 1: bgc_noise()}, domain_ids, adomain_noise()
            ),
        },
        "pfam2vec": (families[::-1], rng.normal(size=(len(families), PFAM2VEC_WIDTH))),
    }


@pytest.fixture(scope="module")
def spy():
    """``fusion.cross_validated_scores`` recording what it probed: id(result) -> matrix."""
    probed: dict[int, np.ndarray] = {}

    def recording(x, *args, **kwargs):
        result = cross_validated_scores(x, *args, **kwargs)
        probed[id(result)] = np.array(x)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fusion, "cross_validated_scores", recording)
        yield probed


@pytest.fixture(scope="module")
def product_class(settings, stand_ins, spy):
    sets, rows = fusion.product_class_probes(
        settings,
        stand_ins["esm_pfam"],
        stand_ins["bigcarp_runs"],
        stand_ins["pfam2vec"],
        esm_layer=1,
    )
    assert list(sets) == [LINEAR_PROBE]  # smoke: no paper probes
    results = sets[LINEAR_PROBE]
    matrices = {name: spy[id(result)] for name, result in results.items()}
    return results, rows, matrices


@pytest.fixture(scope="module")
def class_tables(settings, product_class):
    return fusion.product_class_tables(settings, {LINEAR_PROBE: product_class[0]})


@pytest.fixture(scope="module")
def adomain(settings, stand_ins):
    return fusion.adomain_features(
        settings, stand_ins["esm_adomains"], stand_ins["bigcarp_runs"], esm_layer=1
    )


@pytest.fixture(scope="module")
def thinned(adomain) -> pd.DataFrame:
    """The A-domains with :data:`THIN` positive in only two parent proteins (< folds)."""
    domains, _ = adomain
    domains = domains.copy()
    positive = domains[THIN] == 1
    kept = domains.loc[positive, "parent_protein"].unique()[:2]
    domains.loc[positive & ~domains["parent_protein"].isin(kept), THIN] = np.nan
    return domains


@pytest.fixture(scope="module")
def adomain_probed(settings, adomain, thinned):
    return fusion.adomain_probes(settings, thinned, adomain[1])


def test_product_class_feature_sets_controls_and_rows(settings, stand_ins, product_class) -> None:
    results, rows, x = product_class
    singles = fusion.CLASS_SINGLES
    assert set(results) == {
        *singles,
        *(f"{name}~{control}" for name in singles for control in fusion.CONTROLS),
        fusion.CLASS_FUSION,
        *(f"{fusion.CLASS_FUSION}~{control}" for control in fusion.CONTROLS),
        "pfam2vec",
        "pfam_counts",
        "random",
    }
    assert all(np.array_equal(result.y_true, rows.targets) for result in results.values())
    counts = load_table(settings, "mibig_domain_counts")
    assert set(rows.bgc_ids) <= set(counts["bgc_id"]) and rows.n_duplicates > 0
    assert unique_bag_rows(counts, rows.bgc_ids)[1] == 0
    models = {name: result.model for name, result in results.items()}
    assert models == {**dict.fromkeys(results, "logreg"), "pfam_counts": "rf", "pfam2vec": "rf"}
    # Family vectors (ESM, Pfam2vec) pooled per BGC by domain count, in any family order.
    families, vectors = stand_ins["pfam2vec"]
    ids = stand_ins["bigcarp_runs"][""].bgc_ids
    pooled = count_weighted_mean(counts, ids, families, vectors)[rows.rows]
    np.testing.assert_allclose(x["pfam2vec"], pooled)
    esm = stand_ins["esm_pfam"][""]
    np.testing.assert_allclose(
        x["esm"], count_weighted_mean(counts, ids, esm.ids, esm.mean[1])[rows.rows]
    )
    # Random projections: width-matched, domain-consistent, pooled as the family vectors are.
    everyone = sorted(counts["pfam"].unique())
    for name, width in [("esm", ESM_WIDTH), ("bigcarp_last", BIGCARP_WIDTH)]:
        assert x[f"{name}~random"].shape == x[name].shape == (len(rows.rows), width)
        random = random_family_vectors(everyone, width, settings.seed)
        expected = count_weighted_mean(counts, ids, everyone, random)[rows.rows]
        np.testing.assert_allclose(x[f"{name}~random"], expected)
    assert results["bigcarp_embedder~random"] is results["bigcarp_last~random"]  # one probe
    # The fusion and its controls are concatenations of the parts'.
    for suffix in ("", "~random", "~untrained"):
        parts = [x[f"esm{suffix}"], x[f"bigcarp_last{suffix}"]]
        np.testing.assert_array_equal(x[f"{fusion.CLASS_FUSION}{suffix}"], np.hstack(parts))
    width = ESM_WIDTH + BIGCARP_WIDTH
    np.testing.assert_array_equal(
        x["random"], random_features(len(rows.rows), width, settings.seed)
    )
    np.testing.assert_array_equal(x["pfam_counts"], count_matrix(counts, rows.bgc_ids)[0])


def test_product_class_tables_test_the_fusion_and_every_single_against_controls(
    class_tables, product_class
) -> None:
    table, tests = class_tables
    assert len(table) == len(product_class[0]) * table["metric"].nunique()
    assert table.columns[0] == "probe" and not table.duplicated(["feature_set", "metric"]).any()
    fixed = {"pfam2vec", "pfam_counts"}  # random forests here (count_probe_model="rf")
    assert set(table.loc[table["feature_set"].isin(fixed), "probe"]) == {"random forest"}
    assert set(table.loc[~table["feature_set"].isin(fixed), "probe"]) == {LINEAR_PROBE}
    assert list(tests.columns) == comparisons.PROBE_TEST_COLUMNS
    assert set(tests["probe"]) == {LINEAR_PROBE}
    assert (tests["task"] == "product_class").all() and set(tests["metric"]) == {"f1", "auc"}
    learned = [fusion.CLASS_FUSION, *fusion.CLASS_SINGLES]
    expected = {(fusion.CLASS_FUSION, ";".join(fusion.CLASS_SINGLES))}
    expected |= {(name, f"{name}~{control}") for name in learned for control in fusion.CONTROLS}
    expected |= {(name, "pfam2vec") for name in learned}
    assert set(zip(tests["candidate"], tests["rivals"], strict=True)) == expected
    assert len(tests) == 2 * len(expected)
    best = tests[tests["rivals"] == ";".join(fusion.CLASS_SINGLES)]
    assert set(best["rival"]) <= set(fusion.CLASS_SINGLES)
    verdict = comparisons.claim_verdicts(tests).set_index(["candidate", "rival", "metric"])
    for metric in ("f1", "auc"):  # the planted complementary signals
        rival = best.set_index("metric").loc[metric, "rival"]
        assert verdict.loc[(fusion.CLASS_FUSION, rival, metric), "verdict"] == "holds"
        for control in fusion.CONTROLS:
            name = f"{fusion.CLASS_FUSION}~{control}"
            assert verdict.loc[(fusion.CLASS_FUSION, name, metric), "verdict"] == "holds"
        for control in fusion.CONTROLS:  # noise beats nothing
            name = f"bigcarp_embedder~{control}"
            assert verdict.loc[("bigcarp_embedder", name, metric), "verdict"] != "holds"


def test_adomain_features_align_by_id_with_controls_pooled_like_each_feature(
    settings, stand_ins, adomain
) -> None:
    domains, x = adomain
    run = stand_ins["bigcarp_runs"][""]
    assert list(domains.index) == run.adomain_ids
    singles = ["esm_mean", "stachel", "bigcarp"]
    assert set(x) == {
        *singles,
        *(f"{name}~{control}" for name in singles for control in fusion.CONTROLS),
        *fusion.FUSIONS,
        *(f"{name}~random" for name in fusion.FUSIONS),
        "stachelhaus_onehot",
    }
    number = np.arange(len(domains), dtype=float)
    for name in ["esm_mean", "stachel", "esm_mean~untrained", "stachel~untrained"]:
        np.testing.assert_array_equal(x[name][:, 0], number)  # realigned from the shuffle
    np.testing.assert_array_equal(x["bigcarp"], run.adomain[1])
    np.testing.assert_array_equal(
        x["bigcarp~untrained"], stand_ins["bigcarp_runs"]["~untrained"].adomain[1]
    )
    positions = [[int(p) for p in str(t).split()] for t in domains["stachelhaus_positions"]]
    mean, at_positions = random_residue_features(
        list(domains["sequence"]), ESM_WIDTH, settings.seed, positions
    )
    np.testing.assert_array_equal(x["esm_mean~random"], mean)
    np.testing.assert_array_equal(x["stachel~random"], at_positions)
    token = random_family_vectors([AMP_BINDING], BIGCARP_WIDTH, settings.seed)
    np.testing.assert_array_equal(x["bigcarp~random"], np.repeat(token, len(domains), axis=0))
    for name, parts in fusion.FUSIONS.items():
        for suffix in ("", "~random"):
            fused = np.hstack([x[f"{part}{suffix}"] for part in parts])
            np.testing.assert_array_equal(x[f"{name}{suffix}"], fused)
    assert x["stachelhaus_onehot"].shape[0] == len(domains)


def test_adomain_probes_group_folds_and_bootstrap_by_parent_protein(
    settings, adomain, thinned, adomain_probed
) -> None:
    _, x = adomain
    table, tests, ungrouped, skipped = adomain_probed
    assert skipped == [f"{THIN} (only 2 parent proteins in its rarer class)"]
    probed = [prop for prop in PROPERTIES if prop != THIN]
    assert list(table.columns[:2]) == list(ungrouped.columns[:2]) == ["property", "probe"]
    assert set(table["probe"]) == set(ungrouped["probe"]) == {LINEAR_PROBE}
    assert list(dict.fromkeys(table["property"])) == probed
    for prop in probed:
        rows = table[table["property"] == prop]
        assert set(rows["feature_set"]) == set(x)
        assert (rows["n_rows"] == thinned[prop].notna().sum()).all()
    # One property, recomputed: folds grouped by parent, intervals resampling parents.
    prop = "is_aromatic"
    defined = thinned[prop].notna().to_numpy()
    labels = thinned.loc[defined, prop].to_numpy(int)
    parents = thinned.loc[defined, "parent_protein"].to_numpy()
    cv = {"folds": settings.probe_folds, "seeds": range(settings.probe_seeds), "n_jobs": 1}
    grouped = {
        name: cross_validated_scores(x[name][defined], labels, task="binary", groups=parents, **cv)
        for name in ("stachel", "esm_mean")
    }
    row = table.set_index(["property", "feature_set", "metric"]).loc[(prop, "stachel", "auc")]
    ci = bootstrap_ci(labels, grouped["stachel"].oof_scores, "auc", 200, settings.seed)
    grouped_ci = bootstrap_ci(
        labels, grouped["stachel"].oof_scores, "auc", 200, settings.seed, groups=parents
    )
    assert (row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx(grouped_ci)
    assert (row["ci_low"], row["ci_high"]) != pytest.approx(ci[1:])
    test = tests.set_index(["property", "candidate", "rivals"]).loc[(prop, "stachel", "esm_mean")]
    scores = [grouped[name].oof_scores for name in ("stachel", "esm_mean")]
    paired = paired_bootstrap(labels, *scores, "auc", 200, settings.seed, groups=parents)
    assert test[["delta", "low", "high", "p_value"]].tolist() == pytest.approx(
        [paired["delta"], paired["low"], paired["high"], paired["p_value"]]
    )
    assert test["metric"] == "auc" and test["task"] == "adomain"
    # The paper's ungrouped numbers: only the properties it reports, plain folds, row bootstrap.
    assert set(ungrouped["property"]) == set(fusion.UNGROUPED_PROPERTIES)
    assert set(ungrouped["feature_set"]) == set(fusion.UNGROUPED)
    leaky = cross_validated_scores(x["stachel"][defined], labels, task="binary", **cv)
    leaky_ci = bootstrap_ci(labels, leaky.oof_scores, "auc", 200, settings.seed)
    row = ungrouped.set_index(["property", "feature_set", "metric"]).loc[(prop, "stachel", "auc")]
    assert (row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx(leaky_ci)


def test_adomain_tests_cover_each_probed_property(adomain_probed) -> None:
    table, tests, _, _ = adomain_probed
    assert list(tests.columns) == comparisons.PROBE_TEST_COLUMNS
    assert set(tests["metric"]) == {"auc"} and (tests["task"] == "adomain").all()
    pairs = {("stachel", "esm_mean"), ("esm_mean", "bigcarp")}
    pairs |= {
        (name, f"{name}~{control}")
        for name in ["stachel", "esm_mean", "bigcarp"]
        for control in fusion.CONTROLS
    }
    pairs |= {(name, ";".join(parts)) for name, parts in fusion.FUSIONS.items()}
    pairs |= {(name, f"{name}~random") for name in fusion.FUSIONS}
    for prop in table["property"].unique():
        rows = tests[tests["property"] == prop]
        assert set(zip(rows["candidate"], rows["rivals"], strict=True)) == pairs
        assert len(rows) == len(pairs)


def test_claim4_reads_both_fusion_verdicts_from_the_notebook_tests(
    class_tables, adomain_probed
) -> None:
    table = fusion.fusion_tests(class_tables[1], adomain_probed[1])
    assert list(table.columns) == comparisons.PROBE_TEST_COLUMNS
    assert len(table) == len(class_tables[1]) + len(adomain_probed[1])
    claim = fusion.claim4(table)
    decided = comparisons.claim_verdicts(table).set_index(
        ["probe", "task", "property", "candidate", "rival", "metric"]
    )["verdict"]
    fused = claim[claim["task"] == "product_class"].set_index("metric")
    assert set(fused.index) == {"f1", "auc"} and set(fused["rival"]) <= set(fusion.CLASS_SINGLES)
    assert (fused["verdict"] == "holds").all() and (fused["verdict_vs_random"] == "holds").all()
    domains = claim[claim["task"] == "adomain"]
    assert len(domains) == adomain_probed[0]["property"].nunique() * len(fusion.FUSIONS)
    for row in claim.itertuples():
        key = (row.probe, row.task, row.property, row.candidate)
        assert row.verdict == decided[(*key, row.rival, row.metric)]
        random = decided[(*key, f"{row.candidate}~random", row.metric)]
        assert row.verdict_vs_random == random


def _row(candidate: str, rival: str, low: float, high: float, p_value: float, **extra) -> dict:
    return {
        "probe": LINEAR_PROBE,
        "task": "adomain",
        "property": "is_aromatic",
        "candidate": candidate,
        "rival": rival,
        "rivals": rival,
        "metric": "auc",
        "kind": "above",
        "candidate_mean": 0.8,
        "rival_mean": 0.8 - (low + high) / 2,
        "delta": (low + high) / 2,
        "low": low,
        "high": high,
        "p_value": p_value,
        **extra,
    }


def test_claim4_verdicts_on_a_made_up_table() -> None:
    """A fusion gain that a random concatenation matches, a fusion that loses to its best part,
    and one whose random control was not run; pfam2vec and untrained rows are not the "best"."""
    tests = pd.DataFrame.from_records(
        [
            _row("bigcarp+esm_mean", "esm_mean", 0.02, 0.08, 0.001),
            _row("bigcarp+esm_mean", "bigcarp+esm_mean~random", -0.03, 0.03, 0.4),
            _row("bigcarp+stachel", "stachel", -0.09, -0.01, 0.99),
            _row("bigcarp+stachel", "bigcarp+stachel~random", 0.05, 0.1, 0.0001),
            _row(fusion.CLASS_FUSION, "esm", 0.0, 0.02, 0.03, task="product_class", property=""),
            _row(fusion.CLASS_FUSION, "pfam2vec", 0.1, 0.2, 0.0, task="product_class", property=""),
            _row(
                fusion.CLASS_FUSION,
                "esm+bigcarp_last~untrained",
                0.1,
                0.2,
                0.0,
                task="product_class",
                property="",
            ),
        ]
    )[comparisons.PROBE_TEST_COLUMNS]
    claim = fusion.claim4(tests).set_index("candidate")
    assert list(claim.columns) == [
        "probe",
        "task",
        "property",
        "metric",
        "rival",
        "delta",
        "low",
        "high",
        "p_holm",
        "verdict",
        "verdict_vs_random",
    ]
    assert claim["rival"].to_dict() == {
        "bigcarp+esm_mean": "esm_mean",
        "bigcarp+stachel": "stachel",
        fusion.CLASS_FUSION: "esm",
    }
    assert claim.loc["bigcarp+esm_mean", ["verdict", "verdict_vs_random"]].tolist() == [
        "holds",
        "inconclusive",
    ]
    assert claim.loc["bigcarp+stachel", ["verdict", "verdict_vs_random"]].tolist() == [
        "does not hold",
        "holds",
    ]
    # Holm over the 7 "above" tests: 0.03 is the 5th smallest p, so 0.03 x 3 = 0.09 > 0.05.
    assert claim.loc[fusion.CLASS_FUSION, "p_holm"] == pytest.approx(0.09)
    assert claim.loc[fusion.CLASS_FUSION, ["verdict", "verdict_vs_random"]].tolist() == [
        "inconclusive",
        "not run",
    ]


SMALL_MLP = (8,)


@pytest.fixture(scope="module")
def paper_settings(settings):
    return replace(settings, paper_probes=True)


@pytest.fixture(scope="module")
def paper_class(paper_settings, stand_ins):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fusion, "PAPER_MLP", SMALL_MLP)
        return fusion.product_class_probes(
            paper_settings,
            stand_ins["esm_pfam"],
            stand_ins["bigcarp_runs"],
            stand_ins["pfam2vec"],
            esm_layer=1,
        )


def test_paper_probes_add_an_mlp_set_on_the_same_rows_and_folds(
    paper_settings, paper_class, product_class
) -> None:
    sets, rows = paper_class
    mlp = "MLP (8)"
    assert list(sets) == [LINEAR_PROBE, mlp] and set(sets[mlp]) == set(product_class[0])
    np.testing.assert_array_equal(rows.bgc_ids, product_class[1].bgc_ids)
    for name, result in sets[mlp].items():
        if name in ("pfam2vec", "pfam_counts"):  # baselines keep their model, probed once
            assert result is sets[LINEAR_PROBE][name] and result.model == "rf"
        else:
            assert (result.model, result.hidden, result.probe) == ("mlp", SMALL_MLP, mlp)
        np.testing.assert_array_equal(result.fold_ids, sets[LINEAR_PROBE][name].fold_ids)
    table, tests = fusion.product_class_tables(paper_settings, sets)
    assert not table.duplicated(["probe", "feature_set", "metric"]).any()
    assert set(table["probe"]) == {LINEAR_PROBE, mlp, "random forest"}
    assert len(table) == (2 * len(sets[mlp]) - 2) * table["metric"].nunique()
    per_probe = tests.groupby("probe")[["candidate", "rivals", "metric"]].apply(
        lambda t: set(map(tuple, t.to_numpy()))
    )
    assert set(per_probe.index) == {LINEAR_PROBE, mlp} and per_probe[LINEAR_PROBE] == per_probe[mlp]
    claim = fusion.claim4(tests)
    assert sorted(claim["probe"].unique()) == sorted([LINEAR_PROBE, mlp])
    assert len(claim) == 2 * 2  # per probe: macro-F1 and macro-AUC of the one fusion


def test_paper_probes_on_adomains_probe_every_feature_set_with_the_mlp(
    paper_settings, adomain, thinned, monkeypatch
) -> None:
    monkeypatch.setattr(fusion, "PAPER_MLP", SMALL_MLP)
    monkeypatch.setattr(fusion, "PROPERTIES", ("is_aromatic",))  # one property is enough here
    _, x = adomain
    table, tests, ungrouped, _ = fusion.adomain_probes(paper_settings, thinned, x)
    for frame, names in ((table, set(x)), (ungrouped, set(fusion.UNGROUPED))):
        for probe in (LINEAR_PROBE, "MLP (8)"):
            assert set(frame.loc[frame["probe"] == probe, "feature_set"]) == names
    linear = tests[tests["probe"] == LINEAR_PROBE].drop(columns="probe")
    mlp = tests[tests["probe"] == "MLP (8)"].drop(columns="probe")
    keys = ["property", "candidate", "rivals"]
    assert linear[keys].to_numpy().tolist() == mlp[keys].to_numpy().tolist()


def test_the_bilstm_is_not_run_over_unordered_bags(settings, paper_settings) -> None:
    assert "paper_probes is off" in fusion.sequence_probe_reason(settings)
    reason = fusion.sequence_probe_reason(paper_settings)
    assert "unordered domain bags" in reason and "`full`" in reason
    with pytest.raises(ValueError, match="cannot run here"):
        fusion.product_class_sequence_probes(paper_settings, {}, {}, {}, None, esm_layer=1)


def test_the_bilstm_reads_each_bgc_in_gene_order_beside_its_controls(
    paper_settings, stand_ins, paper_class, monkeypatch
) -> None:
    """Gene order is faked (the smoke bags marked ordered) and the BiLSTM replaced by a spy:
    this checks what it is given; tests/test_probes_sequence.py checks the BiLSTM itself."""
    from types import SimpleNamespace

    from crossgran.analysis.probes import fold_plan, probe_result
    from crossgran.models.bigcarp import Vocabulary, build_model, layer_representations

    real_load = fusion.load_table

    def ordered(settings, name):
        table = real_load(settings, name)
        return table.assign(ordered=True) if name == "domain_corpus" else table

    calls: list[dict] = []

    def spy(sequences, y, *, task, folds, seeds, config, device, torch_threads):
        plan = fold_plan(y, task=task, groups=None, folds=folds, seeds=seeds)
        scores = [np.full(y.shape, 0.5)]
        hidden = (config.hidden,) * config.layers
        result = probe_result(plan, scores, task=task, model="bilstm", seeds=seeds, hidden=hidden)
        calls.append({"sequences": sequences, "y": y, "folds": folds, "result": result})
        return result

    monkeypatch.setattr(fusion, "load_table", ordered)
    monkeypatch.setattr(fusion, "sequence_probe_scores", spy)
    corpus = ordered(paper_settings, "domain_corpus")
    vocab = Vocabulary.from_corpus(corpus)
    config = replace(paper_settings.bigcarp, d_model=8, n_layers=2, r=2)
    models = {
        suffix: SimpleNamespace(model=build_model(config, vocab, 6, seed=seed), vocab=vocab)
        for seed, suffix in enumerate(["", "~untrained"])
    }
    sets, rows = paper_class
    assert fusion.sequence_probe_reason(paper_settings) == ""
    bilstm = fusion.product_class_sequence_probes(
        paper_settings, stand_ins["esm_pfam"], models, sets, rows, esm_layer=1
    )
    assert list(bilstm) == ["BiLSTM (2 x 512)"]  # the paper's sizes were asked for
    results = bilstm["BiLSTM (2 x 512)"]
    assert results["pfam2vec"] is sets[LINEAR_PROBE]["pfam2vec"]
    assert set(results) == set(sets[LINEAR_PROBE]) - {"pfam_counts", "random"}
    assert results["bigcarp_embedder~random"] is results["bigcarp_last~random"]
    assert len(calls) == len(results) - 2  # pfam2vec is pooled; one random control per width
    assert all(c["folds"] == paper_settings.probe_folds for c in calls)
    assert all(np.array_equal(c["y"], rows.targets) for c in calls)
    given = {name: c["sequences"] for name, r in results.items() for c in calls if c["result"] is r}
    sentences = corpus.set_index("seq_id").loc[rows.bgc_ids, "tokens"].str.split().tolist()
    esm = stand_ins["esm_pfam"][""]
    vectors = dict(zip(esm.ids, esm.mean[1], strict=True))
    kept = [[i for i, t in enumerate(tokens) if t in vectors] for tokens in sentences]
    layers = layer_representations(models[""].model, vocab, sentences[:5], layers=[0, -1])
    for row in range(5):
        tokens = [sentences[row][i] for i in kept[row]]
        np.testing.assert_allclose(given["esm"][row], np.stack([vectors[t] for t in tokens]))
        for n, name in enumerate(["bigcarp_embedder", "bigcarp_last"]):
            np.testing.assert_allclose(given[name][row], layers[row][n][kept[row]], rtol=1e-5)
        random = random_family_vectors(tokens, ESM_WIDTH, paper_settings.seed)
        np.testing.assert_array_equal(given["esm~random"][row], random)
        for suffix in ("", "~random", "~untrained"):
            parts = [given[f"esm{suffix}"][row], given[f"bigcarp_last{suffix}"][row]]
            np.testing.assert_array_equal(
                given[f"{fusion.CLASS_FUSION}{suffix}"][row], np.hstack(parts)
            )
    table, tests = fusion.product_class_tables(paper_settings, {**sets, **bilstm})
    assert set(tests["probe"]) == {LINEAR_PROBE, "MLP (8)", "BiLSTM (2 x 512)"}
    assert not table.duplicated(["probe", "feature_set", "metric"]).any()

"""crossgran.analysis.fusion (notebook 05, claim 4).

Tables and labels are the real smoke ones; the model representations are stand-ins (the
trained runs and ESM embeddings take minutes): random vectors, with the ids of the real rows
written into one column wherever the test must see that rows were aligned by id. The verdict
logic (:func:`fusion.claim4`) is pure arithmetic on a table and is tested on a made-up one.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from crossgran.analysis import fusion, halogenation
from crossgran.analysis.features import random_features
from crossgran.data.adomains import PROPERTIES
from crossgran.data.tables import load_table
from crossgran.models.bigcarp import Representations
from crossgran.models.esm import EmbeddingResult


@pytest.fixture(scope="module")
def settings(smoke_profile, smoke_build):
    return replace(smoke_profile, probe_jobs=1)


@pytest.fixture(scope="module")
def stand_ins(settings) -> tuple[EmbeddingResult, EmbeddingResult, Representations]:
    rng = np.random.default_rng(0)
    counts = load_table(settings, "mibig_domain_counts")
    families = sorted(counts["pfam"].unique())
    bgc_ids = sorted(counts["bgc_id"].unique())
    domain_ids = load_table(settings, "adomains")["domain_id"].tolist()
    esm_pfam = EmbeddingResult(
        ids=families,
        layers=(0, 1),
        model_id="stand-in",
        num_layers=1,
        mean={1: rng.normal(size=(len(families), 6))},
    )
    shuffled = rng.permutation(len(domain_ids))
    position = np.arange(len(domain_ids), dtype=float)[shuffled, None]  # row -> domain number
    esm_adomains = EmbeddingResult(
        ids=[domain_ids[i] for i in shuffled],
        layers=(0, 1),
        model_id="stand-in",
        num_layers=1,
        mean={1: np.hstack([position, rng.normal(size=(len(domain_ids), 5))])},
        positions={1: np.hstack([position, rng.normal(size=(len(domain_ids), 5))])},
    )
    run = Representations(
        layers=[0, 1],
        families=[],
        family={},
        bgc_ids=bgc_ids,
        bgc={layer: rng.normal(size=(len(bgc_ids), 4)) for layer in (0, 1)},
        adomain_ids=domain_ids,
        adomain={1: rng.normal(size=(len(domain_ids), 4))},
    )
    return esm_pfam, esm_adomains, run


def test_product_class_feature_sets_share_rows_and_the_count_probe_follows_the_profile(
    settings, stand_ins
) -> None:
    esm_pfam, _, run = stand_ins
    forest = replace(settings, count_probe_model="rf")
    results, class_names = fusion.product_class_probes(
        forest, esm_pfam, run, esm_layer=1, bigcarp_layer=1
    )
    assert list(results) == [
        "esm",
        "bigcarp_embedder",
        "bigcarp_last",
        fusion.CLASS_FUSION,
        "pfam_counts",
        "random",
    ]
    assert {name: result.model for name, result in results.items()} == {
        **dict.fromkeys(results, "logreg"),
        "pfam_counts": "rf",
    }
    truth = results["esm"].y_true
    assert truth.shape[1] == len(class_names)
    assert all(np.array_equal(result.y_true, truth) for result in results.values())
    table, tests = fusion.product_class_tables(settings, results)
    assert len(table) == 6 * 3 and set(table["feature_set"]) == set(results)
    assert list(tests.columns[:3]) == ["task", "candidate", "rival"]
    assert (tests["task"] == "product_class").all()
    assert set(tests["rival"]) <= set(fusion.CLASS_SINGLES)


def test_adomain_features_follow_the_runs_domain_order(settings, stand_ins) -> None:
    _, esm_adomains, run = stand_ins
    domains, features = fusion.adomain_features(
        settings, esm_adomains, run, esm_layer=1, bigcarp_layer=1
    )
    assert list(domains.index) == run.adomain_ids
    assert list(features) == [
        "esm_mean",
        "stachel",
        "bigcarp",
        "bigcarp+esm_mean",
        "bigcarp+stachel",
        "random",
        "stachelhaus_onehot",
    ]
    order = np.arange(len(run.adomain_ids), dtype=float)
    assert np.array_equal(features["esm_mean"][:, 0], order)  # realigned from the shuffle
    assert np.array_equal(features["stachel"][:, 0], order)
    np.testing.assert_array_equal(features["bigcarp+stachel"][:, 4:], features["stachel"])
    assert features["random"].shape == features["bigcarp+esm_mean"].shape
    assert np.array_equal(features["random"], random_features(len(domains), 10, settings.seed))


def test_adomain_probes_group_by_parent_and_skip_thin_properties(settings, stand_ins) -> None:
    _, esm_adomains, run = stand_ins
    domains, features = fusion.adomain_features(
        settings, esm_adomains, run, esm_layer=1, bigcarp_layer=1
    )
    table, tests, skipped = fusion.adomain_probes(settings, domains, features)
    probed = list(dict.fromkeys(table["property"]))
    assert table.columns[0] == "property"
    assert sorted(probed + [text.split(" ")[0] for text in skipped]) == sorted(PROPERTIES)
    for prop in probed:
        rows = table[table["property"] == prop]
        assert len(rows) == len(features) * 3
        assert rows["n_rows"].iloc[0] == domains[prop].notna().sum()
    assert len(tests) == len(probed) * len(fusion.FUSIONS) * 3
    assert set(tests["candidate"]) == set(fusion.FUSIONS)


def test_halogenation_probes_use_the_papers_probe_grouped_by_bgc(settings, monkeypatch) -> None:
    """The task's features are a stand-in here (the table needs the full build)."""
    rng = np.random.default_rng(1)
    groups = np.repeat([f"BGC{i:07d}" for i in range(30)], 2)
    labels = np.repeat(rng.permutation([0, 1] * 15), 2)
    features = {name: rng.normal(size=(60, 3)) for name in halogenation.FEATURE_SETS}
    features[halogenation.FUSED][:, 0] += 2.0 * labels
    monkeypatch.setattr(halogenation, "task_features", lambda *_: (features, labels, groups))
    monkeypatch.setattr(halogenation, "MLP_HIDDEN", (8,))
    probe = fusion.halogenation_probes(settings, None, "unused")
    assert (probe.n_domains, probe.n_bgcs, probe.n_halogenated) == (60, 30, 30)
    assert set(probe.table["model"]) == {"mlp"}
    assert list(probe.table["feature_set"].unique()) == list(halogenation.FEATURE_SETS)
    assert (probe.tests["task"] == "halogenation").all() and (probe.tests["property"] == "").all()
    assert set(probe.tests["rival"]) <= set(halogenation.PARTS)


def _test_rows(
    task: str, prop: str, candidate: str, auc: list[tuple[float, float]]
) -> pd.DataFrame:
    """compare_to_best-shaped rows: AUC (delta, p) per comparison, plus an F1 row each."""
    records = []
    for delta, p_value in auc:
        for metric in ("auc", "f1"):
            records.append(
                {
                    "task": task,
                    "property": prop,
                    "candidate": candidate,
                    "rival": "r",
                    "metric": metric,
                    "candidate_mean": 0.7,
                    "rival_mean": 0.7 - delta,
                    "delta": delta,
                    "low": delta - 0.1,
                    "high": delta + 0.1,
                    "p_value": p_value,
                }
            )
    return pd.DataFrame.from_records(records)


def test_fusion_tests_and_claim4_verdicts() -> None:
    """Pure table logic: a fusion is SUPPORTED when every AUC comparison is a significant
    gain, partly when some are, NOT when none is (a positive delta with p = 0.2 is none)."""
    class_tests = _test_rows("product_class", "", "esm+bigcarp_last", [(0.05, 0.01)]).drop(
        columns="property"
    )
    domain_tests = pd.concat(
        [
            _test_rows("", "is_aromatic", "bigcarp+esm_mean", [(0.04, 0.02)]),
            _test_rows("", "is_Val", "bigcarp+esm_mean", [(0.01, 0.2)]),
            _test_rows("", "is_aromatic", "bigcarp+stachel", [(-0.02, 0.8)]),
        ]
    ).drop(columns="task")
    table = fusion.fusion_tests(class_tests, domain_tests)
    assert list(table.columns) == fusion.FUSION_TEST_COLUMNS
    assert table["task"].tolist()[:2] == ["product_class"] * 2
    assert (table["property"].iloc[:2] == "").all() and (table["task"].iloc[2:] == "adomain").all()
    verdicts = fusion.claim4(table).set_index(["task", "candidate"])
    assert verdicts["verdict"].to_dict() == {
        ("product_class", "esm+bigcarp_last"): "SUPPORTED",
        ("adomain", "bigcarp+esm_mean"): "partly supported",
        ("adomain", "bigcarp+stachel"): "NOT supported",
    }
    assert verdicts.loc[("adomain", "bigcarp+esm_mean"), ["n_wins", "n_tests"]].tolist() == [1, 2]
    assert (
        verdicts.loc[("product_class", "esm+bigcarp_last"), "deltas"]
        == "product class +0.050 (p=0.010)"
    )

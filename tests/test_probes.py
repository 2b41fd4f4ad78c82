"""Probes, bootstrap intervals and paired tests on real (small, offline) sklearn datasets."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from crossgran.analysis.probes import (
    METRICS,
    ProbeResult,
    bootstrap_ci,
    compare_to_best,
    cross_validated_scores,
    metric_value,
    paired_bootstrap,
    summarise,
)
from crossgran.analysis.probes.cv import _multilabel_strata
from crossgran.analysis.probes.stats import one_sided_p

WORST_CONCAVE_POINTS = 27  # a single strongly (inversely) diagnostic breast-cancer feature


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray]:
    features, target = load_breast_cancer(return_X_y=True)
    return features, target


@pytest.fixture(scope="module")
def cancer_multilabel(cancer: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Real multilabel targets: diagnosis plus two real measurements above their medians."""
    features, target = cancer
    above = [features[:, k] > np.median(features[:, k]) for k in (0, 5)]
    return np.column_stack([target, *above]).astype(np.int64)


@pytest.fixture(scope="module")
def cancer_groups(cancer: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """~70 groups of 8 rows with similar mean radius, standing in for parent proteins."""
    features, _ = cancer
    return np.argsort(np.argsort(features[:, 0], kind="stable")) // 8


@pytest.fixture(scope="module")
def cancer_probe(cancer: tuple[np.ndarray, np.ndarray]) -> ProbeResult:
    features, target = cancer
    return cross_validated_scores(features, target, task="binary")


def _assert_metrics_match_sklearn(result: ProbeResult) -> None:
    """Our fast numpy metrics must equal sklearn's on every seed's OOF predictions."""
    for seed_index, scores in enumerate(result.oof_scores):
        truth = result.y_true
        if result.task == "binary":
            auc = roc_auc_score(truth, scores)
            predicted = (scores >= 0.5).astype(int)
            labels = [0, 1]
        elif result.task == "multiclass":
            auc = roc_auc_score(truth, scores, multi_class="ovr", average="macro")
            predicted = np.argmax(scores, axis=1)
            labels = list(range(scores.shape[1]))
        else:
            auc = roc_auc_score(truth, scores, average="macro")
            predicted = (scores >= 0.5).astype(int)
            labels = None
        f1 = f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)
        assert result.per_seed["auc"][seed_index] == pytest.approx(auc, abs=1e-12)
        assert result.per_seed["f1"][seed_index] == pytest.approx(f1, abs=1e-12)
        assert result.per_seed["accuracy"][seed_index] == pytest.approx(
            accuracy_score(truth, predicted), abs=1e-12
        )


def test_binary_probe_on_breast_cancer(cancer_probe: ProbeResult) -> None:
    assert cancer_probe.seeds == (0, 1, 2)
    assert cancer_probe.fold_ids.shape == (3, 569)
    assert set(np.unique(cancer_probe.fold_ids)) == set(range(5))
    assert all(np.all(np.isfinite(s)) and s.shape == (569,) for s in cancer_probe.oof_scores)
    assert cancer_probe.mean()["auc"] > 0.98
    _assert_metrics_match_sklearn(cancer_probe)


def test_multilabel_probe(
    cancer: tuple[np.ndarray, np.ndarray], cancer_multilabel: np.ndarray
) -> None:
    features, _ = cancer
    result = cross_validated_scores(features, cancer_multilabel, task="multilabel", seeds=(0, 1))
    assert result.oof_scores[0].shape == (569, 3)
    assert result.mean()["auc"] > 0.95
    # Exact match over three labels is stricter than per-label F1.
    assert result.mean()["accuracy"] < result.mean()["f1"]
    _assert_metrics_match_sklearn(result)


def test_multiclass_probe_on_wine() -> None:
    features, target = load_wine(return_X_y=True)
    result = cross_validated_scores(features, target, task="multiclass", seeds=(0,))
    assert result.oof_scores[0].shape == (178, 3)
    np.testing.assert_allclose(result.oof_scores[0].sum(axis=1), 1.0)
    assert result.mean()["accuracy"] > 0.9
    _assert_metrics_match_sklearn(result)


def test_string_labels_are_encoded(cancer: tuple[np.ndarray, np.ndarray]) -> None:
    features, target = cancer
    names = np.where(target == 1, "benign", "malignant")
    result = cross_validated_scores(features, names, task="binary", seeds=(0,))
    assert list(result.classes) == ["benign", "malignant"]  # positive class = classes[1]
    np.testing.assert_array_equal(result.y_true, (names == "malignant").astype(int))


@pytest.mark.parametrize("model", ["mlp", "rf"])
def test_nonlinear_probes_run(cancer: tuple[np.ndarray, np.ndarray], model: str) -> None:
    features, target = cancer
    result = cross_validated_scores(
        features, target, task="binary", model=model, seeds=(0,), folds=3, mlp_hidden=(32,)
    )
    assert result.model == model
    assert result.mean()["auc"] > 0.95


def test_perfect_feature_gives_auc_one(cancer: tuple[np.ndarray, np.ndarray]) -> None:
    features, target = cancer
    result = cross_validated_scores(
        np.column_stack([target, features[:, :5]]), target, task="binary"
    )
    np.testing.assert_array_equal(result.per_seed["auc"], 1.0)


def test_shuffled_labels_give_chance_auc(cancer: tuple[np.ndarray, np.ndarray]) -> None:
    features, target = cancer
    shuffled = np.random.default_rng(0).permutation(target)
    result = cross_validated_scores(features, shuffled, task="binary")
    assert abs(result.mean()["auc"] - 0.5) < 0.1


@pytest.mark.parametrize("task", ["binary", "multilabel"])
def test_grouped_split_never_straddles_a_group(
    cancer: tuple[np.ndarray, np.ndarray],
    cancer_multilabel: np.ndarray,
    cancer_groups: np.ndarray,
    task: str,
) -> None:
    features, target = cancer
    labels = target if task == "binary" else cancer_multilabel
    result = cross_validated_scores(
        features[:, :8], labels, task=task, groups=cancer_groups, seeds=(0, 1)
    )
    for fold_ids in result.fold_ids:
        # Each row is tested in exactly one fold, so a group lies on one side of every
        # split if and only if all its rows share one test fold.
        for group in np.unique(cancer_groups):
            assert np.unique(fold_ids[cancer_groups == group]).size == 1
        assert set(np.unique(fold_ids)) == set(range(5))
    # Reseeding reshuffles which groups go together.
    assert not np.array_equal(result.fold_ids[0], result.fold_ids[1])


def test_folds_depend_on_labels_not_features(cancer: tuple[np.ndarray, np.ndarray]) -> None:
    features, target = cancer
    noise = np.random.default_rng(0).normal(size=(569, 4))
    real = cross_validated_scores(features[:, :10], target, task="binary", seeds=(3,))
    fake = cross_validated_scores(noise, target, task="binary", seeds=(3,))
    np.testing.assert_array_equal(real.fold_ids, fake.fold_ids)


def test_paired_bootstrap_detects_planted_difference(cancer: tuple[np.ndarray, np.ndarray]) -> None:
    features, target = cancer
    noise = np.random.default_rng(0).normal(size=(569, 5))
    informative = cross_validated_scores(features[:, :10], target, task="binary")
    uninformative = cross_validated_scores(noise, target, task="binary")
    test = paired_bootstrap(target, informative.oof_scores, uninformative.oof_scores, "auc", 300, 0)
    assert test["p_value"] < 0.05
    assert test["low"] > 0.0 and test["delta"] > 0.3
    assert test["low"] <= test["delta"] <= test["high"]


def test_paired_bootstrap_is_quiet_for_equally_informative_copies(
    cancer: tuple[np.ndarray, np.ndarray],
) -> None:
    # Two copies of the same measurements, each blurred by its own noise of equal size.
    features, target = cancer
    base = features[:, :10]
    rng = np.random.default_rng(100)
    copy_a = base + rng.normal(size=base.shape) * base.std(axis=0)
    copy_b = base + rng.normal(size=base.shape) * base.std(axis=0)
    result_a = cross_validated_scores(copy_a, target, task="binary")
    result_b = cross_validated_scores(copy_b, target, task="binary")
    a_over_b = paired_bootstrap(target, result_a.oof_scores, result_b.oof_scores, "auc", 300, 0)
    b_over_a = paired_bootstrap(target, result_b.oof_scores, result_a.oof_scores, "auc", 300, 0)
    assert a_over_b["p_value"] > 0.05 and b_over_a["p_value"] > 0.05
    assert a_over_b["low"] < 0.0 < a_over_b["high"]
    assert a_over_b["delta"] == pytest.approx(-b_over_a["delta"], abs=1e-12)


def test_bootstrap_ci_contains_point_and_narrows_with_n(
    cancer: tuple[np.ndarray, np.ndarray],
) -> None:
    features, target = cancer
    score = -features[:, WORST_CONCAVE_POINTS]  # larger values mean malignant (target 0)
    widths = {}
    for n in (100, 569):
        point, low, high = bootstrap_ci(target[:n], score[:n], "auc", 500, 0)
        assert point == pytest.approx(roc_auc_score(target[:n], score[:n]), abs=1e-12)
        assert low <= point <= high
        widths[n] = high - low
    assert widths[569] < 0.7 * widths[100]


def test_bootstrap_over_seeds_uses_the_seed_mean(cancer_probe: ProbeResult) -> None:
    for metric in METRICS:
        point, low, high = bootstrap_ci(cancer_probe.y_true, cancer_probe.oof_scores, metric, 50, 1)
        assert point == pytest.approx(cancer_probe.mean()[metric], abs=1e-12)
        assert low <= high


def test_summarise_is_a_tidy_table(
    cancer: tuple[np.ndarray, np.ndarray], cancer_probe: ProbeResult
) -> None:
    features, target = cancer
    first_two = cross_validated_scores(features[:, :2], target, task="binary", seeds=(0,))
    table = summarise({"all": cancer_probe, "first_two": first_two}, n_bootstrap=100, seed=0)
    assert isinstance(table, pd.DataFrame)
    assert len(table) == 2 * len(METRICS)
    assert {"feature_set", "metric", "mean", "ci_low", "ci_high"} <= set(table.columns)
    assert (table["ci_low"] <= table["mean"]).all() and (table["mean"] <= table["ci_high"]).all()
    auc = table.set_index(["feature_set", "metric"])["mean"]
    assert auc[("all", "auc")] == pytest.approx(cancer_probe.mean()["auc"], abs=1e-12)
    assert auc[("all", "auc")] > auc[("first_two", "auc")]


def test_metric_value_matches_sklearn_with_ties_and_missing_predictions() -> None:
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 2, size=(80, 4))
    truth[:, 3] = 0
    truth[:5, 3] = 1  # a rare label
    scores = np.round(rng.random((80, 4)), 1)  # many ties
    scores[:, 3] = 0.1  # the rare label is never predicted: its F1 is 0
    predicted = (scores >= 0.5).astype(int)
    assert metric_value("auc", truth, scores) == pytest.approx(
        roc_auc_score(truth, scores), abs=1e-12
    )
    assert metric_value("f1", truth, scores) == pytest.approx(
        f1_score(truth, predicted, average="macro", zero_division=0), abs=1e-12
    )
    assert metric_value("auc", truth[:, 0], scores[:, 0]) == pytest.approx(
        roc_auc_score(truth[:, 0], scores[:, 0]), abs=1e-12
    )
    assert np.isnan(metric_value("auc", np.zeros(10, dtype=int), np.linspace(0, 1, 10)))
    with pytest.raises(ValueError, match="unknown metric"):
        metric_value("recall", truth[:, 0], scores[:, 0])


def test_invalid_inputs_are_rejected(cancer: tuple[np.ndarray, np.ndarray]) -> None:
    features, target = cancer
    with pytest.raises(ValueError, match="fewer than folds"):
        cross_validated_scores(features[:200], np.r_[np.zeros(197), np.ones(3)], task="binary")
    with pytest.raises(ValueError, match="missing labels"):
        cross_validated_scores(
            features[:10], np.array([[0, 1], [1, np.nan]] * 5), task="multilabel"
        )
    with pytest.raises(ValueError, match="groups cannot fill"):
        cross_validated_scores(features, target, task="binary", groups=np.arange(569) % 3)
    with pytest.raises(ValueError, match="rows"):
        cross_validated_scores(features[:100], target, task="binary")
    with pytest.raises(ValueError, match="task"):
        cross_validated_scores(features, target, task="regression")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Vectorised bootstrap


@pytest.mark.parametrize("metric", METRICS)
def test_vectorised_bootstrap_equals_the_loop(
    cancer: tuple[np.ndarray, np.ndarray], cancer_multilabel: np.ndarray, metric: str
) -> None:
    """Same replicates, same numbers: binary and multilabel, tied scores, two seeds.

    A callable metric takes the per-replicate loop; the metric's name takes the vectorised path.
    """

    def looped(truth: np.ndarray, scores: np.ndarray) -> float:
        return metric_value(metric, truth, scores)

    features, target = cancer
    binary = cross_validated_scores(features[:, :3], target, task="binary", seeds=(0, 1))
    tied = [np.round(scores, 1) for scores in binary.oof_scores]
    multilabel = cross_validated_scores(
        features[:, :4], cancer_multilabel, task="multilabel", seeds=(0,)
    )
    for truth, scores in ((binary.y_true, tied), (multilabel.y_true, multilabel.oof_scores)):
        assert bootstrap_ci(truth, scores, metric, 150, 3) == pytest.approx(
            bootstrap_ci(truth, scores, looped, 150, 3), abs=1e-12
        )
    vectorised = paired_bootstrap(binary.y_true, binary.oof_scores, tied, metric, 150, 4)
    loop = paired_bootstrap(binary.y_true, binary.oof_scores, tied, looped, 150, 4)
    assert vectorised == pytest.approx(loop, abs=1e-12)


def test_compare_to_best_picks_the_best_rival(cancer: tuple[np.ndarray, np.ndarray]) -> None:
    features, target = cancer

    def probe(columns: slice | list[int]) -> ProbeResult:
        return cross_validated_scores(features[:, columns], target, task="binary", seeds=(0,))

    results = {
        "all": probe(slice(None)),
        "strong": probe([WORST_CONCAVE_POINTS]),
        "weak": probe([9]),
    }
    table = compare_to_best(results, "all", ["strong", "weak"], n_bootstrap=100)
    assert list(table["metric"]) == list(METRICS)
    assert (table["rival"] == "strong").all()
    auc = table.set_index("metric").loc["auc"]
    assert auc["delta"] == pytest.approx(auc["candidate_mean"] - auc["rival_mean"])
    other_rows = cross_validated_scores(features[:300], target[:300], task="binary", seeds=(0,))
    with pytest.raises(ValueError, match="different rows"):
        compare_to_best({**results, "short": other_rows}, "all", ["short"])


def test_parallel_folds_give_identical_scores(
    cancer: tuple[np.ndarray, np.ndarray], cancer_probe: ProbeResult
) -> None:
    features, target = cancer
    parallel = cross_validated_scores(features, target, task="binary", n_jobs=2)
    for serial_scores, parallel_scores in zip(
        cancer_probe.oof_scores, parallel.oof_scores, strict=True
    ):
        np.testing.assert_array_equal(serial_scores, parallel_scores)


@pytest.mark.parametrize("path", ["vectorised", "loop"])
def test_p_value_is_decided_by_a_spreadless_difference(
    cancer: tuple[np.ndarray, np.ndarray], path: str
) -> None:
    """A candidate that wins every replicate by the same margin (no spread: the z test has no
    standard error) gets p = 0, and one that loses every replicate p = 1.

    Real labels; a perfect score (AUC 1) against a constant one (AUC 0.5 in every replicate,
    since every resample of 569 rows holds both classes). Both bootstrap paths are checked: a
    named metric takes the vectorised one, a callable the per-replicate loop.
    """
    _, target = cancer
    perfect, constant = target.astype(np.float64), np.full(target.shape, 0.5)
    metric = (
        "auc"
        if path == "vectorised"
        else (lambda truth, scores: metric_value("auc", truth, scores))
    )
    n_bootstrap = 199
    wins = paired_bootstrap(target, perfect, constant, metric, n_bootstrap, seed=0)
    assert wins["delta"] == pytest.approx(0.5)
    assert wins["p_value"] == 0.0
    loses = paired_bootstrap(target, constant, perfect, metric, n_bootstrap, seed=0)
    assert loses["p_value"] == 1.0


def _rare_labels(target: np.ndarray, above_median: np.ndarray) -> np.ndarray:
    """Real labels plus two planted rare ones: 3 and 4 rows, fewer than 5 folds each."""
    rare_a = np.isin(np.arange(target.size), [10, 200, 400])
    rare_b = np.isin(np.arange(target.size), [50, 250, 350, 450])
    return np.column_stack([target, above_median, rare_a, rare_b]).astype(np.int64)


def test_rare_label_strata_are_pooled_until_every_stratum_fills_the_folds(
    cancer: tuple[np.ndarray, np.ndarray],
) -> None:
    features, target = cancer
    labels = _rare_labels(target, features[:, 0] > np.median(features[:, 0]))
    strata = _multilabel_strata(labels, folds=5)
    assert all(count >= 5 for count in np.bincount(strata) if count)
    rare_rows = labels[:, 2:].any(axis=1)
    assert np.unique(strata[rare_rows]).size == 1  # the two rare strata share one pool (7 rows)
    assert (strata == strata[rare_rows][0]).sum() == 7
    # A pool still smaller than the folds (one rare row) joins the largest stratum.
    single = labels[:, :3].copy()
    single[:, 2] = np.arange(target.size) == 10
    strata = _multilabel_strata(single, folds=5)
    assert all(count >= 5 for count in np.bincount(strata) if count)
    assert strata[10] == np.argmax(np.bincount(strata))


def test_probe_on_rare_labels_splits_without_warnings(
    cancer: tuple[np.ndarray, np.ndarray],
) -> None:
    """Unpooled, the 3- and 4-row strata make sklearn warn that a class has fewer members
    than folds, and a fold could then hold every positive of a rare label, leaving its
    training folds without one; pooled, each rare label keeps a positive in every training fold."""
    features, target = cancer
    labels = _rare_labels(target, features[:, 0] > np.median(features[:, 0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = cross_validated_scores(features[:, :5], labels, task="multilabel", seeds=(0, 1))
    for fold_ids in result.fold_ids:
        for label in (2, 3):
            positives = fold_ids[labels[:, label] == 1]
            assert np.bincount(positives).max() < positives.size


def test_one_sided_p_is_the_bootstrap_z_test() -> None:
    """p = 1 - Phi(delta / sd of the replicates), so it is not floored at 1/(B + 1): an effect
    four standard errors out gets p ~ 3e-5 from 1,000 replicates."""
    differences = np.random.default_rng(0).normal(0.04, 0.01, size=1000)
    sd = differences.std(ddof=1)
    assert one_sided_p(0.04, differences) == pytest.approx(norm.sf(0.04 / sd))
    assert one_sided_p(0.04, differences) < 1 / 1001
    assert one_sided_p(-0.04, differences) > 0.99
    assert one_sided_p(0.0, differences) == pytest.approx(0.5)

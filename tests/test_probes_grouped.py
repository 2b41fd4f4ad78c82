"""The cluster (grouped) bootstrap: whole groups (parent proteins) are resampled, never single rows.

Real labels and probes from sklearn's breast-cancer set; a planted group-level signal for the
interval widths.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

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
from crossgran.analysis.probes.stats import _bootstrap_rows, _group_codes, _replicate_weights


def _looped_auc(truth: np.ndarray, scores: np.ndarray) -> float:
    """A callable metric: it takes the per-replicate loop instead of the vectorised path."""
    return metric_value("auc", truth, scores)


@pytest.fixture(scope="module")
def probes() -> tuple[np.ndarray, dict[str, ProbeResult]]:
    features, target = load_breast_cancer(return_X_y=True)
    results = {
        name: cross_validated_scores(features[:, columns], target, task="binary", seeds=(0, 1))
        for name, columns in (("first", slice(0, 3)), ("second", slice(3, 6)))
    }
    return target, results


@pytest.fixture(scope="module")
def group_level() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """60 'proteins' of 8 near-identical 'domains': the label and most of each score are the
    protein's, as with the A-domains of one parent. (y, score_a, score_b, groups)"""
    rng = np.random.default_rng(7)
    groups = np.repeat(np.arange(60), 8)
    label = rng.integers(0, 2, size=60)[groups]
    signal = rng.normal(size=60)[groups]
    score_a = label + signal + 0.1 * rng.normal(size=groups.size)
    score_b = (
        label + 0.5 * signal + rng.normal(size=60)[groups] + 0.1 * rng.normal(size=groups.size)
    )
    return label, score_a, score_b, groups


def test_singleton_groups_give_exactly_the_row_bootstrap(
    probes: tuple[np.ndarray, dict[str, ProbeResult]],
) -> None:
    """One group per row, in row order: the very same draws as groups=None, on both paths."""
    target, results = probes
    first, second = results["first"].oof_scores, results["second"].oof_scores
    singletons = np.arange(target.size)
    for metric in (*METRICS, _looped_auc):
        assert bootstrap_ci(target, first, metric, 120, 3, groups=singletons) == bootstrap_ci(
            target, first, metric, 120, 3
        )
        assert paired_bootstrap(
            target, first, second, metric, 120, 4, groups=singletons
        ) == paired_bootstrap(target, first, second, metric, 120, 4)
    pd.testing.assert_frame_equal(
        summarise(results, 100, 1, groups=singletons), summarise(results, 100, 1), check_exact=True
    )
    pd.testing.assert_frame_equal(
        compare_to_best(results, "first", ["second"], 100, 2, groups=singletons),
        compare_to_best(results, "first", ["second"], 100, 2),
        check_exact=True,
    )


def test_a_replicate_keeps_every_group_together() -> None:
    """Row weights are constant within a group, and each replicate draws n_groups groups."""
    rng = np.random.default_rng(0)
    groups = rng.choice([f"P{k:03d}" for k in range(40)], size=300)  # unequal sizes, string ids
    codes = _group_codes(groups, groups.size)
    group_of_row = np.unique(groups, return_inverse=True)[1]
    sizes = np.bincount(group_of_row)
    weights = np.concatenate(_replicate_weights(groups.size, 300, 5, codes))
    assert weights.shape == (300, groups.size)
    for replicate in weights:
        group_counts = np.bincount(group_of_row, weights=replicate) / sizes
        np.testing.assert_array_equal(replicate, group_counts[group_of_row])  # constant in a group
        assert group_counts.sum() == sizes.size  # n_groups draws
    assert not np.all(weights == weights[0])  # replicates differ
    # The per-replicate loop draws the very rows the weights count.
    rows = _bootstrap_rows(groups.size, 300, 5, codes)
    loop_counts = np.stack([np.bincount(r, minlength=groups.size) for r in rows])
    np.testing.assert_array_equal(loop_counts, weights)


def test_group_level_signal_widens_the_interval(
    group_level: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """480 rows but only 60 independent proteins: the grouped interval is ~sqrt(8) times wider,
    the grouped p larger, and the vectorised and loop paths agree on the grouped replicates."""
    label, score_a, score_b, groups = group_level
    _, row_low, row_high = bootstrap_ci(label, score_a, "auc", 400, 0)
    point, low, high = bootstrap_ci(label, score_a, "auc", 400, 0, groups=groups)
    assert low <= point <= high
    assert high - low > 2.0 * (row_high - row_low)
    assert (point, low, high) == pytest.approx(
        bootstrap_ci(label, score_a, _looped_auc, 400, 0, groups=groups), abs=1e-12
    )
    by_row = paired_bootstrap(label, score_a, score_b, "auc", 400, 0)
    by_group = paired_bootstrap(label, score_a, score_b, "auc", 400, 0, groups=groups)
    assert by_group["delta"] == by_row["delta"]
    assert by_group["high"] - by_group["low"] > 2.0 * (by_row["high"] - by_row["low"])
    # Counted as 480 independent rows the gain looks significant; as 60 proteins it is not.
    assert by_row["p_value"] < 0.05 < by_group["p_value"]


def test_groups_must_label_every_row(probes: tuple[np.ndarray, dict[str, ProbeResult]]) -> None:
    target, results = probes
    with pytest.raises(ValueError, match="one label per row"):
        bootstrap_ci(target, results["first"].oof_scores, "auc", 10, groups=np.arange(10))
    with pytest.raises(ValueError, match="one label per row"):
        summarise(results, 10, groups=np.arange(target.size - 1))

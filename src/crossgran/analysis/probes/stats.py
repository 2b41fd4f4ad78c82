"""Bootstrap intervals and paired tests on the probes' out-of-fold predictions, and the tidy
tables the notebooks write from them.

Rows are resampled with replacement from ``default_rng(seed)``; every score set evaluated with
one seed sees the same resamples, so intervals of feature sets probed on the same rows are
comparable and a paired test cancels row difficulty.

The notebooks summarise dozens of probes (feature set x property x metric) with thousands of
replicates each; looping ``metric_value`` over resampled rows costs ~0.5 ms per replicate and
seed, minutes per notebook. So named metrics of binary and multilabel probes are evaluated for
a block of replicates at once (``metrics.weighted_metric``, the replicate given as draw counts
per row). The replicates are the very rows the per-replicate loop draws (same seed, same
generator calls), so both paths return the same numbers up to float rounding; the tests pin that.

Rows are not always independent: the A-domains of one parent protein are near-copies, and their
probes are cross-validated with folds grouped by protein. Resampling domains would then treat
each protein's domains as independent evidence and give intervals and p-values that are too
narrow. With ``groups`` (one label per row) a replicate is a *cluster* bootstrap: it draws
n_groups groups with replacement and takes every row of a drawn group as often as the group
was drawn, so a row's draw count is its group's. ``groups=None`` draws rows exactly as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.stats import norm

from crossgran.analysis.probes.cv import ProbeResult
from crossgran.analysis.probes.metrics import (
    METRICS,
    Metric,
    Scores,
    infer_task,
    metric_value,
    weighted_metric,
)

__all__ = [
    "bootstrap_ci",
    "compare_to_best",
    "one_sided_p",
    "paired_bootstrap",
    "summarise",
    "summarise_sets",
]

_REPLICATE_CHUNK = 256  # replicates evaluated together; bounds memory at 256 x n floats
_SUMMARY_COLUMNS = [
    "feature_set",
    "task",
    "model",
    "metric",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "n_rows",
    "n_seeds",
]


def _score_list(scores: Scores) -> list[np.ndarray]:
    """A list/tuple of arrays is one array per CV seed; anything else is a single array."""
    if (
        isinstance(scores, (list, tuple))
        and scores
        and all(isinstance(s, np.ndarray) for s in scores)
    ):
        return [np.asarray(s, dtype=np.float64) for s in scores]
    return [np.asarray(scores, dtype=np.float64)]


def _statistic(
    metric: Metric, y_true: np.ndarray, scores: list[np.ndarray], rows: np.ndarray
) -> float:
    """The metric on the given rows, averaged over seeds (NaN if undefined for any seed)."""
    return float(np.mean([metric_value(metric, y_true[rows], s[rows]) for s in scores]))


def _group_codes(groups: np.ndarray | Sequence[object] | None, n: int) -> bytes | None:
    """Groups as dense int64 codes 0..n_groups-1 (sorted group order), packed as hashable bytes.

    Bytes rather than an array so that the codes can key :func:`_replicate_weights`' cache.
    """
    if groups is None:
        return None
    array = np.asarray(groups)
    if array.shape != (n,):
        raise ValueError(f"groups must have shape ({n},), one label per row; got {array.shape}")
    _, codes = np.unique(array, return_inverse=True)
    return codes.reshape(n).astype(np.int64).tobytes()


def _bootstrap_rows(
    n: int, n_bootstrap: int, seed: int, codes: bytes | None = None
) -> list[np.ndarray]:
    """The rows of every replicate: n rows drawn with replacement, or (``codes``) all rows of
    n_groups groups drawn with replacement, each row repeated as often as its group was drawn."""
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1; got {n_bootstrap}")
    rng = np.random.default_rng(seed)
    if codes is None:
        return [rng.integers(0, n, size=n) for _ in range(n_bootstrap)]
    group_of_row = np.frombuffer(codes, dtype=np.int64)
    n_groups = int(group_of_row.max()) + 1
    rows = np.arange(n)
    replicates = []
    for _ in range(n_bootstrap):
        drawn = np.bincount(rng.integers(0, n_groups, size=n_groups), minlength=n_groups)
        replicates.append(np.repeat(rows, drawn[group_of_row]))
    return replicates


@lru_cache(maxsize=2)
def _replicate_weights(
    n: int, n_bootstrap: int, seed: int, codes: bytes | None = None
) -> tuple[np.ndarray, ...]:
    """(chunk, n) draw counts of the bootstrap rows of :func:`_bootstrap_rows`, in chunks.

    Cached (read-only arrays) because a notebook bootstraps many feature sets on the same
    rows one after another; two entries cover the alternation of a paired test.
    """
    rows = _bootstrap_rows(n, n_bootstrap, seed, codes)
    chunks = []
    for start in range(0, len(rows), _REPLICATE_CHUNK):
        block = rows[start : start + _REPLICATE_CHUNK]
        chunk = np.stack([np.bincount(r, minlength=n) for r in block]).astype(np.float64)
        chunk.flags.writeable = False
        chunks.append(chunk)
    return tuple(chunks)


def _finite(values: list[float], what: str) -> np.ndarray:
    """Drop replicates where the metric is undefined (e.g. a resample with one class)."""
    array = np.asarray(values)
    array = array[np.isfinite(array)]
    if array.size == 0:
        raise ValueError(f"{what} is undefined in every bootstrap replicate")
    return array


def _replicates(
    metric: Metric,
    y_true: np.ndarray,
    score_sets: Sequence[Scores],
    n_bootstrap: int,
    seed: int,
    groups: np.ndarray | Sequence[object] | None,
) -> tuple[list[float], list[np.ndarray]]:
    """Point values and replicate values (seed-averaged) of each score set on shared rows.

    Named metrics of binary and multilabel probes are evaluated for a block of replicates at
    once; multiclass probes and callable metrics loop over the very same resampled rows.
    """
    truth = np.asarray(y_true)
    lists = [_score_list(scores) for scores in score_sets]
    n = truth.shape[0]
    codes = _group_codes(groups, n)
    if callable(metric) or infer_task(truth, lists[0][0]) == "multiclass":
        rows = _bootstrap_rows(n, n_bootstrap, seed, codes)
        points = [_statistic(metric, truth, scores, np.arange(n)) for scores in lists]
        return points, [
            np.array([_statistic(metric, truth, scores, r) for r in rows]) for scores in lists
        ]

    def seed_mean(scores: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
        return np.mean([weighted_metric(metric, truth, s, weights) for s in scores], axis=0)

    points = [float(seed_mean(scores, np.ones((1, n)))[0]) for scores in lists]
    blocks: list[list[np.ndarray]] = [[] for _ in lists]
    for weights in _replicate_weights(n, n_bootstrap, seed, codes):
        for store, scores in zip(blocks, lists, strict=True):
            store.append(seed_mean(scores, weights))
    return points, [np.concatenate(store) for store in blocks]


def bootstrap_ci(
    y_true: np.ndarray,
    y_score: Scores,
    metric: Metric,
    n_bootstrap: int = 1000,
    seed: int = 0,
    *,
    groups: np.ndarray | Sequence[object] | None = None,
) -> tuple[float, float, float]:
    """(point, low, high): the metric and its 95% percentile interval from resampling rows.

    ``y_true`` is encoded as in :class:`ProbeResult`. ``y_score`` is one score
    array, or a list/tuple of per-seed arrays (``ProbeResult.oof_scores``), in
    which case each replicate averages the metric over seeds on the same rows.
    Replicates where the metric is undefined are dropped. ``groups`` (one label per row, e.g.
    the parent protein) makes it a cluster bootstrap over groups (module docstring).
    """
    (point,), (values,) = _replicates(metric, y_true, [y_score], n_bootstrap, seed, groups)
    low, high = np.percentile(_finite(values, "the metric"), [2.5, 97.5])
    return point, float(low), float(high)


def one_sided_p(delta: float, differences: np.ndarray) -> float:
    """p for "the true difference is > 0": ``1 - Phi(delta / se)``, ``se`` the standard
    deviation of the bootstrap replicate differences (a bootstrap standard-error z test).

    Why not the tail count (1 + #{replicate <= 0}) / (1 + B): it cannot go below 1/(B + 1),
    so with 1,000 replicates and Holm's correction over the report's ~50 tests no comparison
    could ever pass at 0.05, however large its effect. The interval stays the percentile one.
    A difference with no spread at all is decided by its sign.
    """
    se = float(np.std(differences, ddof=1)) if differences.size > 1 else 0.0
    if se == 0.0:
        return 0.0 if delta > 0 else 1.0
    return float(norm.sf(delta / se))


def paired_bootstrap(
    y_true: np.ndarray,
    score_a: Scores,
    score_b: Scores,
    metric: Metric,
    n_bootstrap: int = 1000,
    seed: int = 0,
    *,
    groups: np.ndarray | Sequence[object] | None = None,
) -> dict[str, float]:
    """One-sided paired test that A beats B on the same rows (and, via seeds, the same folds).

    Both score sets are evaluated on the *same* resampled rows in every
    replicate, so row difficulty cancels and only the difference is tested.
    Returns ``delta`` = metric(A) - metric(B), its 95% percentile interval
    (``low``, ``high``) and ``p_value`` from :func:`one_sided_p`. ``groups`` resamples whole groups (module
    docstring), as the folds of a grouped probe split them.
    """
    (point_a, point_b), (values_a, values_b) = _replicates(
        metric, y_true, [score_a, score_b], n_bootstrap, seed, groups
    )
    differences = _finite(values_a - values_b, "the metric difference")
    low, high = np.percentile(differences, [2.5, 97.5])
    p_value = one_sided_p(point_a - point_b, differences)
    return {
        "delta": point_a - point_b,
        "low": float(low),
        "high": float(high),
        "p_value": float(p_value),
    }


def summarise(
    results: Mapping[str, ProbeResult],
    n_bootstrap: int = 1000,
    seed: int = 0,
    *,
    groups: np.ndarray | Sequence[object] | None = None,
) -> pd.DataFrame:
    """Tidy table: one row per (feature set, metric) with the seed mean and its 95% CI.

    ``mean`` is the per-seed metric averaged over seeds, ``std`` its spread across
    seeds (fold-assignment noise), and ``ci_low``/``ci_high`` the row-bootstrap
    interval of that mean. Every feature set is resampled with the same ``seed``,
    so all intervals use the same bootstrap rows when the label sets match. ``groups`` (one
    label per row of every result) resamples whole groups instead of rows.
    """
    records = []
    for name, result in results.items():
        for metric in METRICS:
            point, low, high = bootstrap_ci(
                result.y_true, result.oof_scores, metric, n_bootstrap, seed, groups=groups
            )
            records.append(
                {
                    "feature_set": name,
                    "task": result.task,
                    "model": result.model,
                    "metric": metric,
                    "mean": point,
                    "std": float(np.std(result.per_seed[metric])),
                    "ci_low": low,
                    "ci_high": high,
                    "n_rows": int(result.y_true.shape[0]),
                    "n_seeds": len(result.seeds),
                }
            )
    return pd.DataFrame.from_records(records, columns=_SUMMARY_COLUMNS)


def summarise_sets(
    sets: Mapping[str, Mapping[str, ProbeResult]],
    n_bootstrap: int = 1000,
    seed: int = 0,
    *,
    groups: np.ndarray | Sequence[object] | None = None,
) -> pd.DataFrame:
    """:func:`summarise` of a task probed with several probes (probe label -> feature set ->
    result), with each result's ``probe`` (``ProbeResult.probe``) as the first column.

    A result shared by several sets (a baseline with its own model, e.g. Pfam2vec's random
    forest, compared within every set) is one row. Each result is bootstrapped with ``seed``,
    so its row is the same whichever other results are listed.
    """
    unique: dict[tuple[str, str], ProbeResult] = {}
    for results in sets.values():
        for name, result in results.items():
            unique.setdefault((result.probe, name), result)
    if not unique:
        return summarise({}).assign(probe=pd.Series(dtype=str))[["probe", *_SUMMARY_COLUMNS]]
    table = pd.concat(
        [
            summarise({name: result}, n_bootstrap, seed, groups=groups).assign(probe=probe)
            for (probe, name), result in unique.items()
        ],
        ignore_index=True,
    )
    return table[["probe", *_SUMMARY_COLUMNS]]


def compare_to_best(
    results: Mapping[str, ProbeResult],
    candidate: str,
    rivals: Sequence[str],
    n_bootstrap: int = 1000,
    seed: int = 0,
    *,
    groups: np.ndarray | Sequence[object] | None = None,
) -> pd.DataFrame:
    """Paired test of ``candidate`` against the best of ``rivals``, per metric.

    "Fusion beats either alone" is a claim about the *best* single representation,
    and which one is best can differ by metric, so the rival is chosen per metric
    by its seed-mean score. All results must share rows and labels (same folds
    follow from the same labels, groups and seeds). One row per metric: the rival,
    both means, and :func:`paired_bootstrap`'s delta, interval and p-value (over
    ``groups`` when given).
    """
    if not rivals:
        raise ValueError("compare_to_best needs at least one rival")
    base = results[candidate]
    for name in rivals:
        if not np.array_equal(results[name].y_true, base.y_true):
            raise ValueError(f"{name!r} and {candidate!r} were probed on different rows or labels")
    records = []
    for metric in METRICS:
        rival = max(rivals, key=lambda name: results[name].mean()[metric])
        test = paired_bootstrap(
            base.y_true,
            base.oof_scores,
            results[rival].oof_scores,
            metric,
            n_bootstrap,
            seed,
            groups=groups,
        )
        records.append(
            {
                "candidate": candidate,
                "rival": rival,
                "metric": metric,
                "candidate_mean": base.mean()[metric],
                "rival_mean": results[rival].mean()[metric],
                **test,
            }
        )
    return pd.DataFrame.from_records(records)

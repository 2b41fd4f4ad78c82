"""Cross-validated probes, bootstrap intervals and paired tests for the paper's analyses.

A probe asks how much of a label (BGC product class, domain function, ...) is
linearly readable from a representation (ESM mean-pooled, BiGCARP, fused). To
compare feature sets fairly, every feature set must see the *same* folds: the
folds here depend only on the labels, the groups, the number of rows and the
seed, never on X, so two calls with the same ``y``, ``groups`` and ``seeds``
split identically and their out-of-fold (OOF) scores can be compared row by row
with :func:`paired_bootstrap`.

Metrics are computed on the pooled OOF predictions of each seed (not averaged
over folds), so a row-resampling bootstrap of those same predictions gives a
confidence interval around exactly the reported number. Metrics are written in
numpy rather than called from sklearn.metrics because a bootstrap evaluates them
thousands of times and sklearn's input validation dominates at that scale; the
tests check they agree with sklearn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy.stats import rankdata
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

__all__ = [
    "METRICS",
    "ProbeResult",
    "bootstrap_ci",
    "compare_to_best",
    "count_matrix",
    "count_weighted_mean",
    "cross_validated_scores",
    "metric_value",
    "one_hot_signatures",
    "paired_bootstrap",
    "product_class_targets",
    "random_features",
    "rows_of",
    "summarise",
]

Task = Literal["binary", "multilabel", "multiclass"]
ModelName = Literal["logreg", "mlp", "rf"]
MetricName = Literal["auc", "f1", "accuracy"]
Metric = MetricName | Callable[[np.ndarray, np.ndarray], float]
Scores = np.ndarray | Sequence[np.ndarray]

METRICS: tuple[MetricName, ...] = ("auc", "f1", "accuracy")
_TASKS = ("binary", "multilabel", "multiclass")
_MODELS = ("logreg", "mlp", "rf")
_THRESHOLD = 0.5  # class_weight="balanced" makes 0.5 a sensible cut for the probabilities
_LOGREG_MAX_ITER = 5000  # lbfgs on standardised 1280-d embeddings can need thousands
_RF_TREES = 300


@dataclass(frozen=True, eq=False)
class ProbeResult:
    """Out-of-fold predictions and metrics of one probe over several CV seeds.

    ``y_true`` is encoded: 0/1 for binary (1 = ``classes[1]``), codes
    0..C-1 for multiclass (code k = ``classes[k]``), a 0/1 matrix for
    multilabel. ``oof_scores`` holds one array per seed: P(positive) with shape
    (n,) for binary, (n, C) class probabilities for multiclass, (n, L) per-label
    probabilities for multilabel; passing this tuple to :func:`bootstrap_ci`
    or :func:`paired_bootstrap` averages the metric over seeds in every
    replicate. ``fold_ids[s, i]`` is the test fold of row i under seed s.
    """

    task: Task
    model: ModelName
    seeds: tuple[int, ...]
    classes: np.ndarray
    y_true: np.ndarray
    oof_scores: tuple[np.ndarray, ...]
    fold_ids: np.ndarray
    per_seed: Mapping[str, np.ndarray]

    def mean(self) -> dict[str, float]:
        """Each metric averaged over seeds."""
        return {name: float(np.mean(values)) for name, values in self.per_seed.items()}


# ---------------------------------------------------------------------------
# Metrics


def _binary_auc(y01: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic with mid-ranks (identical to sklearn's).

    NaN when only one class is present, so callers can skip undefined cases.
    """
    n_pos = int(y01.sum())
    n_neg = y01.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y01 == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _macro_auc(indicator: np.ndarray, scores: np.ndarray) -> float:
    """Unweighted mean of one-vs-rest AUCs over the columns where both classes occur.

    Skipping undefined columns, rather than failing, lets a bootstrap resample
    that happens to miss a rare label still contribute the other labels.
    """
    values = [
        _binary_auc(indicator[:, k], scores[:, k])
        for k in range(indicator.shape[1])
        if 0 < indicator[:, k].sum() < indicator.shape[0]
    ]
    return float(np.mean(values)) if values else float("nan")


def _macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Macro F1 over all columns; a column with no true and no predicted positives scores 0.

    This is sklearn's ``f1_score(average="macro", zero_division=0)`` with every
    class listed, so a never-predicted rare class drags the mean down as it should.
    """
    tp = np.sum(truth & predicted, axis=0)
    fp = np.sum(~truth & predicted, axis=0)
    fn = np.sum(truth & ~predicted, axis=0)
    denominator = 2 * tp + fp + fn
    per_class = np.divide(2.0 * tp, denominator, out=np.zeros(tp.shape), where=denominator > 0)
    return float(per_class.mean())


def _one_hot(codes: np.ndarray, n_classes: int) -> np.ndarray:
    return np.arange(n_classes)[None, :] == codes[:, None]


def _infer_task(y_true: np.ndarray, y_score: np.ndarray) -> Task:
    """Shapes decide the task: y 2-D is multilabel, scores 2-D with y 1-D multiclass."""
    if y_true.ndim == 2:
        if y_score.shape != y_true.shape:
            raise ValueError(f"multilabel scores must match y_true {y_true.shape}; got {y_score.shape}")
        return "multilabel"
    if y_true.ndim != 1 or y_score.shape[0] != y_true.shape[0]:
        raise ValueError(f"scores {y_score.shape} do not match y_true {y_true.shape}")
    return "binary" if y_score.ndim == 1 else "multiclass"


def metric_value(metric: Metric, y_true: np.ndarray, y_score: np.ndarray) -> float:
    """One metric on encoded labels and scores (shapes as in :class:`ProbeResult`).

    ``"auc"``: ROC AUC (binary), macro one-vs-rest (multiclass, multilabel).
    ``"f1"``: macro F1 over all classes/labels (binary included: both classes),
    predictions being score >= 0.5 (binary, multilabel) or the argmax (multiclass).
    ``"accuracy"``: fraction correct; exact match of the whole label set for multilabel.
    A callable is applied to (y_true, y_score) as is.
    """
    if callable(metric):
        return float(metric(y_true, y_score))
    task = _infer_task(y_true, y_score)
    if task == "binary":
        y01 = y_true.astype(np.int64)
        if metric == "auc":
            return _binary_auc(y01, y_score)
        predicted = (y_score >= _THRESHOLD).astype(np.int64)
        truth_ind, pred_ind = _one_hot(y01, 2), _one_hot(predicted, 2)
    elif task == "multiclass":
        n_classes = y_score.shape[1]
        codes = y_true.astype(np.int64)
        truth_ind = _one_hot(codes, n_classes)
        if metric == "auc":
            return _macro_auc(truth_ind, y_score)
        pred_ind = _one_hot(np.argmax(y_score, axis=1), n_classes)
    else:
        truth_ind = y_true.astype(bool)
        if metric == "auc":
            return _macro_auc(truth_ind, y_score)
        pred_ind = y_score >= _THRESHOLD
    if metric == "f1":
        return _macro_f1(truth_ind, pred_ind)
    if metric == "accuracy":
        return float(np.mean(np.all(truth_ind == pred_ind, axis=1)))
    raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS} or a callable")


# ---------------------------------------------------------------------------
# Cross-validation


def _encode_labels(y: np.ndarray, task: Task, folds: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (encoded labels, classes) and reject labels a probe cannot use."""
    if task == "multilabel":
        if y.ndim != 2 or y.shape[1] < 2:
            raise ValueError(
                f"multilabel y must be 2-D with at least 2 label columns; got shape {y.shape} "
                "(use task='binary' for a single label)"
            )
        matrix = np.asarray(y, dtype=np.float64)
        if not np.all(np.isin(matrix, (0.0, 1.0))):
            raise ValueError("multilabel y must hold only 0/1 (remove rows with missing labels first)")
        return matrix.astype(np.int64), np.arange(y.shape[1])
    if y.ndim != 1:
        raise ValueError(f"{task} y must be 1-D; got shape {y.shape}")
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise ValueError("y contains NaN; remove rows with missing labels first")
    classes, codes = np.unique(y, return_inverse=True)
    if task == "binary" and classes.size != 2:
        raise ValueError(f"binary y must have exactly 2 classes; got {classes.size}")
    if task == "multiclass" and classes.size < 2:
        raise ValueError("multiclass y needs at least 2 classes")
    counts = np.bincount(codes, minlength=classes.size)
    if counts.min() < folds:
        rare = classes[np.argmin(counts)]
        raise ValueError(
            f"class {rare!r} has {counts.min()} rows, fewer than folds={folds}; "
            "stratified CV cannot place it in every fold"
        )
    return codes, classes


def _multilabel_strata(y: np.ndarray, folds: int) -> np.ndarray:
    """One stratum per row: its rarest positive label (rows with none share a stratum).

    Stratifying on the rarest label a row carries keeps rare labels spread over
    folds, which matters most for macro AUC; full iterative stratification is
    not worth its complexity here. Strata smaller than ``folds`` are pooled
    (into the largest stratum if the pool is still too small) so the splitter
    can honour every stratum.
    """
    n_labels = y.shape[1]
    rank = np.empty(n_labels, dtype=np.int64)
    rank[np.argsort(y.sum(axis=0), kind="stable")] = np.arange(n_labels)
    strata = np.where(y == 1, rank[None, :], n_labels).min(axis=1)
    counts = np.bincount(strata, minlength=n_labels + 1)
    pooled = counts[strata] < folds
    strata[pooled] = n_labels + 1
    if 0 < pooled.sum() < folds:  # still too small on its own: join the largest stratum
        strata[pooled] = np.argmax(counts)
    return strata


def _fold_ids(strata: np.ndarray, groups: np.ndarray | None, folds: int, seed: int) -> np.ndarray:
    """Test-fold index of every row; depends on labels, groups and seed only, never on X."""
    placeholder = np.zeros((strata.size, 1))
    if groups is None:
        splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(placeholder, strata)
    else:
        splits = StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(
            placeholder, strata, groups
        )
    fold_ids = np.full(strata.size, -1, dtype=np.int64)
    for fold, (_, test) in enumerate(splits):
        fold_ids[test] = fold
    return fold_ids


def _make_estimator(
    model: ModelName, task: Task, seed: int, mlp_hidden: tuple[int, ...]
) -> BaseEstimator:
    """The probe, single-threaded (parallelism lives one level up, across folds). Logistic regression and forests use balanced class weights so the
    0.5 threshold behind F1/accuracy is not swamped by the majority class; per-label
    one-vs-rest makes multilabel probes independent per label and copes with a
    label absent from a training fold. The MLP learns all labels jointly instead
    (shared hidden layers) and has no class weights in sklearn.
    """
    if model == "mlp":
        return make_pipeline(
            StandardScaler(),
            MLPClassifier(
                hidden_layer_sizes=mlp_hidden, early_stopping=True, max_iter=300, random_state=seed
            ),
        )
    if model == "logreg":
        base: BaseEstimator = make_pipeline(
            StandardScaler(),
            LogisticRegression(
                solver="lbfgs", max_iter=_LOGREG_MAX_ITER, class_weight="balanced", random_state=seed
            ),
        )
    else:
        base = RandomForestClassifier(
            n_estimators=_RF_TREES, class_weight="balanced", n_jobs=1, random_state=seed
        )
    if task == "multilabel":
        return OneVsRestClassifier(base, n_jobs=1)
    return base


def _fit_predict(
    estimator: BaseEstimator,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    task: Task,
    n_outputs: int,
) -> np.ndarray:
    """Fit a fresh clone and return test scores in the layout of ``ProbeResult.oof_scores``.

    With ``groups`` a training fold can lack a class entirely; the probabilities
    are then placed by ``classes_`` (absent classes get 0) and a single-class
    training fold predicts that class with certainty, as one-vs-rest does.
    """
    if task == "multilabel":
        fitted = clone(estimator).fit(x_train, y_train)
        return np.asarray(fitted.predict_proba(x_test), dtype=np.float64)
    scores = np.zeros((x_test.shape[0], n_outputs))
    present = np.unique(y_train)
    if present.size == 1:
        scores[:, present[0]] = 1.0
    else:
        fitted = clone(estimator).fit(x_train, y_train)
        scores[:, fitted.classes_] = fitted.predict_proba(x_test)
    return scores[:, 1] if task == "binary" else scores


def _fit_fold(estimator: BaseEstimator, features: np.ndarray, y_enc: np.ndarray,
              test: np.ndarray, task: Task, n_outputs: int) -> np.ndarray:
    """One fold's test scores, with one BLAS thread: scipy's L-BFGS calls BLAS on tiny
    vectors every iteration, and idle-spinning BLAS threads made each fit ~20x slower than
    single-threaded on a busy machine in our measurements."""
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_predict(estimator, features[~test], y_enc[~test], features[test], task,
                            n_outputs)


def cross_validated_scores(
    X: np.ndarray,
    y: np.ndarray,
    *,
    task: Task,
    groups: np.ndarray | None = None,
    folds: int = 5,
    seeds: Sequence[int] = (0, 1, 2),
    model: ModelName = "logreg",
    mlp_hidden: tuple[int, ...] = (512, 256),
    n_jobs: int = 1,
) -> ProbeResult:
    """Out-of-fold probe scores and metrics for each seed.

    Folds are stratified (``StratifiedKFold``), or stratified *and* grouped
    (``StratifiedGroupKFold``) when ``groups`` is given, so that rows sharing a
    group, e.g. domains of one parent protein, are never split between training
    and test. Multilabel rows are stratified on their rarest positive label.
    Each seed reshuffles the folds and reseeds the model. Rows with missing
    labels must be removed by the caller.
    """
    if task not in _TASKS:
        raise ValueError(f"task must be one of {_TASKS}; got {task!r}")
    if model not in _MODELS:
        raise ValueError(f"model must be one of {_MODELS}; got {model!r}")
    if folds < 2:
        raise ValueError(f"folds must be >= 2; got {folds}")
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("seeds must not be empty")
    features = np.asarray(X, dtype=np.float64)
    if features.ndim != 2 or not np.all(np.isfinite(features)):
        raise ValueError(f"X must be a finite 2-D array; got shape {features.shape}")
    labels = np.asarray(y)
    if labels.shape[0] != features.shape[0]:
        raise ValueError(f"X has {features.shape[0]} rows but y has {labels.shape[0]}")
    y_enc, classes = _encode_labels(labels, task, folds)
    group_array = None
    if groups is not None:
        group_array = np.asarray(groups)
        if group_array.shape != (features.shape[0],):
            raise ValueError(f"groups must have shape ({features.shape[0]},); got {group_array.shape}")
        n_groups = np.unique(group_array).size
        if n_groups < folds:
            raise ValueError(f"{n_groups} groups cannot fill folds={folds}")
    strata = _multilabel_strata(y_enc, folds) if task == "multilabel" else y_enc
    n_outputs = classes.size

    all_folds = [_fold_ids(strata, group_array, folds, seed) for seed in seeds]
    estimators = [_make_estimator(model, task, seed, tuple(mlp_hidden)) for seed in seeds]
    plan = [(k, fold) for k in range(len(seeds)) for fold in range(folds)]
    # Fits are independent and seeded, so running them in n_jobs processes changes nothing
    # but the wall time; n_jobs=1 runs them here, without any process.
    fold_scores = Parallel(n_jobs=n_jobs)(
        delayed(_fit_fold)(estimators[k], features, y_enc, all_folds[k] == fold, task, n_outputs)
        for k, fold in plan)
    shape = (features.shape[0],) if task == "binary" else (features.shape[0], n_outputs)
    all_scores = [np.full(shape, np.nan) for _ in seeds]
    for (k, fold), scores in zip(plan, fold_scores):
        all_scores[k][all_folds[k] == fold] = scores

    per_seed = {
        name: np.array([metric_value(name, y_enc, scores) for scores in all_scores])
        for name in METRICS
    }
    return ProbeResult(
        task=task,
        model=model,
        seeds=seeds,
        classes=classes,
        y_true=y_enc,
        oof_scores=tuple(all_scores),
        fold_ids=np.stack(all_folds),
        per_seed=per_seed,
    )


# ---------------------------------------------------------------------------
# Bootstrap


def _score_list(scores: Scores) -> list[np.ndarray]:
    """A list/tuple of arrays is one array per CV seed; anything else is a single array."""
    if isinstance(scores, (list, tuple)) and scores and all(isinstance(s, np.ndarray) for s in scores):
        return [np.asarray(s, dtype=np.float64) for s in scores]
    return [np.asarray(scores, dtype=np.float64)]


def _statistic(metric: Metric, y_true: np.ndarray, scores: list[np.ndarray], rows: np.ndarray) -> float:
    """The metric on the given rows, averaged over seeds (NaN if undefined for any seed)."""
    return float(np.mean([metric_value(metric, y_true[rows], s[rows]) for s in scores]))


def _bootstrap_rows(n: int, n_bootstrap: int, seed: int) -> list[np.ndarray]:
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1; got {n_bootstrap}")
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n, size=n) for _ in range(n_bootstrap)]


def _finite(values: list[float], what: str) -> np.ndarray:
    """Drop replicates where the metric is undefined (e.g. a resample with one class)."""
    array = np.asarray(values)
    array = array[np.isfinite(array)]
    if array.size == 0:
        raise ValueError(f"{what} is undefined in every bootstrap replicate")
    return array


def bootstrap_ci(
    y_true: np.ndarray,
    y_score: Scores,
    metric: Metric,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point, low, high): the metric and its 95% percentile interval from resampling rows.

    ``y_true`` is encoded as in :class:`ProbeResult`. ``y_score`` is one score
    array, or a list/tuple of per-seed arrays (``ProbeResult.oof_scores``), in
    which case each replicate averages the metric over seeds on the same rows.
    Replicates where the metric is undefined are dropped.
    """
    (point,), (values,) = _replicates(metric, y_true, [y_score], n_bootstrap, seed)
    low, high = np.percentile(_finite(values, "the metric"), [2.5, 97.5])
    return point, float(low), float(high)


def paired_bootstrap(
    y_true: np.ndarray,
    score_a: Scores,
    score_b: Scores,
    metric: Metric,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """One-sided paired test that A beats B on the same rows (and, via seeds, the same folds).

    Both score sets are evaluated on the *same* resampled rows in every
    replicate, so row difficulty cancels and only the difference is tested.
    Returns ``delta`` = metric(A) - metric(B), its 95% percentile interval
    (``low``, ``high``) and ``p_value`` = (1 + #{replicate delta <= 0}) /
    (1 + #replicates), the bootstrap estimate of P(delta <= 0) with the +1 that
    keeps it from reaching an impossible 0.
    """
    (point_a, point_b), (values_a, values_b) = _replicates(
        metric, y_true, [score_a, score_b], n_bootstrap, seed)
    differences = _finite(values_a - values_b, "the metric difference")
    low, high = np.percentile(differences, [2.5, 97.5])
    p_value = (1.0 + np.count_nonzero(differences <= 0.0)) / (1.0 + differences.size)
    return {"delta": point_a - point_b, "low": float(low), "high": float(high),
            "p_value": float(p_value)}


def summarise(
    results: Mapping[str, ProbeResult], n_bootstrap: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Tidy table: one row per (feature set, metric) with the seed mean and its 95% CI.

    ``mean`` is the per-seed metric averaged over seeds, ``std`` its spread across
    seeds (fold-assignment noise), and ``ci_low``/``ci_high`` the row-bootstrap
    interval of that mean. Every feature set is resampled with the same ``seed``,
    so all intervals use the same bootstrap rows when the label sets match.
    """
    records = []
    for name, result in results.items():
        for metric in METRICS:
            point, low, high = bootstrap_ci(
                result.y_true, result.oof_scores, metric, n_bootstrap, seed
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
    return pd.DataFrame.from_records(
        records,
        columns=[
            "feature_set", "task", "model", "metric", "mean", "std",
            "ci_low", "ci_high", "n_rows", "n_seeds",
        ],
    )


# ---------------------------------------------------------------------------
# Vectorised bootstrap
#
# The notebooks summarise dozens of probes (feature set x property x metric) with
# thousands of replicates each; looping metric_value over resampled rows costs
# ~0.5 ms per replicate and seed, minutes per notebook. A resample is fully
# described by how often it draws each row, so every metric here is evaluated as
# a *weighted* metric for a whole block of replicates at once. The replicates are
# the very rows the per-replicate loop draws (same seed, same generator calls), so
# both paths return the same numbers up to float rounding; the tests pin that.

_REPLICATE_CHUNK = 256  # replicates evaluated together; bounds memory at 256 x n floats


@lru_cache(maxsize=2)
def _replicate_weights(n: int, n_bootstrap: int, seed: int) -> tuple[np.ndarray, ...]:
    """(chunk, n) draw counts of the bootstrap rows of :func:`_bootstrap_rows`, in chunks.

    Cached (read-only arrays) because a notebook bootstraps many feature sets on the same
    rows one after another; two entries cover the alternation of a paired test.
    """
    rows = _bootstrap_rows(n, n_bootstrap, seed)
    chunks = []
    for start in range(0, len(rows), _REPLICATE_CHUNK):
        block = rows[start:start + _REPLICATE_CHUNK]
        chunk = np.stack([np.bincount(r, minlength=n) for r in block]).astype(np.float64)
        chunk.flags.writeable = False
        chunks.append(chunk)
    return tuple(chunks)


def _weighted_auc(y01: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per weight row, the Mann-Whitney AUC with each row counted ``weight`` times.

    Scores are sorted once; within a block of tied scores a positive gains half
    of the tied negatives' weight, as mid-ranks give. NaN where a replicate has no
    positive or no negative, as :func:`_binary_auc`.
    """
    order = np.argsort(score, kind="stable")
    sorted_score = score[order]
    positive = y01[order].astype(bool)
    starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
    w = weights[:, order]
    pos = w * positive
    if starts.size < score.size:  # ties: sum each block of equal scores
        pos, w = np.add.reduceat(pos, starts, axis=1), np.add.reduceat(w, starts, axis=1)
    neg = w - pos
    below = np.cumsum(neg, axis=1) - neg
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    defined = (n_pos > 0) & (n_neg > 0)
    wins = np.sum(pos * (below + 0.5 * neg), axis=1)
    return np.divide(wins, n_pos * n_neg, out=np.full(wins.shape, np.nan), where=defined)


def _weighted_metric(metric: MetricName, y_true: np.ndarray, y_score: np.ndarray,
                     weights: np.ndarray) -> np.ndarray:
    """:func:`metric_value` for every row of ``weights`` (draw counts); binary and multilabel."""
    task = _infer_task(y_true, y_score)
    if task == "multiclass":
        raise ValueError("the vectorised bootstrap covers binary and multilabel probes; "
                         "use bootstrap_ci for multiclass")
    if task == "binary":
        y01 = y_true.astype(np.int64)
        if metric == "auc":
            return _weighted_auc(y01, y_score, weights)
        truth = _one_hot(y01, 2)
        predicted = _one_hot((y_score >= _THRESHOLD).astype(np.int64), 2)
    else:
        truth = y_true.astype(bool)
        if metric == "auc":
            per_label = np.column_stack([_weighted_auc(truth[:, k], y_score[:, k], weights)
                                         for k in range(truth.shape[1])])
            defined = np.isfinite(per_label)
            totals = np.where(defined, per_label, 0.0).sum(axis=1)
            counts = defined.sum(axis=1)
            return np.divide(totals, counts, out=np.full(totals.shape, np.nan), where=counts > 0)
        predicted = y_score >= _THRESHOLD
    if metric == "f1":
        # Float operands: a float @ bool product skips BLAS and is ~10x slower.
        tp = weights @ (truth & predicted).astype(np.float64)
        fp = weights @ (~truth & predicted).astype(np.float64)
        fn = weights @ (truth & ~predicted).astype(np.float64)
        denominator = 2 * tp + fp + fn
        per_class = np.divide(2.0 * tp, denominator, out=np.zeros(tp.shape), where=denominator > 0)
        return per_class.mean(axis=1)
    if metric == "accuracy":
        return weights @ np.all(truth == predicted, axis=1).astype(np.float64) / weights.sum(axis=1)
    raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")


def _replicates(metric: Metric, y_true: np.ndarray, score_sets: Sequence[Scores],
                n_bootstrap: int, seed: int) -> tuple[list[float], list[np.ndarray]]:
    """Point values and replicate values (seed-averaged) of each score set on shared rows.

    Named metrics of binary and multilabel probes are evaluated for a block of replicates at
    once (:func:`_weighted_metric`); multiclass probes and callable metrics loop over the very
    same resampled rows.
    """
    truth = np.asarray(y_true)
    lists = [_score_list(scores) for scores in score_sets]
    n = truth.shape[0]
    if callable(metric) or _infer_task(truth, lists[0][0]) == "multiclass":
        rows = _bootstrap_rows(n, n_bootstrap, seed)
        points = [_statistic(metric, truth, scores, np.arange(n)) for scores in lists]
        return points, [np.array([_statistic(metric, truth, scores, r) for r in rows])
                        for scores in lists]

    def seed_mean(scores: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
        return np.mean([_weighted_metric(metric, truth, s, weights) for s in scores], axis=0)

    points = [float(seed_mean(scores, np.ones((1, n)))[0]) for scores in lists]
    blocks: list[list[np.ndarray]] = [[] for _ in lists]
    for weights in _replicate_weights(n, n_bootstrap, seed):
        for store, scores in zip(blocks, lists):
            store.append(seed_mean(scores, weights))
    return points, [np.concatenate(store) for store in blocks]


def compare_to_best(results: Mapping[str, ProbeResult], candidate: str,
                    rivals: Sequence[str], n_bootstrap: int = 1000,
                    seed: int = 0) -> pd.DataFrame:
    """Paired test of ``candidate`` against the best of ``rivals``, per metric.

    "Fusion beats either alone" is a claim about the *best* single representation,
    and which one is best can differ by metric, so the rival is chosen per metric
    by its seed-mean score. All results must share rows and labels (same folds
    follow from the same labels, groups and seeds). One row per metric: the rival,
    both means, and :func:`paired_bootstrap`'s delta, interval and p-value.
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
        test = paired_bootstrap(base.y_true, base.oof_scores, results[rival].oof_scores,
                                     metric, n_bootstrap, seed)
        records.append({"candidate": candidate, "rival": rival, "metric": metric,
                        "candidate_mean": base.mean()[metric],
                        "rival_mean": results[rival].mean()[metric], **test})
    return pd.DataFrame.from_records(records)


# ---------------------------------------------------------------------------
# Task helpers: labels and feature tables for the notebooks' probes


def rows_of(ids: Sequence[str], wanted: Sequence[str]) -> np.ndarray:
    """Positions of ``wanted`` in ``ids``: aligns arrays saved in different row orders.

    A silent misalignment would pair one BGC's features with another's labels, so a
    missing id raises KeyError naming it instead of being dropped.
    """
    position = {name: i for i, name in enumerate(ids)}
    missing = [name for name in wanted if name not in position]
    if missing:
        raise KeyError(f"{len(missing)} ids not found, e.g. {missing[0]!r}")
    return np.array([position[name] for name in wanted], dtype=np.int64)


def product_class_targets(classes: pd.DataFrame, bgc_ids: Sequence[str],
                          class_names: Sequence[str], min_positives: int = 1,
                          ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(mask over ``bgc_ids`` of labelled BGCs, (n_labelled, C) 0/1 indicator, its C classes).

    Unlabelled BGCs (empty MIBiG class) and ids absent from ``classes`` are masked
    out rather than treated as all-negative: "no class recorded" is not "none of
    these classes", and counting it so would corrupt every per-class AUC. Classes
    with fewer than ``min_positives`` labelled BGCs (pass the number of folds) are
    left out, since cross-validation cannot place one in every test fold and its
    never-predicted F1 of 0 would only measure the subset's size.
    """
    table = classes.set_index("bgc_id")
    labelled = table.index[table["labelled"].astype(bool)]
    ids = np.asarray(bgc_ids, dtype=str)
    mask = np.isin(ids, labelled.to_numpy(dtype=str))
    chosen = table.loc[ids[mask], list(class_names)].astype(np.int64)
    kept = [name for name in class_names if chosen[name].sum() >= min_positives]
    return mask, chosen[kept].to_numpy(), kept


def count_weighted_mean(counts: pd.DataFrame, bgc_ids: Sequence[str],
                        families: Sequence[str], vectors: np.ndarray) -> np.ndarray:
    """(n, d) per-BGC mean of family ``vectors`` weighted by domain counts.

    This is how an amino-acid-level model describes a whole cluster without a
    cluster-level model: each Pfam domain contributes its family's ESM vector as
    often as it occurs. Families without a vector are skipped; a BGC with none of
    its families embedded gets a NaN row so the caller must drop it knowingly.
    """
    column = {name: i for i, name in enumerate(families)}
    known = counts[counts["pfam"].isin(column)]
    row = {name: i for i, name in enumerate(bgc_ids)}
    known = known[known["bgc_id"].isin(row)]
    weights = np.zeros((len(bgc_ids), len(families)))
    np.add.at(weights, (known["bgc_id"].map(row).to_numpy(), known["pfam"].map(column).to_numpy()),
              known["count"].to_numpy(dtype=np.float64))
    totals = weights.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ np.asarray(vectors, dtype=np.float64)) / totals


def count_matrix(counts: pd.DataFrame, bgc_ids: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """(n, F) Pfam domain counts per BGC and the F families that occur in them.

    The bag-of-domains baseline (Pfam2vec-style, without the word2vec step): it
    knows which domains a cluster has but nothing about what the domains are.
    """
    rows = counts[counts["bgc_id"].isin(set(bgc_ids))]
    families = sorted(rows["pfam"].unique())
    table = rows.pivot_table(index="bgc_id", columns="pfam", values="count", aggfunc="sum",
                             fill_value=0)
    table = table.reindex(index=list(bgc_ids), columns=families, fill_value=0)
    return table.to_numpy(dtype=np.float64), families


def one_hot_signatures(signatures: Sequence[str], length: int = 10) -> np.ndarray:
    """(n, length x A) one-hot of each position of a Stachelhaus code over its alphabet A.

    The model-free baseline for A-domain substrates: the ten specificity-conferring
    residues alone. Codes shorter than ``length`` (PARAS has 9-letter ones) are
    padded with gaps at the end, so a position's column always means the same slot.
    """
    padded = [code.ljust(length, "-")[:length] for code in signatures]
    alphabet = sorted(set("".join(padded)))
    index = {letter: i for i, letter in enumerate(alphabet)}
    features = np.zeros((len(padded), length * len(alphabet)))
    for row, code in enumerate(padded):
        features[row, [p * len(alphabet) + index[letter] for p, letter in enumerate(code)]] = 1.0
    return features


def random_features(n: int, width: int, seed: int) -> np.ndarray:
    """(n, width) standard-normal features: the chance baseline a probe must beat.

    Same width as the widest real feature set, so a probe cannot look better merely
    by having more columns to overfit with.
    """
    return np.random.default_rng([seed, n, width]).standard_normal((n, width))


def frequent_label_matrix(annotations: pd.Series, min_count: int, sep: str = ";") -> pd.DataFrame:
    """0/1 matrix (rows as ``annotations``) of the labels carried by at least ``min_count`` rows.

    Why: in a multilabel probe a rare label (e.g. a GO term held by three families) is
    absent from most test folds, so its AUC/F1 is undefined or pure noise and dominates a
    macro average. The threshold is a required argument so the notebook must state it.
    Columns are ordered most frequent first (ties by name); a row whose annotation is empty
    or missing is all zeros, and whether such rows are negatives or unknown is the caller's call.
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1; got {min_count}")
    labels = annotations.fillna("").astype(str).map(
        lambda text: {label.strip() for label in text.split(sep) if label.strip()}
    )
    counts = labels.explode().dropna().value_counts()
    counts = counts[counts >= min_count]
    kept = sorted(counts.index, key=lambda label: (-counts[label], label))
    matrix = np.array([[label in row for label in kept] for row in labels], dtype=np.int64)
    return pd.DataFrame(matrix.reshape(len(labels), len(kept)), index=annotations.index,
                        columns=kept)


"""The probes' metrics (ROC AUC, macro F1, accuracy) on encoded labels and scores, one value at
a time (:func:`metric_value`) or for a whole block of bootstrap replicates (:func:`weighted_metric`).

Metrics are written in numpy rather than called from sklearn.metrics because a bootstrap
evaluates them thousands of times and sklearn's input validation dominates at that scale; the
tests check they agree with sklearn. A resample is fully described by how often it draws each
row, so the replicate version evaluates every metric as a *weighted* metric, each row counted
as often as the replicate drew it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "METRICS",
    "Metric",
    "MetricName",
    "ModelName",
    "Scores",
    "Task",
    "infer_task",
    "metric_value",
    "weighted_metric",
]

Task = Literal["binary", "multilabel", "multiclass"]
ModelName = Literal["logreg", "mlp", "rf", "bilstm"]
MetricName = Literal["auc", "f1", "accuracy"]
Metric = MetricName | Callable[[np.ndarray, np.ndarray], float]
Scores = np.ndarray | Sequence[np.ndarray]

METRICS: tuple[MetricName, ...] = ("auc", "f1", "accuracy")
_THRESHOLD = 0.5  # class_weight="balanced" makes 0.5 a sensible cut for the probabilities


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


def infer_task(y_true: np.ndarray, y_score: np.ndarray) -> Task:
    """Shapes decide the task: y 2-D is multilabel, scores 2-D with y 1-D multiclass."""
    if y_true.ndim == 2:
        if y_score.shape != y_true.shape:
            raise ValueError(
                f"multilabel scores must match y_true {y_true.shape}; got {y_score.shape}"
            )
        return "multilabel"
    if y_true.ndim != 1 or y_score.shape[0] != y_true.shape[0]:
        raise ValueError(f"scores {y_score.shape} do not match y_true {y_true.shape}")
    return "binary" if y_score.ndim == 1 else "multiclass"


def metric_value(metric: Metric, y_true: np.ndarray, y_score: np.ndarray) -> float:
    """One metric on encoded labels and scores (shapes as in ``ProbeResult``).

    ``"auc"``: ROC AUC (binary), macro one-vs-rest (multiclass, multilabel).
    ``"f1"``: macro F1 over all classes/labels (binary included: both classes),
    predictions being score >= 0.5 (binary, multilabel) or the argmax (multiclass).
    ``"accuracy"``: fraction correct; exact match of the whole label set for multilabel.
    A callable is applied to (y_true, y_score) as is.
    """
    if callable(metric):
        return float(metric(y_true, y_score))
    task = infer_task(y_true, y_score)
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


def _weighted_macro_auc(truth: np.ndarray, y_score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per weight row, the mean of the per-label AUCs that are defined (as :func:`_macro_auc`)."""
    per_label = np.column_stack(
        [_weighted_auc(truth[:, k], y_score[:, k], weights) for k in range(truth.shape[1])]
    )
    defined = np.isfinite(per_label)
    totals = np.where(defined, per_label, 0.0).sum(axis=1)
    counts = defined.sum(axis=1)
    return np.divide(totals, counts, out=np.full(totals.shape, np.nan), where=counts > 0)


def weighted_metric(
    metric: MetricName, y_true: np.ndarray, y_score: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """:func:`metric_value` for every row of ``weights`` (draw counts); binary and multilabel."""
    task = infer_task(y_true, y_score)
    if task == "multiclass":
        raise ValueError(
            "the vectorised bootstrap covers binary and multilabel probes; "
            "use bootstrap_ci for multiclass"
        )
    if task == "binary":
        y01 = y_true.astype(np.int64)
        if metric == "auc":
            return _weighted_auc(y01, y_score, weights)
        truth = _one_hot(y01, 2)
        predicted = _one_hot((y_score >= _THRESHOLD).astype(np.int64), 2)
    else:
        truth = y_true.astype(bool)
        if metric == "auc":
            return _weighted_macro_auc(truth, y_score, weights)
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

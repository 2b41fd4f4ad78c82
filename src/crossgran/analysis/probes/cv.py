"""Cross-validated probes: out-of-fold (OOF) scores of one feature set over several CV seeds.

A probe asks how much of a label (BGC product class, domain function, ...) is linearly
readable from a representation (ESM mean-pooled, BiGCARP, fused). To compare feature sets
fairly, every feature set must see the *same* folds: the folds here depend only on the labels,
the groups, the number of rows and the seed, never on X, so two calls with the same ``y``,
``groups`` and ``seeds`` split identically and their OOF scores can be compared row by row
(``crossgran.analysis.probes.paired_bootstrap``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from crossgran.analysis.probes.metrics import METRICS, ModelName, Task, metric_value
from crossgran.threads import limit

__all__ = [
    "LINEAR_PROBE",
    "FoldPlan",
    "ProbeResult",
    "cross_validated_scores",
    "fold_plan",
    "make_estimator",
    "probe_label",
    "probe_result",
]

_TASKS = ("binary", "multilabel", "multiclass")
_MODELS = ("logreg", "mlp", "rf")  # cross_validated_scores; "bilstm": probes.sequence
_LOGREG_MAX_ITER = 5000  # lbfgs on standardised 1280-d embeddings can need thousands
_RF_TREES = 300
LINEAR_PROBE = "linear probe"


def probe_label(model: ModelName, hidden: tuple[int, ...] = ()) -> str:
    """How the tables and the report name a probe: "linear probe", "MLP (512, 256)" (hidden
    layer sizes), "BiLSTM (2 x 512)" (layers x hidden size per direction), "random forest"."""
    if model == "logreg":
        return LINEAR_PROBE
    if model == "rf":
        return "random forest"
    if not hidden:
        raise ValueError(f"a {model} probe needs its hidden sizes to be named")
    if model == "mlp":
        return f"MLP ({', '.join(str(size) for size in hidden)})"
    if model == "bilstm":
        return f"BiLSTM ({len(hidden)} x {hidden[0]})"
    raise ValueError(f"unknown probe model {model!r}")


@dataclass(frozen=True, eq=False)
class ProbeResult:
    """Out-of-fold predictions and metrics of one probe over several CV seeds.

    ``y_true`` is encoded: 0/1 for binary (1 = ``classes[1]``), codes
    0..C-1 for multiclass (code k = ``classes[k]``), a 0/1 matrix for
    multilabel. ``oof_scores`` holds one array per seed: P(positive) with shape
    (n,) for binary, (n, C) class probabilities for multiclass, (n, L) per-label
    probabilities for multilabel; passing this tuple to ``bootstrap_ci``
    or ``paired_bootstrap`` averages the metric over seeds in every
    replicate. ``fold_ids[s, i]`` is the test fold of row i under seed s.
    Metrics are computed on the pooled OOF predictions of each seed (not averaged over
    folds), so a row-resampling bootstrap of those same predictions gives a confidence
    interval around exactly the reported number.
    """

    task: Task
    model: ModelName
    seeds: tuple[int, ...]
    classes: np.ndarray
    y_true: np.ndarray
    oof_scores: tuple[np.ndarray, ...]
    fold_ids: np.ndarray
    per_seed: Mapping[str, np.ndarray]
    hidden: tuple[int, ...] = ()  # hidden layer sizes of an MLP or BiLSTM probe

    def mean(self) -> dict[str, float]:
        """Each metric averaged over seeds."""
        return {name: float(np.mean(values)) for name, values in self.per_seed.items()}

    @property
    def probe(self) -> str:
        """The probe's name in tables and the report (:func:`probe_label`)."""
        return probe_label(self.model, self.hidden)


@dataclass(frozen=True)
class FoldPlan:
    """Encoded labels, their classes and the test fold of every row under each seed."""

    y_enc: np.ndarray
    classes: np.ndarray
    fold_ids: np.ndarray  # (seeds, rows)


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
            raise ValueError(
                "multilabel y must hold only 0/1 (remove rows with missing labels first)"
            )
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


def fold_plan(
    y: np.ndarray,
    *,
    task: Task,
    groups: np.ndarray | None,
    folds: int,
    seeds: Sequence[int],
) -> FoldPlan:
    """The folds every probe of ``y`` uses, whatever its model or input: they depend on the
    labels, the groups and the seeds only, so a sequence probe (``probes.sequence``) and the
    pooled-vector probes of the same rows split them identically."""
    y_enc, classes = _encode_labels(np.asarray(y), task, folds)
    if groups is not None:
        n_groups = np.unique(groups).size
        if n_groups < folds:
            raise ValueError(f"{n_groups} groups cannot fill folds={folds}")
    strata = _multilabel_strata(y_enc, folds) if task == "multilabel" else y_enc
    fold_ids = np.stack([_fold_ids(strata, groups, folds, int(seed)) for seed in seeds])
    return FoldPlan(y_enc, classes, fold_ids)


def probe_result(
    plan: FoldPlan,
    scores: Sequence[np.ndarray],
    *,
    task: Task,
    model: ModelName,
    seeds: Sequence[int],
    hidden: tuple[int, ...] = (),
) -> ProbeResult:
    """A :class:`ProbeResult` from out-of-fold ``scores`` (one array per seed) on ``plan``'s
    folds, with every metric computed per seed."""
    per_seed = {
        name: np.array([metric_value(name, plan.y_enc, seed_scores) for seed_scores in scores])
        for name in METRICS
    }
    return ProbeResult(
        task=task,
        model=model,
        seeds=tuple(int(s) for s in seeds),
        classes=plan.classes,
        y_true=plan.y_enc,
        oof_scores=tuple(scores),
        fold_ids=plan.fold_ids,
        per_seed=per_seed,
        hidden=tuple(hidden),
    )


def make_estimator(
    model: ModelName, task: Task, seed: int, mlp_hidden: tuple[int, ...]
) -> BaseEstimator:
    """The probe, single-threaded (parallelism lives one level up, across folds); also what
    ``crossgran predict`` fits on all rows, so the served probe is the validated one.

    Logistic regression and forests use balanced class weights so the 0.5 threshold behind
    F1/accuracy is not swamped by the majority class; per-label one-vs-rest makes multilabel
    probes independent per label and copes with a label absent from a training fold. The MLP
    learns all labels jointly instead (shared hidden layers) and has no class weights in
    sklearn. Forests stay one per label too: one multi-output forest was only ~2x faster on
    the mini product-class task (Pfam2vec, 1,607 BGCs) and, since sklearn multiplies the
    labels' balanced weights into one row weight, lost 0.02 macro-F1 and 0.05 accuracy.
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
                solver="lbfgs",
                max_iter=_LOGREG_MAX_ITER,
                class_weight="balanced",
                random_state=seed,
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


def _fit_fold(
    estimator: BaseEstimator,
    features: np.ndarray,
    y_enc: np.ndarray,
    test: np.ndarray,
    task: Task,
    n_outputs: int,
) -> np.ndarray:
    """One fold's test scores, with one BLAS thread: scipy's L-BFGS calls BLAS on tiny
    vectors every iteration, and idle-spinning BLAS threads made each fit ~20x slower than
    single-threaded on a busy machine in our measurements."""
    with limit(blas_threads=1):
        return _fit_predict(
            estimator, features[~test], y_enc[~test], features[test], task, n_outputs
        )


def _checked_inputs(
    X: np.ndarray,
    y: np.ndarray,
    task: Task,
    groups: np.ndarray | None,
    folds: int,
    seeds: Sequence[int],
    model: ModelName,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple[int, ...]]:
    """(features, labels, groups, seeds) as arrays, or a ValueError saying what is wrong."""
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
    group_array = None
    if groups is not None:
        group_array = np.asarray(groups)
        if group_array.shape != (features.shape[0],):
            raise ValueError(
                f"groups must have shape ({features.shape[0]},); got {group_array.shape}"
            )
    return features, labels, group_array, seeds


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
    features, labels, group_array, seeds = _checked_inputs(X, y, task, groups, folds, seeds, model)
    plan = fold_plan(labels, task=task, groups=group_array, folds=folds, seeds=seeds)
    n_outputs = plan.classes.size
    hidden = tuple(mlp_hidden) if model == "mlp" else ()
    estimators = [make_estimator(model, task, seed, hidden) for seed in seeds]
    fits = [(k, fold) for k in range(len(seeds)) for fold in range(folds)]
    # Fits are independent and seeded, so running them in n_jobs processes changes nothing
    # but the wall time; n_jobs=1 runs them here, without any process.
    fold_scores = Parallel(n_jobs=n_jobs)(
        delayed(_fit_fold)(
            estimators[k], features, plan.y_enc, plan.fold_ids[k] == fold, task, n_outputs
        )
        for k, fold in fits
    )
    shape = (features.shape[0],) if task == "binary" else (features.shape[0], n_outputs)
    all_scores = [np.full(shape, np.nan) for _ in seeds]
    for (k, fold), scores in zip(fits, fold_scores, strict=True):
        all_scores[k][plan.fold_ids[k] == fold] = scores
    return probe_result(plan, all_scores, task=task, model=model, seeds=seeds, hidden=hidden)

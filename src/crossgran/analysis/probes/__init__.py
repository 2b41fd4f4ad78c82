"""Cross-validated probes, bootstrap intervals and paired tests for the paper's analyses.

``metrics``: AUC, macro F1 and accuracy in numpy (one value, or a block of bootstrap
replicates at once); ``cv``: the probes themselves, with folds that depend on the labels only,
so every feature set of a task is scored on the same folds; ``sequence`` (imported on its
own, as it needs torch): the paper's BiLSTM over ordered per-domain vectors, on the same
folds; ``stats``: bootstrap intervals, the paired test and the tidy tables the notebooks write.
"""

from __future__ import annotations

from crossgran.analysis.probes.cv import (
    LINEAR_PROBE,
    FoldPlan,
    ProbeResult,
    cross_validated_scores,
    fold_plan,
    probe_label,
    probe_result,
)
from crossgran.analysis.probes.metrics import (
    METRICS,
    Metric,
    MetricName,
    ModelName,
    Scores,
    Task,
    metric_value,
)
from crossgran.analysis.probes.stats import (
    bootstrap_ci,
    compare_to_best,
    paired_bootstrap,
    summarise,
    summarise_sets,
)

__all__ = [
    "LINEAR_PROBE",
    "METRICS",
    "FoldPlan",
    "Metric",
    "MetricName",
    "ModelName",
    "ProbeResult",
    "Scores",
    "Task",
    "bootstrap_ci",
    "compare_to_best",
    "cross_validated_scores",
    "fold_plan",
    "metric_value",
    "paired_bootstrap",
    "probe_label",
    "probe_result",
    "summarise",
    "summarise_sets",
]

"""Paired comparisons of probed feature sets in the one tests format every notebook writes.

Why one format: the report (``crossgran.analysis.report``) finds the test behind each of the
paper's claims by (task, property, candidate, rival, metric) in the notebooks' ``*_tests.csv``
files, and ``crossgran.analysis.verdicts.decide`` turns any such table into four-valued
verdicts. ``rival`` is the rival a test was run against (the best of ``rivals``, chosen per
metric by the seed-mean score), ``rivals`` all it was chosen from: the stable name of the
comparison. A comparison is either ``above`` (candidate better than the best of its rivals,
one-sided paired bootstrap) or ``equivalent`` (the paired difference inside the equivalence
margin); controls are compared with what they control exactly like any other rival.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crossgran.analysis.probes import ProbeResult, compare_to_best
from crossgran.analysis.verdicts import decide

__all__ = [
    "PROBE_TEST_COLUMNS",
    "TEST_COLUMNS",
    "Comparison",
    "claim_verdicts",
    "control_comparisons",
    "run_comparisons",
    "run_probe_comparisons",
]

TEST_COLUMNS = [
    "task",
    "property",
    "candidate",
    "rival",
    "rivals",
    "metric",
    "kind",
    "candidate_mean",
    "rival_mean",
    "delta",
    "low",
    "high",
    "p_value",
]
# The tests of a task probed with several probes (``fusion_tests.csv``): the probe whose results
# were compared comes first; a comparison never pits one probe against another.
PROBE_TEST_COLUMNS = ["probe", *TEST_COLUMNS]


@dataclass(frozen=True)
class Comparison:
    """``candidate`` against the best of ``rivals`` (per metric), as ``kind``."""

    candidate: str
    rivals: tuple[str, ...]
    kind: str = "above"


def control_comparisons(names: Sequence[str], controls: Sequence[str]) -> list[Comparison]:
    """Each learned feature set against each of its controls (``<name>~<control>``)."""
    return [Comparison(name, (f"{name}~{control}",)) for name in names for control in controls]


def run_comparisons(
    results: Mapping[str, ProbeResult],
    comparisons: Sequence[Comparison],
    *,
    task: str,
    prop: str = "",
    metrics: Sequence[str] = ("f1", "auc"),
    n_bootstrap: int,
    seed: int,
    groups: np.ndarray | None = None,
) -> pd.DataFrame:
    """The paired tests of ``comparisons`` on ``metrics``, in :data:`TEST_COLUMNS`.

    Every test resamples the same rows (or, with ``groups``, the same groups), so all of a
    task's comparisons share their bootstrap replicates.
    """
    tables = [
        compare_to_best(
            results, c.candidate, list(c.rivals), n_bootstrap, seed=seed, groups=groups
        ).assign(kind=c.kind, rivals=";".join(c.rivals))
        for c in comparisons
    ]
    tests = pd.concat(tables, ignore_index=True)
    tests = tests[tests["metric"].isin(metrics)].assign(task=task, property=prop)
    return tests[TEST_COLUMNS].reset_index(drop=True)


def run_probe_comparisons(
    sets: Mapping[str, Mapping[str, ProbeResult]],
    comparisons: Sequence[Comparison],
    **kwargs,
) -> pd.DataFrame:
    """:func:`run_comparisons` within each probe set (probe label -> feature set -> result;
    only the comparisons whose feature sets the set has), in :data:`PROBE_TEST_COLUMNS`.
    ``kwargs`` as for :func:`run_comparisons`."""
    tables = []
    for probe, results in sets.items():
        present = [c for c in comparisons if {c.candidate, *c.rivals} <= set(results)]
        tests = run_comparisons(results, present, **kwargs)
        tables.append(tests.assign(probe=probe)[PROBE_TEST_COLUMNS])
    return pd.concat(tables, ignore_index=True)


def claim_verdicts(tests: pd.DataFrame) -> pd.DataFrame:
    """``tests`` with Holm-adjusted p (over its "above" rows) and verdicts: how a notebook
    reads its own table (the report corrects over all its comparisons together)."""
    return decide(tests)

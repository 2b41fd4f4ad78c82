"""Four-valued verdicts on the paper's claims, each decided by a test that a null model would fail.

A claim's direction read off two point estimates cannot fail: noise alone makes one of two
numbers larger. So every verdict here comes from a paired bootstrap of the difference
(``crossgran.analysis.probes.paired_bootstrap``: Δ, its 95% interval, a one-sided p):

- "A above B": *holds* if the Holm-adjusted p is below α, *does not hold* if the whole interval
  lies below 0 (B is significantly above A), else *inconclusive*; Holm over the report's "above"
  comparisons keeps the family-wise error at α however many rows the report has.
- "A not better than B" (equivalence, claim 1): *holds* only if the interval lies inside
  ±margin, *does not hold* if it lies entirely outside, else *inconclusive* — failing to show a
  difference is not evidence of its absence.
- *not testable here*: the test has no numbers, or (:func:`require_controls`) the claim rests
  on a learned representation that does not beat its random-projection and untrained controls,
  so the data cannot tell what the learning contributed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from crossgran.analysis.paper import SIGNIFICANCE

__all__ = [
    "EQUIVALENCE_MARGIN",
    "VERDICTS",
    "above_verdict",
    "decide",
    "equivalence_verdict",
    "holm",
    "require_controls",
]

VERDICTS = ("holds", "does not hold", "inconclusive", "not testable here")
HOLDS, DOES_NOT_HOLD, INCONCLUSIVE, NOT_TESTABLE = VERDICTS
EQUIVALENCE_MARGIN = 0.02  # in metric units (AUC, macro F1, CKA): the stated ±0.02
_KINDS = ("above", "equivalent")


def _missing(*values: float | None) -> bool:
    """True if any value is None or NaN (a test that was not, or could not be, run)."""
    return any(value is None or math.isnan(float(value)) for value in values)


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order.

    The i-th smallest of m p-values is multiplied by (m - i + 1), made non-decreasing along the
    sorted order and capped at 1; rejecting where the adjusted p is below α controls the
    family-wise error at α. NaN entries (tests not run) stay NaN and do not count in m.
    """
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    if finite.size == 0:
        return adjusted
    if np.any((p[finite] < 0.0) | (p[finite] > 1.0)):
        raise ValueError("p-values must lie in [0, 1]")
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    scaled = p[order] * (m - np.arange(m))
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def above_verdict(
    low: float | None, high: float | None, p_adjusted: float | None, alpha: float = SIGNIFICANCE
) -> str:
    """Verdict on "A above B" from a one-sided paired bootstrap of Δ = A - B.

    ``low``/``high`` bound Δ's 95% interval; ``p_adjusted`` is the (Holm-adjusted) one-sided p.
    A significant gain holds; an interval wholly below 0 means B is above A, so the claim does
    not hold; anything else (including a non-significant positive Δ) is inconclusive.
    """
    if _missing(low, high, p_adjusted):
        return NOT_TESTABLE
    if float(p_adjusted) < alpha:  # type: ignore[arg-type]
        return HOLDS
    if float(high) < 0.0:  # type: ignore[arg-type]
        return DOES_NOT_HOLD
    return INCONCLUSIVE


def equivalence_verdict(
    low: float | None, high: float | None, margin: float = EQUIVALENCE_MARGIN
) -> str:
    """Verdict on "A not better than B" (A ≈ B) from Δ's 95% interval and a stated margin.

    Holds only when the whole interval lies inside [-margin, margin] (Δ is shown to be small);
    does not hold when the whole interval lies outside it (Δ is shown to be large, either way);
    an interval that straddles a margin is inconclusive.
    """
    if _missing(low, high):
        return NOT_TESTABLE
    low_value, high_value = float(low), float(high)  # type: ignore[arg-type]
    if -margin <= low_value and high_value <= margin:
        return HOLDS
    if low_value > margin or high_value < -margin:
        return DOES_NOT_HOLD
    return INCONCLUSIVE


def decide(
    tests: pd.DataFrame, alpha: float = SIGNIFICANCE, margin: float = EQUIVALENCE_MARGIN
) -> pd.DataFrame:
    """A copy of ``tests`` with ``p_holm`` and ``verdict`` added, one verdict per row.

    ``tests`` has columns ``kind`` ("above" | "equivalent"), ``delta``, ``low``, ``high`` and
    ``p_value`` (the shared tests format has them). Holm runs over every "above" row with a
    finite p — the whole table is one family — and ``p_holm`` is NaN on "equivalent" rows,
    whose verdict rests on the interval alone.
    """
    missing = {"kind", "delta", "low", "high", "p_value"} - set(tests.columns)
    if missing:
        raise ValueError(f"tests lack columns {sorted(missing)}")
    unknown = set(tests["kind"]) - set(_KINDS)
    if unknown:
        raise ValueError(f"unknown test kinds {sorted(unknown)}; expected one of {_KINDS}")
    decided = tests.copy()
    above = (decided["kind"] == "above").to_numpy()
    p_holm = np.full(len(decided), np.nan)
    p_holm[above] = holm(decided["p_value"].to_numpy(dtype=np.float64)[above])
    decided["p_holm"] = p_holm
    decided["verdict"] = [
        above_verdict(low, high, p, alpha)
        if kind == "above"
        else equivalence_verdict(low, high, margin)
        for kind, low, high, p in zip(
            decided["kind"], decided["low"], decided["high"], p_holm, strict=True
        )
    ]
    return decided


def require_controls(verdict: str, control_verdicts: Sequence[str]) -> str:
    """``verdict`` if the representation beat every control ("holds" on each), else
    "not testable here".

    A claim about what a learned representation encodes says nothing about learning when a
    random projection of the same width, or the untrained model, does as well: the gate turns
    such a claim's verdict, whatever it was, into "not testable here". An empty list of controls
    leaves the verdict unchanged (nothing to beat).
    """
    for value in (verdict, *control_verdicts):
        if value not in VERDICTS:
            raise ValueError(f"unknown verdict {value!r}; expected one of {VERDICTS}")
    if all(control == HOLDS for control in control_verdicts):
        return verdict
    return NOT_TESTABLE

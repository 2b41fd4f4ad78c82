"""Identical Pfam domain bags: one BGC kept per bag (the offline stand-in for BiG-SCAPE)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crossgran.analysis.features import count_matrix, unique_bag_rows
from crossgran.data import sources
from crossgran.data.mibig import build_mibig
from crossgran.data.report import BuildReport


def _counts(bags: dict[str, dict[str, int]]) -> pd.DataFrame:
    rows = [(bgc, pfam, n) for bgc, bag in bags.items() for pfam, n in bag.items()]
    return pd.DataFrame(rows, columns=["bgc_id", "pfam", "count"])


def test_planted_duplicates_are_dropped_and_the_first_is_kept() -> None:
    counts = _counts(
        {
            "A": {"PF1": 2, "PF2": 1},
            "B": {"PF2": 1, "PF1": 2},  # A's bag, listed in another order
            "C": {"PF1": 1, "PF2": 1},  # same families, other counts: a different bag
            "D": {"PF1": 2},  # a sub-bag of A: different
            "X": {"PF9": 5},  # not asked for: ignored
        }
    )
    keep, dropped = unique_bag_rows(counts, ["A", "B", "C", "D", "E", "F"])
    assert keep.tolist() == [0, 2, 3, 4] and dropped == 2  # B (= A) and F (empty, = E)
    keep, dropped = unique_bag_rows(counts, ["B", "A", "C"])
    assert keep.tolist() == [0, 2] and dropped == 1  # the order given decides who stays


def test_real_bags_agree_with_the_count_matrix(smoke_profile) -> None:
    report = BuildReport()
    classes, counts = build_mibig(
        sources.fetch_wheel("gecco", smoke_profile.raw_dir),
        report,
        None,
        nplinker=sources.fetch_wheel("nplinker", smoke_profile.raw_dir),
    )
    ids = sorted(classes.loc[classes["n_domains"] > 0, "bgc_id"])
    keep, dropped = unique_bag_rows(counts, ids)
    matrix, _ = count_matrix(counts, ids)
    _, first = np.unique(matrix, axis=0, return_index=True)
    assert keep.tolist() == sorted(first.tolist())  # independent: first row of each distinct row
    assert dropped == len(ids) - len(keep) == 58
    assert np.all(np.diff(keep) > 0)


@pytest.mark.parametrize("ids", [[], ["BGC0000001"]])
def test_degenerate_inputs(ids: list[str]) -> None:
    counts = _counts({"BGC0000001": {"PF00001": 1}})
    keep, dropped = unique_bag_rows(counts, ids)
    assert keep.tolist() == list(range(len(ids))) and dropped == 0

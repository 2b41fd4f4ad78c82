"""crossgran.analysis.rows: the one row alignment of CKA, probes and their features."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_wine

from crossgran.analysis.cka import cka
from crossgran.analysis.rows import rows_of, shared_rows


def test_rows_of_aligns_and_refuses_missing_ids() -> None:
    ids = np.array(["BGC3", "BGC1", "BGC2"])
    assert rows_of(ids, ["BGC1", "BGC2", "BGC3"]).tolist() == [1, 2, 0]
    assert rows_of(ids, ["BGC1", "BGC1"]).tolist() == [1, 1]  # wanted may repeat (halogenases)
    with pytest.raises(KeyError, match="BGC9"):
        rows_of(ids, ["BGC1", "BGC9"])
    with pytest.raises(ValueError, match="duplicate"):
        rows_of(["BGC1", "BGC1"], ["BGC1"])


def test_shared_rows_pairs_rows_by_id_not_position() -> None:
    features = load_wine().data
    ids = [f"wine{i:03d}" for i in range(features.shape[0])]
    order = np.random.default_rng(0).permutation(len(ids))[:-5]  # shuffled, five rows missing
    common, (rows_a, rows_b) = shared_rows(ids, [ids[i] for i in order])
    assert common == sorted(ids[i] for i in order)
    assert np.array_equal(features[rows_a], features[order][rows_b])
    assert cka(features[rows_a], features[order][rows_b]) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="id list 1 contains duplicate"):
        shared_rows(ids, [ids[0], ids[0]])
    with pytest.raises(ValueError, match="at least one"):
        shared_rows()

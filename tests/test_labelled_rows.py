"""crossgran.analysis.labelled_rows: the BGCs a product-class probe sees, on the real smoke
MIBiG tables."""

from __future__ import annotations

import numpy as np

from crossgran.analysis.features import count_matrix, product_class_targets, unique_bag_rows
from crossgran.analysis.labelled_rows import product_class_rows
from crossgran.data.mibig import PROBE_CLASSES
from crossgran.data.tables import load_table


def test_rows_are_complete_labelled_and_distinct_bags(smoke_profile, smoke_build) -> None:
    classes = load_table(smoke_profile, "mibig_classes")
    counts = load_table(smoke_profile, "mibig_domain_counts")
    bgc_ids = np.array(sorted(counts["bgc_id"].unique()))
    dense, _ = count_matrix(counts, bgc_ids)
    holed = dense.copy()
    holed[:3] = np.nan  # three BGCs without a vector in the second block
    picked = product_class_rows(smoke_profile, bgc_ids, [dense, holed])
    assert not set(picked.rows) & {0, 1, 2}
    assert picked.bgc_ids.tolist() == bgc_ids[picked.rows].tolist()
    # Every probed BGC is labelled, and no two share a domain bag.
    labelled, _, _ = product_class_targets(classes, picked.bgc_ids, PROBE_CLASSES)
    assert labelled.all()
    bags = count_matrix(counts, picked.bgc_ids)[0]
    bags = bags / bags.sum(axis=1, keepdims=True)
    assert len(np.unique(bags.round(9), axis=0)) == len(picked.rows)
    # What was dropped as a repeat is what unique_bag_rows drops among the labelled rows.
    labelled_all, _, _ = product_class_targets(classes, bgc_ids[3:], PROBE_CLASSES)
    _, dropped = unique_bag_rows(counts, bgc_ids[3:][labelled_all])
    assert picked.n_duplicates == dropped
    assert len(picked.rows) == int(labelled_all.sum()) - dropped
    _, expected, kept = product_class_targets(
        classes, picked.bgc_ids, PROBE_CLASSES, min_positives=smoke_profile.probe_folds
    )
    assert picked.class_names == kept and np.array_equal(picked.targets, expected)

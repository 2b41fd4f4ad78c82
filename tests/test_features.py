"""crossgran.analysis.features: the probes' labels and feature tables, on the real smoke MIBiG
tables where they read tables, and on real PARAS codes and Pfam GO terms otherwise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crossgran.analysis.features import (
    count_matrix,
    count_weighted_mean,
    family_class_association,
    frequent_label_matrix,
    one_hot_signatures,
    product_class_targets,
    random_features,
)
from crossgran.data.mibig import PROBE_CLASSES, PRODUCT_CLASSES
from crossgran.data.tables import load_table


def test_product_class_targets_on_real_mibig(smoke_profile, smoke_build) -> None:
    classes = load_table(smoke_profile, "mibig_classes")
    ids = np.append(classes["bgc_id"].to_numpy(dtype=str)[::-1], "BGC_not_in_table")
    mask, indicator, kept = product_class_targets(classes, ids, PRODUCT_CLASSES)
    by_id = classes.set_index("bgc_id")
    assert not mask[-1]
    assert mask[:-1].tolist() == by_id.loc[ids[:-1], "labelled"].tolist()
    assert indicator.tolist() == by_id.loc[ids[mask], kept].astype(int).to_numpy().tolist()
    _, strict, strict_kept = product_class_targets(classes, ids, PRODUCT_CLASSES, min_positives=3)
    assert all(strict[:, k].sum() >= 3 for k in range(len(strict_kept)))
    dropped = set(PRODUCT_CLASSES) - set(strict_kept)
    assert all(by_id.loc[by_id["labelled"], name].sum() < 3 for name in dropped)


def test_domain_count_features_on_real_mibig(smoke_profile, smoke_build) -> None:
    counts = load_table(smoke_profile, "mibig_domain_counts")
    bgc_ids = sorted(counts["bgc_id"].unique())[:20]
    matrix, families = count_matrix(counts, bgc_ids)
    totals = counts.groupby("bgc_id")["count"].sum()
    assert matrix.sum(axis=1).tolist() == totals.loc[bgc_ids].tolist()
    # One-hot family vectors turn the weighted mean into each BGC's domain frequencies.
    frequencies = count_weighted_mean(
        counts, [*bgc_ids, "BGC_without_domains"], families, np.eye(len(families))
    )
    np.testing.assert_allclose(frequencies[:-1], matrix / matrix.sum(axis=1, keepdims=True))
    assert np.isnan(frequencies[-1]).all()
    # A repeated id (per-domain rows of one BGC, as the release's halogenation rows) gets
    # the BGC's mean on every row, not NaN on all but the last.
    repeated = [bgc_ids[3], bgc_ids[0], bgc_ids[3], bgc_ids[3]]
    again = count_weighted_mean(counts, repeated, families, np.eye(len(families)))
    np.testing.assert_array_equal(again, frequencies[[3, 0, 3, 3]])


def test_family_class_association_on_real_mibig(smoke_profile, smoke_build) -> None:
    """Each family's class is the one holding the largest size-normalised share of the
    single-class BGCs that contain it; 'mixed' below one half; rare families left out."""
    counts = load_table(smoke_profile, "mibig_domain_counts")
    classes = load_table(smoke_profile, "mibig_classes")
    association = family_class_association(counts, classes, min_bgcs=3)
    assert association.name == "class_association" and not association.empty
    single = classes[classes["labelled"] & ~classes["classes"].str.contains(";")]
    present = counts.merge(single[["bgc_id", "classes"]], on="bgc_id")
    class_size = single["classes"].value_counts()
    for family, label in association.items():
        seen = present.loc[present["pfam"] == family, "classes"].value_counts()
        assert seen.sum() >= 3
        rates = seen / class_size.reindex(seen.index)
        shares = rates / rates.sum()
        assert label == (shares.idxmax() if shares.max() >= 0.5 else "mixed")
    rare = present["pfam"].value_counts()
    assert not set(association.index) & set(rare[rare < 3].index)
    assert set(association) <= {*PROBE_CLASSES, "mixed"}


def test_one_hot_signatures_and_random_features() -> None:
    codes = ["DFWNIGMVHK", "DAWFLGNVVK", "DMISFGCLI"]  # real PARAS codes; the last is 9 letters
    one_hot = one_hot_signatures(codes)
    alphabet = sorted(set("".join(codes)) | {"-"})
    assert one_hot.shape == (3, 10 * len(alphabet))
    assert (one_hot.sum(axis=1) == 10).all()
    assert one_hot[2, 9 * len(alphabet) + alphabet.index("-")] == 1.0  # padded with a gap
    noise = random_features(50, 8, seed=1)
    assert noise.shape == (50, 8) and np.array_equal(noise, random_features(50, 8, seed=1))
    assert not np.array_equal(noise, random_features(50, 8, seed=2))


def test_frequent_label_matrix_on_pfam_go_terms() -> None:
    # GO molecular-function terms of the first Pfam 35.0 families (InterPro, as in pfam_families).
    go = pd.Series(
        [
            "GO:0005524;GO:0016887",
            "GO:0005524",
            "GO:0005524",
            "GO:0003924;GO:0005525",
            "GO:0046983",
            None,
            "GO:0005524;GO:0140662",
            "GO:0003723",
            "",
        ],
        index=[
            "PF00004",
            "PF00005",
            "PF00006",
            "PF00009",
            "PF00010",
            "PF00011",
            "PF00012",
            "PF00013",
            "PF00015",
        ],
    )
    everything = frequent_label_matrix(go, min_count=1)
    assert everything.columns[0] == "GO:0005524"  # most frequent first
    assert everything.loc["PF00004"].sum() == 2
    assert everything.loc[["PF00011", "PF00015"]].to_numpy().sum() == 0
    frequent = frequent_label_matrix(go, min_count=2)
    assert frequent.columns.tolist() == ["GO:0005524"]
    assert frequent["GO:0005524"].tolist() == [1, 1, 1, 0, 0, 0, 1, 0, 0]
    assert frequent_label_matrix(go, min_count=10).shape == (9, 0)
    with pytest.raises(ValueError):
        frequent_label_matrix(go, min_count=0)

"""The probes' labels and feature tables: product-class targets of MIBiG BGCs, per-BGC
features from domain counts, A-domain baselines, chance baselines, multilabel label matrices
and each Pfam family's product-class association.

Everything here is plain pandas/numpy on the built tables, so the notebooks' tasks are
defined once and tested on the real offline data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "count_matrix",
    "count_weighted_mean",
    "family_class_association",
    "frequent_label_matrix",
    "one_hot_signatures",
    "product_class_targets",
    "random_features",
    "unique_bag_rows",
]


def product_class_targets(
    classes: pd.DataFrame,
    bgc_ids: Sequence[str],
    class_names: Sequence[str],
    min_positives: int = 1,
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


def count_weighted_mean(
    counts: pd.DataFrame, bgc_ids: Sequence[str], families: Sequence[str], vectors: np.ndarray
) -> np.ndarray:
    """(n, d) per-BGC mean of family ``vectors`` weighted by domain counts.

    This is how an amino-acid-level model describes a whole cluster without a
    cluster-level model: each Pfam domain contributes its family's ESM vector as
    often as it occurs. Families without a vector are skipped; a BGC with none of
    its families embedded gets a NaN row so the caller must drop it knowingly. An id
    may repeat (the release's halogenation rows are per domain, several per BGC):
    every row of it gets the BGC's mean.
    """
    column = {name: i for i, name in enumerate(families)}
    known = counts[counts["pfam"].isin(column)]
    unique = list(dict.fromkeys(bgc_ids))
    row = {name: i for i, name in enumerate(unique)}
    known = known[known["bgc_id"].isin(row)]
    weights = np.zeros((len(unique), len(families)))
    np.add.at(
        weights,
        (known["bgc_id"].map(row).to_numpy(), known["pfam"].map(column).to_numpy()),
        known["count"].to_numpy(dtype=np.float64),
    )
    totals = weights.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (weights @ np.asarray(vectors, dtype=np.float64)) / totals
    return means[[row[name] for name in bgc_ids]]


def count_matrix(counts: pd.DataFrame, bgc_ids: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """(n, F) Pfam domain counts per BGC and the F families that occur in them.

    The bag-of-domains baseline (Pfam2vec-style, without the word2vec step): it
    knows which domains a cluster has but nothing about what the domains are.
    """
    rows = counts[counts["bgc_id"].isin(set(bgc_ids))]
    families = sorted(rows["pfam"].unique())
    table = rows.pivot_table(
        index="bgc_id", columns="pfam", values="count", aggfunc="sum", fill_value=0
    )
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
    by having more columns to overfit with. The generator is seeded by (seed, n, width)
    alone, so the baseline of one task never depends on what another task drew.
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
    labels = (
        annotations.fillna("")
        .astype(str)
        .map(lambda text: {label.strip() for label in text.split(sep) if label.strip()})
    )
    counts = labels.explode().dropna().value_counts()
    counts = counts[counts >= min_count]
    kept = sorted(counts.index, key=lambda label: (-counts[label], label))
    matrix = np.array([[label in row for label in kept] for row in labels], dtype=np.int64)
    return pd.DataFrame(
        matrix.reshape(len(labels), len(kept)), index=annotations.index, columns=kept
    )


def family_class_association(
    counts: pd.DataFrame, classes: pd.DataFrame, min_bgcs: int = 3
) -> pd.Series:
    """The product class each Pfam family is most associated with, from MIBiG co-occurrence.

    Over single-class labelled BGCs: a family's class is the one holding the largest share of
    the BGCs that contain it, *after* normalising by class size (so the abundant polyketides
    do not win by default); 'mixed' when that share is below one half, and families seen in
    fewer than ``min_bgcs`` such BGCs are left out (too few to say).
    """
    single = classes[classes["labelled"] & ~classes["classes"].str.contains(";")]
    present = counts.merge(single[["bgc_id", "classes"]], on="bgc_id")
    table = pd.crosstab(present["pfam"], present["classes"])
    table = table[table.sum(axis=1) >= min_bgcs]
    rates = table / single["classes"].value_counts().reindex(table.columns)
    shares = rates.div(rates.sum(axis=1), axis=0)
    best = shares.idxmax(axis=1).where(shares.max(axis=1) >= 0.5, "mixed")
    return best.rename("class_association")


def unique_bag_rows(counts: pd.DataFrame, bgc_ids: Sequence[str]) -> tuple[np.ndarray, int]:
    """(indices into ``bgc_ids`` keeping the first BGC of every identical Pfam domain bag, how
    many were dropped).

    Why: two BGCs with the same families at the same counts get the same features from every
    bag-level representation, so one in a training fold and one in a test fold is a leaked
    answer. The paper removed such near-duplicates with BiG-SCAPE; offline the bags are all
    there is, so identical bags are the duplicates. "First" follows the order of ``bgc_ids``
    (pass them sorted so the choice is reproducible); a BGC without any domain in ``counts``
    has the empty bag, and the empty bags are deduplicated like any other. Offline, GECCO's
    counts are known only up to a common factor (``crossgran.data.mibig.frequencies_to_counts``),
    so there "identical" means the same families in the same proportions.
    """
    ids = list(bgc_ids)
    rows = counts[counts["bgc_id"].isin(set(ids))]
    totals = rows.groupby(["bgc_id", "pfam"])["count"].sum().reset_index()
    bags = (
        totals.sort_values(["bgc_id", "pfam"])
        .assign(item=lambda t: t["pfam"] + ":" + t["count"].astype(str))
        .groupby("bgc_id")["item"]
        .agg(" ".join)
    )
    keys = pd.Series(ids).map(bags).fillna("")
    keep = np.flatnonzero(~keys.duplicated(keep="first").to_numpy())
    return keep, len(ids) - len(keep)

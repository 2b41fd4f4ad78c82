"""MIBiG product classes and Pfam counts, and the one shape both MIBiG sources are built into.

Offline (pinned wheels), MIBiG comes from GECCO's 1,870-BGC class table and its per-BGC Pfam
composition matrix (:func:`build_mibig_offline`), with the class "Other" that GECCO leaves out
named from NPLinker's MIBiG 2.0 table (:func:`assign_other`); a downloading profile reads the MIBiG 3.1
release instead (:mod:`crossgran.data.mibig_release`). Both return a :class:`MibigPart` with the
same columns, and :func:`add_domain_totals` counts both the same way, so everything downstream
runs one code path whichever source built the tables.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from crossgran.data.corpus import bag_sentences
from crossgran.data.nplinker import read_mibig2_classes
from crossgran.data.readers import read_tsv_member
from crossgran.data.report import BuildReport
from crossgran.data.sources import read_wheel_member
from crossgran.data.split import first_n

__all__ = [
    "CLASS_COLUMNS",
    "OTHER",
    "PROBE_CLASSES",
    "PRODUCT_CLASSES",
    "MibigPart",
    "add_domain_totals",
    "assign_other",
    "build_mibig",
    "build_mibig_offline",
    "frequencies_to_counts",
]

# MIBiG's six biosynthetic classes (GECCO's offline table uses the same six names).
PRODUCT_CLASSES = ("Polyketide", "NRP", "RiPP", "Terpene", "Saccharide", "Alkaloid")
# MIBiG's curated statement that none of the six applies. The release has it
# (``crossgran.data.mibig_release.MIBIG_CLASSES``); offline it comes from NPLinker's MIBiG 2.0
# table for the BGCs GECCO leaves without a class (:func:`assign_other`).
OTHER = "Other"
# The seven product classes the paper probes, "Other" included: the class probes use these.
PROBE_CLASSES = (*PRODUCT_CLASSES, OTHER)
# ``mibig_classes`` columns of every profile (before ``n_domains``, added by add_domain_totals).
CLASS_COLUMNS = ["bgc_id", "classes", *PRODUCT_CLASSES, OTHER, "labelled"]


@dataclass
class MibigPart:
    """The MIBiG tables of a build and the corpus sentences made from them.

    Offline (:func:`build_mibig_offline`) and downloading
    (:func:`crossgran.data.mibig_domains.build_mibig_release`) builders
    return this one shape, so everything after them runs the same code for every profile.
    ``extra`` holds the tables only the full release can give (compounds, halogenases).
    """

    classes: pd.DataFrame
    counts: pd.DataFrame
    sentences: dict[str, list[str]]
    ordered: bool
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)


def build_mibig_offline(
    gecco: Path, report: BuildReport, max_bgcs: int | None, *, nplinker: Path
) -> MibigPart:
    """GECCO's class table (plus "Other" from ``nplinker``'s MIBiG 2.0 table) and Pfam bags
    (order unknown, so ``ordered=False``)."""
    classes, counts = build_mibig(gecco, report, max_bgcs, nplinker=nplinker)
    return MibigPart(classes, counts, bag_sentences(counts), ordered=False)


def build_mibig(
    gecco: Path, report: BuildReport, max_bgcs: int | None, *, nplinker: Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Product classes (multi-label; "Other" named from the ``nplinker`` wheel's MIBiG 2.0
    table; the rest unlabelled kept as such) and long per-BGC Pfam counts."""
    types = read_tsv_member(
        gecco, "gecco/types/types.tsv", header=None, names=["bgc_id", "classes"]
    )
    domains = read_wheel_member(gecco, "gecco/types/domains.tsv").decode().split()
    with np.load(io.BytesIO(read_wheel_member(gecco, "gecco/types/compositions.npz"))) as coo:
        rows, cols, counts = coo["row"], coo["col"], coo["data"]
        shape = tuple(coo["shape"])
    if shape != (len(types), len(domains)):
        raise ValueError(
            f"gecco compositions.npz has shape {shape}, expected "
            f"({len(types)} BGCs in types.tsv, {len(domains)} domains in domains.tsv)"
        )
    unknown = set(types["classes"].str.split(";").explode()) - set(PRODUCT_CLASSES) - {""}
    if unknown:
        raise ValueError(
            f"gecco types.tsv has classes outside {PRODUCT_CLASSES}: {sorted(unknown)}"
        )
    classes = types.copy()
    for name in PRODUCT_CLASSES:
        classes[name] = classes["classes"].str.split(";").apply(lambda labels, n=name: n in labels)
    classes["labelled"] = classes["classes"] != ""
    long = pd.DataFrame(
        {
            "bgc_id": types["bgc_id"].to_numpy()[rows],
            "pfam": np.asarray(domains)[cols],
            "frequency": counts,
        }
    )
    long["count"] = long.groupby("bgc_id")["frequency"].transform(frequencies_to_counts)
    report.add(
        "mibig_rows_as_frequencies",
        len(types),
        "compositions.npz holds per-BGC domain *frequencies* (rows sum to 1); counts are "
        "recovered as the smallest integers with those ratios (exact up to a common factor)",
    )
    long = long.drop(columns="frequency")
    keep = set(first_n(sorted(types["bgc_id"]), max_bgcs))
    classes = classes[classes["bgc_id"].isin(keep)].sort_values("bgc_id").reset_index(drop=True)
    long = long[long["bgc_id"].isin(keep)].sort_values(["bgc_id", "pfam"]).reset_index(drop=True)
    classes = assign_other(classes, read_mibig2_classes(nplinker, PROBE_CLASSES), report)
    classes = add_domain_totals(
        classes,
        long,
        report,
        without_domains="BGCs with no Pfam domain in GECCO's compositions",
        unlabelled="BGCs with an empty class in types.tsv and no class in NPLinker's MIBiG 2.0 table",
        multilabel="BGCs with several ';'-separated classes",
    )
    return classes, long


def assign_other(classes: pd.DataFrame, mibig2: pd.DataFrame, report: BuildReport) -> pd.DataFrame:
    """``classes`` (GECCO's six) in :data:`CLASS_COLUMNS` order, with ``Other`` named for the
    BGCs GECCO leaves empty and MIBiG 2.0 (``mibig2``, from
    :func:`crossgran.data.nplinker.read_mibig2_classes`) classes as "Other" only.

    Why only those: GECCO's table drops MIBiG's "Other", so an empty class there is "Other" or
    unknown; MIBiG 2.0 tells which. Nothing else is changed: a BGC GECCO labels keeps its
    classes (even if MIBiG 2.0 adds "Other" to them, counted), and an empty one that MIBiG 2.0
    lacks, or gives another class, stays unlabelled (counted), never guessed.
    """
    listed = classes["bgc_id"].map(mibig2.set_index("bgc_id")["classes"])
    empty = classes["classes"] == ""
    other = empty & (listed == OTHER)
    out = classes.copy()
    out[OTHER] = other.to_numpy()
    out.loc[other, "classes"] = OTHER
    out["labelled"] = out["classes"] != ""
    also_other = ~empty & listed.fillna("").str.split(";").apply(lambda names: OTHER in names)
    report.add(
        "mibig_other_from_nplinker",
        int(other.sum()),
        "BGCs with an empty class in GECCO's types.tsv that NPLinker's MIBiG 2.0 table "
        "classes as 'Other' only: labelled 'Other'",
    )
    report.add(
        "mibig_unlabelled_not_in_nplinker",
        int((empty & listed.isna()).sum()),
        "BGCs with an empty class in types.tsv that NPLinker's MIBiG 2.0 table does not "
        "list: left unlabelled",
    )
    report.add(
        "mibig_unlabelled_nplinker_disagrees",
        int((empty & listed.notna() & ~other).sum()),
        "BGCs with an empty class in types.tsv that MIBiG 2.0 gives one of the six: "
        "left unlabelled (the sources disagree)",
    )
    report.add(
        "mibig_labelled_also_other_in_nplinker",
        int(also_other.sum()),
        "BGCs GECCO labels whose MIBiG 2.0 classes add 'Other': GECCO's classes kept, "
        "'Other' not added (unlike the MIBiG 3.1 release, which keeps it multi-label)",
    )
    return out[CLASS_COLUMNS]


def add_domain_totals(
    classes: pd.DataFrame,
    counts: pd.DataFrame,
    report: BuildReport,
    *,
    without_domains: str,
    unlabelled: str,
    multilabel: str,
) -> pd.DataFrame:
    """``classes`` with each BGC's ``n_domains`` from ``counts``, and the class-table counts
    reported; one definition for GECCO's table and the MIBiG release, whose notes say in
    their own source's terms which BGCs each count is about."""
    totals = counts.groupby("bgc_id")["count"].sum()
    classes["n_domains"] = classes["bgc_id"].map(totals).fillna(0).astype(int)
    report.add("mibig_bgcs", len(classes))
    report.add(
        "mibig_without_domains",
        int((classes["n_domains"] == 0).sum()),
        f"{without_domains} (kept in the class table, absent from the corpus)",
    )
    report.add(
        "mibig_unlabelled",
        int((~classes["labelled"]).sum()),
        f"{unlabelled}, kept as unlabelled (no class invented)",
    )
    report.add(
        "mibig_multilabel",
        int(classes["classes"].str.contains(";").sum()),
        f"{multilabel}, kept multi-label",
    )
    return classes


def frequencies_to_counts(frequencies: pd.Series, max_total: int = 10_000) -> pd.Series:
    """Smallest integer counts whose ratios equal ``frequencies`` (float32-rounded ratios).

    A BGC with n domains stores count/n; the first total N for which every frequency * N is
    an integer gives the counts divided by their greatest common factor.
    """
    values = frequencies.to_numpy(dtype=float)
    # int(): under numpy 1.x, round() of a float64 is a float64, which range() refuses.
    for total in range(int(round(1 / values.max())), max_total + 1):  # noqa: RUF046
        scaled = values * total
        if np.all(np.abs(scaled - np.round(scaled)) < 1e-3):
            return pd.Series(np.round(scaled).astype(int), index=frequencies.index)
    raise ValueError(
        f"domain frequencies {values[:5]}... are not ratios of integers with a "
        f"total <= {max_total}; is compositions.npz the pinned GECCO release?"
    )

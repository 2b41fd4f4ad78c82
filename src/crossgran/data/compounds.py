"""MIBiG compound structures offline, and the halogenation task's rows: one per BGC.

Why: the halogenation task asks which MIBiG BGCs with a tryptophan halogenase (PF04820) make a
halogenated compound. A downloading profile reads both halves from the MIBiG release, one row
per halogenase hit with its residues and its place in the gene-ordered sentence
(:mod:`crossgran.data.mibig_domains`). Offline there is less, and this module builds what there
is:

* ``compounds``: NPLinker's MIBiG 2.0 structures
  (:func:`crossgran.data.nplinker.read_mibig2_compounds`) of the BGCs in the class table, in
  the release table's columns (:data:`~crossgran.data.mibig_release.COMPOUND_COLUMNS`),
  ``has_halogen`` read by RDKit (:func:`~crossgran.data.mibig_release.has_halogen`; NA where
  a SMILES does not parse);
* ``halogenase_bgcs``: one row per BGC whose GECCO bag holds PF04820. GECCO keeps counts, not
  proteins, so there is no per-hit row, no residue and no position: the "domain" is the
  PF04820 token of the BGC's bag. The label is the release's rule
  (:func:`~crossgran.data.mibig_domains.halogen_labels`): any parsable structure with F, Cl, Br
  or I; NA when the BGC has no parsable structure (kept, counted, never probed).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crossgran.data.mibig_domains import halogen_labels
from crossgran.data.mibig_release import COMPOUND_COLUMNS, has_halogen
from crossgran.data.nplinker import read_mibig2_compounds
from crossgran.data.pfam import TRP_HALOGENASE
from crossgran.data.report import BuildReport

__all__ = [
    "HALOGENASE_BGC_COLUMNS",
    "build_offline_halogenation",
    "halogenase_bgcs",
    "label_compounds",
]

HALOGENASE_BGC_COLUMNS = [
    "bgc_id",
    "n_halogenase",  # PF04820 tokens in the bag (GECCO's counts, known up to a common factor)
    "n_tokens",  # the bag's length: the BGC's domain_corpus sentence
    "n_structures",  # parsable structures
    "n_unparsable",  # SMILES RDKit rejects
    "has_halogen",
]


def label_compounds(compounds: pd.DataFrame) -> pd.DataFrame:
    """``compounds`` (bgc_id, compound, smiles) in :data:`COMPOUND_COLUMNS`, ``has_halogen`` a
    nullable boolean: NA where RDKit cannot parse the SMILES (kept visible, never guessed)."""
    flags = pd.array([has_halogen(smiles) for smiles in compounds["smiles"]], dtype="boolean")
    return compounds.assign(has_halogen=flags)[COMPOUND_COLUMNS].reset_index(drop=True)


def halogenase_bgcs(counts: pd.DataFrame, compounds: pd.DataFrame) -> pd.DataFrame:
    """The task's rows (:data:`HALOGENASE_BGC_COLUMNS`): every BGC of ``counts``
    (``mibig_domain_counts``) with a PF04820 token, sorted by bgc_id, labelled from
    ``compounds`` (:func:`label_compounds`' table)."""
    per_family = counts.groupby(["bgc_id", "pfam"])["count"].sum()
    is_halogenase = per_family.index.get_level_values("pfam") == TRP_HALOGENASE
    halogenases = per_family[is_halogenase].droplevel("pfam").sort_index()
    ids = halogenases.index
    parsed = compounds["has_halogen"].notna()
    structures = compounds[parsed].groupby("bgc_id").size()
    unparsable = compounds[~parsed].groupby("bgc_id").size()
    labels = halogen_labels(compounds).reindex(ids)
    return pd.DataFrame(
        {
            "bgc_id": ids.to_numpy(),
            "n_halogenase": halogenases.to_numpy(),
            "n_tokens": per_family.groupby("bgc_id").sum().reindex(ids).to_numpy(),
            "n_structures": structures.reindex(ids, fill_value=0).to_numpy(),
            "n_unparsable": unparsable.reindex(ids, fill_value=0).to_numpy(),
            "has_halogen": labels.astype("boolean").array,
        },
        columns=HALOGENASE_BGC_COLUMNS,
    )


def _report(
    compounds: pd.DataFrame,
    outside: int,
    n_bgcs: int,
    table: pd.DataFrame,
    report: BuildReport,
) -> None:
    """The counts of the offline compound and halogenation tables, in the release build's
    names where they mean the same thing (``compounds``, ``halogenase_*``)."""
    report.add("compounds", len(compounds))
    report.add(
        "compounds_unparsable_smiles",
        int(compounds["has_halogen"].isna().sum()),
        "NPLinker MIBiG 2.0 SMILES RDKit rejects: kept with has_halogen empty, ignored by the "
        "labels",
    )
    report.add(
        "compounds_outside_class_table",
        outside,
        "NPLinker MIBiG 2.0 compounds of BGCs outside the class table (not in GECCO's table, "
        "or beyond max_bgcs): left out",
    )
    labelled = compounds.dropna(subset=["has_halogen"])["bgc_id"].nunique()
    report.add(
        "mibig_without_structure",
        n_bgcs - labelled,
        "BGCs of the class table without a parsable structure in NPLinker's MIBiG 2.0 table: "
        "no halogenation label",
    )
    label = table["has_halogen"]
    report.add(
        "halogenase_bgcs",
        len(table),
        f"BGCs whose GECCO bag holds {TRP_HALOGENASE} (Trp_halogenase): the offline "
        "halogenation task's rows, one per BGC (no protein, so no per-hit row)",
    )
    report.add("halogenase_halogenated", int(label.eq(True).sum()))
    report.add("halogenase_not_halogenated", int(label.eq(False).sum()))
    report.add(
        "halogenase_unlabelled",
        int(label.isna().sum()),
        "halogenase BGCs without a parsable structure: kept in the table, left out of the probe",
    )


def build_offline_halogenation(
    nplinker: Path, classes: pd.DataFrame, counts: pd.DataFrame, report: BuildReport
) -> dict[str, pd.DataFrame]:
    """``compounds`` and ``halogenase_bgcs`` of an offline build, for the BGCs of ``classes``
    (``mibig_classes``, so ``max_bgcs`` applies) with their ``counts`` (``mibig_domain_counts``);
    ``nplinker`` is the pinned wheel."""
    structures = read_mibig2_compounds(nplinker)
    inside = structures["bgc_id"].isin(set(classes["bgc_id"]))
    compounds = label_compounds(structures[inside])
    table = halogenase_bgcs(counts, compounds)
    _report(compounds, int((~inside).sum()), len(classes), table, report)
    return {"compounds": compounds, "halogenase_bgcs": table}

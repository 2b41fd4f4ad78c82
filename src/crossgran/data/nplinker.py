"""MIBiG 2.0 product classes and compound structures from the compound table shipped in
NPLinker's wheel.

Why this table: GECCO's class table (the offline profiles' MIBiG) knows only six classes and
leaves every BGC whose MIBiG class is "Other" empty, so those BGCs looked unlabelled. The
paper probes seven classes, "Other" included. ``nplinker==1.3.2`` ships MIBiG 2.0's compound
table with each compound's ``class:subclass`` and SMILES (pinned in
:data:`crossgran.data.sources.WHEELS`, read from the zip, never installed).
:func:`read_mibig2_classes` turns it into one row per BGC, which
:func:`crossgran.data.mibig.assign_other` uses only to name the class of BGCs GECCO leaves
empty; :func:`read_mibig2_compounds` gives its structures, the only compound structures of the
offline data, from which :mod:`crossgran.data.compounds` labels the halogenation task.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from crossgran.data.readers import read_tsv_member

__all__ = ["NPLINKER_TABLE", "NplinkerFormatError", "read_mibig2_classes", "read_mibig2_compounds"]

NPLINKER_TABLE = "nplinker/data/MIBiG2.0_compounds_with_AS_BGC_CF_NPC_classes.txt"
_ID = r"^(BGC\d{7})_(.*)$"  # compound_name is "<BGC id>_<compound name>"


class NplinkerFormatError(ValueError):
    """The MIBiG 2.0 table does not have the expected shape; the message names the row."""


def _read_table(wheel: Path, columns: Sequence[str]) -> pd.DataFrame:
    """NPLinker's MIBiG 2.0 table with ``bgc_id`` and ``compound`` split from ``compound_name``.

    A missing column (another nplinker version) or a compound name without a BGC accession
    stops the read: a silently dropped compound would change the labels read from it.
    """
    table = read_tsv_member(wheel, NPLINKER_TABLE)
    missing = [name for name in ("compound_name", *columns) if name not in table.columns]
    if missing:
        raise NplinkerFormatError(
            f"{wheel}:{NPLINKER_TABLE} lacks columns {missing}; is it nplinker==1.3.2?"
        )
    parts = table["compound_name"].str.extract(_ID)
    if parts[0].isna().any():
        bad = table.loc[parts[0].isna(), "compound_name"].head(3).tolist()
        raise NplinkerFormatError(
            f"{wheel}:{NPLINKER_TABLE}: compound names without a 'BGC0000000_' prefix: {bad}"
        )
    return table.assign(bgc_id=parts[0], compound=parts[1])


def read_mibig2_classes(wheel: Path, vocabulary: Sequence[str]) -> pd.DataFrame:
    """One row per BGC of NPLinker's MIBiG 2.0 table: ``bgc_id`` and ``classes``, the union of
    its compounds' top-level classes in ``vocabulary`` order, ';'-joined (sorted by bgc_id).

    ``class:subclass`` holds ','-separated ``Class:Subclass`` pairs (subclass may be empty); only
    the class is kept. A class outside ``vocabulary``, an empty class or a compound name without
    a BGC accession stops the read: a silently dropped or renamed class would change the labels.
    """
    table = _read_table(wheel, ["class:subclass"])
    pairs = table["class:subclass"].str.split(",").explode()
    names = pairs.str.split(":").str[0].str.strip()
    unknown = sorted(set(names) - set(vocabulary))
    if unknown:
        raise NplinkerFormatError(
            f"{wheel}:{NPLINKER_TABLE}: classes {unknown} outside {list(vocabulary)}"
        )
    order = {name: i for i, name in enumerate(vocabulary)}
    per_bgc = (
        pd.DataFrame(
            {"bgc_id": table["bgc_id"].loc[names.index].to_numpy(), "name": names.to_numpy()}
        )
        .groupby("bgc_id")["name"]
        .agg(lambda group: ";".join(sorted(set(group), key=order.__getitem__)))
    )
    return per_bgc.rename("classes").reset_index().sort_values("bgc_id", ignore_index=True)


def read_mibig2_compounds(wheel: Path) -> pd.DataFrame:
    """NPLinker's MIBiG 2.0 compounds that have a structure: ``bgc_id``, ``compound`` (the name
    after the accession) and ``smiles`` (stripped), sorted by (bgc_id, compound).

    A compound with an empty SMILES gives no row, as a MIBiG release compound without
    ``chem_struct`` gives none (:func:`crossgran.data.mibig_release.parse_json_record`): there
    is no structure to read a label from. Whether a SMILES parses is left to the caller.
    """
    table = _read_table(wheel, ["smiles"])
    table["smiles"] = table["smiles"].str.strip()
    table = table[table["smiles"] != ""]
    return table[["bgc_id", "compound", "smiles"]].sort_values(
        ["bgc_id", "compound"], kind="stable", ignore_index=True
    )

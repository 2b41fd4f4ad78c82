"""Read MIBiG 3.1 release tarballs into the table shapes :mod:`crossgran.data.mibig` builds offline.

Why: a downloading profile (``profile.downloads``, e.g. ``full``) replaces GECCO's 1,870-BGC
class table by the MIBiG release itself (``mibig_json_3.1.tar.gz`` and ``mibig_gbk_3.1.tar.gz``,
fetched by :func:`crossgran.data.remote.fetch_remote`). Downstream code must not care which
profile built a table, so :func:`read_json_release` returns ``mibig_classes`` with the offline
columns, and :func:`read_genbank_release` returns each BGC's proteins in gene order, ready for
``crossgran.data.hmm.search_domains`` + ``resolve_overlaps``
(:mod:`crossgran.data.mibig_domains` turns them into the release's tables).

Members are read straight from the tarballs (no extraction). A malformed record stops the
read with an error naming the tarball, the member and the fix: a silently dropped BGC would
change every class balance downstream.
"""

from __future__ import annotations

import json
import re
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from rdkit import Chem, RDLogger

from crossgran.data.genbank import RecordError, genbank_proteins
from crossgran.data.mibig import CLASS_COLUMNS, OTHER, PROBE_CLASSES, PRODUCT_CLASSES

__all__ = [
    "ACCESSION",
    "COMPOUND_COLUMNS",
    "HALOGEN_ATOMIC_NUMBERS",
    "MIBIG_CLASSES",
    "MibigFormatError",
    "has_halogen",
    "parse_genbank",
    "parse_json_record",
    "read_genbank_release",
    "read_json_release",
]

# MIBiG 3.1's ``cluster.biosyn_class`` vocabulary, mapped explicitly onto the seven probe
# classes (``crossgran.data.mibig.PROBE_CLASSES``). "Other" (a curated statement that none of
# the six applies) is a class like the others, as in the paper and as the offline profiles name
# it from NPLinker's MIBiG 2.0 table, so both profiles probe the same population. Any other
# value is an error.
MIBIG_CLASSES: dict[str, str] = {
    "Polyketide": "Polyketide",
    "NRP": "NRP",
    "RiPP": "RiPP",
    "Terpene": "Terpene",
    "Saccharide": "Saccharide",
    "Alkaloid": "Alkaloid",
    "Other": "Other",
}
# Halogens that occur in natural products (F, Cl, Br, I): the halogenation task's label.
HALOGEN_ATOMIC_NUMBERS = frozenset({9, 17, 35, 53})
ACCESSION = re.compile(r"BGC\d{7}")
COMPOUND_COLUMNS = ["bgc_id", "compound", "smiles", "has_halogen"]


class MibigFormatError(ValueError):
    """A MIBiG release file or record does not have the expected shape; the message says where."""


def _fix(tarball: Path) -> str:
    return (
        f"Fix: delete {tarball} and download the release again "
        "(crossgran.data.remote.fetch_remote), or drop the named record if the release is "
        "edited."
    )


def _members(tarball: Path, suffix: str) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) of every regular file ending in ``suffix``, in archive order."""
    try:
        with tarfile.open(tarball, "r:*") as archive:
            for member in archive:
                if member.isfile() and member.name.endswith(suffix):
                    handle = archive.extractfile(member)
                    if handle is None:
                        raise MibigFormatError(
                            f"{tarball}: cannot read member {member.name}. {_fix(tarball)}"
                        )
                    yield member.name, handle.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise MibigFormatError(
            f"{tarball} is not a readable tar archive ({error}). {_fix(tarball)}"
        ) from None


def has_halogen(smiles: str) -> bool | None:
    """Whether the structure contains F, Cl, Br or I; None when RDKit cannot parse the SMILES."""
    RDLogger.DisableLog("rdApp.*")
    molecule = Chem.MolFromSmiles(smiles)
    if molecule is None:
        return None
    return any(atom.GetAtomicNum() in HALOGEN_ATOMIC_NUMBERS for atom in molecule.GetAtoms())


def parse_json_record(
    record: object, source: str
) -> tuple[dict[str, object], list[dict[str, object]]]:
    """One MIBiG JSON record as (classes row, compound rows); ``source`` names it in errors.

    Compounds without ``chem_struct`` carry no structure label and give no row. A SMILES RDKit
    cannot parse is kept with ``has_halogen`` missing (NA), visible rather than guessed.
    """
    cluster = record.get("cluster") if isinstance(record, dict) else None
    if not isinstance(cluster, dict):
        raise MibigFormatError(f"{source}: no 'cluster' object; is this a MIBiG 3.1 JSON record?")
    bgc_id = cluster.get("mibig_accession")
    if not isinstance(bgc_id, str) or not ACCESSION.fullmatch(bgc_id):
        raise MibigFormatError(
            f"{source}: cluster.mibig_accession is {bgc_id!r}, expected 'BGC' and 7 digits"
        )
    labels = cluster.get("biosyn_class")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise MibigFormatError(
            f"{source}: {bgc_id} cluster.biosyn_class is {labels!r}, expected a "
            f"non-empty list of {sorted(MIBIG_CLASSES)}"
        )
    unknown = sorted(set(labels) - set(MIBIG_CLASSES))
    if unknown:
        raise MibigFormatError(
            f"{source}: {bgc_id} has biosyn_class {unknown} outside MIBiG 3.1's "
            f"{sorted(MIBIG_CLASSES)}; map them in "
            "crossgran.data.mibig_release.MIBIG_CLASSES"
        )
    mapped = {MIBIG_CLASSES[label] for label in labels}
    present = [name for name in PROBE_CLASSES if name in mapped]
    row: dict[str, object] = {
        "bgc_id": bgc_id,
        "classes": ";".join(present),
        **{name: name in mapped for name in PRODUCT_CLASSES},
        OTHER: OTHER in mapped,
        "labelled": bool(present),
    }
    compounds = cluster.get("compounds", [])
    if not isinstance(compounds, list) or not all(isinstance(c, dict) for c in compounds):
        raise MibigFormatError(f"{source}: {bgc_id} cluster.compounds is not a list of objects")
    rows = []
    for compound in compounds:
        smiles = compound.get("chem_struct")
        if smiles is None:
            continue
        if not isinstance(smiles, str) or not smiles.strip():
            raise MibigFormatError(
                f"{source}: {bgc_id} compound {compound.get('compound')!r} has "
                f"chem_struct {smiles!r}, expected a SMILES string"
            )
        rows.append(
            {
                "bgc_id": bgc_id,
                "compound": str(compound.get("compound", "")),
                "smiles": smiles.strip(),
                "has_halogen": has_halogen(smiles.strip()),
            }
        )
    return row, rows


def read_json_release(tarball: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``mibig_classes`` (offline columns plus ``Other``) and ``compounds``, sorted by bgc_id.

    Each member must be named after its accession (``.../BGC0000001.json``), as in the release;
    a mismatch or a duplicate accession means the archive is not what the tables claim it is.
    """
    tarball = Path(tarball)
    classes, compounds = [], []
    seen: dict[str, str] = {}
    for name, payload in _members(tarball, ".json"):
        source = f"{tarball}:{name}"
        try:
            record = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise MibigFormatError(
                f"{source} is not valid JSON ({error}). {_fix(tarball)}"
            ) from None
        try:
            row, rows = parse_json_record(record, source)
        except MibigFormatError as error:
            raise MibigFormatError(f"{error}. {_fix(tarball)}") from None
        bgc_id = str(row["bgc_id"])
        if Path(name).stem != bgc_id:
            raise MibigFormatError(
                f"{source} holds {bgc_id}; MIBiG names each file after its "
                f"accession. {_fix(tarball)}"
            )
        if bgc_id in seen:
            raise MibigFormatError(
                f"{source}: {bgc_id} already read from {seen[bgc_id]}. {_fix(tarball)}"
            )
        seen[bgc_id] = name
        classes.append(row)
        compounds.extend(rows)
    if not classes:
        raise MibigFormatError(f"{tarball} holds no .json records. {_fix(tarball)}")
    class_table = pd.DataFrame(classes, columns=CLASS_COLUMNS)
    class_table = class_table.sort_values("bgc_id").reset_index(drop=True)
    compound_table = pd.DataFrame(compounds, columns=COMPOUND_COLUMNS)
    compound_table["has_halogen"] = compound_table["has_halogen"].astype("boolean")
    compound_table = compound_table.sort_values(["bgc_id", "compound"], kind="stable")
    compound_table = compound_table.reset_index(drop=True)
    return class_table, compound_table


def parse_genbank(text: str, bgc_id: str, source: str) -> dict[str, str]:
    """Proteins of one BGC's GenBank text, in gene order (ascending start, records in file order).

    Keys are ``<bgc_id>:<index>:<protein_id|locus_tag|gene>``, numbered across the file's
    records: unique across the release, so all BGCs can be searched in one hmmsearch, and
    sortable back into gene order. The user-input reader's GenBank path, in its strict form:
    CDSs marked ``/pseudo`` encode no protein and are left out; any other CDS without a
    ``/translation``, or a record without CDS, is an error, since a missing protein would
    silently drop its domains from the BGC.
    """
    try:
        return genbank_proteins(text, bgc_id, source, translate_missing=False, call_genes=False)
    except RecordError as error:
        raise MibigFormatError(str(error)) from None


def read_genbank_release(tarball: Path) -> dict[str, dict[str, str]]:
    """bgc_id -> {protein key: sequence} in gene order, for every ``BGC*.gbk`` in the tarball."""
    tarball = Path(tarball)
    release: dict[str, dict[str, str]] = {}
    for name, payload in _members(tarball, ".gbk"):
        source = f"{tarball}:{name}"
        bgc_id = Path(name).stem
        if not ACCESSION.fullmatch(bgc_id):
            raise MibigFormatError(
                f"{source}: file name is not a MIBiG accession (BGC + 7 digits). {_fix(tarball)}"
            )
        if bgc_id in release:
            raise MibigFormatError(
                f"{source}: {bgc_id} appears twice in the archive. {_fix(tarball)}"
            )
        try:
            text = payload.decode("utf-8", errors="strict")
            release[bgc_id] = parse_genbank(text, bgc_id, source)
        except UnicodeDecodeError as error:
            raise MibigFormatError(
                f"{source} is not UTF-8 text ({error}). {_fix(tarball)}"
            ) from None
        except MibigFormatError as error:
            raise MibigFormatError(f"{error}. {_fix(tarball)}") from None
    if not release:
        raise MibigFormatError(f"{tarball} holds no .gbk records. {_fix(tarball)}")
    return dict(sorted(release.items()))

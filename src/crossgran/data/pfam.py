"""Pfam families: the family table (consensus, GO terms, clans) and the accessions named in code.

Why the accessions live here: the A-domain task (the NRPS adenylation domain, AMP-binding)
and the halogenation task (tryptophan halogenase) are each defined by one Pfam family, and
every module that means one of them imports it from this one place.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd

from crossgran.data import hmm
from crossgran.data.sources import read_wheel_member

__all__ = [
    "AMP_BINDING",
    "AMP_BINDING_C",
    "CLAN_COLUMNS",
    "TRP_HALOGENASE",
    "build_pfam_families",
    "read_pfam_clans",
]

AMP_BINDING = "PF00501"  # the NRPS adenylation (A) domain's Pfam family
# Its C-terminal subdomain: PARAS's A-domains run from an AMP-binding hit through this one.
AMP_BINDING_C = "PF13193"
# Tryptophan halogenase, the Pfam family that defines the paper's halogenation task.
TRP_HALOGENASE = "PF04820"
CLAN_COLUMNS = ["pfam", "clan", "clan_name", "pfam_name", "description"]


def build_pfam_families(hmms: list, gecco: Path, clans: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per Pfam family of ``hmms``, with consensus and InterPro GO terms.

    GO terms come from GECCO's InterPro table under every profile (no other pinned copy
    exists). ``clans`` (the full profile's ``Pfam-A.clans.tsv``, see :func:`read_pfam_clans`)
    adds ``clan`` and ``clan_name`` ("" for a family outside any clan); the offline table has
    no such columns, so its bytes do not depend on the full profile's code.
    """
    interpro = json.loads(read_wheel_member(gecco, "gecco/interpro/interpro.json"))
    go_by_pfam: dict[str, set[tuple[str, str, str]]] = {}
    interpro_by_pfam: dict[str, set[str]] = {}
    for entry in interpro:
        for member in entry["members"]:
            if member.startswith("PF"):
                interpro_by_pfam.setdefault(member, set()).add(entry["accession"])
                go_by_pfam.setdefault(member, set()).update(
                    (term["accession"], term["name"], term["namespace"])
                    for term in entry["go_terms"]
                )
    rows = []
    for model in hmms:
        accession = hmm.pfam_accession(hmm.text(model.accession))
        terms = sorted(go_by_pfam.get(accession, ()))
        rows.append(
            {
                "pfam": accession,
                "pfam_version": hmm.text(model.accession),
                "name": hmm.text(model.name),
                "description": hmm.text(model.description or b""),
                "length": model.M,
                "consensus": hmm.consensus_sequence(model),
                "interpro": ";".join(sorted(interpro_by_pfam.get(accession, ()))),
                "go_terms": ";".join(t[0] for t in terms),
                "go_molecular_function": ";".join(
                    t[0] for t in terms if t[2] == "molecular_function"
                ),
            }
        )
    table = pd.DataFrame(rows).sort_values("pfam").reset_index(drop=True)
    if clans is not None:
        table = table.merge(clans[["pfam", "clan", "clan_name"]], on="pfam", how="left")
        table[["clan", "clan_name"]] = table[["clan", "clan_name"]].fillna("")
    return table


def read_pfam_clans(path: Path) -> pd.DataFrame:
    """``Pfam-A.clans.tsv.gz``: accession, clan, clan name, family name, description per family.

    The release writes ``\\N`` where a family belongs to no clan; that becomes "".
    """
    try:
        table = pd.read_csv(
            path,
            sep="\t",
            header=None,
            dtype=str,
            keep_default_na=False,
            compression="gzip",
            quoting=csv.QUOTE_NONE,
        )
    except (OSError, EOFError, pd.errors.ParserError) as error:
        raise ValueError(
            f"{path} is not a readable gzip TSV ({error}); delete it and rerun to download it again"
        ) from None
    if table.shape[1] != len(CLAN_COLUMNS) or not table[0].str.fullmatch(r"PF\d{5}").all():
        raise ValueError(
            f"{path} must have {len(CLAN_COLUMNS)} columns "
            f"({', '.join(CLAN_COLUMNS)}) "
            "and Pfam accessions first; is it Pfam-A.clans.tsv.gz of Pfam 35.0? "
            "Delete it and rerun to download it again"
        )
    table.columns = CLAN_COLUMNS
    return table.replace("\\N", "")

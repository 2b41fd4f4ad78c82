"""The NRPS A-domain table: PARAS's curated adenylation domains, their substrates' properties,
and where each domain sits among its parent protein's Pfam tokens.

Why the token index: the A-domain probes read BiGCARP's representation of the parent protein's
AMP-binding token that covers the domain, and ESM's of the domain's residues, so each row must
say which token that is (-1 when none can be named, counted in the build report).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rdkit import Chem, RDLogger
from rdkit.Chem import Crippen

from crossgran.data.pfam import AMP_BINDING
from crossgran.data.readers import read_fasta_member, read_tsv_member
from crossgran.data.report import BuildReport

__all__ = [
    "CANONICAL_AMINO_ACIDS",
    "HIGH_POLARITY_LOGP",
    "PARAS_DIR",
    "PROPERTIES",
    "STACHELHAUS_IN_EXTENDED",
    "build_adomains",
    "label_properties",
    "substrate_properties",
]

PARAS_DIR = "parasect/data/database_files"
# Stachelhaus et al. 1999 code: GrsA residues 235, 236, 239, 278, 299, 301, 322, 330, 331 (+ the
# invariant K517, outside PARAS's 34-position extended signature). Indices into those 34 positions:
STACHELHAUS_IN_EXTENDED = (5, 6, 9, 12, 14, 16, 21, 29, 30)
CANONICAL_AMINO_ACIDS = frozenset(
    {
        "alanine",
        "arginine",
        "asparagine",
        "aspartic acid",
        "cysteine",
        "glutamine",
        "glutamic acid",
        "glycine",
        "histidine",
        "isoleucine",
        "leucine",
        "lysine",
        "methionine",
        "phenylalanine",
        "proline",
        "serine",
        "threonine",
        "tryptophan",
        "tyrosine",
        "valine",
    }
)
# Wildman-Crippen logP at or below this marks a highly polar substrate: of the 20 canonical amino
# acids it selects Arg, Asn, Asp, Gln, Ser and Thr (logP -1.13 ... -1.73), not Gly (-0.97).
HIGH_POLARITY_LOGP = -1.0
PROPERTIES = (
    "is_aromatic",
    "has_heterocycle",
    "high_polarity",
    "is_Val",
    "is_Gly",
    "is_canonical_aa",
)


def substrate_properties(smiles: str) -> dict[str, bool] | None:
    """Structure-derived properties of one substrate (None if RDKit cannot parse the SMILES).

    is_aromatic: any aromatic atom; has_heterocycle: any ring with a non-carbon atom (proline's
    pyrrolidine counts); high_polarity: Wildman-Crippen logP <= HIGH_POLARITY_LOGP.
    """
    molecule = Chem.MolFromSmiles(smiles)
    if molecule is None:
        return None
    rings = molecule.GetRingInfo().AtomRings()
    return {
        "is_aromatic": any(atom.GetIsAromatic() for atom in molecule.GetAtoms()),
        "has_heterocycle": any(
            any(molecule.GetAtomWithIdx(i).GetSymbol() != "C" for i in ring) for ring in rings
        ),
        "high_polarity": Crippen.MolLogP(molecule) <= HIGH_POLARITY_LOGP,
    }


def label_properties(label: str, smiles: dict[str, str]) -> dict[str, float]:
    """Properties of a (possibly ``|``-joined multi-substrate) label.

    Rule: a property is 1 when it holds for every listed substrate, 0 when for none, and NaN
    (left out of that property's probe) when the substrates disagree or a structure is missing.
    """
    substrates = label.split("|")
    per_substrate = []
    for name in substrates:
        props = substrate_properties(smiles[name]) if name in smiles else None
        if props is None:
            return {name: np.nan for name in PROPERTIES}
        props |= {
            "is_Val": name == "valine",
            "is_Gly": name == "glycine",
            "is_canonical_aa": name in CANONICAL_AMINO_ACIDS,
        }
        per_substrate.append(props)
    return {
        prop: float(values[0]) if len(set(values)) == 1 else np.nan
        for prop in PROPERTIES
        for values in [[p[prop] for p in per_substrate]]
    }


def _parent_key(domain_synonym: str) -> str:
    """``AAA33023.2.A3`` -> ``AAA33023.2``: a domain id is its protein id plus ``.A<n>``."""
    return re.sub(r"\.A\d+$", "", domain_synonym)


@dataclass(frozen=True)
class _Paras:
    """PARAS's database files, read once per build."""

    domains: dict[str, str]
    mapping: pd.DataFrame  # indexed by domain_id
    signatures: dict[str, str]
    extended: dict[str, str]
    relative: pd.DataFrame  # indexed by domain_id
    smiles: dict[str, str]
    unparsable: list[str]  # substrates whose SMILES RDKit rejects


def _read_paras(paras: Path) -> _Paras:
    domains = read_fasta_member(paras, f"{PARAS_DIR}/domains.fasta")
    mapping = read_tsv_member(paras, f"{PARAS_DIR}/domain_substrate_mapping.txt")
    mapping = mapping.set_index("domain_id")
    signatures = read_fasta_member(paras, f"{PARAS_DIR}/signatures.fasta")
    extended = read_fasta_member(paras, f"{PARAS_DIR}/extended_signatures.fasta")
    relative = read_tsv_member(paras, f"{PARAS_DIR}/signature_positions/relative_positions.txt")
    relative = relative.set_index("domain_id")
    smiles_table = read_tsv_member(paras, f"{PARAS_DIR}/smiles.tsv")
    smiles = dict(zip(smiles_table["substrate"], smiles_table["smiles"], strict=True))
    unparsable = sorted(name for name, s in smiles.items() if substrate_properties(s) is None)
    return _Paras(domains, mapping, signatures, extended, relative, smiles, unparsable)


def build_adomains(
    paras: Path,
    proteins: dict[str, str],
    hits: pd.DataFrame,
    annotated: set[str],
    report: BuildReport,
    max_adomains: int | None,
) -> pd.DataFrame:
    """A-domain table; parent proteins are matched through any ``|``-joined synonym.

    Matching uses every protein; the table keeps the domains whose parent was annotated
    (all of them, except in subset profiles), capped at ``max_adomains``.
    """
    RDLogger.DisableLog("rdApp.*")
    database = _read_paras(paras)
    synonym_to_protein = {
        synonym: protein for protein in proteins for synonym in protein.split("|")
    }
    hits_by_protein = {
        seq_id: group.sort_values("start").reset_index(drop=True)
        for seq_id, group in hits.groupby("seq_id")
    }
    rows, unmatched, not_located, no_amp = [], 0, 0, 0
    for domain_id in sorted(database.domains):
        parents = {synonym_to_protein.get(_parent_key(s)) for s in domain_id.split("|")} - {None}
        if not parents:
            unmatched += 1
            continue
        parent = min(parents)
        if parent not in annotated:
            continue
        row = _domain_row(
            database, domain_id, parent, proteins[parent], hits_by_protein.get(parent)
        )
        if row["start_in_parent"] < 0:
            not_located += 1
        elif row["amp_token_index"] < 0:
            no_amp += 1
        rows.append(row)
    table = pd.DataFrame(rows)
    if max_adomains is not None:
        table = table.head(max_adomains)
    _report_adomains(table, database, unmatched, not_located, no_amp, report)
    return table


def _domain_row(
    database: _Paras,
    domain_id: str,
    parent: str,
    parent_sequence: str,
    parent_hits: pd.DataFrame | None,
) -> dict[str, object]:
    """One A-domain's row: where it sits in its parent (-1 when not found), its AMP-binding
    token, its Stachelhaus signature and positions, and its substrate's properties."""
    sequence = database.domains[domain_id]
    start = parent_sequence.find(sequence)
    amp_index = -1
    if start >= 0:
        amp_index = _overlapping_token(parent_hits, start, start + len(sequence))
    label = database.mapping.loc[domain_id, "specificity"]
    positions = [database.relative.loc[domain_id].iloc[i] for i in STACHELHAUS_IN_EXTENDED]
    return {
        "domain_id": domain_id,
        "parent_protein": parent,
        "sequence": sequence,
        "substrate": label,
        "n_substrates": label.count("|") + 1,
        "stachelhaus": database.signatures[domain_id],
        "extended_signature": database.extended[domain_id],
        "stachelhaus_positions": " ".join(p for p in positions if p != "None"),
        "start_in_parent": start,
        "amp_token_index": amp_index,
        **label_properties(label, database.smiles),
    }


def _report_adomains(
    table: pd.DataFrame,
    database: _Paras,
    unmatched: int,
    not_located: int,
    no_amp: int,
    report: BuildReport,
) -> None:
    mapping = database.mapping
    report.add("adomains", len(table))
    report.add(
        "adomains_parent_unmatched",
        unmatched,
        "A-domains whose every id synonym misses proteins.fasta (dropped)",
    )
    report.add(
        "adomains_not_in_parent",
        not_located,
        "A-domains whose sequence is not a substring of the matched parent (no token index)",
    )
    report.add(
        "adomains_no_amp_token",
        no_amp,
        f"located A-domains with no overlapping AMP-binding ({AMP_BINDING}) hit in the parent",
    )
    report.add("substrate_labels", mapping["specificity"].nunique())
    multi = mapping["specificity"].str.contains("|", regex=False)
    report.add(
        "multi_substrate_labels",
        mapping.loc[multi, "specificity"].nunique(),
        "'|'-joined labels: a property is 1/0 only when all listed substrates agree, else NaN",
    )
    report.add("multi_substrate_domains", int(multi.sum()))
    for prop in PROPERTIES:
        report.add(f"ambiguous_{prop}", int(table[prop].isna().sum()))
    report.add(
        "unparsable_smiles",
        len(database.unparsable),
        f"{database.unparsable}: SMILES RDKit rejects (unbalanced parenthesis); their "
        "domains get NaN",
    )


def _overlapping_token(parent_hits: pd.DataFrame | None, start: int, end: int) -> int:
    """Index, in the parent's start-ordered token list, of the AMP-binding hit overlapping
    [start, end) the most; -1 when none overlaps."""
    if parent_hits is None:
        return -1
    overlap = (np.minimum(parent_hits["end"], end) - np.maximum(parent_hits["start"], start)).clip(
        lower=0
    )
    overlap = overlap.where(parent_hits["pfam"] == AMP_BINDING, 0).to_numpy()
    return int(overlap.argmax()) if overlap.max() > 0 else -1

"""Build the analysis tables from the pinned inputs (see ``crossgran.sources``).

Tables (tab-separated, deterministic bytes, so MANIFEST hashes show any change):

* ``pfam_families``   — the 2,766 Pfam 35.0 families GECCO ships (``full``: all of Pfam-A
  35.0, plus each family's clan): accession, name, description, HMM length, consensus
  sequence (ESM's input for a family), GO terms (InterPro membership);
* ``mibig_classes``   — 1,870 MIBiG BGCs (``full``: the MIBiG 3.1 release), multi-label
  product classes (empty = unlabelled);
* ``mibig_domain_counts`` — long table of per-BGC Pfam counts (GECCO's composition matrix;
  ``full``: counted from the BGCs' annotated GenBank proteins);
* ``adomains``        — PARAS's 3,653 NRPS A-domains with substrate, Stachelhaus signature and
  positions, parent protein, the parent's AMP-binding token index, substrate properties;
* ``domain_corpus``   — BiGCARP's input: Pfam-token sequences of NRPS proteins and proteome
  windows (ordered) and MIBiG BGCs: bags offline (``ordered=False``: GECCO keeps counts, not
  order), gene-ordered sentences under ``full`` (``ordered=True``);
* ``full`` only: ``compounds`` (MIBiG compounds with a structure, halogen flag) and
  ``halogenase_domains`` (the halogenation task's rows, see ``crossgran.mibig``).

The offline profiles read only PyPI wheels; ``full`` reads Pfam and MIBiG from the remote
files of ``crossgran.sources.REMOTE_FILES`` and shares everything else with them (one branch
in :func:`build_all`). Every quirk of the raw files met on the way is counted in a
:class:`BuildReport` and shown in notebook 01, so nothing is corrected silently.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from Bio import SeqIO
from rdkit import Chem, RDLogger
from rdkit.Chem import Crippen

from crossgran import hmm, mibig
from crossgran.cache import atomic_path, cache_key, sha256_file, write_text_atomic
from crossgran.mibig import PRODUCT_CLASSES
from crossgran.profiles import Profile
from crossgran.sources import (
    extract_wheel_member,
    fetch_remote,
    fetch_wheel,
    full_lock_path,
    manifest_inputs,
    manifest_remote_inputs,
    pyhmmer_file,
    read_lock,
    read_wheel_member,
)

TABLES = ("pfam_families", "mibig_classes", "mibig_domain_counts", "adomains", "domain_corpus")
FULL_TABLES = (*TABLES, "compounds", "halogenase_domains")
# The remote files the full profile's tables are built from (weights are read by 02, not here).
FULL_INPUTS = ("pfam_hmm", "pfam_clans", "mibig_json", "mibig_gbk")
CLAN_COLUMNS = ["pfam", "clan", "clan_name", "pfam_name", "description"]
PARAS_DIR = "parasect/data/database_files"
PROTEOME = "938293.PRJEB85.HG003687.faa"
AMP_BINDING = "PF00501"
# Stachelhaus et al. 1999 code: GrsA residues 235, 236, 239, 278, 299, 301, 322, 330, 331 (+ the
# invariant K517, outside PARAS's 34-position extended signature). Indices into those 34 positions:
STACHELHAUS_IN_EXTENDED = (5, 6, 9, 12, 14, 16, 21, 29, 30)
CANONICAL_AMINO_ACIDS = frozenset({
    "alanine", "arginine", "asparagine", "aspartic acid", "cysteine", "glutamine", "glutamic acid",
    "glycine", "histidine", "isoleucine", "leucine", "lysine", "methionine", "phenylalanine",
    "proline", "serine", "threonine", "tryptophan", "tyrosine", "valine"})
# Wildman-Crippen logP at or below this marks a highly polar substrate: of the 20 canonical amino
# acids it selects Arg, Asn, Asp, Gln, Ser and Thr (logP -1.13 ... -1.73), not Gly (-0.97).
HIGH_POLARITY_LOGP = -1.0
PROPERTIES = ("is_aromatic", "has_heterocycle", "high_polarity", "is_Val", "is_Gly", "is_canonical_aa")


@dataclass
class BuildReport:
    """Counts of rows and of every data quirk handled while building."""

    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, key: str, value: int, note: str | None = None) -> None:
        self.counts[key] = int(value)
        if note:
            self.notes.append(f"{key} = {value}: {note}")


# ---------------------------------------------------------------- reading the inputs

def read_fasta_text(text: str) -> dict[str, str]:
    """FASTA records in file order; a duplicate id is an error naming it (ids key every table)."""
    records: dict[str, str] = {}
    for record in SeqIO.parse(io.StringIO(text), "fasta"):
        if record.id in records:
            raise ValueError(f"duplicate FASTA id {record.id!r}; ids must be unique")
        records[record.id] = str(record.seq)
    return records


def sanitise_proteins(records: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Upper-case and drop alignment gaps (``-``, ``.``) and stop marks (``*``), which easel refuses.

    Returns the cleaned records and the ids that changed, for the report.
    """
    cleaned, changed = {}, []
    for seq_id, residues in records.items():
        fixed = re.sub(r"[-.*]", "", residues.upper())
        if fixed != residues:
            changed.append(seq_id)
        if not fixed:
            raise ValueError(f"protein {seq_id!r} is empty after removing gaps; drop the record")
        cleaned[seq_id] = fixed
    return cleaned, changed


def read_tsv_member(wheel: Path, member: str, **kwargs) -> pd.DataFrame:
    """A TSV inside a wheel; universal newlines make GECCO's CRLF files parse cleanly."""
    text = read_wheel_member(wheel, member).decode("utf-8")
    return pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False, **kwargs)


def read_fasta_member(wheel: Path, member: str) -> dict[str, str]:
    """A FASTA file inside a wheel, by record id."""
    return read_fasta_text(read_wheel_member(wheel, member).decode())


def split_of(seq_id: str, valid_fraction: float) -> str:
    """Deterministic train/valid assignment from a hash of the id (stable across subsets)."""
    bucket = int(hashlib.sha256(seq_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "valid" if bucket < valid_fraction else "train"


def _limit(ids: list[str], limit: int | None) -> list[str]:
    return ids if limit is None else ids[:limit]


# ---------------------------------------------------------------- Pfam families

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
                    (term["accession"], term["name"], term["namespace"]) for term in entry["go_terms"])
    rows = []
    for model in hmms:
        accession = hmm.pfam_accession(hmm._text(model.accession))
        terms = sorted(go_by_pfam.get(accession, ()))
        rows.append({
            "pfam": accession, "pfam_version": hmm._text(model.accession), "name": hmm._text(model.name),
            "description": hmm._text(model.description or b""), "length": model.M,
            "consensus": hmm.consensus_sequence(model),
            "interpro": ";".join(sorted(interpro_by_pfam.get(accession, ()))),
            "go_terms": ";".join(t[0] for t in terms),
            "go_molecular_function": ";".join(t[0] for t in terms if t[2] == "molecular_function"),
        })
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
        table = pd.read_csv(path, sep="\t", header=None, dtype=str, keep_default_na=False,
                            compression="gzip", quoting=csv.QUOTE_NONE)
    except (OSError, EOFError, pd.errors.ParserError) as error:
        raise ValueError(f"{path} is not a readable gzip TSV ({error}); delete it and rerun to "
                         "download it again") from None
    if table.shape[1] != len(CLAN_COLUMNS) or not table[0].str.fullmatch(r"PF\d{5}").all():
        raise ValueError(f"{path} must have {len(CLAN_COLUMNS)} columns ({', '.join(CLAN_COLUMNS)}) "
                         "and Pfam accessions first; is it Pfam-A.clans.tsv.gz of Pfam 35.0? "
                         "Delete it and rerun to download it again")
    table.columns = CLAN_COLUMNS
    return table.replace("\\N", "")


# ---------------------------------------------------------------- MIBiG

def build_mibig(gecco: Path, report: BuildReport, max_bgcs: int | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Product classes (multi-label, unlabelled kept as such) and long per-BGC Pfam counts."""
    types = read_tsv_member(gecco, "gecco/types/types.tsv", header=None, names=["bgc_id", "classes"])
    domains = read_wheel_member(gecco, "gecco/types/domains.tsv").decode().split()
    with np.load(io.BytesIO(read_wheel_member(gecco, "gecco/types/compositions.npz"))) as coo:
        rows, cols, counts = coo["row"], coo["col"], coo["data"]
        shape = tuple(coo["shape"])
    if shape != (len(types), len(domains)):
        raise ValueError(f"gecco compositions.npz has shape {shape}, expected "
                         f"({len(types)} BGCs in types.tsv, {len(domains)} domains in domains.tsv)")
    unknown = set(types["classes"].str.split(";").explode()) - set(PRODUCT_CLASSES) - {""}
    if unknown:
        raise ValueError(f"gecco types.tsv has classes outside {PRODUCT_CLASSES}: {sorted(unknown)}")
    classes = types.copy()
    for name in PRODUCT_CLASSES:
        classes[name] = classes["classes"].str.split(";").apply(lambda labels, n=name: n in labels)
    classes["labelled"] = classes["classes"] != ""
    long = pd.DataFrame({"bgc_id": types["bgc_id"].to_numpy()[rows],
                         "pfam": np.asarray(domains)[cols], "frequency": counts})
    long["count"] = long.groupby("bgc_id")["frequency"].transform(frequencies_to_counts)
    report.add("mibig_rows_as_frequencies", len(types),
               "compositions.npz holds per-BGC domain *frequencies* (rows sum to 1); counts are "
               "recovered as the smallest integers with those ratios (exact up to a common factor)")
    long = long.drop(columns="frequency")
    keep = sorted(types["bgc_id"])
    keep = set(_limit(keep, max_bgcs))
    classes = classes[classes["bgc_id"].isin(keep)].sort_values("bgc_id").reset_index(drop=True)
    long = long[long["bgc_id"].isin(keep)].sort_values(["bgc_id", "pfam"]).reset_index(drop=True)
    classes = add_domain_totals(
        classes, long, report,
        without_domains="BGCs with no Pfam domain in GECCO's compositions",
        unlabelled="BGCs with an empty class in types.tsv",
        multilabel="BGCs with several ';'-separated classes")
    return classes, long


def add_domain_totals(classes: pd.DataFrame, counts: pd.DataFrame, report: BuildReport, *,
                      without_domains: str, unlabelled: str, multilabel: str) -> pd.DataFrame:
    """``classes`` with each BGC's ``n_domains`` from ``counts``, and the class-table counts
    reported; one definition for GECCO's table and the MIBiG release, whose notes say in
    their own source's terms which BGCs each count is about."""
    totals = counts.groupby("bgc_id")["count"].sum()
    classes["n_domains"] = classes["bgc_id"].map(totals).fillna(0).astype(int)
    report.add("mibig_bgcs", len(classes))
    report.add("mibig_without_domains", int((classes["n_domains"] == 0).sum()),
               f"{without_domains} (kept in the class table, absent from the corpus)")
    report.add("mibig_unlabelled", int((~classes["labelled"]).sum()),
               f"{unlabelled}, kept as unlabelled (no class invented)")
    report.add("mibig_multilabel", int(classes["classes"].str.contains(";").sum()),
               f"{multilabel}, kept multi-label")
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
    raise ValueError(f"domain frequencies {values[:5]}... are not ratios of integers with a "
                     f"total <= {max_total}; is compositions.npz the pinned GECCO release?")


# ---------------------------------------------------------------- annotation (cached)

def annotate(proteins: dict[str, str], hmms: list, hmm_sha: str, profile: Profile) -> pd.DataFrame:
    """Overlap-resolved Pfam hits for ``proteins``, cached by (sequences, HMM file, code).

    ``hmm_sha`` names the HMMs by content: the GECCO wheel's sha256 offline, Pfam-A.hmm.gz's
    under ``full``.
    """
    digest = hashlib.sha256("".join(f">{k}\n{v}\n" for k, v in proteins.items()).encode()).hexdigest()
    path = profile.cache_dir / "hmmsearch" / f"{cache_key('hmmsearch', digest, hmm_sha)}.tsv"
    if path.exists():
        return pd.read_csv(path, sep="\t", dtype={"seq_id": str})
    resolved = hmm.resolve_overlaps(hmm.search_domains(hmms, proteins, cpus=profile.hmmer_cpus))
    with atomic_path(path) as tmp:
        resolved.to_csv(tmp, sep="\t", index=False)
    return resolved


def token_lists(hits: pd.DataFrame, seq_ids: list[str]) -> dict[str, list[str]]:
    """Pfam tokens of each protein in positional order (proteins with no hit map to [])."""
    grouped = hits.sort_values(["seq_id", "start"]).groupby("seq_id")["pfam"].apply(list)
    return {seq_id: grouped.get(seq_id, []) for seq_id in seq_ids}


# ---------------------------------------------------------------- MIBiG: the two sources

@dataclass
class MibigPart:
    """The MIBiG tables of a build and the corpus sentences made from them.

    Offline (:func:`build_mibig_offline`) and ``full`` (:func:`build_mibig_release`) builders
    return this one shape, so everything after them runs the same code for every profile.
    ``extra`` holds the tables only the full release can give (compounds, halogenases).
    """

    classes: pd.DataFrame
    counts: pd.DataFrame
    sentences: dict[str, list[str]]
    ordered: bool
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)


def build_mibig_offline(gecco: Path, report: BuildReport, max_bgcs: int | None) -> MibigPart:
    """GECCO's class table and Pfam bags (order unknown, so ``ordered=False``)."""
    classes, counts = build_mibig(gecco, report, max_bgcs)
    return MibigPart(classes, counts, bag_sentences(counts), ordered=False)


def build_mibig_release(json_tarball: Path, gbk_tarball: Path, hmms: list, hmm_sha: str,
                        profile: Profile, report: BuildReport) -> MibigPart:
    """MIBiG 3.1: classes and compounds from the JSON release, gene-ordered Pfam sentences from
    hmmsearch (gathering cutoffs, overlap resolution, cached) over the GenBank CDS translations,
    and the halogenation task's table. ``profile.max_bgcs`` keeps the first BGCs by accession.
    """
    classes, compounds = mibig.read_json_release(json_tarball)
    keep = _limit(list(classes["bgc_id"]), profile.max_bgcs)
    proteins = release_proteins(gbk_tarball, set(classes["bgc_id"]), keep, report)
    classes = classes[classes["bgc_id"].isin(keep)].reset_index(drop=True)
    compounds = compounds[compounds["bgc_id"].isin(keep)].reset_index(drop=True)
    hits = annotate({key: seq for bgc in proteins.values() for key, seq in bgc.items()},
                    hmms, hmm_sha, profile)
    report.add("mibig_domain_hits", len(hits))
    sentences = mibig.ordered_domains(hits, proteins)
    counts = mibig.domain_counts(sentences)
    classes = add_domain_totals(
        classes, counts, report,
        without_domains="BGCs without any Pfam hit in their CDS translations",
        unlabelled="BGCs whose only biosyn_class is Other",
        multilabel="BGCs with several product classes")
    labels = mibig.halogen_labels(compounds)
    report.add("compounds", len(compounds))
    report.add("compounds_unparsable_smiles", int(compounds["has_halogen"].isna().sum()),
               "chem_struct SMILES RDKit rejects: kept with has_halogen empty, ignored by the labels")
    report.add("mibig_without_structure", len(classes) - int(labels.notna().sum()),
               "BGCs without any parsable compound structure: no halogenation label")
    halogenases = mibig.halogenase_domains(mibig.sentence_hits(hits, proteins), proteins, labels)
    _report_halogenases(halogenases, report)
    return MibigPart(classes, counts, sentences, ordered=True,
                     extra={"compounds": compounds, "halogenase_domains": halogenases})


def release_proteins(gbk_tarball: Path, json_ids: set[str], keep: list[str], report: BuildReport
                     ) -> dict[str, dict[str, str]]:
    """The GenBank proteins of the BGCs ``keep`` (gene order), sanitised for easel like PARAS's.

    Records on one side only are counted, not guessed: a JSON record without GenBank keeps its
    classes but has no sentence; a GenBank record without JSON has no class and is left out.
    """
    release = mibig.read_genbank_release(gbk_tarball)
    report.add("mibig_genbank_without_json", len(set(release) - json_ids),
               "GenBank records without a JSON record (left out: no class, no compound)")
    proteins, changed = {}, []
    for bgc_id in (b for b in keep if b in release):
        proteins[bgc_id], fixed = sanitise_proteins(release[bgc_id])
        changed += fixed
    report.add("mibig_without_genbank", len(keep) - len(proteins),
               "JSON records without a GenBank record (kept in the class table, absent from the corpus)")
    report.add("mibig_proteins", sum(len(bgc) for bgc in proteins.values()))
    report.add("mibig_proteins_sanitised", len(changed),
               f"CDS translations with '-', '.' or '*' removed before hmmsearch: {changed[:5]}")
    return proteins


def _report_halogenases(table: pd.DataFrame, report: BuildReport) -> None:
    """The halogenation task's row counts, by label (NA rows are kept but never probed)."""
    label = table["has_halogen"]
    report.add("halogenase_domains", len(table),
               f"{mibig.TRP_HALOGENASE} (Trp_halogenase) hits in MIBiG proteins: the halogenation "
               "task's rows (several per BGC share its label)")
    report.add("halogenase_bgcs", table["bgc_id"].nunique())
    report.add("halogenase_halogenated", int(label.eq(True).sum()))
    report.add("halogenase_not_halogenated", int(label.eq(False).sum()))
    report.add("halogenase_unlabelled", int(label.isna().sum()),
               "halogenase rows of BGCs without a parsable compound structure: kept in the table, "
               "left out of the probe")


# ---------------------------------------------------------------- A-domains

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
        "has_heterocycle": any(any(molecule.GetAtomWithIdx(i).GetSymbol() != "C" for i in ring)
                               for ring in rings),
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
        props |= {"is_Val": name == "valine", "is_Gly": name == "glycine",
                  "is_canonical_aa": name in CANONICAL_AMINO_ACIDS}
        per_substrate.append(props)
    return {prop: float(values[0]) if len(set(values)) == 1 else np.nan
            for prop in PROPERTIES for values in [[p[prop] for p in per_substrate]]}


def _parent_key(domain_synonym: str) -> str:
    """``AAA33023.2.A3`` -> ``AAA33023.2``: a domain id is its protein id plus ``.A<n>``."""
    return re.sub(r"\.A\d+$", "", domain_synonym)


def build_adomains(paras: Path, proteins: dict[str, str], hits: pd.DataFrame, annotated: set[str],
                   report: BuildReport, max_adomains: int | None) -> pd.DataFrame:
    """A-domain table; parent proteins are matched through any ``|``-joined synonym.

    Matching uses every protein; the table keeps the domains whose parent was annotated
    (all of them, except in subset profiles), capped at ``max_adomains``.
    """
    RDLogger.DisableLog("rdApp.*")
    domains = read_fasta_member(paras, f"{PARAS_DIR}/domains.fasta")
    mapping = read_tsv_member(paras, f"{PARAS_DIR}/domain_substrate_mapping.txt").set_index("domain_id")
    signatures = read_fasta_member(paras, f"{PARAS_DIR}/signatures.fasta")
    extended = read_fasta_member(paras, f"{PARAS_DIR}/extended_signatures.fasta")
    relative = read_tsv_member(paras, f"{PARAS_DIR}/signature_positions/relative_positions.txt")
    relative = relative.set_index("domain_id")
    smiles_table = read_tsv_member(paras, f"{PARAS_DIR}/smiles.tsv")
    smiles = dict(zip(smiles_table["substrate"], smiles_table["smiles"]))
    unparsable = sorted(name for name, s in smiles.items() if substrate_properties(s) is None)

    synonym_to_protein = {synonym: protein for protein in proteins for synonym in protein.split("|")}
    hits_by_protein = {seq_id: group.sort_values("start").reset_index(drop=True)
                       for seq_id, group in hits.groupby("seq_id")}
    rows, unmatched, not_located, no_amp = [], 0, 0, 0
    for domain_id in sorted(domains):
        parents = {synonym_to_protein.get(_parent_key(s)) for s in domain_id.split("|")} - {None}
        if not parents:
            unmatched += 1
            continue
        parent = min(parents)
        if parent not in annotated:
            continue
        sequence = domains[domain_id]
        start = proteins[parent].find(sequence)
        amp_index = -1
        if start < 0:
            not_located += 1
        else:
            amp_index = _overlapping_token(hits_by_protein.get(parent), start, start + len(sequence))
            no_amp += amp_index < 0
        label = mapping.loc[domain_id, "specificity"]
        positions = [relative.loc[domain_id].iloc[i] for i in STACHELHAUS_IN_EXTENDED]
        rows.append({
            "domain_id": domain_id, "parent_protein": parent, "sequence": sequence,
            "substrate": label, "n_substrates": label.count("|") + 1,
            "stachelhaus": signatures[domain_id], "extended_signature": extended[domain_id],
            "stachelhaus_positions": " ".join(p for p in positions if p != "None"),
            "start_in_parent": start, "amp_token_index": amp_index,
            **label_properties(label, smiles),
        })
    table = pd.DataFrame(rows)
    if max_adomains is not None:
        table = table.head(max_adomains)
    report.add("adomains", len(table))
    report.add("adomains_parent_unmatched", unmatched,
               "A-domains whose every id synonym misses proteins.fasta (dropped)")
    report.add("adomains_not_in_parent", not_located,
               "A-domains whose sequence is not a substring of the matched parent (no token index)")
    report.add("adomains_no_amp_token", no_amp,
               "located A-domains with no overlapping AMP-binding (PF00501) hit in the parent")
    report.add("substrate_labels", mapping["specificity"].nunique())
    multi = mapping["specificity"].str.contains("|", regex=False)
    report.add("multi_substrate_labels", mapping.loc[multi, "specificity"].nunique(),
               "'|'-joined labels: a property is 1/0 only when all listed substrates agree, else NaN")
    report.add("multi_substrate_domains", int(multi.sum()))
    for prop in PROPERTIES:
        report.add(f"ambiguous_{prop}", int(table[prop].isna().sum()))
    report.add("unparsable_smiles", len(unparsable),
               f"{unparsable}: SMILES RDKit rejects (unbalanced parenthesis); their domains get NaN")
    return table


def _overlapping_token(parent_hits: pd.DataFrame | None, start: int, end: int) -> int:
    """Index, in the parent's start-ordered token list, of the AMP-binding hit overlapping
    [start, end) the most; -1 when none overlaps."""
    if parent_hits is None:
        return -1
    overlap = (np.minimum(parent_hits["end"], end) - np.maximum(parent_hits["start"], start)).clip(lower=0)
    overlap = overlap.where(parent_hits["pfam"] == AMP_BINDING, 0).to_numpy()
    return int(overlap.argmax()) if overlap.max() > 0 else -1


# ---------------------------------------------------------------- domain corpus

def bag_sentences(counts: pd.DataFrame) -> dict[str, list[str]]:
    """Each BGC's Pfam bag from ``mibig_domain_counts``: count times each accession, sorted.

    The offline MIBiG "sentences": GECCO stores counts only, so their order means nothing.
    """
    return {bgc_id: [p for p, c in zip(group["pfam"], group["count"]) for _ in range(c)]
            for bgc_id, group in counts.groupby("bgc_id", sort=True)}


def build_domain_corpus(nrps_tokens: dict[str, list[str]], proteome_tokens: dict[str, list[str]],
                        mibig_sentences: dict[str, list[str]], mibig_ordered: bool,
                        profile: Profile, report: BuildReport) -> pd.DataFrame:
    """BiGCARP's training sequences.

    * ``nrps``: one row per NRPS protein, its domains in order;
    * ``proteome``: the gene-ordered proteome cut into non-overlapping windows of
      ``profile.proteome_window`` genes, each window's domains concatenated in gene order;
    * ``mibig``: one row per BGC of ``mibig_sentences``, flagged ``mibig_ordered``: offline
      these are bags (:func:`bag_sentences`, ``ordered=False``; trainers must shuffle them,
      never read the order), under ``full`` gene-ordered sentences (``ordered=True``).
    Sequences without any token are dropped (counted). Single-token proteins stay: a stand-alone
    A-domain protein is one, and the A-domain probe needs its (context-free) token.
    """
    rows = [("nrps:" + seq_id, "nrps", tokens, True) for seq_id, tokens in nrps_tokens.items()]
    genes = list(proteome_tokens)
    for first in range(0, len(genes), profile.proteome_window):
        window = genes[first:first + profile.proteome_window]
        tokens = [token for gene in window for token in proteome_tokens[gene]]
        rows.append((f"proteome:{first:05d}-{first + len(window) - 1:05d}", "proteome", tokens, True))
    rows += [(bgc_id, "mibig", tokens, mibig_ordered) for bgc_id, tokens in mibig_sentences.items()]
    corpus = pd.DataFrame(rows, columns=["seq_id", "source", "token_list", "ordered"])
    short = corpus["token_list"].str.len() == 0
    report.add("corpus_dropped_empty", int(short.sum()), "sequences without any domain hit dropped")
    corpus = corpus[~short].reset_index(drop=True)
    corpus["tokens"] = corpus["token_list"].str.join(" ")
    corpus["n_tokens"] = corpus["token_list"].str.len()
    corpus["split"] = corpus["seq_id"].map(lambda seq_id: split_of(seq_id, profile.valid_fraction))
    corpus = corpus.drop(columns="token_list")[["seq_id", "source", "ordered", "split", "n_tokens", "tokens"]]
    for source, group in corpus.groupby("source"):
        report.add(f"corpus_{source}_sequences", len(group))
        report.add(f"corpus_{source}_tokens", int(group["n_tokens"].sum()))
    report.add("corpus_vocabulary", len({t for row in corpus["tokens"] for t in row.split()}))
    report.add("corpus_valid_sequences", int((corpus["split"] == "valid").sum()))
    return corpus


# ---------------------------------------------------------------- build + manifest

def table_path(profile: Profile, name: str) -> Path:
    return profile.processed_dir / f"{name}.tsv"


def load_table(profile: Profile, name: str) -> pd.DataFrame:
    """A built table; a missing one points at notebook 01 / ``crossgran data``."""
    path = table_path(profile, name)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: build the {profile.name!r} tables first "
                                f"(notebook 01_data, or `crossgran data --profile {profile.name}`)")
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""], dtype={"tokens": str})


def read_proteome() -> dict[str, str]:
    """pyhmmer's bundled bacterial proteome, proteins in gene order."""
    return read_fasta_text(pyhmmer_file(PROTEOME).read_text())


def read_nrps_proteins(paras: Path) -> tuple[dict[str, str], list[str]]:
    """PARAS's full NRPS proteins, sanitised for easel, and the ids that needed it."""
    return sanitise_proteins(read_fasta_member(paras, f"{PARAS_DIR}/proteins.fasta"))


def profile_proteins(profile: Profile, nrps: dict[str, str] | None = None
                     ) -> tuple[dict[str, str], dict[str, str]]:
    """The profile's NRPS proteins (sorted by id) and proteome proteins (gene order).

    One definition for the annotation (``build_all``) and for ESM pretraining (notebook 02),
    so both always see the same subset.
    """
    if nrps is None:
        nrps, _ = read_nrps_proteins(fetch_wheel("paras", profile.raw_dir))
    proteome = read_proteome()
    nrps_ids = _limit(sorted(nrps), profile.max_nrps_proteins)
    proteome_ids = _limit(list(proteome), profile.max_proteome_proteins)
    return {i: nrps[i] for i in nrps_ids}, {i: proteome[i] for i in proteome_ids}


def family_class_association(counts: pd.DataFrame, classes: pd.DataFrame, min_bgcs: int = 3) -> pd.Series:
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


def build_all(profile: Profile) -> BuildReport:
    """Build every table of ``profile`` into ``processed_dir`` and write the manifest.

    The one profile branch: where Pfam and MIBiG come from (GECCO's wheel offline; Pfam-A and
    the MIBiG release, fetched and hash-locked, under ``full``). NRPS proteins, the proteome,
    A-domains and the corpus are built by the same code for every profile.
    """
    profile.make_dirs()
    report = BuildReport()
    gecco = fetch_wheel("gecco", profile.raw_dir)
    paras = fetch_wheel("paras", profile.raw_dir)

    if profile.name == "full":
        lock = full_lock_path(profile.root)
        remote = {name: fetch_remote(name, profile.raw_dir, lock_path=lock) for name in FULL_INPUTS}
        hmms, hmm_sha = hmm.read_hmms(remote["pfam_hmm"]), str(read_lock(lock)["pfam_hmm"]["sha256"])
        families = build_pfam_families(hmms, gecco, read_pfam_clans(remote["pfam_clans"]))
        _report_families(families, report)
        part = build_mibig_release(remote["mibig_json"], remote["mibig_gbk"], hmms, hmm_sha,
                                   profile, report)
        remote_inputs = manifest_remote_inputs(FULL_INPUTS, lock)
    else:
        hmm_file = extract_wheel_member(gecco, "gecco/hmmer/Pfam.h3m", profile.raw_dir / "extracted")
        hmms, hmm_sha = hmm.read_hmms(hmm_file), sha256_file(gecco)
        families = build_pfam_families(hmms, gecco)
        _report_families(families, report)
        part = build_mibig_offline(gecco, report, profile.max_bgcs)
        remote_inputs = []

    nrps, changed = read_nrps_proteins(paras)
    report.add("nrps_proteins_sanitised", len(changed),
               f"records with '-', '.' or '*' removed before hmmsearch: {changed[:5]}")
    nrps_subset, proteome = profile_proteins(profile, nrps)
    nrps_ids, proteome_ids = list(nrps_subset), list(proteome)
    report.add("nrps_proteins", len(nrps_subset))
    report.add("proteome_proteins", len(proteome))

    nrps_hits = annotate(nrps_subset, hmms, hmm_sha, profile)
    proteome_hits = annotate(proteome, hmms, hmm_sha, profile)
    report.add("nrps_domain_hits", len(nrps_hits))
    report.add("proteome_domain_hits", len(proteome_hits))

    adomains = build_adomains(paras, nrps, nrps_hits, set(nrps_ids), report, profile.max_adomains)
    corpus = build_domain_corpus(token_lists(nrps_hits, nrps_ids), token_lists(proteome_hits, proteome_ids),
                                 part.sentences, part.ordered, profile, report)
    tables = {"pfam_families": families, "mibig_classes": part.classes,
              "mibig_domain_counts": part.counts, "adomains": adomains, "domain_corpus": corpus,
              **part.extra}
    for name, table in tables.items():
        with atomic_path(table_path(profile, name)) as tmp:
            table.to_csv(tmp, sep="\t", index=False, lineterminator="\n")
    write_manifest(profile, {name: len(table) for name, table in tables.items()}, report, remote_inputs)
    return report


def _report_families(families: pd.DataFrame, report: BuildReport) -> None:
    """Family counts; with clans (full), how many families have none."""
    report.add("pfam_families", len(families))
    report.add("pfam_families_with_go", int((families["go_terms"] != "").sum()))
    if "clan" in families:
        report.add("pfam_families_without_clan", int((families["clan"] == "").sum()),
                   "families outside any Pfam clan or absent from Pfam-A.clans.tsv (clan left empty)")


def write_manifest(profile: Profile, rows: dict[str, int], report: BuildReport,
                   remote_inputs: list[dict[str, object]]) -> None:
    """MANIFEST.json: every input (source, version or file, licence, sha256) and output (rows,
    sha256). ``remote_inputs`` (full profile) come from :func:`sources.manifest_remote_inputs`."""
    outputs = {name: {"file": str(table_path(profile, name).relative_to(profile.root)),
                      "rows": count, "sha256": sha256_file(table_path(profile, name))}
               for name, count in rows.items()}
    manifest = {"profile": profile.name, "inputs": manifest_inputs() + remote_inputs,
                "outputs": outputs, "counts": report.counts}
    write_text_atomic(profile.manifest_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")

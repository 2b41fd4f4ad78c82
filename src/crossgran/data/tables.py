"""Build the analysis tables of a profile from its inputs, and read them back.

Tables (tab-separated, deterministic bytes, so MANIFEST hashes show any change):

* ``pfam_families``   — the 2,766 Pfam 35.0 families GECCO ships (downloading profiles: all of
  Pfam-A 35.0, plus each family's clan): accession, name, description, HMM length, consensus
  sequence (ESM's input for a family), GO terms (InterPro membership);
* ``mibig_classes``   — 1,870 MIBiG BGCs (downloading: the MIBiG 3.1 release), multi-label
  product classes, the six of GECCO's table plus "Other" named from NPLinker's MIBiG 2.0
  table (empty = unlabelled);
* ``mibig_domain_counts`` — long table of per-BGC Pfam counts (GECCO's composition matrix;
  downloading: counted from the BGCs' annotated GenBank proteins);
* ``adomains``        — PARAS's 3,653 NRPS A-domains with substrate, Stachelhaus signature and
  positions, parent protein, the parent's AMP-binding token index, substrate properties;
* ``domain_corpus``   — BiGCARP's input: Pfam-token sequences of NRPS proteins and proteome
  windows (ordered) and MIBiG BGCs: bags offline (``ordered=False``: GECCO keeps counts, not
  order), gene-ordered sentences from the release (``ordered=True``);
* ``compounds``        — MIBiG compounds with a structure and a halogen flag (RDKit): offline
  NPLinker's MIBiG 2.0 table, downloading the MIBiG release;
* the halogenation task's rows: offline ``halogenase_bgcs``, one per BGC whose bag holds a
  tryptophan halogenase (see :mod:`crossgran.data.compounds`); downloading
  ``halogenase_domains``, one per halogenase hit in the gene-ordered proteins (see
  :mod:`crossgran.data.mibig_domains`).

The offline profiles read only PyPI wheels; a profile with ``downloads`` reads Pfam and MIBiG
from the remote files of :data:`crossgran.data.remote.REMOTE_FILES` and shares everything else
with them (one branch in :func:`build_all`). Every quirk of the raw files met on the way is
counted in a :class:`BuildReport` and shown in notebook 01, so nothing is corrected silently.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from crossgran.cache import atomic_path, sha256_file
from crossgran.data import hmm
from crossgran.data.adomains import PARAS_DIR, build_adomains
from crossgran.data.compounds import build_offline_halogenation
from crossgran.data.corpus import annotate, build_domain_corpus, token_lists
from crossgran.data.manifest import write_manifest
from crossgran.data.mibig import MibigPart, build_mibig_offline
from crossgran.data.mibig_domains import build_mibig_release
from crossgran.data.pfam import build_pfam_families, read_pfam_clans
from crossgran.data.readers import read_fasta_member, read_fasta_text, sanitise_proteins
from crossgran.data.remote import (
    FULL_INPUTS,
    fetch_remote,
    fetch_required,
    full_lock_path,
    manifest_remote_inputs,
    read_lock,
)
from crossgran.data.report import BuildReport
from crossgran.data.sources import extract_wheel_member, fetch_wheel, pyhmmer_file
from crossgran.data.split import first_n
from crossgran.profiles import Profile

__all__ = [
    "FULL_INPUTS",
    "FULL_TABLES",
    "OFFLINE_TABLES",
    "PROTEOME",
    "TABLES",
    "BuildReport",
    "build_all",
    "load_table",
    "profile_hmms",
    "profile_proteins",
    "read_nrps_proteins",
    "read_proteome",
    "table_path",
]

TABLES = ("pfam_families", "mibig_classes", "mibig_domain_counts", "adomains", "domain_corpus")
# What each kind of build writes (the manifest lists exactly these): the shared tables plus the
# compound structures and the halogenation task's rows, per BGC offline, per hit downloading.
OFFLINE_TABLES = (*TABLES, "compounds", "halogenase_bgcs")
FULL_TABLES = (*TABLES, "compounds", "halogenase_domains")
PROTEOME = "938293.PRJEB85.HG003687.faa"


def table_path(profile: Profile, name: str) -> Path:
    """Where table ``name`` of ``profile`` is written (``processed_dir/<name>.tsv``)."""
    return profile.processed_dir / f"{name}.tsv"


def load_table(profile: Profile, name: str) -> pd.DataFrame:
    """A built table; a missing one points at notebook 01 / ``crossgran data``."""
    path = table_path(profile, name)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: build the {profile.name!r} tables first "
            f"(notebook 01_data, or `crossgran data --profile {profile.name}`)"
        )
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""], dtype={"tokens": str})


def read_proteome() -> dict[str, str]:
    """pyhmmer's bundled bacterial proteome, proteins in gene order."""
    return read_fasta_text(pyhmmer_file(PROTEOME).read_text())


def read_nrps_proteins(paras: Path) -> tuple[dict[str, str], list[str]]:
    """PARAS's full NRPS proteins, sanitised for easel, and the ids that needed it."""
    return sanitise_proteins(read_fasta_member(paras, f"{PARAS_DIR}/proteins.fasta"))


def profile_proteins(
    profile: Profile, nrps: dict[str, str] | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """The profile's NRPS proteins (sorted by id) and proteome proteins (gene order).

    One definition for the annotation (``build_all``) and for ESM pretraining (notebook 02),
    so both always see the same subset.
    """
    if nrps is None:
        nrps, _ = read_nrps_proteins(fetch_wheel("paras", profile.raw_dir))
    proteome = read_proteome()
    nrps_ids = first_n(sorted(nrps), profile.max_nrps_proteins)
    proteome_ids = first_n(list(proteome), profile.max_proteome_proteins)
    return {i: nrps[i] for i in nrps_ids}, {i: proteome[i] for i in proteome_ids}


# ---------------------------------------------------------------- build steps


def profile_hmms(profile: Profile) -> tuple[list, str]:
    """(the profile's Pfam HMMs, the sha256 naming them in the annotation cache): GECCO's Pfam
    35.0 subset offline, Pfam-A.hmm.gz (fetched and hash-locked) when downloading. One place,
    so the corpus build and ``crossgran predict`` annotate with the same models."""
    if profile.downloads:
        lock = full_lock_path(profile.root)
        path = fetch_remote("pfam_hmm", profile.raw_dir, lock_path=lock)
        return hmm.read_hmms(path), str(read_lock(lock)["pfam_hmm"]["sha256"])
    gecco = fetch_wheel("gecco", profile.raw_dir)
    hmm_file = extract_wheel_member(gecco, "gecco/hmmer/Pfam.h3m", profile.raw_dir / "extracted")
    return hmm.read_hmms(hmm_file), sha256_file(gecco)


@dataclass
class _PfamAndMibig:
    """What the build's one profile branch yields: the HMMs (and the sha256 naming them in the
    annotation cache), the family table, the MIBiG part and the remote inputs to list."""

    hmms: list
    hmm_sha: str
    families: pd.DataFrame
    mibig: MibigPart
    remote_inputs: list[dict[str, object]]


def _pfam_and_mibig_from_wheels(
    profile: Profile, gecco: Path, report: BuildReport
) -> _PfamAndMibig:
    """GECCO's Pfam 35.0 subset and MIBiG class table, with "Other" and the compound structures
    (halogenation) from NPLinker's MIBiG 2.0 table (the offline profiles; fetched here, after
    gecco and paras, as only they need it)."""
    hmms, hmm_sha = profile_hmms(profile)
    families = build_pfam_families(hmms, gecco)
    _report_families(families, report)
    nplinker = fetch_wheel("nplinker", profile.raw_dir)
    part = build_mibig_offline(gecco, report, profile.max_bgcs, nplinker=nplinker)
    extra = build_offline_halogenation(nplinker, part.classes, part.counts, report)
    return _PfamAndMibig(hmms, hmm_sha, families, replace(part, extra=extra), [])


def _pfam_and_mibig_from_downloads(
    profile: Profile, gecco: Path, report: BuildReport
) -> _PfamAndMibig:
    """Pfam-A 35.0 (with clans) and the MIBiG 3.1 release, fetched and hash-locked; GO terms
    still come from GECCO's InterPro table (no other pinned copy exists). Every other remote
    file the run reads (the ESM weights) is fetched here too (:func:`fetch_required`), so
    the later notebooks read from disk only."""
    lock = full_lock_path(profile.root)
    remote = fetch_required(profile)
    hmms, hmm_sha = profile_hmms(profile)
    families = build_pfam_families(hmms, gecco, read_pfam_clans(remote["pfam_clans"]))
    _report_families(families, report)
    part = build_mibig_release(
        remote["mibig_json"], remote["mibig_gbk"], hmms, hmm_sha, profile, report
    )
    return _PfamAndMibig(hmms, hmm_sha, families, part, manifest_remote_inputs(FULL_INPUTS, lock))


def _report_families(families: pd.DataFrame, report: BuildReport) -> None:
    """Family counts; with clans (downloading profiles), how many families have none."""
    report.add("pfam_families", len(families))
    report.add("pfam_families_with_go", int((families["go_terms"] != "").sum()))
    if "clan" in families:
        report.add(
            "pfam_families_without_clan",
            int((families["clan"] == "").sum()),
            "families outside any Pfam clan or absent from Pfam-A.clans.tsv (clan left empty)",
        )


@dataclass
class _AnnotatedProteins:
    """The NRPS proteins (all, for A-domain parents) and the profile's subsets, with their hits."""

    nrps: dict[str, str]
    nrps_ids: list[str]
    proteome_ids: list[str]
    nrps_hits: pd.DataFrame
    proteome_hits: pd.DataFrame


def _annotate_proteins(
    profile: Profile, paras: Path, hmms: list, hmm_sha: str, report: BuildReport
) -> _AnnotatedProteins:
    """PARAS's NRPS proteins and the proteome, subset by the profile and annotated (cached)."""
    nrps, changed = read_nrps_proteins(paras)
    report.add(
        "nrps_proteins_sanitised",
        len(changed),
        f"records with '-', '.' or '*' removed before hmmsearch: {changed[:5]}",
    )
    nrps_subset, proteome = profile_proteins(profile, nrps)
    report.add("nrps_proteins", len(nrps_subset))
    report.add("proteome_proteins", len(proteome))
    nrps_hits = annotate(nrps_subset, hmms, hmm_sha, profile)
    proteome_hits = annotate(proteome, hmms, hmm_sha, profile)
    report.add("nrps_domain_hits", len(nrps_hits))
    report.add("proteome_domain_hits", len(proteome_hits))
    return _AnnotatedProteins(nrps, list(nrps_subset), list(proteome), nrps_hits, proteome_hits)


def _write_tables(profile: Profile, tables: dict[str, pd.DataFrame]) -> dict[str, tuple[Path, int]]:
    """Write each table atomically (fixed separator and line ends); name -> (path, rows)."""
    written = {}
    for name, table in tables.items():
        path = table_path(profile, name)
        with atomic_path(path) as tmp:
            table.to_csv(tmp, sep="\t", index=False, lineterminator="\n")
        written[name] = (path, len(table))
    return written


def build_all(profile: Profile) -> BuildReport:
    """Build every table of ``profile`` into ``processed_dir`` and write the manifest.

    The one profile branch (``profile.downloads``): where Pfam and MIBiG come from (GECCO's
    wheel offline; Pfam-A and the MIBiG release, fetched and hash-locked, when downloading).
    NRPS proteins, the proteome, A-domains and the corpus are built by the same code for every
    profile.
    """
    profile.make_dirs()
    report = BuildReport()
    gecco = fetch_wheel("gecco", profile.raw_dir)
    paras = fetch_wheel("paras", profile.raw_dir)
    branch = _pfam_and_mibig_from_downloads if profile.downloads else _pfam_and_mibig_from_wheels
    pfam_mibig = branch(profile, gecco, report)
    proteins = _annotate_proteins(profile, paras, pfam_mibig.hmms, pfam_mibig.hmm_sha, report)
    adomains = build_adomains(
        paras,
        proteins.nrps,
        proteins.nrps_hits,
        set(proteins.nrps_ids),
        report,
        profile.max_adomains,
    )
    part = pfam_mibig.mibig
    corpus = build_domain_corpus(
        token_lists(proteins.nrps_hits, proteins.nrps_ids),
        token_lists(proteins.proteome_hits, proteins.proteome_ids),
        part.sentences,
        part.ordered,
        profile,
        report,
    )
    tables = {
        "pfam_families": pfam_mibig.families,
        "mibig_classes": part.classes,
        "mibig_domain_counts": part.counts,
        "adomains": adomains,
        "domain_corpus": corpus,
        **part.extra,
    }
    write_manifest(profile, _write_tables(profile, tables), report, pfam_mibig.remote_inputs)
    return report

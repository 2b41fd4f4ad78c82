"""The MIBiG release's domain tables: gene-ordered Pfam sentences, domain counts and the
halogenation task's rows, assembled into the :class:`~crossgran.data.mibig.MibigPart` that a
downloading profile uses instead of GECCO's.

Why apart from :mod:`crossgran.data.mibig_release` (which only reads the tarballs): this is
where annotation meets the release. :func:`sentence_hits`, :func:`ordered_domains` and
:func:`domain_counts` turn resolved hmmsearch hits into BiGCARP's ordered token lists and the
``mibig_domain_counts`` long table. Unlike GECCO's bags, these keep the domain order, which is
what lets :func:`halogenase_domains` say where each tryptophan halogenase sits in its cluster's
sentence (the halogenation task's rows).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crossgran.data.corpus import annotate
from crossgran.data.mibig import MibigPart, add_domain_totals
from crossgran.data.mibig_release import read_genbank_release, read_json_release
from crossgran.data.pfam import TRP_HALOGENASE
from crossgran.data.readers import sanitise_proteins
from crossgran.data.report import BuildReport
from crossgran.data.split import first_n
from crossgran.profiles import Profile

__all__ = [
    "HALOGENASE_COLUMNS",
    "build_mibig_release",
    "domain_counts",
    "halogen_labels",
    "halogenase_domains",
    "ordered_domains",
    "release_proteins",
    "sentence_hits",
]

HALOGENASE_COLUMNS = [
    "domain_id",
    "bgc_id",
    "protein",
    "start",
    "end",
    "score",
    "token_index",
    "n_tokens",
    "sequence",
    "has_halogen",
]


def sentence_hits(hits: pd.DataFrame, proteins: dict[str, dict[str, str]]) -> pd.DataFrame:
    """``hits`` in BiGCARP sentence order, with ``bgc_id`` and ``token_index`` columns.

    A BGC's sentence is its proteins in gene order, each protein's domains by position, so
    ``token_index`` is where a hit sits in :func:`ordered_domains`'s token list: the site at
    which BiGCARP's contextual representation of that domain is read. ``hits`` are
    overlap-resolved (``crossgran.data.hmm.resolve_overlaps``) hits of the proteins of
    :func:`read_genbank_release`.
    """
    gene = {
        key: (bgc_id, index) for bgc_id, bgc in proteins.items() for index, key in enumerate(bgc)
    }
    table = hits[hits["seq_id"].isin(gene)].copy()
    table["bgc_id"] = table["seq_id"].map(lambda key: gene[key][0])
    table["gene"] = table["seq_id"].map(lambda key: gene[key][1])
    table = table.sort_values(["bgc_id", "gene", "start"], kind="stable").reset_index(drop=True)
    table["token_index"] = table.groupby("bgc_id").cumcount()
    return table.drop(columns="gene")


def ordered_domains(
    hits: pd.DataFrame, proteins: dict[str, dict[str, str]]
) -> dict[str, list[str]]:
    """Each BGC's Pfam tokens: proteins in gene order, domains by position within a protein.

    ``hits`` as for :func:`sentence_hits`, whose order this is (one definition, so a
    ``token_index`` always points into these lists); BGCs without any hit map to [].
    """
    grouped = sentence_hits(hits, proteins).groupby("bgc_id")["pfam"].apply(list)
    return {bgc_id: list(grouped.get(bgc_id, [])) for bgc_id in proteins}


def domain_counts(ordered: dict[str, list[str]]) -> pd.DataFrame:
    """``mibig_domain_counts``'s long shape (bgc_id, pfam, count), sorted as offline."""
    rows = [
        (bgc_id, pfam, tokens.count(pfam))
        for bgc_id, tokens in ordered.items()
        for pfam in set(tokens)
    ]
    table = pd.DataFrame(rows, columns=["bgc_id", "pfam", "count"])
    return table.sort_values(["bgc_id", "pfam"]).reset_index(drop=True)


def halogen_labels(compounds: pd.DataFrame) -> pd.Series:
    """Per BGC of ``compounds``: does any of its structures carry F, Cl, Br or I?

    True when any parsable structure has a halogen, False when every parsable structure lacks
    one, NA when the BGC has no parsable structure (nothing to read a label from). Unparsable
    SMILES are ignored rather than counted as halogen-free. Indexed by bgc_id (nullable bool).
    """
    parsed = compounds.dropna(subset=["has_halogen"])
    labels = parsed.groupby("bgc_id")["has_halogen"].any()
    every = pd.Index(sorted(set(compounds["bgc_id"])), name="bgc_id")
    return labels.reindex(every).astype("boolean")


def halogenase_domains(
    positioned: pd.DataFrame, proteins: dict[str, dict[str, str]], labels: pd.Series
) -> pd.DataFrame:
    """One row per tryptophan halogenase (``TRP_HALOGENASE``) hit: the halogenation task's rows.

    ``positioned`` is :func:`sentence_hits`' table, ``labels`` :func:`halogen_labels`' series
    (BGCs absent from it, i.e. without any recorded structure, get NA). ``sequence`` is the
    domain's residues (ESM's input), ``token_index`` its place in the BGC's sentence
    (BiGCARP's site) and ``n_tokens`` that sentence's length. NA-labelled rows stay in the
    table so the build report can count them; the probe leaves them out.
    """
    sentence_length = positioned.groupby("bgc_id").size()
    hits = positioned[positioned["pfam"] == TRP_HALOGENASE]
    sequences = {key: residues for bgc in proteins.values() for key, residues in bgc.items()}
    table = pd.DataFrame(
        {
            "domain_id": [
                f"{key}/{start + 1}-{end}"
                for key, start, end in zip(hits["seq_id"], hits["start"], hits["end"], strict=True)
            ],
            "bgc_id": hits["bgc_id"].to_numpy(),
            "protein": hits["seq_id"].to_numpy(),
            "start": hits["start"].to_numpy(),
            "end": hits["end"].to_numpy(),
            "score": hits["score"].to_numpy(),
            "token_index": hits["token_index"].to_numpy(),
            "n_tokens": hits["bgc_id"].map(sentence_length).to_numpy(),
            "sequence": [
                sequences[key][start:end]
                for key, start, end in zip(hits["seq_id"], hits["start"], hits["end"], strict=True)
            ],
            "has_halogen": hits["bgc_id"].map(labels).to_numpy(),
        },
        columns=HALOGENASE_COLUMNS,
    )
    table["has_halogen"] = table["has_halogen"].astype("boolean")
    return table.reset_index(drop=True)


def build_mibig_release(
    json_tarball: Path,
    gbk_tarball: Path,
    hmms: list,
    hmm_sha: str,
    profile: Profile,
    report: BuildReport,
) -> MibigPart:
    """MIBiG 3.1: classes and compounds from the JSON release, gene-ordered Pfam sentences from
    hmmsearch (gathering cutoffs, overlap resolution, cached) over the GenBank CDS translations,
    and the halogenation task's table. ``profile.max_bgcs`` keeps the first BGCs by accession.
    """
    classes, compounds = read_json_release(json_tarball)
    keep = first_n(list(classes["bgc_id"]), profile.max_bgcs)
    proteins = release_proteins(gbk_tarball, set(classes["bgc_id"]), keep, report)
    classes = classes[classes["bgc_id"].isin(keep)].reset_index(drop=True)
    compounds = compounds[compounds["bgc_id"].isin(keep)].reset_index(drop=True)
    hits = annotate(
        {key: seq for bgc in proteins.values() for key, seq in bgc.items()}, hmms, hmm_sha, profile
    )
    report.add("mibig_domain_hits", len(hits))
    sentences = ordered_domains(hits, proteins)
    counts = domain_counts(sentences)
    classes = add_domain_totals(
        classes,
        counts,
        report,
        without_domains="BGCs without any Pfam hit in their CDS translations",
        # A release record without a biosyn_class is refused (mibig_release.parse_json_record)
        # and "Other" is a class, so a release leaves none unlabelled.
        unlabelled="BGCs without a product class (biosyn_class empty)",
        multilabel="BGCs with several product classes",
    )
    labels = halogen_labels(compounds)
    report.add("compounds", len(compounds))
    report.add(
        "compounds_unparsable_smiles",
        int(compounds["has_halogen"].isna().sum()),
        "chem_struct SMILES RDKit rejects: kept with has_halogen empty, ignored by the labels",
    )
    report.add(
        "mibig_without_structure",
        len(classes) - int(labels.notna().sum()),
        "BGCs without any parsable compound structure: no halogenation label",
    )
    halogenases = halogenase_domains(sentence_hits(hits, proteins), proteins, labels)
    _report_halogenases(halogenases, report)
    return MibigPart(
        classes,
        counts,
        sentences,
        ordered=True,
        extra={"compounds": compounds, "halogenase_domains": halogenases},
    )


def release_proteins(
    gbk_tarball: Path, json_ids: set[str], keep: list[str], report: BuildReport
) -> dict[str, dict[str, str]]:
    """The GenBank proteins of the BGCs ``keep`` (gene order), sanitised for easel like PARAS's.

    Records on one side only are counted, not guessed: a JSON record without GenBank keeps its
    classes but has no sentence; a GenBank record without JSON has no class and is left out.
    """
    release = read_genbank_release(gbk_tarball)
    report.add(
        "mibig_genbank_without_json",
        len(set(release) - json_ids),
        "GenBank records without a JSON record (left out: no class, no compound)",
    )
    proteins, changed = {}, []
    for bgc_id in (b for b in keep if b in release):
        proteins[bgc_id], fixed = sanitise_proteins(release[bgc_id])
        changed += fixed
    report.add(
        "mibig_without_genbank",
        len(keep) - len(proteins),
        "JSON records without a GenBank record (kept in the class table, absent from the corpus)",
    )
    report.add("mibig_proteins", sum(len(bgc) for bgc in proteins.values()))
    report.add(
        "mibig_proteins_sanitised",
        len(changed),
        f"CDS translations with '-', '.' or '*' removed before hmmsearch: {changed[:5]}",
    )
    return proteins


def _report_halogenases(table: pd.DataFrame, report: BuildReport) -> None:
    """The halogenation task's row counts, by label (NA rows are kept but never probed)."""
    label = table["has_halogen"]
    report.add(
        "halogenase_domains",
        len(table),
        f"{TRP_HALOGENASE} (Trp_halogenase) hits in MIBiG proteins: the halogenation "
        "task's rows (several per BGC share its label)",
    )
    report.add("halogenase_bgcs", table["bgc_id"].nunique())
    report.add("halogenase_halogenated", int(label.eq(True).sum()))
    report.add("halogenase_not_halogenated", int(label.eq(False).sum()))
    report.add(
        "halogenase_unlabelled",
        int(label.isna().sum()),
        "halogenase rows of BGCs without a parsable compound structure: kept in the table, "
        "left out of the probe",
    )

"""Read MIBiG 3.1 release tarballs into the table shapes :mod:`crossgran.data.mibig` builds offline.

Why: a downloading profile (``profile.downloads``, e.g. ``full``) replaces GECCO's 1,870-BGC
class table by the MIBiG release itself (``mibig_json_3.1.tar.gz`` and ``mibig_gbk_3.1.tar.gz``,
fetched by :func:`crossgran.data.remote.fetch_remote`); :func:`build_mibig_release` makes its
:class:`~crossgran.data.mibig.MibigPart`. Downstream code must not care which profile built a
table, so :func:`read_json_release` returns ``mibig_classes`` with the offline columns, and
:func:`read_genbank_release` returns each BGC's proteins in gene order, ready for
``crossgran.data.hmm.search_domains`` + ``resolve_overlaps``; :func:`sentence_hits`,
:func:`ordered_domains` and :func:`domain_counts` then turn the resolved hits into BiGCARP's
ordered token lists and the ``mibig_domain_counts`` long table. Unlike GECCO's bags, these
keep the domain order, which is what lets :func:`halogenase_domains` say where each
tryptophan halogenase sits in its cluster's sentence (the halogenation task's rows).

Members are read straight from the tarballs (no extraction). A malformed record stops the
read with an error naming the tarball, the member and the fix: a silently dropped BGC would
change every class balance downstream.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from Bio import SeqIO
from rdkit import Chem, RDLogger

from crossgran.data.corpus import annotate
from crossgran.data.mibig import CLASS_COLUMNS, OTHER, PRODUCT_CLASSES, MibigPart, add_domain_totals
from crossgran.data.pfam import TRP_HALOGENASE
from crossgran.data.readers import sanitise_proteins
from crossgran.data.report import BuildReport
from crossgran.data.split import first_n
from crossgran.profiles import Profile

__all__ = [
    "ACCESSION",
    "COMPOUND_COLUMNS",
    "HALOGENASE_COLUMNS",
    "HALOGEN_ATOMIC_NUMBERS",
    "MIBIG_CLASSES",
    "MibigFormatError",
    "build_mibig_release",
    "domain_counts",
    "halogen_labels",
    "halogenase_domains",
    "has_halogen",
    "ordered_domains",
    "parse_genbank",
    "parse_json_record",
    "read_genbank_release",
    "read_json_release",
    "release_proteins",
    "sentence_hits",
]

# MIBiG 3.1's ``cluster.biosyn_class`` vocabulary, mapped explicitly onto the offline profiles'
# six probe classes. "Other" (a curated statement that none of the six applies) has no probe
# column of its own: it is kept in the ``Other`` column, and a BGC whose only class is Other
# gets ``classes`` "" and ``labelled`` False, as BGCs without one of the six are in GECCO's
# offline table, so both profiles probe the same kind of population. Any other value is an error.
MIBIG_CLASSES: dict[str, str | None] = {
    "Polyketide": "Polyketide",
    "NRP": "NRP",
    "RiPP": "RiPP",
    "Terpene": "Terpene",
    "Saccharide": "Saccharide",
    "Alkaloid": "Alkaloid",
    "Other": None,
}
# Halogens that occur in natural products (F, Cl, Br, I): the halogenation task's label.
HALOGEN_ATOMIC_NUMBERS = frozenset({9, 17, 35, 53})
ACCESSION = re.compile(r"BGC\d{7}")
COMPOUND_COLUMNS = ["bgc_id", "compound", "smiles", "has_halogen"]
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
    mapped = {MIBIG_CLASSES[label] for label in labels} - {None}
    present = [name for name in PRODUCT_CLASSES if name in mapped]
    row: dict[str, object] = {
        "bgc_id": bgc_id,
        "classes": ";".join(present),
        **{name: name in mapped for name in PRODUCT_CLASSES},
        OTHER: OTHER in labels,
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

    Keys are ``<bgc_id>:<index>:<protein_id|locus_tag|gene>``: unique across the release, so
    all BGCs can be searched in one hmmsearch, and sortable back into gene order. CDSs marked
    ``/pseudo`` encode no protein and are left out; any other CDS without a ``/translation``
    is an error, since a missing protein would silently drop its domains from the BGC.
    """
    try:
        records = list(SeqIO.parse(io.StringIO(text), "genbank"))
    except ValueError as error:
        raise MibigFormatError(f"{source} is not valid GenBank ({error})") from None
    if not records:
        raise MibigFormatError(f"{source} holds no GenBank record")
    proteins: dict[str, str] = {}
    for record in records:
        features = sorted(
            (f for f in record.features if f.type == "CDS"), key=lambda f: int(f.location.start)
        )
        for feature in features:
            qualifiers = feature.qualifiers
            if "pseudo" in qualifiers:
                continue
            label = next(
                (
                    qualifiers[key][0]
                    for key in ("protein_id", "locus_tag", "gene")
                    if key in qualifiers
                ),
                "cds",
            )
            if "translation" not in qualifiers:
                raise MibigFormatError(
                    f"{source}: CDS {label} at {feature.location} has no /translation"
                )
            proteins[f"{bgc_id}:{len(proteins):04d}:{label}"] = qualifiers["translation"][0]
    return proteins


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
        unlabelled="BGCs whose only biosyn_class is Other",
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

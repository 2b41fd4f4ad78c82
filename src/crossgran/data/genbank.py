"""Read a user's biosynthetic gene clusters (GenBank or protein FASTA) into proteins in gene order.

Why: ``crossgran predict`` turns a BGC into a sentence of Pfam domains, so it needs the BGC's
proteins in gene order. Users bring what antiSMASH and MIBiG write (GenBank, one or several
records per file, with or without ``/translation``, sometimes a bare nucleotide sequence) or a
protein FASTA. Each input is read the one way its content allows and the record says how
(``gene_source``, ``notes``), so a prediction is never made on proteins whose origin is hidden.
Files are told apart by content, not extension: a ``.txt`` GenBank is common, a ``.gbk`` CSV is
a mistake worth naming.

The MIBiG release reader shares the GenBank path (:func:`genbank_proteins`) in its strict form:
a release CDS without ``/translation`` or a record without CDS is an error there, not a guess.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
import pyrodigal
from Bio import SeqIO
from Bio.Data import CodonTable
from Bio.Seq import UndefinedSequenceError
from Bio.SeqFeature import AfterPosition, BeforePosition, SeqFeature
from Bio.SeqRecord import SeqRecord

from crossgran.data.readers import read_fasta_text, sanitise_proteins

__all__ = [
    "DEFAULT_TRANSL_TABLE",
    "GENE_COLUMNS",
    "GeneSource",
    "InputRecord",
    "RecordError",
    "genbank_proteins",
    "read_genbank_text",
    "read_inputs",
]

GeneSource = Literal["annotated", "translated", "pyrodigal", "fasta"]
GENE_COLUMNS = ["key", "label", "start", "end", "strand"]
# Bacterial code: GenBank's default for the organisms whose BGCs MIBiG and antiSMASH hold.
DEFAULT_TRANSL_TABLE = 11
# A FASTA made only of these letters is DNA/RNA given by mistake for proteins.
_NUCLEOTIDES = re.compile(r"[ACGTUN]+")
_FORMAT_HINT = "give an antiSMASH region or MIBiG .gbk, or a protein FASTA in gene order"


class RecordError(ValueError):
    """An input cannot give proteins; the message names the file (and record) and the fix."""


@dataclass(frozen=True, eq=False)  # eq=False: comparing the DataFrame field has no truth value
class InputRecord:
    """One BGC read from a user's file: its proteins in gene order and how they were obtained."""

    name: str
    source: str
    proteins: dict[str, str]
    genes: pd.DataFrame
    gene_source: GeneSource
    notes: list[str]


@dataclass(frozen=True)
class _Gene:
    """One protein and where its gene lies (0-based start, exclusive end; None for FASTA)."""

    label: str
    protein: str
    start: int | None = None
    end: int | None = None
    strand: int | None = None


@dataclass(frozen=True)
class _RecordGenes:
    """The genes of one GenBank record, how they were obtained, and what the user should know."""

    genes: list[_Gene]
    gene_source: GeneSource
    notes: list[str]


# ---------------------------------------------------------------- GenBank records


def _parse_genbank(text: str, source: str) -> list[SeqRecord]:
    """All records of a GenBank text, in file order; none or a parse failure is an error."""
    try:
        records = list(SeqIO.parse(io.StringIO(text), "genbank"))
    except ValueError as error:
        raise RecordError(f"{source} is not valid GenBank ({error})") from None
    if not records:
        raise RecordError(f"{source} holds no GenBank record")
    return records


def _record_name(record: SeqRecord, where: str) -> str:
    """The LOCUS name, else the accession: the name a user recognises in antiSMASH/MIBiG."""
    for name in (record.name, record.id):
        if name and name not in ("<unknown name>", "<unknown id>"):
            return name
    raise RecordError(f"{where}: record has neither a LOCUS name nor an accession; add one")


def _record_sources(source: str, count: int) -> list[str]:
    """Where each record came from; the record number only when the file holds several."""
    if count == 1:
        return [source]
    return [f"{source} (record {n} of {count})" for n in range(1, count + 1)]


def _label(feature: SeqFeature) -> str:
    """The CDS's most specific identifier: protein_id, else locus_tag, else gene."""
    qualifiers = feature.qualifiers
    for key in ("protein_id", "locus_tag", "gene"):
        if key in qualifiers:
            return qualifiers[key][0]
    return "cds"


def _five_prime_partial(feature: SeqFeature) -> bool:
    """Whether the CDS starts outside the record (``<`` on +, ``>`` on -): no start codon."""
    location = feature.location
    if location.strand == -1:
        return isinstance(location.end, AfterPosition)
    return isinstance(location.start, BeforePosition)


def _translate(feature: SeqFeature, record: SeqRecord, where: str, name: str) -> tuple[str, int]:
    """(protein, table) translated from the record as GenBank does for ``/translation``.

    A complete start codon is read as M (GTG/TTG starts would otherwise give V/L and differ
    from the annotated protein); the trailing stop is dropped, internal stops are kept.
    """
    qualifiers = feature.qualifiers
    try:
        table = int(qualifiers.get("transl_table", [DEFAULT_TRANSL_TABLE])[0])
        codon_start = int(qualifiers.get("codon_start", [1])[0])
        coding = feature.extract(record.seq)[codon_start - 1 :]
        coding = coding[: len(coding) // 3 * 3]
        protein = str(coding.translate(table=table))
        first_codon = str(coding[:3]).upper().replace("U", "T")
    except UndefinedSequenceError:
        raise RecordError(
            f"{where}: CDS {_label(feature)} at {feature.location} of record {name} "
            "has no /translation and the record has no nucleotide sequence (no ORIGIN) to "
            "translate it from; give the record with its sequence or with /translation "
            "qualifiers"
        ) from None
    except (KeyError, ValueError) as error:
        raise RecordError(
            f"{where}: CDS {_label(feature)} at {feature.location} of record {name} "
            f"cannot be translated (/transl_table or /codon_start invalid: {error}); fix the "
            "qualifier"
        ) from None
    start_codons = CodonTable.unambiguous_dna_by_id[table].start_codons
    if codon_start == 1 and not _five_prime_partial(feature) and first_codon in start_codons:
        protein = "M" + protein[1:]
    return protein.removesuffix("*"), table


def _annotated_genes(
    record: SeqRecord,
    features: list[SeqFeature],
    where: str,
    name: str,
    *,
    translate_missing: bool,
) -> _RecordGenes:
    """The record's CDS proteins in ascending start; ``/pseudo`` CDSs encode none and are left out."""
    genes, tables, pseudo = [], [], 0
    for feature in sorted(features, key=lambda f: int(f.location.start)):
        qualifiers = feature.qualifiers
        if "pseudo" in qualifiers:
            pseudo += 1
            continue
        if "translation" in qualifiers:
            protein = qualifiers["translation"][0]
        elif translate_missing:
            protein, table = _translate(feature, record, where, name)
            tables.append(table)
        else:
            raise RecordError(
                f"{where}: CDS {_label(feature)} at {feature.location} of record "
                f"{name} has no /translation (a missing protein would silently drop "
                "its domains); give the record with its /translation qualifiers"
            )
        location = feature.location
        genes.append(
            _Gene(_label(feature), protein, int(location.start), int(location.end), location.strand)
        )
    notes = []
    if tables:
        used = ", ".join(str(table) for table in sorted(set(tables)))
        notes.append(
            f"{len(tables)} CDS had no /translation: translated from the record sequence "
            f"with table {used}"
        )
    if pseudo:
        notes.append(f"{pseudo} /pseudo CDS left out (they encode no protein)")
    return _RecordGenes(genes, "translated" if tables else "annotated", notes)


def _sequence_bytes(record: SeqRecord) -> bytes:
    """The record's nucleotides, or b"" when the file gives none (no ORIGIN, a CONTIG record)."""
    try:
        return bytes(record.seq)
    except UndefinedSequenceError:
        return b""


def _called_genes(sequence: bytes) -> _RecordGenes:
    """Genes called by Prodigal's metagenomic mode: a single BGC is too short to train on."""
    finder = pyrodigal.GeneFinder(meta=True)
    genes = [
        _Gene(
            f"gene_{n}",
            gene.translate(translation_table=DEFAULT_TRANSL_TABLE, include_stop=False),
            gene.begin - 1,
            gene.end,
            gene.strand,
        )
        for n, gene in enumerate(finder.find_genes(sequence), start=1)
    ]
    note = (
        f"no CDS features: {len(genes)} genes called with pyrodigal (metagenomic mode, "
        f"translation table {DEFAULT_TRANSL_TABLE})"
    )
    return _RecordGenes(genes, "pyrodigal", [note])


def _record_genes(
    record: SeqRecord, where: str, *, translate_missing: bool, call_genes: bool
) -> _RecordGenes:
    """The proteins of one record, by the best means it allows; none at all is an error."""
    name = _record_name(record, where)
    features = [f for f in record.features if f.type == "CDS"]
    if features:
        found = _annotated_genes(record, features, where, name, translate_missing=translate_missing)
    else:
        sequence = _sequence_bytes(record)
        if not sequence:
            raise RecordError(
                f"record {name} in {where} has no CDS features and no nucleotide sequence; "
                "give the record with its CDS features or its sequence (ORIGIN)"
            )
        if not call_genes:
            raise RecordError(
                f"record {name} in {where} has no CDS features; give the annotated record"
            )
        found = _called_genes(sequence)
    if not found.genes:
        raise RecordError(
            f"record {name} in {where} gives no protein ({'; '.join(found.notes) or 'no gene'}); "
            "give a record with at least one protein-coding gene"
        )
    return found


def _genbank_records(
    text: str, source: str, *, translate_missing: bool, call_genes: bool
) -> list[tuple[str, str, _RecordGenes]]:
    """(name, source, genes) of every record of a GenBank text, in file order."""
    records = _parse_genbank(text, source)
    found = []
    for record, where in zip(records, _record_sources(source, len(records)), strict=True):
        genes = _record_genes(
            record, where, translate_missing=translate_missing, call_genes=call_genes
        )
        found.append((_record_name(record, where), where, genes))
    return found


def genbank_proteins(
    text: str,
    prefix: str,
    source: str,
    *,
    translate_missing: bool = False,
    call_genes: bool = False,
) -> dict[str, str]:
    """Proteins of every record of a GenBank text as written, keyed ``<prefix>:<index>:<label>``.

    Numbered across all records in file order, as the MIBiG release keys a BGC whose GenBank
    file holds several records; not sanitised, so the caller can report what it cleans.
    """
    proteins: dict[str, str] = {}
    for _, _, found in _genbank_records(
        text, source, translate_missing=translate_missing, call_genes=call_genes
    ):
        for gene in found.genes:
            proteins[f"{prefix}:{len(proteins):04d}:{gene.label}"] = gene.protein
    return proteins


# ---------------------------------------------------------------- input records


def _input_record(
    name: str, source: str, genes: list[_Gene], gene_source: GeneSource, notes: list[str]
) -> InputRecord:
    """An InputRecord with keys ``<name>:<index>:<label>`` and proteins cleaned for hmmsearch."""
    keys = [f"{name}:{index:04d}:{gene.label}" for index, gene in enumerate(genes)]
    try:
        proteins, changed = sanitise_proteins(
            {key: gene.protein for key, gene in zip(keys, genes, strict=True)}
        )
    except ValueError as error:
        raise RecordError(f"{source}: {error}") from None
    if changed:
        notes = [
            *notes,
            f"{len(changed)} proteins had '*', '-' or '.' removed or were upper-cased: "
            f"{changed[:3]}",
        ]
    frame = pd.DataFrame(
        {
            "key": keys,
            "label": [gene.label for gene in genes],
            **{
                column: pd.array([getattr(gene, column) for gene in genes], dtype="Int64")
                for column in ("start", "end", "strand")
            },
        },
        columns=GENE_COLUMNS,
    )
    return InputRecord(name, source, proteins, frame, gene_source, notes)


def read_genbank_text(
    text: str,
    source: str,
    *,
    translate_missing: bool,
    call_genes: bool,
    single_name: str | None = None,
) -> list[InputRecord]:
    """One InputRecord per GenBank record, in file order; ``source`` names the text in errors.

    ``translate_missing`` translates a CDS without ``/translation`` from the record sequence,
    and ``call_genes`` calls genes with pyrodigal in a record without CDS; without them either
    case is an error (the strictness a curated release deserves). ``single_name`` names the
    record of a one-record text (the file's stem: antiSMASH writes every region of a contig
    with the contig's LOCUS name, so only the file name tells two regions apart).
    """
    found = _genbank_records(
        text, source, translate_missing=translate_missing, call_genes=call_genes
    )
    if single_name is not None and len(found) == 1:
        found = [(single_name, where, genes) for _, where, genes in found]
    return [
        _input_record(name, where, genes.genes, genes.gene_source, genes.notes)
        for name, where, genes in found
    ]


def _read_fasta_record(text: str, path: Path) -> InputRecord:
    """A protein FASTA as one BGC named after the file: its records are the genes, in order."""
    try:
        records = read_fasta_text(text)
    except ValueError as error:
        raise RecordError(f"{path}: {error}") from None
    residues = [re.sub(r"[\s\-.*]", "", sequence.upper()) for sequence in records.values()]
    residues = [sequence for sequence in residues if sequence]
    if residues and all(_NUCLEOTIDES.fullmatch(sequence) for sequence in residues):
        raise RecordError(
            f"{path} holds nucleotide sequences, not proteins; give a protein FASTA in gene "
            "order or the GenBank file of the region (genes are then translated or called)"
        )
    genes = [_Gene(label, sequence) for label, sequence in records.items()]
    return _input_record(path.stem, str(path), genes, "fasta", [])


def _read_text(path: Path) -> str:
    """The file's text; a missing, unreadable or binary file is an error naming it."""
    if not path.exists():
        raise RecordError(f"{path}: no such file")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        return ""  # binary: refused by _sniff with the format message
    except OSError as error:
        raise RecordError(f"{path}: cannot be read ({error})") from None


def _sniff(text: str) -> Literal["genbank", "fasta"] | None:
    """The format the first non-blank line announces, or None."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if first.startswith("LOCUS"):
        return "genbank"
    if first.startswith(">"):
        return "fasta"
    return None


def _read_path(path: Path) -> list[InputRecord]:
    """The InputRecords of one file, whose format is told by its content."""
    text = _read_text(path)
    kind = _sniff(text)
    if kind == "genbank":
        return read_genbank_text(
            text, str(path), translate_missing=True, call_genes=True, single_name=path.stem
        )
    if kind == "fasta":
        return [_read_fasta_record(text, path)]
    raise RecordError(
        f"{path} is neither GenBank (a 'LOCUS' line) nor FASTA (a '>' line); {_FORMAT_HINT}"
    )


def _check_unique(records: list[InputRecord]) -> None:
    """Names key every prediction row: two inputs with one name would overwrite each other."""
    seen: dict[str, str] = {}
    for record in records:
        if record.name in seen:
            raise RecordError(
                f"two inputs are named {record.name!r}: {seen[record.name]} and "
                f"{record.source}; rename one (a GenBank record's LOCUS name, a FASTA's "
                "file name)"
            )
        seen[record.name] = record.source


def read_inputs(paths: Sequence[Path | str]) -> list[InputRecord]:
    """Every BGC in the given GenBank/FASTA files, in argument then file order.

    GenBank CDSs without ``/translation`` are translated and records without CDS get genes
    called with pyrodigal; each InputRecord's ``gene_source`` and ``notes`` say so.
    """
    records = [record for path in paths for record in _read_path(Path(path))]
    _check_unique(records)
    return records

"""A user's BGC files read into proteins in gene order, on the real MIBiG record BGC0001090
(pyhmmer's hash-checked copy), with the variants users bring made from it on purpose:
translations stripped, features stripped, several records, FASTA, and files that are wrong."""

from __future__ import annotations

import copy
import gzip
import io
import re
from pathlib import Path

import pytest
from Bio import SeqIO
from Bio.SeqRecord import SeqRecord

from crossgran.data.genbank import (
    GENE_COLUMNS,
    RecordError,
    genbank_proteins,
    read_genbank_text,
    read_inputs,
)
from crossgran.data.sources import pyhmmer_file

NAME = "BGC0001090"


@pytest.fixture(scope="module")
def record() -> SeqRecord:
    return SeqIO.read(pyhmmer_file(f"{NAME}.gbk"), "genbank")


@pytest.fixture(scope="module")
def translations(record: SeqRecord) -> list[str]:
    """The annotated proteins, in the file's CDS order (already ascending start)."""
    return [f.qualifiers["translation"][0] for f in record.features if f.type == "CDS"]


def genbank_text(*records: SeqRecord) -> str:
    handle = io.StringIO()
    SeqIO.write(list(records), handle, "genbank")
    return handle.getvalue()


def variant(
    record: SeqRecord,
    *,
    name: str | None = None,
    keep_translation: bool = True,
    keep_features: bool = True,
) -> SeqRecord:
    """A copy of the real record, renamed and/or without /translation or features."""
    changed = copy.deepcopy(record)
    if name is not None:
        changed.name = changed.id = name
    if not keep_features:
        changed.features = []
    if not keep_translation:
        for feature in changed.features:
            feature.qualifiers.pop("translation", None)
    return changed


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_annotated_record_gives_its_translations_in_gene_order(
    record: SeqRecord, translations: list[str]
) -> None:
    path = pyhmmer_file(f"{NAME}.gbk")
    [bgc] = read_inputs([path])
    assert (bgc.name, bgc.source, bgc.gene_source, bgc.notes) == (NAME, str(path), "annotated", [])
    assert list(bgc.proteins.values()) == translations
    assert list(bgc.proteins) == [f"{NAME}:{i:04d}:ABS{74177 + i}.1" for i in range(10)]
    assert list(bgc.genes.columns) == GENE_COLUMNS
    assert list(bgc.genes["key"]) == list(bgc.proteins)
    cds = [f for f in record.features if f.type == "CDS"]
    assert list(bgc.genes["start"]) == [int(f.location.start) for f in cds]
    assert list(bgc.genes["end"]) == [int(f.location.end) for f in cds]
    assert bgc.genes["start"].is_monotonic_increasing
    assert set(bgc.genes["strand"]) == {-1}


def test_features_listed_out_of_order_come_back_in_gene_order(
    record: SeqRecord, translations: list[str]
) -> None:
    shuffled = variant(record)
    shuffled.features.reverse()
    [bgc] = read_genbank_text(
        genbank_text(shuffled), "shuffled.gbk", translate_missing=True, call_genes=True
    )
    assert list(bgc.proteins.values()) == translations


def test_missing_translations_are_translated_like_genbank(
    tmp_path: Path, record: SeqRecord, translations: list[str]
) -> None:
    """All ten come back equal, the GTG-started ScoA/YxjC too (its first residue is M)."""
    path = write(tmp_path / "bare.gbk", genbank_text(variant(record, keep_translation=False)))
    assert "/translation" not in path.read_text()
    [bgc] = read_inputs([path])
    assert bgc.gene_source == "translated"
    assert list(bgc.proteins.values()) == translations
    assert bgc.notes == [
        "10 CDS had no /translation: translated from the record sequence with table 11"
    ]


def test_missing_translation_is_an_error_when_translation_is_off(record: SeqRecord) -> None:
    text = genbank_text(variant(record, keep_translation=False))
    with pytest.raises(
        RecordError, match=rf"^bare\.gbk: CDS ABS74177\.1 .* of record {NAME} has no /translation"
    ):
        read_genbank_text(text, "bare.gbk", translate_missing=False, call_genes=True)


def test_sequence_without_features_gets_genes_called_with_pyrodigal(
    tmp_path: Path, record: SeqRecord, translations: list[str]
) -> None:
    """Measured: pyrodigal finds 10 genes; 8 of the 10 annotated proteins exactly, all 10 with
    their C-terminus (two differ only in the chosen start codon). The bound keeps one spare."""
    path = write(tmp_path / "contig.gbk", genbank_text(variant(record, keep_features=False)))
    [bgc] = read_inputs([path])
    assert bgc.gene_source == "pyrodigal"
    assert "pyrodigal" in bgc.notes[0] and "metagenomic" in bgc.notes[0]
    called = list(bgc.proteins.values())
    assert list(bgc.genes["label"]) == [f"gene_{n}" for n in range(1, len(called) + 1)]
    assert bgc.genes["start"].is_monotonic_increasing

    def same_gene(annotated: str, found: str) -> bool:
        """Same stop, maybe another start: one is the other's tail (start residue aside)."""
        return annotated[1:].endswith(found[1:]) or found[1:].endswith(annotated[1:])

    recovered = [a for a in translations if any(same_gene(a, c) for c in called)]
    assert len(recovered) >= 9
    assert sum(a in called for a in translations) >= 7


def test_records_of_one_file_are_separate_bgcs_and_keyed_by_their_names(
    tmp_path: Path, record: SeqRecord, translations: list[str]
) -> None:
    text = genbank_text(variant(record, name="BGC_A"), variant(record, name="BGC_B"))
    path = write(tmp_path / "two.gbk", text)
    first, second = read_inputs([path])
    assert (first.name, second.name) == ("BGC_A", "BGC_B")
    assert (first.source, second.source) == (f"{path} (record 1 of 2)", f"{path} (record 2 of 2)")
    assert list(second.proteins.values()) == translations
    assert next(iter(second.proteins)) == "BGC_B:0000:ABS74177.1"


def test_release_keys_number_proteins_across_the_records_of_a_file(
    record: SeqRecord, translations: list[str]
) -> None:
    text = genbank_text(variant(record, name="BGC_A"), variant(record, name="BGC_B"))
    proteins = genbank_proteins(text, NAME, "two.gbk")
    assert list(proteins.values()) == translations * 2
    assert list(proteins)[10] == f"{NAME}:0010:ABS74177.1"


def test_protein_fasta_is_one_bgc_named_after_the_file(
    tmp_path: Path, translations: list[str]
) -> None:
    body = "".join(f">p{i} protein {i}\n{seq}\n" for i, seq in enumerate(translations))
    path = write(tmp_path / "my_cluster.faa", body.replace(translations[0], translations[0] + "*"))
    [bgc] = read_inputs([path])
    assert (bgc.name, bgc.source, bgc.gene_source) == ("my_cluster", str(path), "fasta")
    assert list(bgc.proteins.values()) == translations
    assert list(bgc.proteins)[:2] == ["my_cluster:0000:p0", "my_cluster:0001:p1"]
    assert bgc.genes[["start", "end", "strand"]].isna().all().all()
    assert bgc.notes == [
        "1 proteins had '*', '-' or '.' removed or were upper-cased: ['my_cluster:0000:p0']"
    ]


def test_several_files_in_one_call_and_names_must_be_unique(
    tmp_path: Path, translations: list[str]
) -> None:
    gbk = pyhmmer_file(f"{NAME}.gbk")
    fasta = write(tmp_path / "other.faa", f">p0\n{translations[0]}\n")
    assert [bgc.name for bgc in read_inputs([gbk, str(fasta)])] == [NAME, "other"]
    (tmp_path / "elsewhere").mkdir()
    copied = write(tmp_path / "elsewhere" / f"{NAME}.gbk", gbk.read_text())
    with pytest.raises(
        RecordError,
        match=rf"named '{NAME}': {re.escape(str(gbk))} and {re.escape(str(copied))}; rename one",
    ):
        read_inputs([gbk, copied])


def test_a_one_record_file_is_named_after_the_file(tmp_path: Path) -> None:
    """antiSMASH writes each region of a contig under the contig's LOCUS name; the file names
    (``<contig>.region001.gbk``, ...) are what tell the regions apart."""
    text = pyhmmer_file(f"{NAME}.gbk").read_text()
    first = write(tmp_path / "contig.region001.gbk", text)
    second = write(tmp_path / "contig.region002.gbk", text)
    records = read_inputs([first, second])
    assert [bgc.name for bgc in records] == ["contig.region001", "contig.region002"]
    assert not set(records[0].proteins) & set(records[1].proteins)


# ---------------------------------------------------------------- inputs that give no proteins


def no_sequence(record: SeqRecord, *, keep_features: bool) -> str:
    """The record as a GenBank CON record: a CONTIG line where ORIGIN and the sequence were."""
    text = genbank_text(variant(record, keep_translation=False, keep_features=keep_features))
    head = text[: text.index("ORIGIN")]
    return f"{head}CONTIG      join(AB000001.1:1..{len(record)})\n//\n"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("csv", r"^{path} is neither GenBank \(a 'LOCUS' line\) nor FASTA"),
        ("empty", r"^{path} is neither GenBank .* protein FASTA in gene order$"),
        ("binary", r"^{path} is neither GenBank"),
        ("no_cds_no_sequence", r"^record TEST in {path} has no CDS features and no nucleotide"),
        ("cds_no_sequence", r"^{path}: CDS ABS74177\.1 .* of record TEST has no /translation and"),
        ("all_pseudo", r"^record TEST in {path} gives no protein \(10 /pseudo CDS left out"),
        ("nucleotide_fasta", r"^{path} holds nucleotide sequences, not proteins"),
        ("duplicate_fasta_id", r"^{path}: duplicate FASTA id 'p0'"),
        ("missing", r"^{path}: no such file$"),
    ],
)
def test_inputs_without_proteins_are_errors_naming_the_file(
    tmp_path: Path, record: SeqRecord, translations: list[str], case: str, message: str
) -> None:
    path = tmp_path / f"{case}.gbk"
    renamed = variant(record, name="TEST")
    if case == "csv":
        path.write_text("bgc_id,class\nBGC0001090,NRP\n")
    elif case == "empty":
        path.write_text("")
    elif case == "binary":
        path.write_bytes(gzip.compress(pyhmmer_file(f"{NAME}.gbk").read_bytes()))
    elif case == "no_cds_no_sequence":
        path.write_text(no_sequence(renamed, keep_features=False))
    elif case == "cds_no_sequence":
        path.write_text(no_sequence(renamed, keep_features=True))
    elif case == "all_pseudo":
        for feature in renamed.features:
            feature.qualifiers["pseudo"] = [""]
        path.write_text(genbank_text(renamed))
    elif case == "nucleotide_fasta":
        cds = [f for f in record.features if f.type == "CDS"]
        path.write_text("".join(f">n{i}\n{f.extract(record.seq)}\n" for i, f in enumerate(cds)))
    elif case == "duplicate_fasta_id":
        path.write_text(f">p0\n{translations[0]}\n>p0\n{translations[1]}\n")
    with pytest.raises(RecordError, match=message.format(path=re.escape(str(path)))):
        read_inputs([path])

"""FASTA and wheel-member readers on real proteins (pyhmmer's hash-checked proteome), with the
defects a user's files bring applied to them on purpose."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossgran.data.readers import read_fasta, read_fasta_text, sanitise_proteins
from crossgran.data.tables import read_proteome
from crossgran.models.esm import LoadedEsm, embed


@pytest.fixture(scope="module")
def proteins() -> dict[str, str]:
    """Three real proteins of pyhmmer's hash-checked proteome, short enough for one window.

    The proteome's translations end in a stop ``*``; it is cut here so that every defect
    below, terminal stops included, is one the test adds on purpose."""
    proteome = read_proteome()
    chosen = [name for name in proteome if 50 <= len(proteome[name]) <= 300][:3]
    return {name: proteome[name].removesuffix("*") for name in chosen}


def test_read_fasta_text_refuses_duplicate_ids_naming_the_id(proteins: dict[str, str]) -> None:
    name, sequence = next(iter(proteins.items()))
    text = f">{name}\n{sequence}\n>{name} second copy\n{sequence}\n"
    with pytest.raises(ValueError, match=rf"duplicate FASTA id '{name}'.*must be unique"):
        read_fasta_text(text)


def test_sanitise_removes_gaps_lowercase_and_stops_and_reports_the_ids(
    proteins: dict[str, str],
) -> None:
    first, second, third = proteins
    raw = {
        first: proteins[first][:20].lower() + "-" + proteins[first][20:] + "*",
        second: proteins[second][:30] + "*" + proteins[second][30:],  # internal stop
        third: proteins[third],
    }  # already clean
    cleaned, changed = sanitise_proteins(raw)
    assert cleaned == proteins
    assert changed == [first, second]


@pytest.mark.parametrize("residues", ["", "--..*"], ids=["empty", "gaps-only"])
def test_sanitise_names_a_record_left_empty_and_the_fix(
    proteins: dict[str, str], residues: str
) -> None:
    name = next(iter(proteins))
    records = read_fasta_text(f">{name}\n{proteins[name]}\n>blank_record\n{residues}\n")
    with pytest.raises(ValueError, match=r"'blank_record' is empty.*drop the record"):
        sanitise_proteins(records)


def test_read_fasta_refuses_duplicate_ids_naming_file_and_id(
    proteins: dict[str, str], tmp_path: Path
) -> None:
    name, sequence = next(iter(proteins.items()))
    fasta = tmp_path / "twice.faa"
    fasta.write_text(f">{name}\n{sequence}\n>{name}\n{sequence}\n")
    with pytest.raises(ValueError, match=rf"{fasta}: duplicate FASTA id '{name}'"):
        read_fasta(fasta)


def test_read_fasta_passes_case_stops_and_empty_records_on_for_embed_to_judge(
    proteins: dict[str, str], tiny_esm: LoadedEsm, tmp_path: Path
) -> None:
    (first, second), sequences = list(proteins)[:2], list(proteins.values())
    fasta = tmp_path / "messy.faa"
    fasta.write_text(
        f">{first}\n{sequences[0].lower()}*\n>hollow\n>{second}\n"
        f"{sequences[1][:25]}*{sequences[1][25:]}\n"
    )
    records = read_fasta(fasta)
    assert records == {
        first: sequences[0].lower() + "*",
        "hollow": "",
        second: sequences[1][:25] + "*" + sequences[1][25:],
    }
    with pytest.raises(ValueError) as caught:
        embed(records, tiny_esm, [-1])
    message = str(caught.value)
    assert message.startswith("2 invalid sequence record(s)")
    assert "'hollow': empty sequence" in message
    assert f"'{second}': characters that are not amino acids: '*'" in message

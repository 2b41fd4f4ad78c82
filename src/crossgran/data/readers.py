"""Readers of the raw text inputs: FASTA files and texts, and TSV/FASTA members of wheels.

Why one place: ids key every table and every cached result, so every reader refuses a
duplicate id the same way, and the one clean-up pyhmmer needs (:func:`sanitise_proteins`)
reports what it changed instead of correcting silently.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd
from Bio import SeqIO

from crossgran.data.sources import read_wheel_member

__all__ = [
    "read_fasta",
    "read_fasta_member",
    "read_fasta_text",
    "read_tsv_member",
    "sanitise_proteins",
]


def read_fasta_text(text: str) -> dict[str, str]:
    """FASTA records in file order; a duplicate id is an error naming it (ids key every table)."""
    records: dict[str, str] = {}
    for record in SeqIO.parse(io.StringIO(text), "fasta"):
        if record.id in records:
            raise ValueError(f"duplicate FASTA id {record.id!r}; ids must be unique")
        records[record.id] = str(record.seq)
    return records


def read_fasta(path: Path | str) -> dict[str, str]:
    """Records of a FASTA file by id, as written (``embed`` validates the residues and names
    any bad record); a duplicate id is an error naming the file (results are keyed by id), and
    so is a file that is not text at all (a binary file given by mistake)."""
    try:
        return read_fasta_text(Path(path).read_text())
    except UnicodeDecodeError:
        raise ValueError(
            f"{path} is not a text file; give a protein FASTA file ('>id' lines, "
            "then amino-acid letters)"
        ) from None
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def sanitise_proteins(records: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Upper-case and drop alignment gaps (``-``, ``.``) and stop marks (``*``), which easel
    refuses.

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

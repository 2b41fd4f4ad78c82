"""Pfam annotation with pyhmmer: hmmsearch with gathering cutoffs, overlap resolution, consensus.

Why this shape: BiGCARP reads a BGC as the ordered list of Pfam domains of its genes.
We reproduce antiSMASH/BiGCARP's recipe on the offline data: search every protein with
every Pfam HMM using the family's curated gathering threshold, then, where two families
claim overlapping stretches of the same protein, keep the best-scoring one, and order the
survivors by position.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd
import pyhmmer
from pyhmmer.easel import Alphabet, DigitalSequenceBlock, TextSequence
from pyhmmer.plan7 import HMM, HMMFile

__all__ = [
    "AMINO",
    "HIT_COLUMNS",
    "consensus_sequence",
    "digitize",
    "pfam_accession",
    "read_hmms",
    "resolve_overlaps",
    "search_domains",
    "text",
]

HIT_COLUMNS = ["seq_id", "pfam", "pfam_name", "start", "end", "score", "i_evalue"]
AMINO = Alphabet.amino()


def pfam_accession(versioned: str) -> str:
    """``PF00501.31`` -> ``PF00501``: tokens must not change with a Pfam point release."""
    return versioned.split(".", 1)[0]


def read_hmms(path: Path) -> list[HMM]:
    """All HMMs of a pressed ``.h3m``, plain text or gzip-compressed text (``.gz``) HMM file.

    A ``.gz`` file (Pfam's ``Pfam-A.hmm.gz``) is streamed through Python's gzip module into
    pyhmmer's file-object reader: no decompressed copy on disk, and no dependence on the
    external ``gzip -dc`` pipe that HMMER opens for ``.gz`` paths.
    """
    if Path(path).suffix == ".gz":
        with gzip.open(path, "rb") as compressed, HMMFile(compressed) as handle:
            return list(handle)
    with HMMFile(path) as handle:
        return list(handle)


def digitize(sequences: Mapping[str, str]) -> DigitalSequenceBlock:
    """Digital protein sequences for pyhmmer; a record easel refuses is named in the error."""
    block = DigitalSequenceBlock(AMINO)
    for seq_id, residues in sequences.items():
        try:
            block.append(TextSequence(name=seq_id.encode(), sequence=residues).digitize(AMINO))
        except ValueError as error:
            raise ValueError(
                f"protein {seq_id!r} cannot be digitised ({error}); remove "
                "characters other than amino-acid letters first"
            ) from None
    return block


def search_domains(
    hmms: Iterable[HMM], sequences: Mapping[str, str], cpus: int = 2
) -> pd.DataFrame:
    """Every domain hit that passes its family's gathering cutoff, one row per domain.

    ``start`` is 0-based and ``end`` exclusive (Python slicing of the protein);
    ``score`` is the domain bit score used to settle overlaps.
    """
    rows = []
    targets = digitize(sequences)
    searched = pyhmmer.hmmer.hmmsearch(list(hmms), targets, cpus=cpus, bit_cutoffs="gathering")
    for top_hits in searched:
        query = top_hits.query
        for hit in top_hits:
            if not hit.included:
                continue
            for domain in hit.domains:
                if not domain.included:
                    continue
                rows.append(
                    (
                        hit.name if isinstance(hit.name, str) else hit.name.decode(),
                        pfam_accession(text(query.accession)),
                        text(query.name),
                        domain.env_from - 1,
                        domain.env_to,
                        domain.score,
                        domain.i_evalue,
                    )
                )
    return pd.DataFrame(rows, columns=HIT_COLUMNS)


def text(value: str | bytes) -> str:
    """pyhmmer's names and accessions as ``str`` (bytes in some pyhmmer versions, str in others)."""
    return value.decode() if isinstance(value, bytes) else value


def resolve_overlaps(hits: pd.DataFrame) -> pd.DataFrame:
    """Per protein, keep the best-scoring hit wherever hits overlap, then order by start.

    Greedy by descending score (ties: earlier start, then accession, for determinism):
    a hit is kept only if it shares no residue with an already kept hit.
    """
    kept = []
    ranked = hits.sort_values(
        ["seq_id", "score", "start", "pfam"], ascending=[True, False, True, True]
    )
    for _, group in ranked.groupby("seq_id", sort=True):
        taken: list[tuple[int, int]] = []
        for row in group.itertuples(index=False):
            if all(row.end <= start or row.start >= end for start, end in taken):
                taken.append((row.start, row.end))
                kept.append(row)
    resolved = pd.DataFrame(kept, columns=HIT_COLUMNS)
    return resolved.sort_values(["seq_id", "start"], kind="stable").reset_index(drop=True)


def consensus_sequence(hmm: HMM) -> str:
    """The HMM's consensus residues in upper case (lower case marks weak conservation only)."""
    return text(hmm.consensus).upper()

"""Pfam-domain tokens: the vocabulary and the corpus table BiGCARP reads.

Why a class rather than a dict: unknown tokens must be counted, not silently mapped, because
a representation built from ``<unk>`` rows would look like a real family's.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from crossgran.cache import write_text_atomic

PAD, MASK, UNK = "<pad>", "<mask>", "<unk>"
SPECIALS = (PAD, MASK, UNK)
# The columns of the domain corpus (``domain_corpus.tsv``, built by crossgran.data.corpus)
# that this package reads, and what each holds.
CORPUS_COLUMNS: Mapping[str, str] = {
    "seq_id": "unique row id: 'nrps:<protein>' for NRPS proteins, the BGC id for MIBiG",
    "source": "'nrps', 'proteome' or 'mibig'; 'mibig' rows are the BGCs given per-BGC vectors",
    "tokens": "space-separated Pfam accessions (an empty string is a row without domains)",
    "ordered": "True when the tokens are in gene order, False for a bag (domain counts only)",
    "split": "'train' or 'valid' (the masked-token validation loss uses 'valid' rows)",
}

__all__ = ["CORPUS_COLUMNS", "MASK", "PAD", "SPECIALS", "UNK", "Vocabulary", "split_tokens"]


class Vocabulary:
    """Token -> index map: specials plus the Pfam accessions of a corpus.

    ``index`` may map several names to one index (aliases: e.g. a checkpoint that groups
    Pfam accessions into its own domain tokens), and ``size`` may exceed the largest index.
    Unknown tokens map to ``unk_index`` and are counted in ``unknown_counts``.

    ``prefix``: indices the model reads before every sentence, outside the sentence itself
    (its representations are dropped, so token i of a sentence stays row i). Empty for runs
    trained here; the official BiGCARP checkpoints were trained with a BGC-class token in
    front of every cluster and are read with ``<mask>`` there, the class left unknown
    (:mod:`crossgran.models.bigcarp.official`).
    """

    def __init__(
        self,
        index: Mapping[str, int],
        pad_index: int,
        mask_index: int,
        unk_index: int,
        size: int | None = None,
        prefix: Sequence[int] = (),
    ):
        self.index = dict(index)
        self.pad_index, self.mask_index, self.unk_index = pad_index, mask_index, unk_index
        self.size = size if size is not None else max(self.index.values()) + 1
        self.prefix = tuple(int(i) for i in prefix)
        self.unknown_counts: Counter[str] = Counter()
        specials = {pad_index, mask_index, unk_index}
        self.families = sorted(name for name, i in self.index.items() if i not in specials)
        # Indices a BERT "random replacement" may draw: real families, never specials.
        self.family_indices = np.array(
            sorted({self.index[name] for name in self.families}), dtype=np.int64
        )

    @classmethod
    def from_token_lists(cls, token_lists: Sequence[Sequence[str]]) -> Vocabulary:
        """Specials at 0..2, then every distinct token sorted, so the indices are reproducible."""
        names = sorted({token for tokens in token_lists for token in tokens} - set(SPECIALS))
        index = {name: i for i, name in enumerate((*SPECIALS, *names))}
        return cls(index, index[PAD], index[MASK], index[UNK])

    @classmethod
    def from_corpus(cls, corpus: pd.DataFrame) -> Vocabulary:
        """All families of all rows (both splits): family representations need every family,
        and knowing that a token exists reveals nothing of the masked-token targets."""
        return cls.from_token_lists(split_tokens(corpus))

    def __len__(self) -> int:
        return self.size

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Indices of ``tokens``; unknown names become ``<unk>`` and are counted."""
        ids = []
        for token in tokens:
            i = self.index.get(token)
            if i is None:
                self.unknown_counts[token] += 1
                i = self.unk_index
            ids.append(i)
        return ids

    def to_json(self) -> dict:
        """The vocabulary as JSON; ``prefix`` only when there is one, so that the vocab.json
        of a run trained here reads (and compares, on resume) exactly as before it existed."""
        data = {
            "index": self.index,
            "pad_index": self.pad_index,
            "mask_index": self.mask_index,
            "unk_index": self.unk_index,
            "size": self.size,
        }
        return data | ({"prefix": list(self.prefix)} if self.prefix else {})

    def save(self, path: Path | str) -> None:
        write_text_atomic(path, json.dumps(self.to_json(), indent=1, sort_keys=True))

    @classmethod
    def from_json(cls, data: Mapping) -> Vocabulary:
        """What :meth:`to_json` returned, as a vocabulary with its own (empty) unknown counts."""
        return cls(
            data["index"],
            data["pad_index"],
            data["mask_index"],
            data["unk_index"],
            data["size"],
            data.get("prefix", ()),
        )

    @classmethod
    def load(cls, path: Path | str) -> Vocabulary:
        return cls.from_json(json.loads(Path(path).read_text()))


def split_tokens(corpus: pd.DataFrame) -> list[list[str]]:
    """The ``tokens`` column (see :data:`CORPUS_COLUMNS`) as lists (an empty string is an
    empty row)."""
    return [str(text).split() for text in corpus["tokens"]]

"""A tiny real BiGCARP corpus for tests: Pfam compositions of MIBiG BGCs from the pinned GECCO
wheel, as bags (each Pfam accession repeated by its count, gene order unknown, so
``ordered=False``), split about 4:1 by a hash of the BGC id.

Why a module: the BiGCARP tests of several files read the same corpus, and one loader keeps
them reading the same rows.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pandas as pd

from crossgran.data.sources import fetch_wheel, read_wheel_member
from crossgran.profiles import get_profile

BAG_BGCS = 60  # the BiGCARP tests' corpus size (conftest's ``corpus``)


def _member(name: str) -> bytes:
    return read_wheel_member(fetch_wheel("gecco", get_profile("smoke").raw_dir), name)


def gecco_domains() -> list[str]:
    """Every Pfam accession GECCO's compositions are over (sorted as GECCO stores them)."""
    return _member("gecco/types/domains.tsv").decode().split()


def _bag_counts(fractions: np.ndarray) -> np.ndarray:
    """GECCO stores each BGC's composition as fractions k/N; the smallest N that makes every
    fraction integral recovers the counts (up to a common factor, harmless for a test bag)."""
    for total in range(1, 5000):
        counts = fractions * total
        if np.allclose(counts, np.round(counts), atol=1e-6):
            return np.round(counts).astype(int)
    raise AssertionError("composition is not a set of fractions k/N")


def gecco_bag_corpus(n_bgcs: int) -> pd.DataFrame:
    """The first ``n_bgcs`` BGCs with a composition, as corpus rows (columns seq_id, source,
    tokens, ordered, split)."""
    stored = np.load(io.BytesIO(_member("gecco/types/compositions.npz")))
    domains = gecco_domains()
    ids = [
        line.split("\t")[0]
        for line in _member("gecco/types/types.tsv").decode().splitlines()
        if line.strip()
    ]
    rows, cols, data = stored["row"], stored["col"], stored["data"]
    records = []
    for row, bgc in enumerate(ids):
        hit = rows == row
        if not hit.any():
            continue
        order = np.argsort(cols[hit])
        counts = _bag_counts(data[hit][order])
        tokens = [
            domains[c] for c, n in zip(cols[hit][order], counts, strict=True) for _ in range(n)
        ]
        split = (
            "valid" if int(hashlib.sha256(bgc.encode()).hexdigest()[:8], 16) % 5 == 0 else "train"
        )
        records.append(
            {
                "seq_id": bgc,
                "source": "mibig",
                "tokens": " ".join(tokens),
                "ordered": False,
                "split": split,
            }
        )
        if len(records) == n_bgcs:
            break
    return pd.DataFrame(records)

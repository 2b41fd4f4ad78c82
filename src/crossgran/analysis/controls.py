"""Null representations that a learned one must beat before a claim can rest on it.

A probe that reads product classes from pooled family vectors can score well because the
pooling itself carries the information (which families a BGC contains), whatever the vectors
are. The controls here keep everything but the learning: the same rows, the same width and
the same pooling, with vectors drawn at random instead of trained.

* :func:`random_family_vectors` gives every Pfam family one fixed N(0, 1) vector. It is
  *domain-consistent*: a family's vector depends only on (seed, width, accession), so the
  same family has the same vector in every table, profile and row order, exactly as a
  learned family vector would. Pool it as the representation it controls is pooled (e.g.
  :func:`crossgran.analysis.features.count_weighted_mean` for BGC means, a row lookup for
  layer-wise family vectors).
* :func:`random_residue_features` is the same idea one level down, for ESM's A-domain
  features: one fixed vector per amino-acid letter, pooled as
  :func:`crossgran.models.esm.embed` pools (mean over residues, mean over given positions).
* The control of a fusion is the concatenation of its parts' controls (:func:`concatenated`),
  each width-matched to its part, so the fused control has as many columns as the fusion.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from crossgran.analysis.features import count_weighted_mean
from crossgran.models.esm.forward import ALLOWED_RESIDUES, clean_sequence

__all__ = [
    "RESIDUE_KEY_PREFIX",
    "concatenated",
    "random_bag_means",
    "random_family_vectors",
    "random_residue_features",
    "stable_int",
]

# Residue letters get their own key space, so a letter never shares a vector with a family
# accession that happens to be spelled the same.
RESIDUE_KEY_PREFIX = "residue:"
_LETTERS = tuple(sorted(ALLOWED_RESIDUES))


def stable_int(key: str) -> int:
    """A 32-bit integer from ``key`` that is the same in every process.

    Python's ``hash`` of a string changes with ``PYTHONHASHSEED``, so it can never seed
    anything that must be reproducible; the first 8 hex digits of the sha256 can.
    """
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16)


def random_family_vectors(families: Sequence[str], width: int, seed: int) -> np.ndarray:
    """(len(families), width) float64 N(0, 1) vectors, one per family, domain-consistent.

    Row i depends only on (``seed``, ``width``, ``families[i]``): each family's generator is
    ``np.random.default_rng([seed, width, stable_int(accession)])``. So a family keeps its
    vector whichever other families are in the list and in whatever order, and two tables
    (e.g. the BGC pooling and the layer-wise family probe) see the same random family.
    A repeated accession gets the same row twice.
    """
    if width < 1:
        raise ValueError(f"width must be >= 1; got {width}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0; got {seed}")
    out = np.empty((len(families), width), dtype=np.float64)
    memo: dict[str, np.ndarray] = {}
    for row, family in enumerate(families):
        key = str(family)
        if key not in memo:
            memo[key] = np.random.default_rng([seed, width, stable_int(key)]).standard_normal(width)
        out[row] = memo[key]
    return out


def random_bag_means(
    counts: pd.DataFrame, bgc_ids: Sequence[str], width: int, seed: int
) -> np.ndarray:
    """(len(bgc_ids), width) control of a BGC-level mean: every family in ``counts`` (a
    ``mibig_domain_counts`` table) gets its :func:`random_family_vectors` row, pooled per BGC
    by :func:`~crossgran.analysis.features.count_weighted_mean`, i.e. weighted by how often
    the family occurs, exactly as a mean over the BGC's domain tokens or its ESM family
    vectors is pooled."""
    families = sorted(counts["pfam"].unique())
    return count_weighted_mean(
        counts, bgc_ids, families, random_family_vectors(families, width, seed)
    )


def _checked_positions(index: int, positions: Sequence[int], length: int) -> np.ndarray:
    """``positions`` as an index array, with :func:`crossgran.models.esm.embed`'s rules:
    0-based residue indices into the cleaned sequence, non-empty, unique, in range."""
    chosen = np.asarray([int(p) for p in positions], dtype=np.int64)
    if chosen.size == 0:
        raise ValueError(f"sequence {index}: empty positions list")
    if np.unique(chosen).size != chosen.size:
        raise ValueError(f"sequence {index}: duplicate positions {chosen.tolist()}")
    outside = chosen[(chosen < 0) | (chosen >= length)]
    if outside.size:
        raise ValueError(f"sequence {index}: positions {outside.tolist()} outside 0..{length - 1}")
    return chosen


def random_residue_features(
    sequences: Sequence[str],
    width: int,
    seed: int,
    positions: Sequence[Sequence[int]] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Width-matched random projection of the residues an ESM reads, pooled like ESM.

    Every amino-acid letter (the 20 standard ones and X B Z U O) gets one fixed N(0, 1)
    vector (:func:`random_family_vectors` of ``"residue:<letter>"``); a sequence's features
    are the mean of its residues' vectors, and with ``positions`` also the mean over those
    residues, exactly the two poolings of :func:`crossgran.models.esm.embed` (residues only,
    sequences cleaned the same way: upper case, one terminal ``*`` dropped). This is what an
    A-domain probe reads from composition alone, with no context and no training.

    Returns ``(mean, positions_mean)``, each (n, width) float64; ``positions_mean`` is None
    without ``positions``.
    """
    if positions is not None and len(positions) != len(sequences):
        raise ValueError(f"{len(sequences)} sequences but {len(positions)} position lists")
    table = random_family_vectors([RESIDUE_KEY_PREFIX + a for a in _LETTERS], width, seed)
    lookup = np.full(256, -1, dtype=np.int64)
    for code, letter in enumerate(_LETTERS):
        lookup[ord(letter)] = code
    counts = np.zeros((len(sequences), len(_LETTERS)))
    chosen = np.zeros_like(counts) if positions is not None else None
    for index, sequence in enumerate(sequences):
        cleaned = clean_sequence(str(index), sequence)
        codes = lookup[np.frombuffer(cleaned.encode("ascii"), dtype=np.uint8)]
        counts[index] = np.bincount(codes, minlength=len(_LETTERS)) / codes.size
        if chosen is not None and positions is not None:
            picked = codes[_checked_positions(index, positions[index], codes.size)]
            chosen[index] = np.bincount(picked, minlength=len(_LETTERS)) / picked.size
    return counts @ table, (chosen @ table if chosen is not None else None)


def concatenated(*blocks: np.ndarray) -> np.ndarray:
    """The control of a fusion: its parts' controls side by side (same rows, widths added).

    Each block must already be width-matched to the part it controls; a fused probe on
    real features is then compared with a fused probe on random ones of the same shape.
    """
    if not blocks:
        raise ValueError("give at least one block")
    arrays = [np.asarray(block, dtype=np.float64) for block in blocks]
    if any(array.ndim != 2 for array in arrays):
        raise ValueError(f"blocks must be 2-D; got shapes {[a.shape for a in arrays]}")
    if len({array.shape[0] for array in arrays}) != 1:
        raise ValueError(f"blocks have different row counts: {[a.shape[0] for a in arrays]}")
    return np.hstack(arrays)

"""Deterministic id-level choices: the hash split into train and valid, and first-N subsets.

Why hashing the id: a sequence's split must not depend on which other sequences a profile
keeps (subsets, reorderings, a grown corpus), so it is a function of the id alone. One
formula serves every split of the project, so two splits of the same ids always agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = [
    "ASSOCIATION_FRACTION",
    "Split",
    "association_label_bgcs",
    "first_n",
    "hash_fraction",
    "split_of",
]

Split = Literal["train", "valid"]

# Share of MIBiG BGCs whose co-occurrence labels the claim-3 family probe.
ASSOCIATION_FRACTION = 0.5


def hash_fraction(key: str) -> float:
    """A number in [0, 1] fixed by ``key``: the first 32 bits of its sha256, over 2**32 - 1."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def split_of(key: str, valid_fraction: float) -> Split:
    """``"valid"`` for about ``valid_fraction`` of all keys, else ``"train"`` (stable across
    subsets)."""
    return "valid" if hash_fraction(key) < valid_fraction else "train"


def first_n(ids: list[str], limit: int | None) -> list[str]:
    """The first ``limit`` ids (all of them for ``None``): profiles subset by position, callers
    sort first where the order is not meaningful (see ``Profile``'s subset limits)."""
    return ids if limit is None else ids[:limit]


def association_label_bgcs(bgc_ids: Sequence[str]) -> np.ndarray:
    """Boolean mask over ``bgc_ids``: the MIBiG BGCs whose co-occurrence labels the claim-3
    family probe (family-class association), about :data:`ASSOCIATION_FRACTION` of them.

    Why a second hash: the probe's label is computed from MIBiG co-occurrence, and BiGCARP's
    family vectors are averaged over a corpus mostly made of the same MIBiG bags; the label
    BGCs are left out of that average (``Representations.family_disjoint``) so the probe cannot
    read its label back from the rows it was computed on. The ``"association:"`` prefix makes
    this choice independent of the train/valid split (same formula, different key), and, like
    that split, a function of the id alone, so subsets and reorderings agree.
    """
    return np.array(
        [hash_fraction("association:" + bgc) < ASSOCIATION_FRACTION for bgc in bgc_ids], dtype=bool
    )

"""Row alignment by id: the one way arrays saved in different row orders are paired.

Why: CKA and probes pair row i of one array with row i of another (or with label i), but ESM
embeds every Pfam family while BiGCARP only has the families seen in its corpus, each in its
own order, and BGC or domain tables come in yet other orders. Pairing by position would
silently compare different families or give one BGC another's label, so every alignment goes
through an id -> row index that refuses duplicate ids (a row could be paired twice) and, when
asked for a given id, refuses a missing one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["rows_of", "shared_rows"]


def _index(ids: Sequence[str], what: str) -> dict[str, int]:
    """id -> row of ``ids``; ``what`` names the list in the duplicate error."""
    index = {str(name): row for row, name in enumerate(ids)}
    if len(index) != len(ids):
        raise ValueError(f"{what} contains duplicate ids")
    return index


def _take(index: dict[str, int], wanted: Sequence[str]) -> np.ndarray:
    return np.array([index[str(name)] for name in wanted], dtype=np.int64)


def rows_of(ids: Sequence[str], wanted: Sequence[str]) -> np.ndarray:
    """Positions of ``wanted`` in ``ids``: aligns arrays saved in different row orders.

    A silent misalignment would pair one BGC's features with another's labels, so a
    missing id raises KeyError naming it instead of being dropped.
    """
    index = _index(ids, "ids")
    missing = [name for name in wanted if str(name) not in index]
    if missing:
        raise KeyError(f"{len(missing)} ids not found, e.g. {missing[0]!r}")
    return _take(index, wanted)


def shared_rows(*id_lists: Sequence[str]) -> tuple[list[str], list[np.ndarray]]:
    """The ids present in every list (sorted) and, per list, the row index of each shared id.

    Use it where each side may lack rows of the other (ESM families against the families of a
    BiGCARP corpus); :func:`rows_of` where one side must hold every wanted id.
    """
    if not id_lists:
        raise ValueError("shared_rows needs at least one id list")
    indexes = [_index(ids, f"id list {number}") for number, ids in enumerate(id_lists)]
    common = sorted(set.intersection(*(set(index) for index in indexes)))
    return common, [_take(index, common) for index in indexes]

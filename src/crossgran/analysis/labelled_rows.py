"""Which MIBiG BGCs a product-class probe sees, and why the others are left out.

Three filters, in this order, shared by notebooks 03 and 05 so both probe the same BGCs:
a BGC needs a finite row in every feature block (no embedded domain means no vector, and every
feature set of a probe must see the same rows), a product class (unlabelled is "not recorded",
not "none"), and a domain bag of its own: BGCs with identical Pfam domain bags are one
observation to a bag-level representation, so only the first is kept (the paper deduplicated
with BiG-SCAPE; counted in ``n_duplicates``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from crossgran.analysis.features import product_class_targets, unique_bag_rows
from crossgran.data.mibig import PROBE_CLASSES
from crossgran.data.tables import load_table
from crossgran.profiles import Profile

__all__ = ["ProbeRows", "product_class_rows"]


@dataclass(frozen=True)
class ProbeRows:
    """The probed rows of a BGC list, their labels, and what was left out."""

    rows: np.ndarray  # positions in the BGC list the blocks follow
    bgc_ids: np.ndarray  # the probed BGCs
    targets: np.ndarray  # (rows, classes) 0/1
    class_names: list[str]
    n_duplicates: int  # labelled, complete BGCs dropped as repeats of an identical bag


def product_class_rows(
    settings: Profile, bgc_ids: np.ndarray, blocks: Iterable[np.ndarray]
) -> ProbeRows:
    """The product-class probe's rows over ``bgc_ids`` (see the module docstring); classes
    with fewer positives than folds are left out."""
    classes = load_table(settings, "mibig_classes")
    complete = np.flatnonzero(np.all([np.isfinite(b).all(axis=1) for b in blocks], axis=0))
    labelled, _, _ = product_class_targets(classes, bgc_ids[complete], PROBE_CLASSES)
    candidates = complete[labelled]
    unique, n_duplicates = unique_bag_rows(
        load_table(settings, "mibig_domain_counts"), bgc_ids[candidates]
    )
    rows = candidates[unique]
    _, targets, kept = product_class_targets(
        classes, bgc_ids[rows], PROBE_CLASSES, min_positives=settings.probe_folds
    )
    return ProbeRows(rows, bgc_ids[rows], targets, kept, n_duplicates)

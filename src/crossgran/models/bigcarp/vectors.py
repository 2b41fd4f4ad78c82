"""The ESM family-vectors file: the vectors that seed the ``esm`` runs' token tables, saved by
notebook 02 for the CLI's ``train-bigcarp`` (one accession -> vector mapping per file)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from crossgran.cache import load_npz, save_npz

__all__ = ["load_family_vectors", "save_family_vectors"]


def save_family_vectors(path: Path | str, family_vectors: Mapping[str, np.ndarray]) -> None:
    """Write family vectors as an .npz with ``families`` (str) and ``vectors`` (n, d)."""
    names = sorted(family_vectors)
    save_npz(
        path,
        {
            "families": np.array(names),
            "vectors": np.stack([np.asarray(family_vectors[n]) for n in names]),
        },
    )


def load_family_vectors(path: Path | str) -> dict[str, np.ndarray]:
    """Read the .npz written by :func:`save_family_vectors`."""
    stored = load_npz(path)
    return dict(zip(stored["families"].tolist(), stored["vectors"], strict=True))

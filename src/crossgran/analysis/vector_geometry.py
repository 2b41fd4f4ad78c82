"""How much of a table of vectors is one shared direction: the degeneracy diagnostics of
family vectors.

Why: BiGCARP's ESM initialisation copies one ESM vector per Pfam family into its token table.
If those vectors are mostly one common vector (a model that learned little maps every
sequence to nearly the same point), "ESM-init" is close to a constant token table, and a
result about it says nothing about what ESM learned. Three numbers show it:

* ``mean_cosine``: the mean cosine similarity over all pairs of distinct rows (about 0 for
  independent Gaussian rows, near 1 when every row points the same way);
* ``mean_share``: the share of the table's squared norm carried by the mean vector,
  ``n * |mean|^2 / sum_i |x_i|^2`` (the rest is the rows' spread around it);
* ``participation_ratio``: after centring, ``(sum l)^2 / sum l^2`` over the covariance
  eigenvalues ``l``: the number of directions the spread effectively uses (1 for one
  direction; close to the width for isotropic noise with many more rows than columns).

:func:`geometry_table` puts a table beside a Gaussian table of the same shape, the reference
for "no shared direction at all".
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["GEOMETRY_COLUMNS", "family_vector_geometry", "gaussian_reference", "geometry_table"]

GEOMETRY_COLUMNS = ("rows", "dim", "mean_cosine", "mean_share", "participation_ratio")


def _as_table(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` as a float64 (rows, dim) matrix with at least two rows, all finite and
    non-zero (a cosine needs a direction), or an error naming the offending rows."""
    table = np.asarray(vectors, dtype=np.float64)
    if table.ndim != 2 or len(table) < 2:
        raise ValueError(f"need a 2-D table with at least 2 rows; got shape {table.shape}")
    norms = np.linalg.norm(table, axis=1)
    bad = np.flatnonzero(~np.isfinite(norms) | (norms == 0))
    if bad.size:
        raise ValueError(f"rows {bad[:10].tolist()} are zero or not finite; drop them first")
    return table


def _participation_ratio(centred: np.ndarray) -> float:
    """(sum l)^2 / sum l^2 over the eigenvalues of the centred scatter, from the smaller of
    the two Gram matrices (same non-zero eigenvalues)."""
    gram = centred.T @ centred if centred.shape[0] >= centred.shape[1] else centred @ centred.T
    eigenvalues = np.clip(np.linalg.eigvalsh(gram), 0.0, None)
    squared = float((eigenvalues**2).sum())
    return float(eigenvalues.sum() ** 2 / squared) if squared > 0 else 0.0


def family_vector_geometry(vectors: np.ndarray) -> dict[str, float]:
    """The module's three diagnostics for one table (rows = families), plus its shape.

    The mean cosine comes from the sum of the unit rows (``|sum u|^2 = n + sum_{i!=j} u_i.u_j``),
    so no n x n matrix is formed."""
    table = _as_table(vectors)
    rows, dim = table.shape
    units = table / np.linalg.norm(table, axis=1, keepdims=True)
    summed = units.sum(axis=0)
    mean = table.mean(axis=0)
    return {
        "rows": rows,
        "dim": dim,
        "mean_cosine": float((summed @ summed - rows) / (rows * (rows - 1))),
        "mean_share": float(rows * (mean @ mean) / (table**2).sum()),
        "participation_ratio": _participation_ratio(table - mean),
    }


def gaussian_reference(rows: int, dim: int, seed: int = 0) -> dict[str, float]:
    """The diagnostics of a standard Gaussian table of shape (rows, dim): what a table with
    no shared direction scores at that shape (the participation ratio of finite isotropic
    noise falls short of ``dim`` by a margin that depends on rows / dim)."""
    rng = np.random.default_rng(seed)
    return family_vector_geometry(rng.standard_normal((rows, dim)))


def geometry_table(tables: Mapping[str, np.ndarray], seed: int = 0) -> pd.DataFrame:
    """One row of diagnostics per named table, each followed by its Gaussian reference
    (``"<name>: Gaussian reference"``), indexed by name; columns :data:`GEOMETRY_COLUMNS`."""
    rows = {}
    for name, vectors in tables.items():
        observed = family_vector_geometry(vectors)
        rows[name] = observed
        rows[f"{name}: Gaussian reference"] = gaussian_reference(
            int(observed["rows"]), int(observed["dim"]), seed
        )
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(GEOMETRY_COLUMNS))

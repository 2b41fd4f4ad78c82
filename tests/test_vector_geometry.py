"""The family-vector degeneracy diagnostics on real vectors: the amino-acid compositions of
pyhmmer's proteome, a table that (like a barely trained model's family vectors) is mostly one
shared mean vector. The closed forms must equal the textbook definitions, a Gaussian table of
the same shape must score as spread out, and a rank-1-plus-noise table as degenerate."""

from __future__ import annotations

import numpy as np
import pytest

from crossgran.analysis import vector_geometry as vg
from crossgran.data.tables import read_proteome
from crossgran.models.esm import STANDARD_AMINO_ACIDS


@pytest.fixture(scope="module")
def compositions() -> np.ndarray:
    """(proteins, 20) residue frequencies of the first 600 proteome proteins."""
    proteins = list(read_proteome().values())[:600]
    return np.array([[s.count(a) / len(s) for a in STANDARD_AMINO_ACIDS] for s in proteins])


def test_closed_forms_equal_the_definitions_on_real_vectors(compositions) -> None:
    got = vg.family_vector_geometry(compositions)
    units = compositions / np.linalg.norm(compositions, axis=1, keepdims=True)
    cosines = units @ units.T
    off_diagonal = cosines[~np.eye(len(cosines), dtype=bool)]
    mean = compositions.mean(axis=0)
    variances = np.linalg.svd(compositions - mean, compute_uv=False) ** 2
    assert got["rows"] == 600 and got["dim"] == 20
    assert got["mean_cosine"] == pytest.approx(off_diagonal.mean(), rel=1e-9)
    assert got["mean_share"] == pytest.approx(
        np.sum(np.tile(mean, (600, 1)) ** 2) / np.sum(compositions**2), rel=1e-9
    )
    assert got["participation_ratio"] == pytest.approx(
        variances.sum() ** 2 / (variances**2).sum(), rel=1e-9
    )
    # Wide tables (fewer rows than columns) take the row Gram matrix: same definition.
    wide = compositions[:12]
    wide_variances = np.linalg.svd(wide - wide.mean(axis=0), compute_uv=False) ** 2
    assert vg.family_vector_geometry(wide)["participation_ratio"] == pytest.approx(
        wide_variances.sum() ** 2 / (wide_variances**2).sum(), rel=1e-9
    )


def test_gaussian_reference_is_spread_out_and_rank_one_plus_noise_is_not(compositions) -> None:
    rows, dim = compositions.shape
    real = vg.family_vector_geometry(compositions)
    gaussian = vg.gaussian_reference(rows, dim, seed=0)
    assert abs(gaussian["mean_cosine"]) < 0.01 and gaussian["mean_share"] < 0.01
    assert gaussian["participation_ratio"] > 0.9 * dim
    # Protein compositions share one mean vector: far from the Gaussian on every measure.
    assert real["mean_cosine"] > 0.8 and real["mean_share"] > 0.8
    assert real["participation_ratio"] < 0.6 * gaussian["participation_ratio"]
    # One direction (the real mean composition) scaled per row, plus a little noise.
    rng = np.random.default_rng(0)
    direction = compositions.mean(axis=0)
    rank_one = rng.uniform(0.5, 1.5, (rows, 1)) * direction
    rank_one += 0.01 * direction.std() * rng.standard_normal((rows, dim))
    degenerate = vg.family_vector_geometry(rank_one)
    assert degenerate["mean_cosine"] > 0.99 and degenerate["mean_share"] > 0.9
    assert degenerate["participation_ratio"] < 1.5


def test_geometry_table_puts_each_table_beside_its_gaussian(compositions) -> None:
    table = vg.geometry_table({"compositions": compositions, "first 50": compositions[:50]})
    assert list(table.index) == [
        "compositions",
        "compositions: Gaussian reference",
        "first 50",
        "first 50: Gaussian reference",
    ]
    assert list(table.columns) == list(vg.GEOMETRY_COLUMNS)
    assert table.loc["first 50: Gaussian reference", "rows"] == 50
    assert table.loc["compositions", "participation_ratio"] == pytest.approx(
        vg.family_vector_geometry(compositions)["participation_ratio"]
    )


def test_tables_without_a_direction_per_row_are_refused(compositions) -> None:
    zeroed = compositions.copy()
    zeroed[[3, 7]] = 0.0
    with pytest.raises(ValueError, match=r"rows \[3, 7\] are zero or not finite"):
        vg.family_vector_geometry(zeroed)
    with pytest.raises(ValueError, match="at least 2 rows"):
        vg.family_vector_geometry(compositions[:1])
    with pytest.raises(ValueError, match="2-D"):
        vg.family_vector_geometry(compositions[0])

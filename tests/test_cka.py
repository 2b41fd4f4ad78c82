"""Properties of linear and debiased CKA that the paper's layer-similarity maps rely on."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from crossgran.analysis.cka import (
    MinibatchLinearCKA,
    bootstrap_cka,
    cka,
    cka_matrix,
    debiased_cka,
    linear_cka,
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def _song_hsic_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Song et al. (2012) written literally with n x n matrices, as an independent reference."""
    n = x.shape[0]
    k, el = x @ x.T, y @ y.T
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(el, 0.0)
    ones = np.ones(n)
    value = (
        np.sum(k * el)
        + (ones @ k @ ones) * (ones @ el @ ones) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (ones @ k @ el @ ones)
    )
    return value / (n * (n - 3))


@pytest.mark.parametrize("debiased", [False, True])
def test_self_similarity_is_one(rng: np.random.Generator, debiased: bool) -> None:
    x = rng.normal(size=(50, 8))
    assert cka(x, x, debiased=debiased) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
def test_invariant_to_orthogonal_transform_and_isotropic_scaling(
    rng: np.random.Generator, debiased: bool
) -> None:
    x = rng.normal(size=(60, 6))
    y = x @ rng.normal(size=(6, 5)) + 0.5 * rng.normal(size=(60, 5))
    reference = cka(x, y, debiased=debiased)
    q = ortho_group.rvs(6, random_state=7)
    assert cka(x @ q, y, debiased=debiased) == pytest.approx(reference, abs=1e-12)
    assert cka(3.7 * x, 0.01 * y, debiased=debiased) == pytest.approx(reference, abs=1e-12)
    # Translation is removed by centring, so a constant offset changes nothing either.
    assert cka(x + 100.0, y, debiased=debiased) == pytest.approx(reference, abs=1e-9)


def test_not_invariant_to_arbitrary_invertible_map(rng: np.random.Generator) -> None:
    x = rng.normal(size=(200, 5))
    stretch = np.diag([1.0, 1.0, 1.0, 1.0, 10.0])  # invertible, not orthogonal x scalar
    assert np.linalg.matrix_rank(stretch) == 5
    assert linear_cka(x, x @ stretch) < 0.9


@pytest.mark.parametrize("debiased", [False, True])
def test_symmetric(rng: np.random.Generator, debiased: bool) -> None:
    x, y = rng.normal(size=(40, 7)), rng.normal(size=(40, 3))
    y[:, 0] += x[:, 0]
    assert cka(x, y, debiased=debiased) == pytest.approx(cka(y, x, debiased=debiased), abs=1e-14)


def test_closed_form_examples() -> None:
    # One column each: x = (1, 2, 3, 4), y = (1, 3, 2, 4). Centred:
    # xc = (-1.5, -0.5, 0.5, 1.5), yc = (-1.5, 0.5, -0.5, 1.5);
    # xc.yc = 2.25 - 0.25 - 0.25 + 2.25 = 4, ||xc||^2 = ||yc||^2 = 5,
    # CKA = (xc.yc)^2 / (||xc||^2 ||yc||^2) = 16 / 25 = 0.64 (the squared correlation).
    x = np.array([[1.0], [2.0], [3.0], [4.0]])
    y = np.array([[1.0], [3.0], [2.0], [4.0]])
    assert linear_cka(x, y) == pytest.approx(0.64, abs=1e-14)
    # Two columns against one: X rows (1,0), (0,1), (-1,0), (0,-1) are already centred,
    # Y = first column of X. X^T X = diag(2, 2) so ||X^T X||_F = 2 sqrt(2); Y^T Y = [2];
    # X^T Y = (2, 0)^T so ||X^T Y||_F^2 = 4. CKA = 4 / (2 sqrt(2) * 2) = 1 / sqrt(2).
    x2 = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    assert linear_cka(x2, x2[:, :1]) == pytest.approx(1.0 / np.sqrt(2.0), abs=1e-14)


def test_debiased_matches_literal_song_estimator(rng: np.random.Generator) -> None:
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 6))
    y[:, :2] += x[:, :2]
    expected = _song_hsic_unbiased(x, y) / np.sqrt(
        _song_hsic_unbiased(x, x) * _song_hsic_unbiased(y, y)
    )
    assert debiased_cka(x, y) == pytest.approx(expected, abs=1e-12)
    # Wide features take the Gram path; it must agree with the same literal formula.
    xw, yw = rng.normal(size=(12, 40)), rng.normal(size=(12, 50))
    expected_w = _song_hsic_unbiased(xw, yw) / np.sqrt(
        _song_hsic_unbiased(xw, xw) * _song_hsic_unbiased(yw, yw)
    )
    assert debiased_cka(xw, yw) == pytest.approx(expected_w, abs=1e-12)


def test_debiased_near_zero_for_independent_data_while_linear_is_biased(
    rng: np.random.Generator,
) -> None:
    # For independent standard normals E||X^T Y||^2 = n d^2 and E||X^T X||^2 = n^2 d + n d^2
    # (to leading order), so plain linear CKA sits near d / (n + d) = 1/6 instead of 0.
    x, y = rng.normal(size=(1000, 200)), rng.normal(size=(1000, 200))
    biased, unbiased = linear_cka(x, y), debiased_cka(x, y)
    assert biased == pytest.approx(200 / 1200, abs=0.02)
    assert abs(unbiased) < 0.01


@pytest.mark.parametrize("debiased", [False, True])
def test_minibatch_equals_full(rng: np.random.Generator, debiased: bool) -> None:
    # A large mean offset, as in real activations, must not cost precision.
    x = rng.normal(size=(1037, 24)).astype(np.float32) + 50.0
    y = (x[:, :10] @ rng.normal(size=(10, 16))).astype(np.float32) + rng.normal(size=(1037, 16))
    accumulator = MinibatchLinearCKA()
    for start in range(0, x.shape[0], 100):
        accumulator.update(x[start : start + 100], y[start : start + 100])
    assert accumulator.n_rows == x.shape[0]
    full = cka(x, y, debiased=debiased)
    assert abs(accumulator.compute(debiased=debiased) - full) < 1e-10


def test_cka_matrix_matches_pairwise_on_both_code_paths(rng: np.random.Generator) -> None:
    for n in (300, 10):  # 10 rows < half the width: cached-Gram path
        layers_a = [rng.normal(size=(n, 24)) for _ in range(3)]
        layers_b = [layers_a[0] @ rng.normal(size=(24, 32)), rng.normal(size=(n, 40))]
        for debiased in (False, True):
            matrix = cka_matrix(layers_a, layers_b, debiased=debiased)
            assert matrix.shape == (3, 2)
            for i, a in enumerate(layers_a):
                for j, b in enumerate(layers_b):
                    assert matrix[i, j] == pytest.approx(cka(a, b, debiased=debiased), abs=1e-12)


def test_errors_are_clear(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="same number of rows"):
        linear_cka(rng.normal(size=(10, 3)), rng.normal(size=(11, 3)))
    with pytest.raises(ValueError, match="at least 4 rows"):
        debiased_cka(rng.normal(size=(3, 3)), rng.normal(size=(3, 3)))
    with pytest.raises(ValueError, match="same number of rows"):
        cka_matrix([rng.normal(size=(10, 3))], [rng.normal(size=(9, 3))])
    with pytest.raises(ValueError, match="undefined"):
        linear_cka(np.ones((10, 3)), rng.normal(size=(10, 3)))
    accumulator = MinibatchLinearCKA()
    accumulator.update(rng.normal(size=(3, 2)), rng.normal(size=(3, 2)))
    with pytest.raises(ValueError, match="at least 4 rows"):
        accumulator.compute(debiased=True)
    with pytest.raises(ValueError, match="widths"):
        accumulator.update(rng.normal(size=(3, 5)), rng.normal(size=(3, 2)))


def test_bootstrap_cka_interval_brackets_the_point_and_separates_related_from_shuffled() -> None:
    from sklearn.datasets import load_digits

    pixels = load_digits().data[:400]
    rng = np.random.default_rng(3)
    related = pixels @ rng.normal(size=(64, 32)) + 5.0 * rng.normal(size=(400, 32))
    point, low, high = bootstrap_cka(pixels, related, n_bootstrap=200, seed=0)
    assert point == pytest.approx(cka(pixels, related))
    assert low <= point <= high
    unrelated = related[rng.permutation(400)]
    point_shuffled, low_shuffled, high_shuffled = bootstrap_cka(
        pixels, unrelated, n_bootstrap=200, seed=0
    )
    assert high_shuffled < low
    # Resampled duplicates inflate plain CKA; the interval must still hold its own point.
    assert low_shuffled <= point_shuffled <= high_shuffled
    assert bootstrap_cka(pixels, related, n_bootstrap=200, seed=0) == (point, low, high)

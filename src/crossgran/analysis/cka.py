"""Centred kernel alignment (CKA) between two representations of the same rows.

Linear CKA (Kornblith et al. 2019) compares X (n, d1) and Y (n, d2), e.g. ESM
layer activations and BiGCARP layer activations for the same proteins, and is
invariant to orthogonal transforms and isotropic scaling of either side, which
is why it suits comparing models whose coordinates mean nothing to each other.

Plain linear CKA is a ratio of *biased* HSIC estimates and drifts upwards when
the width is not small against n: two independent random matrices score well
above 0. The debiased variant replaces each HSIC by the unbiased U-statistic of
Song et al. (2012), as proposed for CKA by Nguyen et al. (2021), so unrelated
representations score near 0 whatever the width; it needs n >= 4.

Everything is computed from feature-space products (X^T Y, ...) or, when rows
are fewer than features, from n x n Gram matrices, always accumulated in
float64 because float32 activations lose several digits in the Frobenius sums.
:class:`MinibatchLinearCKA` accumulates the same sufficient statistics batch by
batch, so a token-level comparison over millions of rows never holds the rows in
memory and still returns exactly the full-data value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crossgran.threads import limit

__all__ = ["MinibatchLinearCKA", "bootstrap_cka", "cka", "cka_matrix", "debiased_cka", "linear_cka"]

_MIN_ROWS_DEBIASED = 4


def _as_matrix(array: np.ndarray, name: str) -> np.ndarray:
    """Return ``array`` as a finite float64 2-D matrix, or say clearly why not."""
    matrix = np.asarray(array, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, features); got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return matrix


def _check_rows(n_x: int, n_y: int, debiased: bool) -> None:
    """CKA pairs row i of X with row i of Y, so both must have the same rows."""
    if n_x != n_y:
        raise ValueError(f"X and Y must have the same number of rows; got {n_x} and {n_y}")
    if debiased and n_x < _MIN_ROWS_DEBIASED:
        raise ValueError(
            f"debiased CKA needs at least {_MIN_ROWS_DEBIASED} rows "
            f"(the unbiased HSIC divides by n(n-3)); got {n_x}"
        )
    if n_x < 2:
        raise ValueError(f"CKA needs at least 2 rows; got {n_x}")


def _ratio(cross: float, self_x: float, self_y: float) -> float:
    """CKA = HSIC(X, Y) / sqrt(HSIC(X, X) HSIC(Y, Y)), refusing a zero or negative norm.

    A constant representation has zero self-HSIC and the similarity is undefined;
    the debiased self-HSIC can also come out <= 0 on tiny or degenerate samples.
    Returning NaN silently would poison a layer x layer heat map, so we raise.
    """
    if self_x <= 0.0 or self_y <= 0.0:
        raise ValueError(
            "CKA is undefined: a representation has zero (or, debiased, non-positive) "
            "self-similarity, e.g. all rows are identical"
        )
    return float(cross / np.sqrt(self_x * self_y))


@dataclass(frozen=True)
class _Rep:
    """One representation prepared once so every pairing reuses the work.

    ``centred`` has zero column means, ``row_sq`` the squared norms of its rows
    (the diagonal of the centred Gram matrix, needed by the unbiased HSIC), and
    ``gram`` the centred Gram matrix when rows are few enough to make it cheaper.
    """

    centred: np.ndarray
    row_sq: np.ndarray
    gram: np.ndarray | None

    @property
    def n(self) -> int:
        return self.centred.shape[0]

    @property
    def width(self) -> int:
        return self.centred.shape[1]


def _prepare(matrix: np.ndarray, use_gram: bool) -> _Rep:
    centred = matrix - matrix.mean(axis=0, keepdims=True)
    row_sq = np.einsum("ij,ij->i", centred, centred)
    return _Rep(centred=centred, row_sq=row_sq, gram=centred @ centred.T if use_gram else None)


def _gram_is_cheaper(n: int, width_a: int, width_b: int) -> bool:
    """Compare flop counts: n^2 (d1 + d2) for two Grams against n d1 d2 for X^T Y."""
    return n * (width_a + width_b) < width_a * width_b


def _cross_sq(a: _Rep, b: _Rep) -> float:
    """||Xc^T Yc||_F^2 = <Kc, Lc>_F, the (unnormalised) linear HSIC of centred data."""
    if a.gram is not None and b.gram is not None:
        return float(np.einsum("ij,ij->", a.gram, b.gram))
    if _gram_is_cheaper(a.n, a.width, b.width):
        gram_a = a.gram if a.gram is not None else a.centred @ a.centred.T
        gram_b = b.gram if b.gram is not None else b.centred @ b.centred.T
        return float(np.einsum("ij,ij->", gram_a, gram_b))
    product = a.centred.T @ b.centred
    return float(np.einsum("ij,ij->", product, product))


def _hsic_unbiased_scaled(a: _Rep, b: _Rep, cross: float) -> float:
    """n(n-3) times the unbiased HSIC of Song et al. (2012) for linear kernels.

    With K = Xc Xc^T and its diagonal zeroed (K~), Song's estimator is
    [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3)).
    Because Xc is centred, K 1 = 0, so K~1 = -diag(K) and every term reduces
    to ``cross`` and the row norms, with no n x n matrix needed. The common
    factor 1/(n(n-3)) cancels in the CKA ratio and is left out.
    """
    n = a.n
    trace_term = cross - float(a.row_sq @ b.row_sq)
    sums_term = float(a.row_sq.sum() * b.row_sq.sum()) / ((n - 1) * (n - 2))
    cross_term = 2.0 / (n - 2) * float(a.row_sq @ b.row_sq)
    return trace_term + sums_term - cross_term


def _cka_prepared(a: _Rep, b: _Rep, self_a: float, self_b: float, debiased: bool) -> float:
    cross = _cross_sq(a, b)
    if debiased:
        cross = _hsic_unbiased_scaled(a, b, cross)
    return _ratio(cross, self_a, self_b)


def _self_term(rep: _Rep, debiased: bool) -> float:
    cross = _cross_sq(rep, rep)
    return _hsic_unbiased_scaled(rep, rep, cross) if debiased else cross


def cka(x: np.ndarray, y: np.ndarray, *, debiased: bool = False) -> float:
    """Linear CKA between X (n, d1) and Y (n, d2), plain or debiased.

    Raises ValueError when the row counts differ, when ``debiased`` and n < 4,
    or when either side is constant (CKA undefined).
    """
    x_mat, y_mat = _as_matrix(x, "X"), _as_matrix(y, "Y")
    _check_rows(x_mat.shape[0], y_mat.shape[0], debiased)
    n = x_mat.shape[0]
    rep_x = _prepare(x_mat, _gram_is_cheaper(n, x_mat.shape[1], x_mat.shape[1]))
    rep_y = _prepare(y_mat, _gram_is_cheaper(n, y_mat.shape[1], y_mat.shape[1]))
    return _cka_prepared(
        rep_x, rep_y, _self_term(rep_x, debiased), _self_term(rep_y, debiased), debiased
    )


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Plain linear CKA (Kornblith et al. 2019): biased upwards for wide X, Y at small n."""
    return cka(x, y, debiased=False)


def debiased_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA built on the unbiased HSIC estimator; near 0 for unrelated X, Y."""
    return cka(x, y, debiased=True)


def cka_matrix(
    layers_a: Sequence[np.ndarray],
    layers_b: Sequence[np.ndarray],
    debiased: bool = False,
) -> np.ndarray:
    """CKA between every layer of model A (rows) and every layer of model B (columns).

    Each layer is centred, and its self-similarity computed, once rather than once
    per pair. When rows are fewer than half the narrowest width, centred Gram
    matrices are cached per layer so each pair costs O(n^2) instead of O(n d1 d2).
    All layers must share the same rows in the same order.
    """
    if len(layers_a) == 0 or len(layers_b) == 0:
        raise ValueError("cka_matrix needs at least one layer on each side")
    mats_a = [_as_matrix(layer, f"layers_a[{i}]") for i, layer in enumerate(layers_a)]
    mats_b = [_as_matrix(layer, f"layers_b[{i}]") for i, layer in enumerate(layers_b)]
    n = mats_a[0].shape[0]
    for name, mat in [
        *((f"layers_a[{i}]", m) for i, m in enumerate(mats_a)),
        *((f"layers_b[{i}]", m) for i, m in enumerate(mats_b)),
    ]:
        if mat.shape[0] != n:
            raise ValueError(
                f"all layers must have the same number of rows; layers_a[0] has {n}, "
                f"{name} has {mat.shape[0]}"
            )
    _check_rows(n, n, debiased)
    narrowest = min(mat.shape[1] for mat in (*mats_a, *mats_b))
    use_gram = 2 * n < narrowest
    reps_a = [_prepare(mat, use_gram) for mat in mats_a]
    reps_b = [_prepare(mat, use_gram) for mat in mats_b]
    self_a = [_self_term(rep, debiased) for rep in reps_a]
    self_b = [_self_term(rep, debiased) for rep in reps_b]
    result = np.empty((len(reps_a), len(reps_b)), dtype=np.float64)
    for i, (rep_a, s_a) in enumerate(zip(reps_a, self_a, strict=True)):
        for j, (rep_b, s_b) in enumerate(zip(reps_b, self_b, strict=True)):
            result[i, j] = _cka_prepared(rep_a, rep_b, s_a, s_b, debiased)
    return result


class MinibatchLinearCKA:
    """Exact linear CKA (plain or debiased) over rows fed in batches.

    Why: token-level comparisons have millions of rows, too many to hold, but CKA
    only needs d x d products. We accumulate X^T X, Y^T Y, X^T Y and the column
    sums, so the centred products X^T Y - S_x S_y^T / n are exact, and, for the
    debiased variant, the few row-norm sums that Song's estimator needs. The
    result equals :func:`cka` on the stacked rows up to float64 rounding (unlike
    the minibatch *average* of per-batch CKA values, which is a different
    quantity). Rows are shifted by the first batch's column means before
    accumulating: CKA and the unbiased HSIC are translation invariant, and the
    shift avoids the cancellation that large mean activations would cause in
    ``X^T X - n mu mu^T``. Memory is O(d1^2 + d2^2 + d1 d2).
    """

    def __init__(self) -> None:
        self._n = 0
        self._shift_x: np.ndarray | None = None
        self._shift_y: np.ndarray | None = None
        self._xtx = self._yty = self._xty = np.empty((0, 0))
        self._sum_x = self._sum_y = np.empty(0)
        # Row-norm statistics for the unbiased HSIC: sum nx, sum ny, sum nx*ny,
        # sum nx^2, sum ny^2, and the norm-weighted row sums.
        self._sum_nx = self._sum_ny = self._sum_nxny = self._sum_nx2 = self._sum_ny2 = 0.0
        self._ny_x = self._nx_x = np.empty(0)
        self._nx_y = self._ny_y = np.empty(0)

    @property
    def n_rows(self) -> int:
        """Rows accumulated so far."""
        return self._n

    def update(self, x_batch: np.ndarray, y_batch: np.ndarray) -> None:
        """Add a batch of paired rows (row i of ``x_batch`` matches row i of ``y_batch``)."""
        x = _as_matrix(x_batch, "x_batch")
        y = _as_matrix(y_batch, "y_batch")
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"x_batch and y_batch must have the same number of rows; "
                f"got {x.shape[0]} and {y.shape[0]}"
            )
        if x.shape[0] == 0:
            return
        if self._shift_x is None:
            self._start(x, y)
        elif x.shape[1] != self._shift_x.shape[0] or y.shape[1] != self._shift_y.shape[0]:
            raise ValueError(
                f"batch widths ({x.shape[1]}, {y.shape[1]}) differ from the first batch's "
                f"({self._shift_x.shape[0]}, {self._shift_y.shape[0]})"
            )
        x = x - self._shift_x
        y = y - self._shift_y
        nx = np.einsum("ij,ij->i", x, x)
        ny = np.einsum("ij,ij->i", y, y)
        self._n += x.shape[0]
        self._xtx += x.T @ x
        self._yty += y.T @ y
        self._xty += x.T @ y
        self._sum_x += x.sum(axis=0)
        self._sum_y += y.sum(axis=0)
        self._sum_nx += float(nx.sum())
        self._sum_ny += float(ny.sum())
        self._sum_nxny += float(nx @ ny)
        self._sum_nx2 += float(nx @ nx)
        self._sum_ny2 += float(ny @ ny)
        self._ny_x += ny @ x
        self._nx_x += nx @ x
        self._nx_y += nx @ y
        self._ny_y += ny @ y

    def _start(self, x: np.ndarray, y: np.ndarray) -> None:
        d1, d2 = x.shape[1], y.shape[1]
        self._shift_x = x.mean(axis=0)
        self._shift_y = y.mean(axis=0)
        self._xtx, self._yty, self._xty = np.zeros((d1, d1)), np.zeros((d2, d2)), np.zeros((d1, d2))
        self._sum_x, self._sum_y = np.zeros(d1), np.zeros(d2)
        self._ny_x, self._nx_x = np.zeros(d1), np.zeros(d1)
        self._nx_y, self._ny_y = np.zeros(d2), np.zeros(d2)

    def compute(self, debiased: bool = False) -> float:
        """CKA over every row added so far; raises ValueError as :func:`cka` does."""
        _check_rows(self._n, self._n, debiased)
        if debiased:
            return self._debiased()
        n = float(self._n)
        xty = self._xty - np.outer(self._sum_x, self._sum_y) / n
        xtx = self._xtx - np.outer(self._sum_x, self._sum_x) / n
        yty = self._yty - np.outer(self._sum_y, self._sum_y) / n
        return _ratio(
            float(np.einsum("ij,ij->", xty, xty)),
            float(np.einsum("ij,ij->", xtx, xtx)),
            float(np.einsum("ij,ij->", yty, yty)),
        )

    def _debiased(self) -> float:
        n = self._n
        cross = _hsic_u_from_sums(
            n,
            self._xty,
            self._sum_x,
            self._sum_y,
            self._sum_nx,
            self._sum_ny,
            self._sum_nxny,
            self._ny_x,
            self._nx_y,
        )
        self_x = _hsic_u_from_sums(
            n,
            self._xtx,
            self._sum_x,
            self._sum_x,
            self._sum_nx,
            self._sum_nx,
            self._sum_nx2,
            self._nx_x,
            self._nx_x,
        )
        self_y = _hsic_u_from_sums(
            n,
            self._yty,
            self._sum_y,
            self._sum_y,
            self._sum_ny,
            self._sum_ny,
            self._sum_ny2,
            self._ny_y,
            self._ny_y,
        )
        return _ratio(cross, self_x, self_y)


def _hsic_u_from_sums(
    n: int,
    xty: np.ndarray,
    sum_x: np.ndarray,
    sum_y: np.ndarray,
    sum_nx: float,
    sum_ny: float,
    sum_nxny: float,
    ny_weighted_x: np.ndarray,
    nx_weighted_y: np.ndarray,
) -> float:
    """n(n-3) times Song's unbiased HSIC for linear kernels on *uncentred* rows.

    With K = X X^T, nx_i = ||x_i||^2 and S_x = sum_i x_i:
    tr(K~L~) = ||X^T Y||_F^2 - sum nx ny;  1'K~1 = ||S_x||^2 - sum nx;
    1'K~L~1 = sum_i (x_i.S_x - nx_i)(y_i.S_y - ny_i)
            = S_x^T X^T Y S_y - S_x . sum_i ny_i x_i - S_y . sum_i nx_i y_i + sum nx ny.
    Every piece is a sum over rows, hence accumulable batch by batch.
    """
    trace_term = float(np.einsum("ij,ij->", xty, xty)) - sum_nxny
    ones_k = float(sum_x @ sum_x) - sum_nx
    ones_l = float(sum_y @ sum_y) - sum_ny
    ones_kl = (
        float(sum_x @ xty @ sum_y)
        - float(sum_x @ ny_weighted_x)
        - float(sum_y @ nx_weighted_y)
        + sum_nxny
    )
    return trace_term + ones_k * ones_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * ones_kl


def bootstrap_cka(
    x: np.ndarray, y: np.ndarray, n_bootstrap: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """(point, low, high): linear CKA and a 95% interval, point +- 1.96 bootstrap SE.

    Why: a CKA value is a statistic of the sampled rows (here Pfam families); whether two
    values, e.g. a model's embedder-vs-last-layer similarity under two initialisations,
    really differ depends on how much each moves with that sample. Rows are drawn with
    replacement from ``default_rng(seed)`` alone, so every pair evaluated with one seed sees
    the same resamples. A percentile interval would be wrong here: duplicated rows act like
    the self-pairs that bias plain CKA upwards, so every replicate is shifted up (for unrelated
    representations by more than the spread, leaving the point outside its own interval).
    The shift is nearly constant, so the replicates' spread still estimates the standard
    error well; the interval is clipped to CKA's range [0, 1]. BLAS runs single-threaded: the
    products are small, and on a busy machine idle-spinning BLAS threads made each replicate
    about ten times slower in our measurements.
    """
    x_mat, y_mat = _as_matrix(x, "X"), _as_matrix(y, "Y")
    _check_rows(x_mat.shape[0], y_mat.shape[0], debiased=False)
    if n_bootstrap < 2:
        raise ValueError(f"n_bootstrap must be >= 2 to estimate a spread; got {n_bootstrap}")
    n = x_mat.shape[0]
    rng = np.random.default_rng(seed)
    with limit(blas_threads=1):
        replicates = [
            cka(x_mat[rows], y_mat[rows])
            for rows in (rng.integers(0, n, size=n) for _ in range(n_bootstrap))
        ]
        point = cka(x_mat, y_mat)
    half_width = 1.96 * float(np.std(replicates, ddof=1))
    return point, max(point - half_width, 0.0), min(point + half_width, 1.0)

"""Pfam2vec + random forest, the paper's baseline: deterministic vectors that learn
co-occurrence, and a multilabel forest probe that reads a planted signal.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from crossgran.analysis.probes.cv import cross_validated_scores
from crossgran.models.pfam2vec import train_pfam2vec


def _planted_corpus(seed: int = 0, n_sentences: int = 400) -> list[list[str]]:
    """Two "pathways" whose families only ever co-occur with each other (PKS-like A*, NRPS-
    like B*), plus shared housekeeping families H* in every sentence. Skip-gram must put each
    pathway's families closer to each other than to the other pathway's."""
    rng = np.random.default_rng(seed)
    pathways = [[f"PA{i:03d}" for i in range(6)], [f"PB{i:03d}" for i in range(6)]]
    shared = [f"PH{i:03d}" for i in range(4)]
    corpus = []
    for k in range(n_sentences):
        own = rng.choice(pathways[k % 2], size=8)
        mixed = np.concatenate([own, rng.choice(shared, size=2)])
        corpus.append([str(token) for token in rng.permutation(mixed)])
    corpus.append([])  # an empty row (a BGC without domains) must be skipped, not fail
    return corpus


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def test_pfam2vec_learns_co_occurrence() -> None:
    families, vectors = train_pfam2vec(_planted_corpus(), dim=16, epochs=10, seed=0)
    assert families == sorted(families) and len(families) == 16
    assert vectors.shape == (16, 16) and vectors.dtype == np.float64
    index = {family: i for i, family in enumerate(families)}
    a = vectors[[index[f"PA{i:03d}"] for i in range(6)]]
    b = vectors[[index[f"PB{i:03d}"] for i in range(6)]]
    within = (
        _cosine(a, a)[np.triu_indices(6, 1)].mean() + _cosine(b, b)[np.triu_indices(6, 1)].mean()
    ) / 2
    across = _cosine(a, b).mean()
    assert within > across + 0.3, (within, across)


def test_pfam2vec_is_deterministic_within_a_process() -> None:
    corpus = _planted_corpus()
    first = train_pfam2vec(corpus, dim=8, epochs=3, seed=4)
    second = train_pfam2vec(corpus, dim=8, epochs=3, seed=4)
    other = train_pfam2vec(corpus, dim=8, epochs=3, seed=5)
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.allclose(first[1], other[1])


_CHILD = (
    "import hashlib, json, sys\n"
    "from crossgran.models.pfam2vec import train_pfam2vec\n"
    "families, vectors = train_pfam2vec(json.load(sys.stdin), dim=8, epochs=3, seed=4)\n"
    "print(hashlib.sha256(vectors.tobytes() + ' '.join(families).encode()).hexdigest())\n"
)


def test_pfam2vec_is_the_same_in_every_process() -> None:
    """Python's ``hash`` of a string changes with PYTHONHASHSEED; the vectors must not: two
    child processes with different hash seeds and this one agree bit for bit."""
    corpus = _planted_corpus()
    families, vectors = train_pfam2vec(corpus, dim=8, epochs=3, seed=4)
    digests = {hashlib.sha256(vectors.tobytes() + " ".join(families).encode()).hexdigest()}
    for value in ("1", "2024"):
        done = subprocess.run(
            [sys.executable, "-c", _CHILD],
            input=json.dumps(corpus),
            env={**os.environ, "PYTHONHASHSEED": value},
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(done.stdout.strip())
    assert len(digests) == 1


def test_pfam2vec_rejects_an_empty_corpus() -> None:
    with pytest.raises(ValueError, match="no non-empty sentences"):
        train_pfam2vec([[], []], epochs=1, seed=0)


# --------------------------------------------------------------------------- the forest probe


def _planted_multilabel(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three labels, each read off its own feature (label 2 is rare), and 7 noise features."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 10))
    y = np.stack([x[:, 0] > 0.3, x[:, 1] < -0.2, x[:, 2] > 1.3], axis=1).astype(int)
    return x, y


def test_multilabel_forest_reads_a_planted_signal() -> None:
    x, y = _planted_multilabel()
    result = cross_validated_scores(x, y, task="multilabel", model="rf", folds=3, seeds=(0,))
    assert result.oof_scores[0].shape == y.shape
    assert np.all((result.oof_scores[0] >= 0) & (result.oof_scores[0] <= 1))
    assert result.mean()["auc"] > 0.9
    noise = np.random.default_rng(1).standard_normal(x.shape)
    chance = cross_validated_scores(noise, y, task="multilabel", model="rf", folds=3, seeds=(0,))
    assert chance.mean()["auc"] < 0.65


@pytest.mark.filterwarnings("ignore:Label .* present in all training examples:UserWarning")
def test_multilabel_forest_handles_a_label_absent_from_a_training_fold() -> None:
    """A label constant in the training rows gets a certain probability (as one-vs-rest's
    constant predictor does), not a crash or a misplaced column."""
    from crossgran.analysis.probes.cv import _fit_predict, make_estimator

    x, y = _planted_multilabel()
    y_train = y.copy()
    y_train[:, 1] = 0  # label 1 never positive
    y_train[:, 2] = 1  # label 2 always positive
    forest = make_estimator("rf", "multilabel", seed=0, mlp_hidden=(8,))
    scores = _fit_predict(forest, x, y_train, x[:20], "multilabel", 3)
    assert scores.shape == (20, 3)
    np.testing.assert_array_equal(scores[:, 1], 0.0)
    np.testing.assert_array_equal(scores[:, 2], 1.0)
    assert 0 < scores[:, 0].mean() < 1

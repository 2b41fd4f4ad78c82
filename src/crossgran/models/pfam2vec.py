"""Pfam2vec: skip-gram word2vec over Pfam domain sentences, the paper's non-transformer baseline.

DeepBGC (Hannigan et al., Nucleic Acids Res. 47:e110, 2019) introduced Pfam2vec: word2vec
over the Pfam accessions of bacterial genomes, 100-dimensional skip-gram vectors with a
5-token window (its ``pfam2vec`` script: ``word2vec(size=100, cbow=0, window=5, iter_=5)``);
the paper reproduced here (Xiao et al., BIBM 2025) puts Pfam2vec with a random forest
below every learned representation for product classes. Training it on *this* project's
domain corpus (the sentences BiGCARP learns from) makes the comparison about the model, not
the data.

Why these settings: skip-gram and a 5-token window as in DeepBGC; ``min_count=1`` because
the corpus is small and a rare family still needs a vector to be pooled; gensim's defaults
otherwise (negative sampling with 5 noise words, down-sampling 1e-3, learning rate 0.025).
DeepBGC ran 5 passes over millions of domains; the mini corpus has ~94k tokens, so more
passes (:data:`PFAM2VEC_EPOCHS`) give each rare family enough updates.

Deterministic by construction: one worker thread (several threads interleave updates in a
timing-dependent order), a fixed seed, and a sha256-based ``hashfxn`` in place of gensim's
default Python ``hash``, whose string values change with ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from crossgran.threads import limit

__all__ = ["PFAM2VEC_DIM", "PFAM2VEC_EPOCHS", "PFAM2VEC_WINDOW", "train_pfam2vec"]

PFAM2VEC_DIM = 100
PFAM2VEC_WINDOW = 5
# Passes over the corpus. DeepBGC's 5 passes went over millions of domains; the mini corpus
# (3,582 sentences, ~94k tokens, 2,288 families) needs more for a rare family to move far
# from its random start. Measured with one worker on the shared 2-core development machine
# under load: 0.5-0.7 s per epoch, 13-15 s for 20 epochs (plus ~4 s to import gensim).
PFAM2VEC_EPOCHS = 20


def _stable_hash(text: str) -> int:
    """gensim's ``hashfxn``: the same value for a string in every process (Python's ``hash``
    of a string is salted per process unless ``PYTHONHASHSEED`` is fixed)."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


def train_pfam2vec(
    sentences: Sequence[Sequence[str]],
    *,
    dim: int = PFAM2VEC_DIM,
    window: int = PFAM2VEC_WINDOW,
    epochs: int = PFAM2VEC_EPOCHS,
    seed: int,
) -> tuple[list[str], np.ndarray]:
    """Skip-gram word2vec over ``sentences`` (lists of Pfam accessions); returns
    ``(families, vectors)``: every family of the corpus in sorted order, and its (F, dim)
    float64 vector.

    ``sentences`` are the domain corpus rows, e.g.
    ``crossgran.models.bigcarp.split_tokens(load_table(settings, "domain_corpus"))``;
    empty rows are skipped. Two calls with the same arguments return identical arrays, in
    any process (see the module docstring).
    """
    from gensim.models import Word2Vec  # gensim is only needed by this baseline

    corpus = [[str(token) for token in sentence] for sentence in sentences if len(sentence)]
    if not corpus:
        raise ValueError("no non-empty sentences to train on")
    if dim < 1 or window < 1 or epochs < 1:
        raise ValueError(f"dim, window and epochs must be >= 1; got {dim}, {window}, {epochs}")
    with limit(blas_threads=1):
        model = Word2Vec(
            sentences=corpus,
            vector_size=dim,
            window=window,
            min_count=1,
            sg=1,
            workers=1,
            epochs=epochs,
            seed=seed,
            hashfxn=_stable_hash,
        )
    families = sorted(model.wv.key_to_index)
    vectors = np.asarray(model.wv[families], dtype=np.float64)
    return families, vectors

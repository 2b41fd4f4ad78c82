"""Claim 2 as the paper measures it: linear CKA of BiGCARP layer outputs at token occurrences.

The paper's 0.954 ("the embedder barely moves") is not a CKA of the token table with its
initial self; a table of N(0, 1) rows moved by a few hundred AdamW steps stays near 1 for any
initialisation, so that comparison cannot fail. The paper compares layer outputs at the
token occurrences (non-pad positions) of held-out sentences between checkpoints: the epoch-0
model against the final one, at layer 0 (the embedder output) and between the epoch-0
embedder and the final last layer. Here the held-out sentences are the corpus rows of the
``valid`` split, which BiGCARP never trained on.

Why a sentence bootstrap: token occurrences within a sentence are not independent (they share
a context and, in a bag, its domains), so the interval resamples sentences, and every
comparison sees the same resamples, which makes differences between comparisons paired. A
replicate only needs per-sentence sufficient statistics (token count, column sums, X^T X,
Y^T Y, X^T Y), so a thousand replicates cost a few matrix products, not a thousand passes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crossgran.analysis.comparisons import TEST_COLUMNS
from crossgran.analysis.probes.stats import one_sided_p
from crossgran.data.tables import load_table
from crossgran.models import bigcarp
from crossgran.models.bigcarp.model import num_blocks
from crossgran.models.layers import resolve_layers
from crossgran.models.runs import imported_runs
from crossgran.profiles import Profile
from crossgran.threads import limit

__all__ = [
    "CLAIM2_TASK",
    "CkaBootstrap",
    "claim2_table",
    "occurrence_outputs",
    "pair_label",
    "sentence_cka",
]

CLAIM2_TASK = "claim 2"


def _sentence_rng(seed: int, seq_id: str, k: int) -> np.random.Generator:
    """The generator of order ``k`` of one sentence: a function of (seed, id, k) alone, so a
    sentence gets the same order at every checkpoint, in every run and in any subset."""
    key = int(hashlib.sha256(seq_id.encode()).hexdigest()[:8], 16)
    return np.random.default_rng([seed, key, k])


def occurrence_outputs(
    run_dir: Path | str,
    epoch: int | bigcarp.CheckpointRule | None,
    corpus_rows: pd.DataFrame,
    layers: Sequence[int],
    *,
    n_orders: int,
    seed: int,
) -> list[dict[int, np.ndarray]]:
    """Per row of ``corpus_rows`` (columns ``seq_id``, ``tokens``, ``ordered``), per layer of
    ``layers`` (keys as given; negative values count from the end), the (n_tokens, d_model)
    float32 outputs of checkpoint ``epoch`` (None: the last; ``"best"``/``"last"``: the run's
    checkpoint rule, :func:`crossgran.models.bigcarp.chosen_epoch`) at the row's token occurrences
    (pad never included: sentences run whole, padding masked).

    An ordered row runs once. An unordered row (a MIBiG bag) has no real order, so it runs in
    ``n_orders`` random orders, each a permutation drawn from a generator seeded by (``seed``,
    sha256 of the row's id, order number): the same orders at every checkpoint and in every
    run, so row i of two checkpoints' outputs is the same occurrence in the same context. The
    orders' outputs are stacked (n_orders * n_tokens rows), in occurrence order within each.
    """
    run = bigcarp.load_checkpoint(run_dir, epoch)
    resolved = resolve_layers(list(layers), num_blocks(run.model))
    sentences: list[list[str]] = []
    owner: list[int] = []
    for position, row in enumerate(corpus_rows.itertuples()):
        tokens = str(row.tokens).split()
        orders = 1 if bool(row.ordered) else n_orders
        for k in range(orders):
            shuffled = tokens if bool(row.ordered) else _permuted(tokens, seed, row.seq_id, k)
            sentences.append(shuffled)
            owner.append(position)
    reps = bigcarp.layer_representations(run.model, run.vocab, sentences, resolved)
    per_row: list[list[list[np.ndarray]]] = [[] for _ in range(len(corpus_rows))]
    for position, per_layer in zip(owner, reps, strict=True):
        per_row[position].append(per_layer)
    return [
        {layer: np.concatenate([order[n] for order in orders]) for n, layer in enumerate(layers)}
        for orders in per_row
    ]


def _permuted(tokens: list[str], seed: int, seq_id: str, k: int) -> list[str]:
    return [tokens[i] for i in _sentence_rng(seed, seq_id, k).permutation(len(tokens))]


@dataclass(frozen=True)
class _Stats:
    """Per-sentence sufficient statistics of one (X, Y) pair, rows shifted by the full-data
    means (CKA is translation invariant; the shift avoids cancellation in X^T X - n mu mu^T)."""

    n: np.ndarray  # (S,)
    sum_x: np.ndarray  # (S, d1)
    sum_y: np.ndarray  # (S, d2)
    xx: np.ndarray  # (S, d1 * d1)
    yy: np.ndarray  # (S, d2 * d2)
    xy: np.ndarray  # (S, d1 * d2)


def _stats(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> _Stats:
    shift_x = np.concatenate(xs).astype(np.float64).mean(axis=0)
    shift_y = np.concatenate(ys).astype(np.float64).mean(axis=0)
    n, sx, sy, xx, yy, xy = [], [], [], [], [], []
    for x_raw, y_raw in zip(xs, ys, strict=True):
        if x_raw.shape[0] != y_raw.shape[0]:
            raise ValueError(f"a sentence has {x_raw.shape[0]} rows in X, {y_raw.shape[0]} in Y")
        x = np.asarray(x_raw, dtype=np.float64) - shift_x
        y = np.asarray(y_raw, dtype=np.float64) - shift_y
        n.append(x.shape[0])
        sx.append(x.sum(axis=0))
        sy.append(y.sum(axis=0))
        xx.append((x.T @ x).ravel())
        yy.append((y.T @ y).ravel())
        xy.append((x.T @ y).ravel())
    return _Stats(*(np.asarray(a, dtype=np.float64) for a in (n, sx, sy, xx, yy, xy)))


def _cka_from_weights(stats: _Stats, weights: np.ndarray) -> np.ndarray:
    """Linear CKA of the rows of every sentence taken ``weights[b, s]`` times, per b."""
    n = weights @ stats.n
    sx, sy = weights @ stats.sum_x, weights @ stats.sum_y

    def centred_sq(products: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        matrix = products.reshape(-1, a.shape[1], b.shape[1])
        matrix = matrix - np.einsum("bi,bj->bij", a, b) / n[:, None, None]
        return np.einsum("bij,bij->b", matrix, matrix)

    cross = centred_sq(weights @ stats.xy, sx, sy)
    self_x = centred_sq(weights @ stats.xx, sx, sx)
    self_y = centred_sq(weights @ stats.yy, sy, sy)
    return cross / np.sqrt(self_x * self_y)


@dataclass(frozen=True)
class CkaBootstrap:
    """Linear CKA of every pair on all token rows (``values``) and its sentence-bootstrap
    replicates (``replicates[name]``, one value per replicate, the same resamples for every
    pair, so replicate b of two pairs can be subtracted)."""

    values: dict[str, float]
    replicates: dict[str, np.ndarray]
    n_sentences: int
    n_tokens: dict[str, int]

    def interval(self, name: str) -> tuple[float, float]:
        """The 95% percentile interval of ``name``'s replicates."""
        low, high = np.percentile(self.replicates[name], [2.5, 97.5])
        return float(low), float(high)

    def above(self, candidate: str, rival: str) -> dict[str, float]:
        """One-sided paired test that ``candidate``'s CKA exceeds ``rival``'s, as
        ``probes.paired_bootstrap``: delta, the 95% percentile interval of the replicate
        differences, p from ``probes.stats.one_sided_p``."""
        differences = self.replicates[candidate] - self.replicates[rival]
        low, high = np.percentile(differences, [2.5, 97.5])
        return {
            "candidate_mean": self.values[candidate],
            "rival_mean": self.values[rival],
            "delta": self.values[candidate] - self.values[rival],
            "low": float(low),
            "high": float(high),
            "p_value": one_sided_p(self.values[candidate] - self.values[rival], differences),
        }


def sentence_cka(
    pairs: Mapping[str, tuple[Sequence[np.ndarray], Sequence[np.ndarray]]],
    *,
    n_bootstrap: int,
    seed: int,
    chunk: int = 100,
) -> CkaBootstrap:
    """Each pair's linear CKA over all its token rows (pair: per sentence X (n_s, d1) and
    Y (n_s, d2)), with ``n_bootstrap`` replicates that resample sentences with replacement
    (``default_rng(seed)``; all pairs must cover the same sentences). A replicate weights each
    sentence's sufficient statistics by its draw count, so it equals ``linear_cka`` on the
    resampled rows stacked; ``chunk`` replicates are formed at a time to bound memory."""
    sizes = {len(xs) for xs, _ in pairs.values()} | {len(ys) for _, ys in pairs.values()}
    if len(sizes) != 1:
        raise ValueError(f"every pair must cover the same sentences; got counts {sorted(sizes)}")
    (n_sentences,) = sizes
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_sentences, size=(n_bootstrap, n_sentences))
    weights = np.stack([np.bincount(row, minlength=n_sentences) for row in draws]).astype(float)
    values, replicates, n_tokens = {}, {}, {}
    with limit(blas_threads=1):
        for name, (xs, ys) in pairs.items():
            stats = _stats(xs, ys)
            values[name] = float(_cka_from_weights(stats, np.ones((1, n_sentences)))[0])
            replicates[name] = np.concatenate(
                [
                    _cka_from_weights(stats, weights[start : start + chunk])
                    for start in range(0, n_bootstrap, chunk)
                ]
            )
            n_tokens[name] = int(stats.n.sum())
    return CkaBootstrap(values, replicates, n_sentences, n_tokens)


def pair_label(run_a: str, run_b: str, comparison: str) -> str:
    """The name of a :func:`claim2_table` comparison in its tests table: ``"<init>
    <comparison>"`` within a run, ``"esm embedder0 vs random last"`` across runs."""
    if run_a == run_b:
        return f"{run_a} {comparison}"
    return f"{run_a} embedder0 vs {run_b} last"


_WITHIN = ("layer0_vs_epoch0", "embedder0_vs_last", "last_vs_epoch0")


def _run_pairs(
    settings: Profile, runs: Sequence[str], rows: pd.DataFrame
) -> dict[tuple[str, str, str], tuple[list[np.ndarray], list[np.ndarray]]]:
    """(run_a, run_b, comparison) -> per-sentence (X, Y) for every comparison of claim 2."""
    outputs: dict[tuple[str, str], list[np.ndarray]] = {}
    for init in runs:
        run_dir = settings.models_dir / f"bigcarp_{init}"
        for epoch, tag in ((0, "epoch0"), (settings.bigcarp.checkpoint, "final")):
            per_row = occurrence_outputs(
                run_dir, epoch, rows, [0, -1], n_orders=1, seed=settings.seed
            )
            outputs[init, f"{tag} 0"] = [row[0] for row in per_row]
            outputs[init, f"{tag} last"] = [row[-1] for row in per_row]
    pairs = {}
    for init in runs:
        sides = (("final 0", "epoch0 0"), ("epoch0 0", "final last"), ("final last", "epoch0 last"))
        for comparison, (a, b) in zip(_WITHIN, sides, strict=True):
            pairs[init, init, comparison] = (outputs[init, a], outputs[init, b])
    if {"esm", "random"} <= set(runs):
        pairs["esm", "random", "embedder0_vs_last"] = (
            outputs["esm", "epoch0 0"],
            outputs["random", "final last"],
        )
    return pairs


def _claim2_tests(
    boot: CkaBootstrap, runs: Sequence[str], imported: frozenset[str] = frozenset()
) -> pd.DataFrame:
    """The paired "above" tests of claim 2 in the shared tests format, but those reading the
    epoch-0 checkpoint of an ``imported`` run (an official checkpoint: its epoch 0 is a fresh
    initialisation, not where its training started, so "how far it moved" has no answer; the
    CKA values stay in the table). Every comparison reads its first-named run's epoch 0."""
    wanted = [(f"{init} layer0_vs_epoch0", f"{init} embedder0_vs_last") for init in runs]
    if {"esm", "random"} <= set(runs):
        wanted = [
            ("esm layer0_vs_epoch0", "random layer0_vs_epoch0"),
            *wanted,
            ("esm embedder0_vs_last", pair_label("esm", "random", "embedder0_vs_last")),
        ]
    wanted = [
        pair for pair in wanted if not any(label.split(" ", 1)[0] in imported for label in pair)
    ]
    records = [
        {
            "task": CLAIM2_TASK,
            "property": "",
            "candidate": candidate,
            "rival": rival,
            "rivals": rival,
            "metric": "linear CKA",
            "kind": "above",
            **boot.above(candidate, rival),
        }
        for candidate, rival in wanted
    ]
    return pd.DataFrame.from_records(records, columns=TEST_COLUMNS)


def claim2_table(
    settings: Profile, runs: Sequence[str] = ("random", "esm", "esm-frozen")
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Claim 2 on the held-out (``valid``) corpus sentences: (``cka_occurrences.csv``, tests).

    Per run: ``layer0_vs_epoch0`` (layer-0 outputs, final vs epoch-0 checkpoint),
    ``embedder0_vs_last`` (epoch-0 layer 0 vs final last layer), ``last_vs_epoch0`` (last
    layer, final vs epoch 0); across runs (when ``esm`` and ``random`` are both given) the
    ESM-init epoch-0 embedder vs the random-init final last layer. Columns run_a, run_b,
    comparison, linear_cka, ci_low, ci_high (95% sentence-bootstrap percentile interval),
    n_sentences, n_tokens. Unordered rows run in one seeded order (see
    :func:`occurrence_outputs`). The tests (shared format, ``kind="above"``): ESM-init's
    layer 0 moves less than random-init's; in each run layer 0 stays closer to its start than
    to the final last layer; the ESM-init last layer keeps more of its own embedder than the
    random-init last layer does. Names of comparisons: :func:`pair_label`.
    """
    corpus = load_table(settings, "domain_corpus")
    rows = corpus[(corpus["split"] == "valid") & (corpus["n_tokens"] > 0)]
    with limit(torch_threads=settings.torch_threads):
        pairs = _run_pairs(settings, runs, rows)
    boot = sentence_cka(
        {pair_label(*key): value for key, value in pairs.items()},
        n_bootstrap=settings.n_bootstrap,
        seed=settings.seed,
    )
    records = []
    for run_a, run_b, comparison in pairs:
        label = pair_label(run_a, run_b, comparison)
        low, high = boot.interval(label)
        records.append(
            {
                "run_a": run_a,
                "run_b": run_b,
                "comparison": comparison,
                "linear_cka": boot.values[label],
                "ci_low": low,
                "ci_high": high,
                "n_sentences": boot.n_sentences,
                "n_tokens": boot.n_tokens[label],
            }
        )
    return pd.DataFrame.from_records(records), _claim2_tests(boot, runs, imported_runs(settings))

"""Per-layer BiGCARP representations: of families, of corpus rows, of single tokens.

Layers are numbered as in ``sequence_models.pretrained.CARP``: layer 0 is the embedder
output, i.e. the token table row (width ``d_embedding``) mapped by the linear
``up_embedder`` to ``d_model``; layers 1..n are the outputs of the n ByteNet blocks (before
the final LayerNorm). The raw table itself (width ``d_embedding``) is
:func:`~crossgran.models.bigcarp.model.token_table`.

Unordered rows (MIBiG bags) have no real order, so their representations are averaged over
several seeded random orders rather than computed for one arbitrary order.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sequence_models.convolutional import ByteNetLM

from crossgran.cache import load_layers, save_layers
from crossgran.data.split import association_label_bgcs
from crossgran.models.bigcarp.checkpoint import CheckpointRule, TrainedRun, load_checkpoint
from crossgran.models.bigcarp.model import d_model, num_blocks
from crossgran.models.bigcarp.train import ORDER_STREAM, pad_windows, stream_rng
from crossgran.models.bigcarp.vocab import Vocabulary, split_tokens
from crossgran.models.layers import resolve_layers

__all__ = [
    "Representations",
    "export_representations",
    "family_representations",
    "layer_representations",
    "sequence_representations",
    "token_representations",
]


@torch.no_grad()
def _forward_layers(
    model: ByteNetLM,
    vocab: Vocabulary,
    encoded: Sequence[Sequence[int]],
    layers: list[int],
    batch_size: int,
) -> list[list[np.ndarray]]:
    """Per encoded sequence, per layer, its (len, d_model) representations.

    Whole sequences are run (the network is convolutional, so no window limit); batches are
    formed from sequences of similar length, and padding is masked before every convolution,
    so a sequence's result does not depend on its batch-mates. ``vocab.prefix`` runs before
    every sequence and its rows are dropped (see :class:`Vocabulary`).
    """
    bytenet = model.embedder
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    results = [[np.zeros((0, d_model(model)), dtype=np.float32) for _ in layers] for _ in encoded]
    order = sorted(
        (i for i in range(len(encoded)) if len(encoded[i])), key=lambda i: len(encoded[i])
    )
    head = np.asarray(vocab.prefix, dtype=np.int64)
    for start in range(0, len(order), batch_size):
        members = order[start : start + batch_size]
        batch = pad_windows(
            [np.concatenate([head, np.asarray(encoded[i], dtype=np.int64)]) for i in members],
            vocab.pad_index,
        ).to(device)
        input_mask = (batch != vocab.pad_index).unsqueeze(-1).float()
        x = bytenet._embed(batch)
        outputs = {0: x}
        for depth, block in enumerate(bytenet.layers, start=1):
            x = block(x, input_mask=input_mask)
            outputs[depth] = x
        for row, i in enumerate(members):
            rows = slice(len(head), len(head) + len(encoded[i]))
            results[i] = [outputs[layer][row, rows].float().cpu().numpy() for layer in layers]
    model.train(was_training)
    return results


def layer_representations(
    model: ByteNetLM,
    vocab: Vocabulary,
    token_lists: Sequence[Sequence[str]],
    layers: Sequence[int] | None = None,
    batch_size: int = 32,
) -> list[list[np.ndarray]]:
    """Per sequence, per layer of ``layers`` (default 0..n_layers, see the module docstring;
    negative values count from the end), a (len, d_model) float32 array of contextual token
    representations. Unknown tokens run as ``<unk>`` and are counted in the vocabulary."""
    encoded = [vocab.encode(tokens) for tokens in token_lists]
    return _forward_layers(
        model, vocab, encoded, resolve_layers(layers, num_blocks(model)), batch_size
    )


def _orders(
    encoded: Sequence[list[int]], ordered: Sequence[bool], n_orders: int, seed: int
) -> Iterator[tuple[int, np.ndarray, float]]:
    """(row position, ids in one order, weight): ordered rows once with weight 1, unordered
    rows in ``n_orders`` seeded random orders with weight 1/n_orders each."""
    rng = stream_rng(seed, 0, ORDER_STREAM)
    for position, (ids, is_ordered) in enumerate(zip(encoded, ordered, strict=True)):
        row = np.asarray(ids, dtype=np.int64)
        if is_ordered:
            yield position, row, 1.0
        else:
            for _ in range(n_orders):
                yield position, rng.permutation(row), 1.0 / n_orders


def _corpus_passes(
    model: ByteNetLM,
    vocab: Vocabulary,
    corpus: pd.DataFrame,
    layers: list[int],
    n_orders: int,
    seed: int,
    chunk: int,
) -> Iterator[tuple[int, np.ndarray, float, list[np.ndarray]]]:
    """Every (row, order) of ``corpus`` with its per-layer representations, ``chunk`` orders
    at a time so that memory stays bounded on large corpora. Each row is encoded once, so
    ``vocab.unknown_counts`` counts real occurrences, not orders."""
    encoded = [vocab.encode(tokens) for tokens in split_tokens(corpus)]
    passes = _orders(encoded, corpus["ordered"].astype(bool).tolist(), n_orders, seed)
    while part := list(itertools.islice(passes, chunk)):
        reps = _forward_layers(model, vocab, [ids for _, ids, _ in part], layers, 32)
        yield from ((*item, per_layer) for item, per_layer in zip(part, reps, strict=True))


@dataclass
class _CorpusSums:
    """Weighted per-family sums and per-row means of one pass over a corpus, every layer;
    ``kept_*``: the same family sums over the rows of a ``kept`` mask only (None: no mask)."""

    family_sums: dict[int, np.ndarray]
    family_weights: np.ndarray
    row_means: dict[int, np.ndarray]
    kept_sums: dict[int, np.ndarray] | None = None
    kept_weights: np.ndarray | None = None


class _FamilySums:
    """float64 per-family sums (index_add, not ``np.add.at``, which is slow for hundreds of
    thousands of tokens) and their total weights, every layer."""

    def __init__(self, n_tokens: int, width: int, layers: list[int]) -> None:
        self.sums = {layer: torch.zeros((n_tokens, width), dtype=torch.float64) for layer in layers}
        self.weights = torch.zeros(n_tokens, dtype=torch.float64)

    def add(
        self, keep: torch.Tensor, mask: np.ndarray, weight: float, per_layer: Sequence[np.ndarray]
    ) -> None:
        self.weights.index_add_(0, keep, torch.full((len(keep),), weight, dtype=torch.float64))
        for total, array in zip(self.sums.values(), per_layer, strict=True):
            total.index_add_(0, keep, torch.from_numpy(array[mask]).double() * weight)


def _accumulate(
    model: ByteNetLM,
    vocab: Vocabulary,
    corpus: pd.DataFrame,
    layers: list[int],
    n_orders: int,
    seed: int,
    chunk: int,
    kept: np.ndarray | None = None,
) -> _CorpusSums:
    """One pass over ``corpus`` feeding per-family averages (over every row and, given a
    ``kept`` row mask, over the kept rows only) and per-row means, so that exporting all of
    them costs one set of forward passes. The all-row sums are accumulated exactly as
    before the mask existed, so their numbers do not depend on it."""
    width = d_model(model)
    every = _FamilySums(len(vocab), width, layers)
    subset = None if kept is None else _FamilySums(len(vocab), width, layers)
    row_means = {layer: np.zeros((len(corpus), width)) for layer in layers}
    is_family = np.zeros(len(vocab), dtype=bool)
    is_family[vocab.family_indices] = True
    for position, ids, weight, per_layer in _corpus_passes(
        model, vocab, corpus, layers, n_orders, seed, chunk
    ):
        keep = torch.from_numpy(ids[is_family[ids]])
        mask = is_family[ids]
        every.add(keep, mask, weight, per_layer)
        if subset is not None and kept[position]:
            subset.add(keep, mask, weight, per_layer)
        for layer, array in zip(layers, per_layer, strict=True):
            row_means[layer][position] += weight * array.mean(axis=0)
    empty = np.array([not tokens for tokens in split_tokens(corpus)], dtype=bool)
    for layer in layers:
        row_means[layer][empty] = np.nan
    return _CorpusSums(
        {k: v.numpy() for k, v in every.sums.items()},
        every.weights.numpy(),
        row_means,
        None if subset is None else {k: v.numpy() for k, v in subset.sums.items()},
        None if subset is None else subset.weights.numpy(),
    )


def _family_averages(
    vocab: Vocabulary, sums: _CorpusSums, layers: list[int]
) -> dict[int, tuple[list[str], np.ndarray]]:
    seen = np.flatnonzero(sums.family_weights > 0)
    names_of: dict[int, str] = {}
    for name in vocab.families:  # an alias group (several names, one index): its first name
        names_of.setdefault(vocab.index[name], name)
    families = [names_of[i] for i in seen]
    return {
        layer: (
            families,
            (sums.family_sums[layer][seen] / sums.family_weights[seen, None]).astype(np.float32),
        )
        for layer in layers
    }


def _kept_averages(sums: _CorpusSums, layers: list[int]) -> dict[int, np.ndarray]:
    """Per layer, the kept rows' per-family averages on the rows of :func:`_family_averages`
    (every family seen in the whole corpus); NaN where a family occurs only outside them."""
    seen = np.flatnonzero(sums.family_weights > 0)
    weights = sums.kept_weights[seen, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            layer: np.where(weights > 0, sums.kept_sums[layer][seen] / weights, np.nan).astype(
                np.float32
            )
            for layer in layers
        }


def family_representations(
    model: ByteNetLM,
    vocab: Vocabulary,
    corpus: pd.DataFrame,
    layers: Sequence[int] | None,
    n_orders: int,
    seed: int,
    chunk: int = 256,
) -> dict[int, tuple[list[str], np.ndarray]]:
    """Per layer, (families, (n_families, d) float32 array): the mean contextual vector of each
    Pfam family over all its occurrences in ``corpus`` (``<unk>`` positions skipped; families
    absent from the corpus omitted). An unordered row's occurrences are averaged over
    ``n_orders`` random orders, so each real occurrence has total weight 1. Reads the
    corpus columns ``tokens`` and ``ordered``."""
    layers = resolve_layers(layers, num_blocks(model))
    return _family_averages(
        vocab, _accumulate(model, vocab, corpus, layers, n_orders, seed, chunk), layers
    )


def sequence_representations(
    model: ByteNetLM,
    vocab: Vocabulary,
    corpus: pd.DataFrame,
    layers: Sequence[int] | None,
    n_orders: int,
    seed: int,
    chunk: int = 256,
) -> dict[int, np.ndarray]:
    """Per layer, an (n_rows, d) float32 array in ``corpus`` row order: each row's mean over
    its tokens, averaged over ``n_orders`` random orders for unordered rows (empty rows: NaN).
    Reads the corpus columns ``tokens`` and ``ordered``."""
    layers = resolve_layers(layers, num_blocks(model))
    sums = _accumulate(model, vocab, corpus, layers, n_orders, seed, chunk)
    return {layer: array.astype(np.float32) for layer, array in sums.row_means.items()}


def token_representations(
    model: ByteNetLM,
    vocab: Vocabulary,
    sentences: Mapping[str, Sequence[str]],
    sites: Sequence[tuple[str, int]],
    layers: Sequence[int] | None,
) -> dict[int, np.ndarray]:
    """Per layer, an (n_sites, d) array: for each ``(key, index)`` of ``sites``, the contextual
    vector of token ``index`` of sentence ``sentences[key]``, e.g. an A-domain's AMP-binding
    token in its parent NRPS protein, or a halogenase's token in its BGC.

    Each sentence holding a site runs once (in ``sentences``' order), however many sites it
    holds: a multi-modular NRPS has several A-domains, a BGC several halogenases.
    """
    for key, index in sites:
        if key not in sentences:
            raise KeyError(f"site {key!r} has no sentence")
        if not 0 <= index < len(sentences[key]):
            raise IndexError(
                f"site {key!r}: index {index} outside a sentence of {len(sentences[key])} tokens"
            )
    layers = resolve_layers(layers, num_blocks(model))
    if not sites:
        return {layer: np.zeros((0, d_model(model)), dtype=np.float32) for layer in layers}
    wanted = {key for key, _ in sites}
    keys = [key for key in sentences if key in wanted]
    reps = layer_representations(model, vocab, [sentences[key] for key in keys], layers)
    row_of = {key: row for row, key in enumerate(keys)}
    return {
        layer: np.stack([reps[row_of[key]][n][index] for key, index in sites])
        for n, layer in enumerate(layers)
    }


@dataclass(frozen=True)
class Representations:
    """One run's exported representations, every layer (0 = embedder output).

    ``family[k]`` rows follow ``families`` (per-family averages over the corpus);
    ``family_disjoint[k]`` has the same rows, averaged over the corpus without the MIBiG BGCs of
    :func:`~crossgran.data.split.association_label_bgcs` (NaN for a family seen only there;
    empty in files written before it existed); ``bgc[k]`` rows follow ``bgc_ids``
    (per-MIBiG-BGC means); ``adomain[k]`` rows follow ``adomain_ids`` (each A-domain's
    AMP-binding token in its parent NRPS protein's sentence). ``epoch``: the checkpoint they
    come from (0 = the initialisation; None in files written before it was recorded), so a
    reader can say which epoch a best-checkpoint rule chose.
    """

    layers: list[int]
    families: list[str]
    family: dict[int, np.ndarray]
    bgc_ids: list[str]
    bgc: dict[int, np.ndarray]
    adomain_ids: list[str]
    adomain: dict[int, np.ndarray]
    family_disjoint: dict[int, np.ndarray] = field(default_factory=dict)
    epoch: int | None = None

    def save(self, path: Path | str) -> None:
        """An ``.npz`` (layers, families, bgc_ids, adomain_ids, epoch when known, then
        family_L<k>, bgc_L<k>, adomain_L<k> and family_disjoint_L<k> per layer), written
        atomically."""
        header = {
            "layers": np.asarray(self.layers),
            "families": np.asarray(self.families, dtype=str),
            "bgc_ids": np.asarray(self.bgc_ids, dtype=str),
            "adomain_ids": np.asarray(self.adomain_ids, dtype=str),
        }
        if self.epoch is not None:
            header["epoch"] = np.asarray(self.epoch)
        per_layer = {"family": self.family, "bgc": self.bgc, "adomain": self.adomain}
        if self.family_disjoint:
            per_layer["family_disjoint"] = self.family_disjoint
        save_layers(path, header, per_layer)

    @classmethod
    def load(cls, path: Path | str) -> Representations:
        """Read what :meth:`save` wrote."""
        header, per_layer = load_layers(path)
        return cls(
            [int(k) for k in header["layers"]],
            header["families"].tolist(),
            per_layer["family"],
            header["bgc_ids"].tolist(),
            per_layer["bgc"],
            header["adomain_ids"].tolist(),
            per_layer["adomain"],
            per_layer.get("family_disjoint", {}),
            int(header["epoch"]) if "epoch" in header else None,
        )


def _adomain_tokens(
    run: TrainedRun, corpus: pd.DataFrame, adomains: pd.DataFrame, layers: list[int]
) -> tuple[list[str], dict[int, np.ndarray]]:
    """(domain ids, per layer their AMP-binding token's vectors in the parent's sentence)."""
    located = adomains[adomains["amp_token_index"] >= 0]
    sentences = corpus.set_index("seq_id")["tokens"]
    parents = {
        parent: sentences["nrps:" + parent].split()
        for parent in sorted(set(located["parent_protein"]))
    }
    per_adomain = token_representations(
        run.model,
        run.vocab,
        parents,
        list(zip(located["parent_protein"], located["amp_token_index"], strict=True)),
        layers,
    )
    return located["domain_id"].tolist(), per_adomain


def export_representations(
    run_dir: Path | str,
    corpus: pd.DataFrame,
    adomains: pd.DataFrame,
    n_orders: int,
    seed: int,
    *,
    epoch: int | CheckpointRule | None = None,
) -> Representations:
    """One run's representations for the probe notebooks (see :class:`Representations`) at
    checkpoint ``epoch`` as :func:`~crossgran.models.bigcarp.checkpoint.load_checkpoint` reads
    it (the profile's ``bigcarp.checkpoint`` rule: the trained model; 0: the untrained
    initialisation, the control every learned representation must beat; None: the last
    completed); the epoch read is recorded in the result. A-domains without a located
    AMP-binding token are left out.

    Reads the corpus columns ``seq_id``, ``source``, ``tokens`` and ``ordered`` (NRPS parent
    proteins are the rows ``nrps:<parent_protein>``) and the A-domain columns ``domain_id``,
    ``parent_protein`` and ``amp_token_index`` (-1: not located).
    """
    run = load_checkpoint(run_dir, epoch)
    layers = resolve_layers(None, num_blocks(run.model))
    is_mibig = (corpus["source"] == "mibig").to_numpy()
    held_out = np.zeros(len(corpus), dtype=bool)
    held_out[is_mibig] = association_label_bgcs(corpus.loc[is_mibig, "seq_id"].tolist())
    sums = _accumulate(
        run.model, run.vocab, corpus, layers, n_orders, seed, chunk=256, kept=~held_out
    )
    family = _family_averages(run.vocab, sums, layers)
    per_bgc = {layer: sums.row_means[layer][is_mibig].astype(np.float32) for layer in layers}
    adomain_ids, per_adomain = _adomain_tokens(run, corpus, adomains, layers)
    return Representations(
        layers,
        family[layers[0]][0],
        {k: family[k][1] for k in layers},
        corpus.loc[is_mibig, "seq_id"].tolist(),
        per_bgc,
        adomain_ids,
        per_adomain,
        _kept_averages(sums, layers),
        run.epoch,
    )

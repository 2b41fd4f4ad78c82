"""A BiLSTM probe over ordered per-domain vector sequences: the paper's product-class probe.

The paper's product-class table reads each BGC as the sequence of its Pfam domains in gene
order, one vector per domain (ESM's family vector, BiGCARP's contextual token, or both side by
side), through a bidirectional LSTM: hidden size 512, 2 layers, dropout 0.2, Adam at lr 1e-4,
batches of 32, at most 150 epochs, one seed (:data:`PAPER_BILSTM`). Such a probe can use the
order of the domains, which a mean over them cannot; so it only means something where the order
is real. Offline, MIBiG BGCs are unordered bags (``domain_corpus.ordered`` is False), and a
sequence model over an order we drew ourselves would read our draw; the notebook reports it as
not run there.

Choices the paper leaves open, made here and named so they can be changed:

* **Early stopping**: the paper states a maximum of 150 epochs; here each training fold holds
  out ``valid_fraction`` of its rows (seeded), training stops after ``patience`` epochs without
  a lower held-out loss, and the weights of the best epoch are kept (as sklearn's MLP probe
  does with ``early_stopping=True``).
* **Read-out**: the final hidden states of both directions of the last layer, concatenated,
  then dropout and one linear layer; sigmoid outputs with binary cross-entropy for binary and
  multilabel tasks, softmax with cross-entropy for multiclass; no class weights (as the MLP).
* **Inputs** are standardised per column with the training fold's token mean and standard
  deviation (the pooled probes standardise their columns the same way).

The folds are :func:`crossgran.analysis.probes.cv.fold_plan`'s, the very folds the pooled
probes of the same labels and seeds use, and the result is a :class:`ProbeResult`, so the
bootstrap intervals and paired tests of ``probes.stats`` apply unchanged. Deterministic for a
seed and a torch thread count on one device: every fold's weights, dropout masks, batch order
and held-out rows come from generators seeded by (seed, fold) inside a forked RNG, so the
caller's global RNG is left as it was. (On a GPU, cuDNN's LSTM kernels are not promised to be
bitwise deterministic; the CPU path is.)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

from crossgran.analysis.probes.cv import FoldPlan, ProbeResult, fold_plan, probe_result
from crossgran.analysis.probes.metrics import Task
from crossgran.profiles import SequenceProbeConfig
from crossgran.threads import limit

__all__ = ["PAPER_BILSTM", "SequenceProbeConfig", "sequence_probe_scores"]


PAPER_BILSTM = SequenceProbeConfig()  # the paper's sizes (the class lives with the profiles)


class _BiLstm(nn.Module):
    """Bidirectional LSTM, last layer's final states of both directions -> dropout -> linear."""

    def __init__(self, width: int, n_outputs: int, config: SequenceProbeConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            width,
            config.hidden,
            num_layers=config.layers,
            batch_first=True,
            bidirectional=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(2 * config.hidden, n_outputs)

    def forward(self, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
        _, (final, _) = self.lstm(packed)
        return self.head(self.dropout(torch.cat([final[-2], final[-1]], dim=1)))


def _checked_sequences(sequences: Sequence[np.ndarray], n_rows: int) -> list[np.ndarray]:
    """The sequences as float32 arrays of one width, or a ValueError naming the bad row."""
    if len(sequences) != n_rows:
        raise ValueError(f"{len(sequences)} sequences but {n_rows} labels")
    arrays = [np.asarray(s, dtype=np.float32) for s in sequences]
    width = arrays[0].shape[1] if arrays and arrays[0].ndim == 2 else None
    for row, array in enumerate(arrays):
        if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] != width:
            raise ValueError(
                f"sequence {row} has shape {array.shape}; every sequence must be a non-empty "
                f"(length, {width}) array (drop BGCs without a domain vector first)"
            )
        if not np.isfinite(array).all():
            raise ValueError(f"sequence {row} holds NaN or infinite values")
    return arrays


def _standardiser(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and standard deviation over every token of ``arrays`` (constant columns: 1)."""
    tokens = np.concatenate(arrays).astype(np.float64)
    scale = tokens.std(axis=0)
    return tokens.mean(axis=0), np.where(scale > 0, scale, 1.0)


def _batch(
    tensors: Sequence[torch.Tensor], rows: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(padded batch on ``device``, lengths on the CPU, as ``pack_padded_sequence`` wants)."""
    members = [tensors[i] for i in rows]
    lengths = torch.tensor([len(t) for t in members], dtype=torch.int64)
    return pad_sequence(members, batch_first=True).to(device), lengths


class _Objective:
    """Loss on logits and the scores reported for them, per task."""

    def __init__(self, task: Task, n_classes: int) -> None:
        self.task = task
        self.n_outputs = 1 if task == "binary" else n_classes
        self.loss = nn.CrossEntropyLoss() if task == "multiclass" else nn.BCEWithLogitsLoss()

    def target(self, y: np.ndarray, device: torch.device) -> torch.Tensor:
        if self.task == "multiclass":
            return torch.as_tensor(y, dtype=torch.int64, device=device)
        return torch.as_tensor(y, dtype=torch.float32, device=device).reshape(len(y), -1)

    def scores(self, logits: torch.Tensor) -> np.ndarray:
        if self.task == "multiclass":
            return torch.softmax(logits, dim=1).double().cpu().numpy()
        probabilities = torch.sigmoid(logits).double().cpu().numpy()
        return probabilities[:, 0] if self.task == "binary" else probabilities


@torch.no_grad()
def _predict(
    model: _BiLstm,
    tensors: Sequence[torch.Tensor],
    rows: np.ndarray,
    batch: int,
    device: torch.device,
) -> torch.Tensor:
    model.eval()
    logits = [
        model(*_batch(tensors, rows[start : start + batch], device))
        for start in range(0, len(rows), batch)
    ]
    return torch.cat(logits)


def _fit_fold(
    tensors: Sequence[torch.Tensor],
    y_enc: np.ndarray,
    train: np.ndarray,
    objective: _Objective,
    config: SequenceProbeConfig,
    seed_state: int,
    device: torch.device,
) -> _BiLstm:
    """A BiLSTM trained on the ``train`` rows, early-stopped on a seeded held-out part of them."""
    rng = np.random.default_rng(seed_state)
    shuffled = rng.permutation(train)
    n_valid = max(1, round(config.valid_fraction * len(train)))
    valid, fit = shuffled[:n_valid], shuffled[n_valid:]
    torch.manual_seed(seed_state)
    model = _BiLstm(tensors[0].shape[1], objective.n_outputs, config).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    valid_target = objective.target(y_enc[valid], device)
    best_loss, best_state, waited = float("inf"), copy.deepcopy(model.state_dict()), 0
    for _ in range(config.max_epochs):
        model.train()
        order = rng.permutation(fit)
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            optimiser.zero_grad()
            loss = objective.loss(
                model(*_batch(tensors, rows, device)), objective.target(y_enc[rows], device)
            )
            loss.backward()
            optimiser.step()
        held_out = _predict(model, tensors, valid, config.batch_size, device)
        valid_loss = float(objective.loss(held_out, valid_target))
        if valid_loss < best_loss:
            best_loss, best_state, waited = valid_loss, copy.deepcopy(model.state_dict()), 0
        else:
            waited += 1
            if waited >= config.patience:
                break
    model.load_state_dict(best_state)
    return model


def _fold_scores(
    arrays: Sequence[np.ndarray],
    plan: FoldPlan,
    k: int,
    fold: int,
    seed: int,
    objective: _Objective,
    config: SequenceProbeConfig,
    device: torch.device,
) -> np.ndarray:
    """Test scores of one (seed, fold): standardise on the training rows, fit, predict."""
    test = plan.fold_ids[k] == fold
    train_rows, test_rows = np.flatnonzero(~test), np.flatnonzero(test)
    centre, scale = _standardiser([arrays[i] for i in train_rows])
    tensors = [torch.from_numpy(((a - centre) / scale).astype(np.float32)) for a in arrays]
    seed_state = int(np.random.SeedSequence([seed, fold]).generate_state(1)[0])
    model = _fit_fold(tensors, plan.y_enc, train_rows, objective, config, seed_state, device)
    return objective.scores(_predict(model, tensors, test_rows, config.batch_size, device))


def sequence_probe_scores(
    sequences: Sequence[np.ndarray],
    y: np.ndarray,
    *,
    task: Task,
    groups: np.ndarray | None = None,
    folds: int = 5,
    seeds: Sequence[int] = (0,),
    config: SequenceProbeConfig = PAPER_BILSTM,
    device: str | torch.device = "cpu",
    torch_threads: int | None = None,
) -> ProbeResult:
    """Out-of-fold BiLSTM scores and metrics for each seed, in :class:`ProbeResult`'s layout.

    ``sequences[i]`` is row i's (length_i, width) array of per-domain vectors in gene order;
    ``y`` is labelled as for :func:`~crossgran.analysis.probes.cross_validated_scores`, whose
    folds (same labels, groups and seeds) these are. The paper ran one seed. ``torch_threads``
    fixes torch's thread count during the fits (part of what makes the scores reproducible).
    """
    labels = np.asarray(y)
    arrays = _checked_sequences(sequences, labels.shape[0])
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("seeds must not be empty")
    plan = fold_plan(labels, task=task, groups=groups, folds=folds, seeds=seeds)
    objective = _Objective(task, plan.classes.size)
    device = torch.device(device)
    forked = [device.index or 0] if device.type == "cuda" else []
    all_scores = []
    with limit(torch_threads=torch_threads), torch.random.fork_rng(devices=forked):
        for k, seed in enumerate(seeds):
            shape = labels.shape[:1] if task == "binary" else (labels.shape[0], objective.n_outputs)
            scores = np.full(shape, np.nan)
            for fold in range(folds):
                scores[plan.fold_ids[k] == fold] = _fold_scores(
                    arrays, plan, k, fold, seed, objective, config, device
                )
            all_scores.append(scores)
    hidden = (config.hidden,) * config.layers
    return probe_result(plan, all_scores, task=task, model="bilstm", seeds=seeds, hidden=hidden)

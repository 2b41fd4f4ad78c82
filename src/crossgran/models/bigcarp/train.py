"""BiGCARP training by masked-token prediction, deterministic and exactly resumable.

Every random draw comes from a stream named by (seed, epoch, purpose) (:func:`stream_rng`),
never from a generator shared across epochs, so a run killed after epoch k and resumed ends
bit-identical to an uninterrupted one. Unordered rows (MIBiG bags: domain counts without
gene order) get a fresh random order every epoch, so no spurious order is learnt.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sequence_models.convolutional import ByteNetLM

from crossgran.cache import write_text_atomic
from crossgran.models.bigcarp.checkpoint import (
    RUN,
    STATE,
    VOCAB,
    clear_run,
    history_frame,
    run_record,
    same_run,
    stored_config,
    write_checkpoint,
)
from crossgran.models.bigcarp.model import (
    InitMode,
    build_model,
    init_token_embeddings,
    resolve_d_embedding,
)
from crossgran.models.bigcarp.vocab import Vocabulary, split_tokens
from crossgran.models.masking import IGNORE_INDEX, mask_tokens
from crossgran.profiles import BigcarpConfig

# Purposes of the random streams: each must differ from the others, or two purposes would
# draw the same numbers (e.g. validation windows ordered like training windows).
TRAIN_STREAM, VALID_STREAM, VALID_MASK_STREAM, ORDER_STREAM = 0, 1, 2, 3
STREAMS = (TRAIN_STREAM, VALID_STREAM, VALID_MASK_STREAM, ORDER_STREAM)

__all__ = [
    "ORDER_STREAM",
    "STREAMS",
    "TRAIN_STREAM",
    "VALID_MASK_STREAM",
    "VALID_STREAM",
    "held_out_metrics",
    "length_batches",
    "mask_batch",
    "pad_windows",
    "stream_rng",
    "train_mlm",
    "training_windows",
]


# --------------------------------------------------------------------------- data


def stream_rng(seed: int, epoch: int, stream: int) -> np.random.Generator:
    """Independent streams per (seed, epoch, purpose): no two runs or epochs share draws, and
    an epoch's draws do not depend on how many were taken before, which makes resuming exact."""
    return np.random.default_rng([seed, epoch, stream])


def training_windows(
    encoded: Sequence[Sequence[int]],
    ordered: Sequence[bool],
    max_len: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Windows of at most ``max_len`` tokens, in random order.

    Unordered rows are permuted first (a new order each time this is called with a new
    ``rng``); every row is then cut into consecutive non-overlapping windows from its start,
    so a long ordered row is always cut at the same places.
    """
    windows: list[np.ndarray] = []
    for ids, is_ordered in zip(encoded, ordered, strict=True):
        row = np.asarray(ids, dtype=np.int64)
        if not is_ordered:
            row = rng.permutation(row)
        windows.extend(row[start : start + max_len] for start in range(0, len(row), max_len))
    return [windows[i] for i in rng.permutation(len(windows))]


def length_batches(
    windows: Sequence[np.ndarray], batch_size: int, rng: np.random.Generator
) -> list[list[np.ndarray]]:
    """Batches of similar-length windows, the batches in random order.

    Why: windows run from 1 token (a stand-alone A-domain protein) to ``max_len`` (a cut
    MIBiG bag); batches of randomly mixed lengths pad most rows to the longest and spend most
    of every convolution on padding (measured: 2,900 vs 5,000+ real tokens/s on the mini
    corpus). Sorting by length (ties keep the shuffled order of ``windows``) and shuffling
    whole batches keeps the sampling random at the batch level.
    """
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
    batches = [
        [windows[i] for i in order[start : start + batch_size]]
        for start in range(0, len(order), batch_size)
    ]
    return [batches[i] for i in rng.permutation(len(batches))]


def pad_windows(windows: Sequence[np.ndarray], pad_index: int) -> torch.Tensor:
    """Right-padded (rows, longest) int64 batch."""
    batch = np.full((len(windows), max(len(w) for w in windows)), pad_index, dtype=np.int64)
    for row, window in enumerate(windows):
        batch[row, : len(window)] = window
    return torch.from_numpy(batch)


def mask_batch(
    batch: torch.Tensor, vocab: Vocabulary, mask_rate: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking of real (non-padding) tokens at ``mask_rate``, at least one target per
    window (so short bags still teach something), random replacements drawn from the real
    families. Returns (inputs, targets with IGNORE_INDEX elsewhere)."""
    return mask_tokens(
        batch,
        maskable=batch != vocab.pad_index,
        rate=mask_rate,
        mask_index=vocab.mask_index,
        replacements=torch.from_numpy(vocab.family_indices),
        generator=generator,
        at_least_one="row",
    )


def _torch_generator(rng: np.random.Generator) -> torch.Generator:
    return torch.Generator().manual_seed(int(rng.integers(2**62)))


# --------------------------------------------------------------------------- training


def _optimizer(model: ByteNetLM, config: BigcarpConfig) -> torch.optim.AdamW:
    """AdamW at ``config.lr`` over trainable weights only (a frozen table is not even handed
    to it, so neither the update nor weight decay can touch it).

    ``config.weight_decay`` applies to every weight but the token table, which is in a
    no-decay group: decay would shrink rarely seen rows toward zero whatever the data says.
    AdamW's decay is decoupled (``w -= lr * decay * w`` beside the Adam step), so with
    ``weight_decay=0`` every update is exactly plain Adam's: the paper's optimiser."""
    table = model.embedder.embedder.weight
    rest = [p for p in model.parameters() if p.requires_grad and p is not table]
    groups = [{"params": rest, "weight_decay": config.weight_decay}]
    if table.requires_grad:
        groups.append({"params": [table], "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=config.lr)


def _prefixed(
    inputs: torch.Tensor, targets: torch.Tensor, vocab: Vocabulary
) -> tuple[torch.Tensor, torch.Tensor]:
    """``vocab.prefix`` in front of every row of a masked batch, never masked and never a
    target: the model reads it as it was trained to, and only the sentence is scored."""
    if not vocab.prefix:
        return inputs, targets
    head = torch.tensor(vocab.prefix, dtype=inputs.dtype).expand(len(inputs), -1)
    ignored = torch.full_like(head, IGNORE_INDEX)
    return torch.cat([head, inputs], dim=1), torch.cat([ignored, targets], dim=1)


@torch.no_grad()
def _evaluate(
    model: ByteNetLM,
    vocab: Vocabulary,
    windows: list[np.ndarray],
    config: BigcarpConfig,
    seed: int,
    device: torch.device,
) -> tuple[float, float]:
    """Masked-token loss and accuracy on validation windows, masked identically every epoch
    (fixed stream) so epochs are compared on the same targets."""
    if not windows:
        return float("nan"), float("nan")
    model.eval()
    generator = _torch_generator(stream_rng(seed, 0, VALID_MASK_STREAM))
    loss_sum, correct, count = 0.0, 0, 0
    for start in range(0, len(windows), config.batch_size):
        batch = pad_windows(windows[start : start + config.batch_size], vocab.pad_index)
        inputs, targets = _prefixed(*mask_batch(batch, vocab, config.mask_rate, generator), vocab)
        inputs, targets = inputs.to(device), targets.to(device)
        logits = model(inputs, input_mask=(inputs != vocab.pad_index).unsqueeze(-1).float())
        selected = targets != IGNORE_INDEX
        loss_sum += F.cross_entropy(logits[selected], targets[selected], reduction="sum").item()
        correct += (logits[selected].argmax(-1) == targets[selected]).sum().item()
        count += int(selected.sum())
    model.train()
    return loss_sum / count, correct / count


def _follow_resumed_run(out_dir: Path, stored: dict, config: BigcarpConfig) -> None:
    """Rewrite ``run.json`` of a continued run with the configuration it now runs under.

    Only :data:`NOT_TRAINING` and :data:`RESOLVED` fields can differ (:func:`same_run` checked
    the rest, and values a legacy run.json lacks are written out as it was trained). ``epochs`` never goes down: a
    call asking for fewer epochs than the run holds trains nothing and removes nothing, so
    run.json keeps saying how far the run was taken. The init report of the fresh start stays.
    """
    epochs = max(config.epochs, stored_config(stored)["epochs"])
    record = {**stored, "config": asdict(replace(config, epochs=epochs))}
    if record != stored:
        write_text_atomic(out_dir / RUN, json.dumps(record, indent=1))


def _start(
    out_dir: Path,
    vocab: Vocabulary,
    config: BigcarpConfig,
    init_mode: InitMode,
    family_vectors: Mapping[str, np.ndarray] | None,
    seed: int,
    resume: bool,
    device: torch.device,
) -> tuple[ByteNetLM, torch.optim.Optimizer, list[dict], int]:
    """(model, optimizer, history, last completed epoch): continued from ``out_dir`` when it
    holds the same run and ``resume``, else a fresh run whose epoch-0 checkpoint is written."""
    d_embedding = resolve_d_embedding(config, family_vectors)
    record = run_record(config, init_mode, seed, d_embedding)
    model = build_model(config, vocab, d_embedding, seed=seed)
    report = init_token_embeddings(model, vocab, init_mode, family_vectors)
    model.to(device)
    optimizer = _optimizer(model, config)
    if resume and (out_dir / STATE).is_file():
        stored = json.loads((out_dir / RUN).read_text())
        if stored.get("official"):
            raise ValueError(
                f"{out_dir} holds an imported official checkpoint "
                f"({stored['official']['model']}), which is not trained further here; use "
                "another --out or resume=False to train a run of your own there"
            )
        if not same_run(stored, record):
            raise ValueError(
                f"{out_dir} holds a different run ({stored}); use another --out "
                "or resume=False to start over"
            )
        if Vocabulary.load(out_dir / VOCAB).to_json() != vocab.to_json():
            raise ValueError(
                f"{out_dir} was trained with another vocabulary (has the corpus "
                "changed?); use another --out or resume=False to start over"
            )
        state = torch.load(out_dir / STATE, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _follow_resumed_run(out_dir, stored, config)
        return model, optimizer, state["history"], state["epoch"]
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_run(out_dir)
    vocab.save(out_dir / VOCAB)
    write_text_atomic(out_dir / RUN, json.dumps({**record, "init": asdict(report)}, indent=1))
    write_checkpoint(out_dir, 0, model, optimizer, [])
    return model, optimizer, [], 0


def _train_epoch(
    model: ByteNetLM,
    optimizer: torch.optim.Optimizer,
    vocab: Vocabulary,
    config: BigcarpConfig,
    windows: list[np.ndarray],
    rng: np.random.Generator,
    device: torch.device,
    progress: str | None,
) -> tuple[float, int, int]:
    """One pass over ``windows`` in length batches; returns (summed target loss, targets,
    real tokens). Masking and batch order come from ``rng`` (the epoch's training stream)."""
    generator = _torch_generator(rng)
    batches = length_batches(windows, config.batch_size, rng)
    began = time.perf_counter()
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc=progress, unit="batch")
    loss_sum, n_targets, n_tokens = 0.0, 0, 0
    for members in batches:
        batch = pad_windows(members, vocab.pad_index)
        inputs, targets = mask_batch(batch, vocab, config.mask_rate, generator)
        inputs, targets = inputs.to(device), targets.to(device)
        logits = model(inputs, input_mask=(inputs != vocab.pad_index).unsqueeze(-1).float())
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        selected = int((targets != IGNORE_INDEX).sum())
        loss_sum += loss.item() * selected
        n_targets += selected
        n_tokens += int((batch != vocab.pad_index).sum())
        if progress:
            rate = n_tokens / (time.perf_counter() - began)
            batches.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{rate:,.0f}")
    return loss_sum, n_targets, n_tokens


def _split_rows(
    corpus: pd.DataFrame, vocab: Vocabulary
) -> tuple[list[list[int]], list[bool], list[list[int]], list[bool]]:
    """Encoded (train rows, their ordered flags, valid rows, their flags); empty rows dropped."""
    encoded = [vocab.encode(row) for row in split_tokens(corpus)]
    ordered = corpus["ordered"].astype(bool).tolist()
    is_train = (corpus["split"] == "train").tolist()
    train = [i for i, keep in enumerate(is_train) if keep and encoded[i]]
    valid = [i for i, keep in enumerate(is_train) if not keep and encoded[i]]
    return (
        [encoded[i] for i in train],
        [ordered[i] for i in train],
        [encoded[i] for i in valid],
        [ordered[i] for i in valid],
    )


def _valid_windows(
    rows: list[list[int]], ordered: list[bool], config: BigcarpConfig, seed: int
) -> list[np.ndarray]:
    """The validation windows: drawn once from the validation stream, so every epoch (and
    every model scored by :func:`held_out_metrics`) is compared on the same windows; sorted
    by length (stable) so that batches carry little padding."""
    return sorted(
        training_windows(rows, ordered, config.max_len, stream_rng(seed, 0, VALID_STREAM)),
        key=len,
    )


def held_out_metrics(
    model: ByteNetLM,
    corpus: pd.DataFrame,
    vocab: Vocabulary,
    config: BigcarpConfig,
    seed: int,
    device: str | torch.device | None = None,
) -> tuple[float, float]:
    """(masked-token loss, masked accuracy) of ``model`` on the corpus' validation rows,
    windows and masks drawn exactly as :func:`train_mlm` draws them under ``seed``: the
    number its history records per epoch, for a model trained elsewhere (an official
    checkpoint). Reads the corpus columns ``tokens``, ``ordered`` and ``split``."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    _, _, valid_rows, valid_ordered = _split_rows(corpus, vocab)
    windows = _valid_windows(valid_rows, valid_ordered, config, seed)
    was_training = model.training
    metrics = _evaluate(model.to(device), vocab, windows, config, seed, device)
    model.train(was_training)
    return metrics


def train_mlm(
    corpus: pd.DataFrame,
    vocab: Vocabulary,
    config: BigcarpConfig,
    *,
    init_mode: InitMode,
    family_vectors: Mapping[str, np.ndarray] | None = None,
    out_dir: Path | str,
    seed: int,
    resume: bool = True,
    progress: bool = False,
    device: str | torch.device | None = None,
) -> pd.DataFrame:
    """Train BiGCARP by masked-token prediction for ``config.epochs`` epochs; return the
    history (columns :data:`~crossgran.models.bigcarp.checkpoint.HISTORY_COLUMNS`).

    ``corpus`` is the domain corpus; the columns read are ``tokens``, ``ordered`` and
    ``split`` (see :data:`~crossgran.models.bigcarp.vocab.CORPUS_COLUMNS`): rows with
    ``split == "train"`` are trained on, the others give the validation loss; empty rows are
    skipped. ``family_vectors`` (Pfam accession -> ESM vector) are required by the ``esm``
    init modes; pass them for ``random`` too, so that the table width (hence the
    architecture) is the same for all three.

    Everything random is drawn from ``seed`` (model weights) and ``(seed, epoch)`` (orders of
    unordered rows, window order, masking), so a run is deterministic on one device, and a
    run killed after epoch k and resumed (``resume=True``) ends bit-identical to an
    uninterrupted one. ``out_dir`` receives the files described in
    :mod:`crossgran.models.bigcarp.checkpoint`.
    """
    if vocab.prefix:
        raise ValueError(
            "this vocabulary puts tokens before every sentence (an official checkpoint's "
            "class slot), which train_mlm does not train with; train on "
            "Vocabulary.from_corpus(corpus)"
        )
    out_dir = Path(out_dir)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, optimizer, history, start_epoch = _start(
        out_dir, vocab, config, init_mode, family_vectors, seed, resume, device
    )
    train_rows, train_ordered, valid_rows, valid_ordered = _split_rows(corpus, vocab)
    valid_windows = _valid_windows(valid_rows, valid_ordered, config, seed)
    model.train()
    for epoch in range(start_epoch + 1, config.epochs + 1):
        began = time.perf_counter()
        rng = stream_rng(seed, epoch, TRAIN_STREAM)
        windows = training_windows(train_rows, train_ordered, config.max_len, rng)
        loss_sum, n_targets, n_tokens = _train_epoch(
            model,
            optimizer,
            vocab,
            config,
            windows,
            rng,
            device,
            f"epoch {epoch}/{config.epochs}" if progress else None,
        )
        train_s = time.perf_counter() - began
        valid_loss, valid_accuracy = _evaluate(model, vocab, valid_windows, config, seed, device)
        history.append(
            {
                "epoch": epoch,
                "train_loss": loss_sum / max(n_targets, 1),
                "valid_loss": valid_loss,
                "valid_masked_accuracy": valid_accuracy,
                "tokens_per_s": n_tokens / train_s,
                "wall_s": time.perf_counter() - began,
            }
        )
        write_checkpoint(out_dir, epoch, model, optimizer, history)
    return history_frame(history)

"""Local ESM-2 pretraining: the offline profiles' stand-in for published ESM weights.

The smoke and mini profiles cannot fetch ESM-2 weights, so :func:`train_local_esm` pretrains
a small ESM-2 with the same masked-LM objective on the project's own sequences and reports
whether it beat a unigram baseline (a model that ignores context).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import esm
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from esm.model.esm2 import ESM2

from crossgran.cache import atomic_path, cache_key, sha256_file, write_text_atomic
from crossgran.data.split import hash_fraction, split_of
from crossgran.models.esm.forward import (
    ALLOWED_RESIDUES,
    STANDARD_AMINO_ACIDS,
    clean_sequence,
    mlm_logits,
    token_table,
    tokenize,
)
from crossgran.models.esm.load import new_local_model
from crossgran.models.masking import IGNORE_INDEX, mask_tokens
from crossgran.profiles import EsmConfig

# Share of residues that are masked-LM targets (ESM's and BERT's 15%).
ESM_MASK_RATE = 0.15
HISTORY_COLUMNS = (
    "step",
    "lr",
    "train_loss",
    "valid_loss",
    "valid_perplexity",
    "unigram_perplexity",
    "tokens_seen",
    "elapsed_s",
)

__all__ = ["ESM_MASK_RATE", "HISTORY_COLUMNS", "split_sequences", "train_local_esm"]


def split_sequences(unique: Sequence[str], valid_fraction: float) -> tuple[list[str], list[str]]:
    """(train, valid) by sequence hash (:func:`crossgran.data.split.split_of`): the held-out
    set survives reordering, subsetting and reruns, and duplicates can never straddle train
    and valid. Tiny inputs whose hashes put nothing in valid still hold one sequence out (the
    one with the smallest hash)."""
    train = [s for s in unique if split_of(s, valid_fraction) == "train"]
    valid = [s for s in unique if split_of(s, valid_fraction) == "valid"]
    if valid_fraction > 0 and not valid:
        held = min(unique, key=hash_fraction)
        valid, train = [held], [s for s in unique if s != held]
    if not train:
        raise ValueError("no training sequences left after the held-out split")
    return train, valid


def _mask(
    tokens: torch.Tensor,
    alphabet: esm.data.Alphabet,
    generator: torch.Generator,
    residue_ids: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking of residues (never padding, BOS or EOS); at least one target per batch,
    random replacements are standard amino acids."""
    special = (
        tokens.eq(alphabet.padding_idx) | tokens.eq(alphabet.cls_idx) | tokens.eq(alphabet.eos_idx)
    )
    return mask_tokens(
        tokens,
        maskable=~special,
        rate=ESM_MASK_RATE,
        mask_index=alphabet.mask_idx,
        replacements=residue_ids,
        generator=generator,
        at_least_one="batch",
    )


def _residue_ids(alphabet: esm.data.Alphabet) -> torch.Tensor:
    return torch.tensor([alphabet.get_idx(a) for a in STANDARD_AMINO_ACIDS])


def _init_bert_params(module: torch.nn.Module) -> None:
    """BERT/fairseq initialisation (normal, std 0.02). PyTorch's default N(0, 1) embeddings,
    tied to ESM-2's LM head, start the loss near 16 nats instead of ln(33) ~ 3.5, and a short
    CPU pretraining budget then goes to undoing the initialisation."""
    if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
        torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, torch.nn.Linear) and module.bias is not None:
        torch.nn.init.zeros_(module.bias)
    if isinstance(module, torch.nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()


def _training_signature(config: EsmConfig, seed: int, data_hash: str) -> dict[str, object]:
    """Everything that determines the trained weights (the spec name and embedding batch
    size do not)."""
    return {
        "num_layers": config.num_layers,
        "embed_dim": config.embed_dim,
        "attention_heads": config.attention_heads,
        "train_steps": config.train_steps,
        "train_batch_tokens": config.train_batch_tokens,
        "train_max_len": config.train_max_len,
        "lr": config.lr,
        "valid_fraction": config.valid_fraction,
        "seed": seed,
        "data_sha256": data_hash,
        "code": cache_key("train_local_esm", 2),
    }


def _valid_batches(
    valid: Sequence[str], max_len: int, budget: int, alphabet: esm.data.Alphabet, seed: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed held-out batches (every residue, in consecutive crops; masking drawn once) so
    the loss curve compares like with like across evaluation points."""
    generator = torch.Generator().manual_seed(seed + 1)
    table = token_table(alphabet)
    residue_ids = _residue_ids(alphabet)
    crops = [s[i : i + max_len] for s in valid for i in range(0, len(s), max_len)]
    crops.sort(key=len)
    per_batch = max(1, budget // (max_len + 2))
    batches = []
    for start in range(0, len(crops), per_batch):
        tokens = tokenize(crops[start : start + per_batch], alphabet, table)
        batches.append(_mask(tokens, alphabet, generator, residue_ids))
    return batches


def _unigram_log_probs(train: Sequence[str], alphabet: esm.data.Alphabet) -> torch.Tensor:
    """Log-frequencies of residue tokens in the training set (add-one smoothed): the
    perplexity a model gets by ignoring context, the bar a useful model must clear."""
    counts = torch.zeros(len(alphabet.all_toks), dtype=torch.float64)
    table = token_table(alphabet)
    for sequence in train:
        counts += torch.bincount(
            torch.from_numpy(table[np.frombuffer(sequence.encode(), np.uint8)]),
            minlength=len(counts),
        ).to(torch.float64)
    for residue in ALLOWED_RESIDUES:
        counts[alphabet.get_idx(residue)] += 1
    return (counts / counts.sum()).clamp_min(1e-12).log()


def _evaluate(
    model: ESM2, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], unigram: torch.Tensor
) -> tuple[float, float]:
    """Held-out (model, unigram) cross-entropy in nats per masked residue."""
    model.eval()
    total = baseline = 0.0
    count = 0
    with torch.inference_mode():
        for inputs, labels in batches:
            logits = mlm_logits(model, inputs)
            chosen = labels.ne(IGNORE_INDEX)
            total += F.cross_entropy(logits[chosen], labels[chosen], reduction="sum").item()
            baseline += -unigram[labels[chosen]].sum().item()
            count += int(chosen.sum())
    model.train()
    return total / max(count, 1), baseline / max(count, 1)


def _schedule(train_steps: int) -> Callable[[int], float]:
    """Linear warmup over the first 10% of steps (Adam's early moments are noisy), then cosine
    decay to 10% of the peak learning rate."""
    warmup = max(1, train_steps // 10)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress_ = (step - warmup) / max(1, train_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_))

    return factor


@dataclass
class _Run:
    """One pretraining run in progress: the model, its data and optimiser, the history so far."""

    model: ESM2
    architecture: dict[str, int]
    config: EsmConfig
    train: list[str]
    valid_batches: list[tuple[torch.Tensor, torch.Tensor]]
    unigram: torch.Tensor
    optimiser: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    started: float = field(default_factory=time.perf_counter)
    rows: list[dict[str, float]] = field(default_factory=list)
    running: list[float] = field(default_factory=list)
    tokens_seen: int = 0

    def record(self, step: int) -> None:
        """Evaluate on the held-out batches and append a history row (see HISTORY_COLUMNS)."""
        valid_loss, unigram_loss = _evaluate(self.model, self.valid_batches, self.unigram)
        self.rows.append(
            {
                "step": step,
                "lr": self.optimiser.param_groups[0]["lr"],
                "train_loss": float(np.mean(self.running)) if self.running else math.nan,
                "valid_loss": valid_loss,
                "valid_perplexity": math.exp(valid_loss),
                "unigram_perplexity": math.exp(unigram_loss),
                "tokens_seen": self.tokens_seen,
                "elapsed_s": time.perf_counter() - self.started,
            }
        )
        self.running.clear()


def _new_run(config: EsmConfig, seed: int, train: list[str], valid: list[str]) -> _Run:
    """The initialised model (weights drawn from the global torch RNG seeded with ``seed``),
    the fixed held-out batches, the unigram baseline and the optimiser."""
    torch.manual_seed(seed)
    architecture = {
        "num_layers": config.num_layers,
        "embed_dim": config.embed_dim,
        "attention_heads": config.attention_heads,
        "max_positions": config.train_max_len + 2,
    }
    model = new_local_model(architecture)
    model.apply(_init_bert_params)
    model.train()
    unigram = _unigram_log_probs(train, model.alphabet)
    valid_batches = _valid_batches(
        valid, config.train_max_len, config.train_batch_tokens, model.alphabet, seed
    )
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=(0.9, 0.98), weight_decay=0.01
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, _schedule(config.train_steps))
    return _Run(model, architecture, config, train, valid_batches, unigram, optimiser, scheduler)


def _random_crops(
    train: Sequence[str], per_batch: int, max_len: int, rng: np.random.Generator
) -> list[str]:
    """``per_batch`` training sequences drawn with replacement, each cut to a random crop of at
    most ``max_len`` residues."""
    crops = []
    for index in rng.integers(len(train), size=per_batch):
        sequence = train[index]
        start = int(rng.integers(0, max(1, len(sequence) - max_len + 1)))
        crops.append(sequence[start : start + max_len])
    return crops


def _step(run: _Run, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """One optimiser step (gradients clipped to norm 1); returns the batch loss."""
    logits = mlm_logits(run.model, inputs)
    loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
    run.optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
    run.optimiser.step()
    run.scheduler.step()
    return loss.item()


def _train(run: _Run, seed: int) -> None:
    """``train_steps`` steps on random crops; evaluated at step 0 and every 10% of the steps.
    Crops come from a numpy generator and masking from a torch generator, both seeded with
    ``seed``."""
    config, alphabet = run.config, run.model.alphabet
    table, residue_ids = token_table(alphabet), _residue_ids(alphabet)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    per_batch = max(1, config.train_batch_tokens // (config.train_max_len + 2))
    eval_every = max(1, config.train_steps // 10)
    run.record(0)
    for step in range(1, config.train_steps + 1):
        tokens = tokenize(
            _random_crops(run.train, per_batch, config.train_max_len, rng), alphabet, table
        )
        inputs, labels = _mask(tokens, alphabet, generator, residue_ids)
        run.running.append(_step(run, inputs, labels))
        run.tokens_seen += int(tokens.ne(alphabet.padding_idx).sum())
        if step % eval_every == 0 or step == config.train_steps:
            run.record(step)


def _stored_history(out_dir: Path, signature: dict[str, object]) -> pd.DataFrame | None:
    """The history of a finished model in ``out_dir`` trained exactly as ``signature`` says
    (and whose weights still match their recorded sha256), else None."""
    config_path, weights_path, history_path = (
        out_dir / "config.json",
        out_dir / "model.pt",
        out_dir / "history.csv",
    )
    if config_path.is_file() and weights_path.is_file() and history_path.is_file():
        stored = json.loads(config_path.read_text())
        if stored.get("training") == signature and stored.get("weights_sha256") == sha256_file(
            weights_path
        ):
            return pd.read_csv(history_path)
    return None


def _save(
    out_dir: Path, run: _Run, history: pd.DataFrame, signature: dict[str, object], n_valid: int
) -> None:
    """model.pt, history.csv, then config.json: the commit marker, removed first and written
    last, so a run killed while saving is never taken for a finished one."""
    run.model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path, weights_path = out_dir / "config.json", out_dir / "model.pt"
    config_path.unlink(missing_ok=True)
    # Saved through a file handle: given a path, torch names the archive's folder after the
    # (random) temporary file, so identical weights would hash differently on every run.
    with atomic_path(weights_path) as tmp, open(tmp, "wb") as handle:
        torch.save(run.model.state_dict(), handle)
    with atomic_path(out_dir / "history.csv") as tmp:
        history.to_csv(tmp, index=False)
    final = history.iloc[-1]
    write_text_atomic(
        config_path,
        json.dumps(
            {
                "architecture": run.architecture,
                "alphabet": "ESM-1b",
                "training": signature,
                "weights_sha256": sha256_file(weights_path),
                "n_train": len(run.train),
                "n_valid": n_valid,
                "valid_loss": float(final["valid_loss"]),
                "valid_perplexity": float(final["valid_perplexity"]),
                "unigram_perplexity": float(final["unigram_perplexity"]),
            },
            indent=2,
        ),
    )


def train_local_esm(
    sequences: Sequence[str], config: EsmConfig, *, out_dir: Path | str, seed: int
) -> pd.DataFrame:
    """Pretrain a small ESM-2 by masked language modelling and save it to ``out_dir``.

    ``out_dir`` is the model folder, i.e. ``local_model_dir(config.spec, profile.models_dir)``,
    so that ``load_esm(config.spec, profile.models_dir)`` finds it. Returns the history
    (one row per evaluation, columns :data:`HISTORY_COLUMNS`); the final numbers are also in
    config.json.

    Deterministic: sequences are deduplicated and sorted, the held-out set is chosen by
    sequence hash (``config.valid_fraction``, :func:`split_sequences`), and all randomness
    flows from ``seed``. If a model with the same configuration, seed and data already
    exists, its stored history is returned without retraining. The model's
    ``max_positions`` is ``train_max_len + 2``: it never saw longer contexts, so
    :func:`crossgran.models.esm.embed` windows anything longer.
    """
    if config.train_steps < 1:
        raise ValueError("train_steps must be >= 1 for a local model")
    out_dir = Path(out_dir)
    unique = sorted({clean_sequence(f"#{i}", s) for i, s in enumerate(sequences)})
    if len(unique) < 2:
        raise ValueError("need at least two distinct sequences to pretrain and validate")
    data_hash = hashlib.sha256("\n".join(unique).encode()).hexdigest()
    signature = _training_signature(config, seed, data_hash)
    stored = _stored_history(out_dir, signature)
    if stored is not None:
        return stored
    train, valid = split_sequences(unique, config.valid_fraction)
    run = _new_run(config, seed, train, valid)
    _train(run, seed)
    history = pd.DataFrame(run.rows)
    _save(out_dir, run, history, signature, n_valid=len(valid))
    return history

"""Local ESM-2 pretraining: the offline profiles' stand-in for published ESM weights.

The smoke and mini profiles cannot fetch ESM-2 weights, so :func:`train_local_esm` pretrains
a small ESM-2 with the same masked-LM objective on the project's own sequences and reports
whether it beat a unigram baseline (a model that ignores context).

The training material must not contain what the model is later asked to embed: a model
that memorised a sequence represents it by recall, not by what it learned about proteins.
:func:`excise_segments` cuts given segments (the probed A-domains) out of real proteins and
keeps the flanks, each tagged with its protein, so that :func:`train_local_esm` can hold
proteins out whole.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
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
# Held-out evaluations after step 0. Each one runs the model over every held-out residue
# (about 190,000 under mini), as long as roughly 18 training steps on 2 cores, and longer
# still, relative to a step, for wider models: five trace the curve without eating the budget.
EVALUATIONS = 5
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

# Shortest flank kept when segments are cut out of a protein: a shorter piece is mostly the
# cut's own artefact (a linker stub without its context) and teaches the masked LM little.
MIN_FRAGMENT_LENGTH = 30
# Segments are found by their first residues (at most this many): long enough to be nearly
# unique in a proteome, short enough to keep the per-position slice cheap.
_ANCHOR_LENGTH = 32

__all__ = [
    "ESM_MASK_RATE",
    "EVALUATIONS",
    "HISTORY_COLUMNS",
    "MIN_FRAGMENT_LENGTH",
    "ProteinFragments",
    "excise_segments",
    "held_out_groups",
    "split_by_group",
    "split_sequences",
    "train_local_esm",
]


@dataclass(frozen=True)
class ProteinFragments:
    """Pretraining material cut from whole proteins.

    ``sequences[i]`` is a kept fragment and ``groups[i]`` the whole (cleaned) sequence of the
    protein it came from: the held-out key, so a protein's fragments share one side of the
    split and identical proteins under different ids share it too. ``counts`` says what was
    cut and kept (see :func:`excise_segments`)."""

    sequences: list[str]
    groups: list[str]
    counts: dict[str, int]


def _occurrences(protein: str, anchors: Mapping[str, list[str]], k: int) -> list[tuple[int, int]]:
    """Every [start, end) where a segment occurs in ``protein`` (segments are looked up by
    their first ``k`` residues, so the scan is one dictionary probe per position)."""
    found = []
    for start in range(len(protein) - k + 1):
        for segment in anchors.get(protein[start : start + k], ()):
            if protein.startswith(segment, start):
                found.append((start, start + len(segment)))
    return found


def _flanks(protein: str, spans: list[tuple[int, int]]) -> list[str]:
    """The non-empty pieces of ``protein`` outside the (merged) ``spans``."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    bounds = [0, *(x for span in merged for x in span), len(protein)]
    return [protein[a:b] for a, b in zip(bounds[::2], bounds[1::2], strict=True) if b > a]


def excise_segments(
    proteins: Iterable[tuple[str, str]],
    segments: Iterable[str],
    *,
    min_length: int = MIN_FRAGMENT_LENGTH,
) -> ProteinFragments:
    """Cut every exact occurrence of every segment out of every protein; keep the flanks.

    ``proteins`` are (id, sequence) records (ids name bad records in errors); both they and
    the segments are cleaned as for embedding (:func:`clean_sequence`). A segment is cut
    wherever it occurs, not only in the protein it was taken from: an A-domain copied into a
    second protein must not reach training through that one. Flanks shorter than
    ``min_length`` are dropped (:data:`MIN_FRAGMENT_LENGTH`); proteins without an occurrence
    are kept whole whatever their length.

    ``counts``: proteins, proteins_cut (with at least one occurrence), occurrences_cut,
    segments, segments_not_found (distinct segments occurring nowhere), fragments, residues
    (kept), residues_excised, short_flanks_dropped, residues_in_short_flanks.
    """
    distinct = sorted({clean_sequence(f"segment #{i}", s) for i, s in enumerate(segments)})
    k = min((_ANCHOR_LENGTH, *(len(s) for s in distinct)))
    anchors: dict[str, list[str]] = defaultdict(list)
    for segment in distinct:
        anchors[segment[:k]].append(segment)
    sequences: list[str] = []
    groups: list[str] = []
    found: set[str] = set()
    proteins_seen = proteins_cut = occurrences = residues_in = 0
    short: list[str] = []
    for protein_id, raw in proteins:
        protein = clean_sequence(protein_id, raw)
        proteins_seen += 1
        residues_in += len(protein)
        spans = _occurrences(protein, anchors, k) if anchors else []
        found.update(protein[a:b] for a, b in spans)
        occurrences += len(spans)
        proteins_cut += bool(spans)
        pieces = [protein]
        if spans:
            flanks = _flanks(protein, spans)
            pieces = [flank for flank in flanks if len(flank) >= min_length]
            short += [flank for flank in flanks if len(flank) < min_length]
        sequences += pieces
        groups += [protein] * len(pieces)
    residues = sum(map(len, sequences))
    counts = {
        "proteins": proteins_seen,
        "proteins_cut": proteins_cut,
        "segments": len(distinct),
        "segments_not_found": len(distinct) - len(found),
        "occurrences_cut": occurrences,
        "fragments": len(sequences),
        "residues": residues,
        "residues_excised": residues_in - residues - sum(map(len, short)),
        "short_flanks_dropped": len(short),
        "residues_in_short_flanks": sum(map(len, short)),
    }
    return ProteinFragments(sequences, groups, counts)


def held_out_groups(groups: Iterable[str], valid_fraction: float) -> set[str]:
    """The groups :func:`split_by_group` holds out: ``valid_fraction`` of them by hash
    (:func:`crossgran.data.split.split_of`), so the choice survives reordering, subsetting and
    reruns. Tiny inputs whose hashes hold nothing out still hold out one group (the one with
    the smallest hash)."""
    distinct = set(groups)
    held = {g for g in distinct if split_of(g, valid_fraction) == "valid"}
    if valid_fraction > 0 and not held and distinct:
        held = {min(distinct, key=hash_fraction)}
    return held


def split_by_group(
    sequences: Sequence[str], groups: Sequence[str], valid_fraction: float
) -> tuple[list[str], list[str]]:
    """(train, valid): every sequence of a held-out group (:func:`held_out_groups`) in valid,
    the rest in train, so a group never straddles the two. Both sides are deduplicated and
    sorted; a sequence that also occurs in a held-out group is kept in valid only, so no
    held-out sequence is ever trained on."""
    if len(sequences) != len(groups):
        raise ValueError(f"{len(sequences)} sequences but {len(groups)} groups")
    held = held_out_groups(groups, valid_fraction)
    valid = sorted({s for s, g in zip(sequences, groups, strict=True) if g in held})
    in_valid = set(valid)
    train = sorted({s for s in sequences if s not in in_valid})
    if not train:
        raise ValueError("no training sequences left after the held-out split")
    return train, valid


def split_sequences(unique: Sequence[str], valid_fraction: float) -> tuple[list[str], list[str]]:
    """(train, valid) by sequence hash: :func:`split_by_group` with every sequence its own
    group, so duplicates can never straddle train and valid."""
    return split_by_group(unique, unique, valid_fraction)


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
        "code": cache_key("train_local_esm", 3),
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
    """``train_steps`` steps on random crops; evaluated at step 0 and :data:`EVALUATIONS` times
    more, evenly spaced.
    Crops come from a numpy generator and masking from a torch generator, both seeded with
    ``seed``."""
    config, alphabet = run.config, run.model.alphabet
    table, residue_ids = token_table(alphabet), _residue_ids(alphabet)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    per_batch = max(1, config.train_batch_tokens // (config.train_max_len + 2))
    eval_every = max(1, config.train_steps // EVALUATIONS)
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
    sequences: Sequence[str],
    config: EsmConfig,
    *,
    out_dir: Path | str,
    seed: int,
    groups: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Pretrain a small ESM-2 by masked language modelling and save it to ``out_dir``.

    ``out_dir`` is the model folder, i.e. ``local_model_dir(config.spec, profile.models_dir)``,
    so that ``load_esm(config.spec, profile.models_dir)`` finds it. Returns the history
    (one row per evaluation, columns :data:`HISTORY_COLUMNS`); the final numbers are also in
    config.json.

    ``groups`` (one per sequence, e.g. :attr:`ProteinFragments.groups`) says what is held out
    together: ``config.valid_fraction`` of the groups by hash (:func:`split_by_group`); by
    default every sequence is its own group (:func:`split_sequences`).

    Deterministic: sequences are deduplicated and sorted, the held-out set is a function of
    the groups alone, and all randomness flows from ``seed``. If a model with the same
    configuration, seed and split data already exists, its stored history is returned
    without retraining. The model's ``max_positions`` is ``train_max_len + 2``: it never saw
    longer contexts, so :func:`crossgran.models.esm.embed` windows anything longer.
    """
    if config.train_steps < 1:
        raise ValueError("train_steps must be >= 1 for a local model")
    out_dir = Path(out_dir)
    cleaned = [clean_sequence(f"#{i}", s) for i, s in enumerate(sequences)]
    if len(set(cleaned)) < 2:
        raise ValueError("need at least two distinct sequences to pretrain and validate")
    train, valid = split_by_group(
        cleaned, cleaned if groups is None else groups, config.valid_fraction
    )
    data_hash = hashlib.sha256("\n".join([*train, "", *valid]).encode()).hexdigest()
    signature = _training_signature(config, seed, data_hash)
    stored = _stored_history(out_dir, signature)
    if stored is not None:
        return stored
    run = _new_run(config, seed, train, valid)
    _train(run, seed)
    history = pd.DataFrame(run.rows)
    _save(out_dir, run, history, signature, n_valid=len(valid))
    return history

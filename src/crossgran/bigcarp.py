"""BiGCARP: a ByteNet masked language model over Pfam-domain tokens of gene clusters.

BiGCARP (Rios-Martinez et al. 2023) reads a biosynthetic gene cluster as the sequence of
Pfam domains of its genes and learns, by masked-token prediction, which domains co-occur
and in which order. The paper this package accompanies asks whether seeding the token
table with ESM embeddings of each Pfam family helps; its answer is no: the table barely
moves from its initialisation and what the model knows lives in the deeper blocks. This
module therefore trains the same architecture under three initialisations (``random``,
``esm``, ``esm-frozen``), keeps a snapshot of the token table at every epoch (epoch 0 is
the initialisation) for CKA-vs-init analyses, and exposes per-layer representations.

Layers are numbered as in ``sequence_models.pretrained.CARP``: layer 0 is the embedder
output, i.e. the token table row (width ``d_embedding``) mapped by the linear
``up_embedder`` to ``d_model``; layers 1..n are the outputs of the n ByteNet blocks (before
the final LayerNorm). The raw table itself (width ``d_embedding``) is :func:`token_table`.

Unordered rows (MIBiG bags: domain counts without gene order) are given a fresh random
order every epoch, and their representations are averaged over several random orders, so
no spurious order is ever learnt or reported as if it were real.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sequence_models.convolutional import ByteNetLM
from sequence_models.layers import DoubleEmbedding

from crossgran.cache import atomic_path, load_npz, save_npz, write_text_atomic
from crossgran.profiles import BigcarpConfig

PAD, MASK, UNK = "<pad>", "<mask>", "<unk>"
SPECIALS = (PAD, MASK, UNK)
INIT_MODES = ("random", "esm", "esm-frozen")
AMP_BINDING = "PF00501"  # the NRPS adenylation (A) domain's Pfam family
IGNORE = -100  # target value that cross-entropy skips (unmasked positions)
# AdamW's default decay, applied to every trainable weight except the token table (see
# _optimizer): decay would shrink rarely seen rows toward zero whatever the data says.
WEIGHT_DECAY = 0.01
# Fixed seed of the ESM -> table projection, so that every run (any ``seed``) starts from
# the same projected ESM geometry and differs only in the rest of the initialisation.
PROJECTION_SEED = 1280
_TRAIN_STREAM, _VALID_STREAM, _VALID_MASK_STREAM, _ORDER_STREAM = 0, 1, 2, 3


class OfficialModelError(RuntimeError):
    """An official BiGCARP checkpoint could not be obtained; the message says how to fix it."""


# --------------------------------------------------------------------------- vocabulary


class Vocabulary:
    """Token -> index map: specials plus the Pfam accessions of a corpus.

    ``index`` may map several names to one index: the official BiGCARP checkpoints group
    Pfam accessions into their own domain tokens, and :func:`load_official` expresses that
    as aliases rather than a second tokeniser. Unknown tokens map to ``unk_index`` and are
    counted in ``unknown_counts``, because a representation silently built from ``<unk>``
    rows would look like a real family's.
    """

    def __init__(self, index: Mapping[str, int], pad_index: int, mask_index: int,
                 unk_index: int, size: int | None = None):
        self.index = dict(index)
        self.pad_index, self.mask_index, self.unk_index = pad_index, mask_index, unk_index
        self.size = size if size is not None else max(self.index.values()) + 1
        self.unknown_counts: Counter[str] = Counter()
        specials = {pad_index, mask_index, unk_index}
        self.families = sorted(name for name, i in self.index.items() if i not in specials)
        # Indices a BERT "random replacement" may draw: real families, never specials.
        self.family_indices = np.array(sorted({self.index[name] for name in self.families}),
                                       dtype=np.int64)

    @classmethod
    def from_token_lists(cls, token_lists: Sequence[Sequence[str]]) -> Vocabulary:
        """Specials at 0..2, then every distinct token sorted, so the indices are reproducible."""
        names = sorted({token for tokens in token_lists for token in tokens} - set(SPECIALS))
        index = {name: i for i, name in enumerate((*SPECIALS, *names))}
        return cls(index, index[PAD], index[MASK], index[UNK])

    @classmethod
    def from_corpus(cls, corpus: pd.DataFrame) -> Vocabulary:
        """All families of all rows (both splits): family representations need every family,
        and knowing that a token exists reveals nothing of the masked-token targets."""
        return cls.from_token_lists(split_tokens(corpus))

    def __len__(self) -> int:
        return self.size

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Indices of ``tokens``; unknown names become ``<unk>`` and are counted."""
        ids = []
        for token in tokens:
            i = self.index.get(token)
            if i is None:
                self.unknown_counts[token] += 1
                i = self.unk_index
            ids.append(i)
        return ids

    def to_json(self) -> dict:
        return {"index": self.index, "pad_index": self.pad_index, "mask_index": self.mask_index,
                "unk_index": self.unk_index, "size": self.size}

    def save(self, path: Path | str) -> None:
        write_text_atomic(path, json.dumps(self.to_json(), indent=1, sort_keys=True))

    @classmethod
    def load(cls, path: Path | str) -> Vocabulary:
        data = json.loads(Path(path).read_text())
        return cls(data["index"], data["pad_index"], data["mask_index"], data["unk_index"],
                   data["size"])


def split_tokens(corpus: pd.DataFrame) -> list[list[str]]:
    """The ``tokens`` column as lists (an empty string is an empty row)."""
    return [str(text).split() for text in corpus["tokens"]]


# --------------------------------------------------------------------------- model


def resolve_d_embedding(config: BigcarpConfig,
                        family_vectors: Mapping[str, np.ndarray] | None) -> int:
    """Token-table width: the configured one, else the ESM width (as the paper ties the table
    to ESM-1b's 1280), else ``d_model`` when no vectors are at hand. Pass the vectors also for
    ``random`` runs so that all three initialisations share one architecture."""
    if config.d_embedding is not None:
        return config.d_embedding
    if family_vectors:
        return len(next(iter(family_vectors.values())))
    return config.d_model


def build_model(config: BigcarpConfig, vocab: Vocabulary, d_embedding: int,
                seed: int | None = None) -> ByteNetLM:
    """A ByteNetLM sized by ``config``; weights drawn under ``seed`` without touching the
    global RNG (so building a model never changes what other code draws)."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        # dropout=0: ByteNet applies F.dropout without a training flag, i.e. also at eval time.
        # final_ln=True, slim=True, relu: the official BiGCARP checkpoints' settings.
        return ByteNetLM(len(vocab), d_embedding, config.d_model, config.n_layers,
                         config.kernel_size, config.r, padding_idx=vocab.pad_index,
                         causal=False, dropout=0.0, final_ln=True, slim=True,
                         activation="relu")


def token_table(model: ByteNetLM) -> torch.Tensor:
    """A detached copy of the (n_tokens, d_embedding) table; handles the official frozen
    checkpoints' DoubleEmbedding (trainable rows first, frozen rows after)."""
    embedding = model.embedder.embedder
    if isinstance(embedding, DoubleEmbedding):
        return torch.cat([embedding.trainable.weight, embedding.frozen.weight]).detach().clone()
    return embedding.weight.detach().clone()


def esm_projection(d_in: int, d_out: int) -> np.ndarray:
    """The fixed (d_in, d_out) Gaussian map, entries N(0, 1/d_out), used when the ESM width
    differs from the table width. A random projection approximately keeps the distances
    between family vectors (Johnson-Lindenstrauss), which is what ESM initialisation is meant
    to transfer; it is seeded by ``PROJECTION_SEED`` alone, so it is the same in every run."""
    rng = np.random.default_rng([PROJECTION_SEED, d_in, d_out])
    return rng.normal(0.0, 1.0 / math.sqrt(d_out), size=(d_in, d_out))


@dataclass
class InitReport:
    """What :func:`init_token_embeddings` did, for the run record and the notebooks."""

    mode: str
    n_families: int
    n_from_esm: int = 0
    missing: list[str] = field(default_factory=list)  # families left at random init
    projected_from: int | None = None  # ESM width, when a projection was needed


def init_token_embeddings(model: ByteNetLM, vocab: Vocabulary, mode: str,
                          family_vectors: Mapping[str, np.ndarray] | None) -> InitReport:
    """Overwrite each family's row with its ESM vector (``esm``/``esm-frozen``) and, for
    ``esm-frozen``, freeze the whole table. Specials and families without a vector keep their
    random rows (frozen too in ``esm-frozen``: the trainable ``up_embedder`` still learns to
    read them; unlike the official frozen checkpoint, specials are not split off)."""
    if mode not in INIT_MODES:
        raise ValueError(f"unknown init mode {mode!r}; choose one of {', '.join(INIT_MODES)}")
    report = InitReport(mode=mode, n_families=len(vocab.families))
    table = model.embedder.embedder.weight
    if mode == "random":
        return report
    if not family_vectors:
        raise ValueError(f"init mode {mode!r} needs family_vectors (Pfam accession -> ESM vector)")
    present = [name for name in vocab.families if name in family_vectors]
    report.missing = [name for name in vocab.families if name not in family_vectors]
    report.n_from_esm = len(present)
    if present:
        vectors = np.stack([np.asarray(family_vectors[name], dtype=np.float64) for name in present])
        if vectors.shape[1] != table.shape[1]:
            report.projected_from = vectors.shape[1]
            vectors = vectors @ esm_projection(vectors.shape[1], table.shape[1])
        rows = torch.tensor([vocab.index[name] for name in present])
        with torch.no_grad():
            table[rows] = torch.as_tensor(vectors, dtype=table.dtype)
    table.requires_grad_(mode != "esm-frozen")
    return report


# --------------------------------------------------------------------------- data


def _rng(seed: int, epoch: int, stream: int) -> np.random.Generator:
    """Independent streams per (seed, epoch, purpose): no two runs or epochs share draws, and
    an epoch's draws do not depend on how many were taken before, which makes resuming exact."""
    return np.random.default_rng([seed, epoch, stream])


def training_windows(encoded: Sequence[Sequence[int]], ordered: Sequence[bool], max_len: int,
                     rng: np.random.Generator) -> list[np.ndarray]:
    """Windows of at most ``max_len`` tokens, in random order.

    Unordered rows are permuted first (a new order each time this is called with a new
    ``rng``); every row is then cut into consecutive non-overlapping windows from its start,
    so a long ordered row is always cut at the same places.
    """
    windows: list[np.ndarray] = []
    for ids, is_ordered in zip(encoded, ordered):
        row = np.asarray(ids, dtype=np.int64)
        if not is_ordered:
            row = rng.permutation(row)
        windows.extend(row[start:start + max_len] for start in range(0, len(row), max_len))
    return [windows[i] for i in rng.permutation(len(windows))]


def length_batches(windows: Sequence[np.ndarray], batch_size: int,
                   rng: np.random.Generator) -> list[list[np.ndarray]]:
    """Batches of similar-length windows, the batches in random order.

    Why: windows run from 1 token (a stand-alone A-domain protein) to ``max_len`` (a cut
    MIBiG bag); batches of randomly mixed lengths pad most rows to the longest and spend most
    of every convolution on padding (measured: 2,900 vs 5,000+ real tokens/s on the mini
    corpus). Sorting by length (ties keep the shuffled order of ``windows``) and shuffling
    whole batches keeps the sampling random at the batch level.
    """
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
    batches = [[windows[i] for i in order[start:start + batch_size]]
               for start in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _pad(windows: Sequence[np.ndarray], pad_index: int) -> torch.Tensor:
    batch = np.full((len(windows), max(len(w) for w in windows)), pad_index, dtype=np.int64)
    for row, window in enumerate(windows):
        batch[row, :len(window)] = window
    return torch.from_numpy(batch)


def mask_batch(batch: torch.Tensor, vocab: Vocabulary, mask_rate: float,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: each real token is a target with probability ``mask_rate`` (at least one
    per window, so short bags still teach something); targets are shown as ``<mask>`` 80%,
    a random family 10%, unchanged 10%. Returns (inputs, targets with IGNORE elsewhere)."""
    real = batch != vocab.pad_index
    chosen = (torch.rand(batch.shape, generator=generator) < mask_rate) & real
    empty = ~chosen.any(dim=1) & real.any(dim=1)
    if empty.any():
        lengths = real.sum(dim=1)
        pick = (torch.rand(batch.shape[0], generator=generator) * lengths).long()
        rows = empty.nonzero().squeeze(1)
        chosen[rows, pick[rows]] = True
    targets = torch.where(chosen, batch, torch.full_like(batch, IGNORE))
    roll = torch.rand(batch.shape, generator=generator)
    inputs = batch.clone()
    inputs[chosen & (roll < 0.8)] = vocab.mask_index
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    families = torch.from_numpy(vocab.family_indices)
    draws = torch.randint(len(families), batch.shape, generator=generator)
    inputs[swap] = families[draws[swap]]
    return inputs, targets


def _torch_generator(rng: np.random.Generator) -> torch.Generator:
    return torch.Generator().manual_seed(int(rng.integers(2**62)))


# --------------------------------------------------------------------------- training

HISTORY_COLUMNS = ("epoch", "train_loss", "valid_loss", "valid_masked_accuracy",
                   "tokens_per_s", "wall_s")
_STATE, _RUN, _VOCAB, _HISTORY = "state.pt", "run.json", "vocab.json", "history.csv"


def _table_path(out_dir: Path, epoch: int) -> Path:
    return out_dir / f"token_table_e{epoch:03d}.npy"


def _model_path(out_dir: Path, epoch: int) -> Path:
    return out_dir / f"model_e{epoch:03d}.pt"


def _optimizer(model: ByteNetLM, lr: float) -> torch.optim.AdamW:
    """AdamW over trainable weights only (a frozen table is not even handed to it, so neither
    the update nor weight decay can touch it); the table is in a no-decay group."""
    table = model.embedder.embedder.weight
    rest = [p for p in model.parameters() if p.requires_grad and p is not table]
    groups = [{"params": rest, "weight_decay": WEIGHT_DECAY}]
    if table.requires_grad:
        groups.append({"params": [table], "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=lr)


def _run_record(config: BigcarpConfig, init_mode: str, seed: int, d_embedding: int) -> dict:
    return {"config": asdict(config), "init_mode": init_mode, "seed": seed,
            "d_embedding": d_embedding}


def _same_run(stored: dict, current: dict) -> bool:
    """Everything but the epoch count must match to continue a run (more epochs may be added)."""
    def strip(record: dict) -> dict:
        config = {k: v for k, v in record["config"].items() if k != "epochs"}
        return {**{k: record.get(k) for k in current}, "config": config}
    return strip(stored) == strip(current)


def _history_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    return frame.astype({"epoch": int, **{c: float for c in HISTORY_COLUMNS[1:]}})


def _write_checkpoint(out_dir: Path, epoch: int, model: ByteNetLM,
                      optimizer: torch.optim.Optimizer, history: list[dict]) -> None:
    """Per-epoch table and weights, then ``state.pt`` last: it is the commit point, so a run
    killed anywhere before it resumes from the previous epoch and rewrites these files."""
    with atomic_path(_table_path(out_dir, epoch)) as tmp, open(tmp, "wb") as handle:
        np.save(handle, token_table(model).cpu().numpy())
    # torch.save gets file handles: given a path, it names the archive's folder after the
    # random temporary file, and identical weights would differ byte for byte between runs.
    with atomic_path(_model_path(out_dir, epoch)) as tmp, open(tmp, "wb") as handle:
        torch.save(model.state_dict(), handle)
    write_text_atomic(out_dir / _HISTORY, _history_frame(history).to_csv(index=False))
    # No RNG state is stored: every draw of epoch k comes from _rng(seed, k, ...), so the
    # epoch number is the whole random state needed to continue exactly.
    with atomic_path(out_dir / _STATE) as tmp, open(tmp, "wb") as handle:
        torch.save({"epoch": epoch, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "history": history}, handle)


def _clear_run(out_dir: Path) -> None:
    """Remove a previous run's files so a fresh run never mixes epochs with it."""
    for path in out_dir.glob("*"):
        if path.name in (_STATE, _RUN, _VOCAB, _HISTORY) or re.fullmatch(
                r"(token_table|model)_e\d{3}\.(npy|pt)", path.name):
            path.unlink()


@torch.no_grad()
def _evaluate(model: ByteNetLM, vocab: Vocabulary, windows: list[np.ndarray],
              config: BigcarpConfig, seed: int, device: torch.device) -> tuple[float, float]:
    """Masked-token loss and accuracy on validation windows, masked identically every epoch
    (fixed stream) so epochs are compared on the same targets."""
    if not windows:
        return float("nan"), float("nan")
    model.eval()
    generator = _torch_generator(_rng(seed, 0, _VALID_MASK_STREAM))
    loss_sum, correct, count = 0.0, 0, 0
    for start in range(0, len(windows), config.batch_size):
        batch = _pad(windows[start:start + config.batch_size], vocab.pad_index)
        inputs, targets = mask_batch(batch, vocab, config.mask_rate, generator)
        inputs, targets = inputs.to(device), targets.to(device)
        logits = model(inputs, input_mask=(inputs != vocab.pad_index).unsqueeze(-1).float())
        selected = targets != IGNORE
        loss_sum += F.cross_entropy(logits[selected], targets[selected], reduction="sum").item()
        correct += (logits[selected].argmax(-1) == targets[selected]).sum().item()
        count += int(selected.sum())
    model.train()
    return loss_sum / count, correct / count


def train_mlm(corpus: pd.DataFrame, vocab: Vocabulary, config: BigcarpConfig, init_mode: str,
              family_vectors: Mapping[str, np.ndarray] | None, out_dir: Path, seed: int,
              resume: bool = True, progress: bool = False,
              device: str | torch.device | None = None) -> pd.DataFrame:
    """Train BiGCARP by masked-token prediction for ``config.epochs`` epochs; return the history.

    Everything random is drawn from ``seed`` (model weights) and ``(seed, epoch)`` (orders of
    unordered rows, window order, masking), so a run is deterministic on one device, and a
    run killed after epoch k and resumed (``resume=True``) ends bit-identical to an
    uninterrupted one. ``out_dir`` receives ``run.json``, ``vocab.json``, ``history.csv``,
    ``state.pt`` (resumable state) and per epoch k (0 = before any step)
    ``token_table_e{k}.npy`` and ``model_e{k}.pt``.
    """
    out_dir = Path(out_dir)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    d_embedding = resolve_d_embedding(config, family_vectors)
    record = _run_record(config, init_mode, seed, d_embedding)

    model = build_model(config, vocab, d_embedding, seed=seed)
    report = init_token_embeddings(model, vocab, init_mode, family_vectors)
    model.to(device)
    optimizer = _optimizer(model, config.lr)
    history: list[dict] = []
    start_epoch = 0

    if resume and (out_dir / _STATE).is_file():
        stored = json.loads((out_dir / _RUN).read_text())
        if not _same_run(stored, record):
            raise ValueError(f"{out_dir} holds a different run ({stored}); use another --out "
                             "or resume=False to start over")
        if Vocabulary.load(out_dir / _VOCAB).to_json() != vocab.to_json():
            raise ValueError(f"{out_dir} was trained with another vocabulary (has the corpus "
                             "changed?); use another --out or resume=False to start over")
        state = torch.load(out_dir / _STATE, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = state["history"]
        start_epoch = state["epoch"]
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        _clear_run(out_dir)
        vocab.save(out_dir / _VOCAB)
        write_text_atomic(out_dir / _RUN, json.dumps({**record, "init": asdict(report)},
                                                     indent=1))
        _write_checkpoint(out_dir, 0, model, optimizer, history)

    tokens = split_tokens(corpus)
    encoded = [vocab.encode(row) for row in tokens]
    ordered = corpus["ordered"].astype(bool).tolist()
    is_train = (corpus["split"] == "train").tolist()
    train_rows = [i for i, keep in enumerate(is_train) if keep and encoded[i]]
    valid_rows = [i for i, keep in enumerate(is_train) if not keep and encoded[i]]
    # Sorted by length (stable) so validation batches carry little padding; fixed every epoch.
    valid_windows = sorted(training_windows([encoded[i] for i in valid_rows],
                                            [ordered[i] for i in valid_rows], config.max_len,
                                            _rng(seed, 0, _VALID_STREAM)), key=len)

    model.train()
    for epoch in range(start_epoch + 1, config.epochs + 1):
        began = time.perf_counter()
        rng = _rng(seed, epoch, _TRAIN_STREAM)
        windows = training_windows([encoded[i] for i in train_rows],
                                   [ordered[i] for i in train_rows], config.max_len, rng)
        generator = _torch_generator(rng)
        batches = length_batches(windows, config.batch_size, rng)
        if progress:
            from tqdm import tqdm
            batches = tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", unit="batch")
        loss_sum, n_targets, n_tokens = 0.0, 0, 0
        for members in batches:
            batch = _pad(members, vocab.pad_index)
            inputs, targets = mask_batch(batch, vocab, config.mask_rate, generator)
            inputs, targets = inputs.to(device), targets.to(device)
            logits = model(inputs, input_mask=(inputs != vocab.pad_index).unsqueeze(-1).float())
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                   ignore_index=IGNORE)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            selected = int((targets != IGNORE).sum())
            loss_sum += loss.item() * selected
            n_targets += selected
            n_tokens += int((batch != vocab.pad_index).sum())
            if progress:
                rate = n_tokens / (time.perf_counter() - began)
                batches.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{rate:,.0f}")
        train_s = time.perf_counter() - began
        valid_loss, valid_accuracy = _evaluate(model, vocab, valid_windows, config, seed, device)
        history.append({"epoch": epoch, "train_loss": loss_sum / max(n_targets, 1),
                        "valid_loss": valid_loss, "valid_masked_accuracy": valid_accuracy,
                        "tokens_per_s": n_tokens / train_s,
                        "wall_s": time.perf_counter() - began})
        _write_checkpoint(out_dir, epoch, model, optimizer, history)
    return _history_frame(history)


# --------------------------------------------------------------------------- loading


@dataclass
class TrainedRun:
    """A trained (or partly trained) run read back from its ``out_dir``."""

    model: ByteNetLM
    vocab: Vocabulary
    history: pd.DataFrame
    epoch: int
    init_mode: str
    seed: int
    config: BigcarpConfig
    token_tables: dict[int, np.ndarray]  # epoch -> (n_tokens, d_embedding), 0 = init


def load_checkpoint(out_dir: Path | str, epoch: int | None = None) -> TrainedRun:
    """The model after ``epoch`` (default: the last completed), in eval mode, with the
    vocabulary, the history up to that epoch and the token table of every completed epoch."""
    out_dir = Path(out_dir)
    if not (out_dir / _STATE).is_file():
        raise FileNotFoundError(f"{out_dir} has no {_STATE}; train with `crossgran train-bigcarp`")
    record = json.loads((out_dir / _RUN).read_text())
    state = torch.load(out_dir / _STATE, map_location="cpu", weights_only=True)
    last = state["epoch"]
    epoch = last if epoch is None else epoch
    if not 0 <= epoch <= last:
        raise ValueError(f"{out_dir} has epochs 0..{last}, not {epoch}")
    known = {f.name for f in BigcarpConfig.__dataclass_fields__.values()}
    config = BigcarpConfig(**{k: v for k, v in record["config"].items() if k in known})
    vocab = Vocabulary.load(out_dir / _VOCAB)
    model = build_model(config, vocab, record["d_embedding"])
    model.load_state_dict(torch.load(_model_path(out_dir, epoch), map_location="cpu",
                                     weights_only=True))
    model.eval()
    history = _history_frame([row for row in state["history"] if row["epoch"] <= epoch])
    tables = {k: np.load(_table_path(out_dir, k)) for k in range(last + 1)}
    return TrainedRun(model, vocab, history, epoch, record["init_mode"], record["seed"],
                      config, tables)


def load_official(name: str) -> tuple[ByteNetLM, Vocabulary]:
    """An official BiGCARP checkpoint (``bigcarp_random``, ``bigcarp_esm1bfinetune``,
    ``bigcarp_esm1bfrozen``, or a local ``.pt`` path) as (ByteNetLM, Vocabulary).

    The checkpoints map Pfam accessions to their own domain tokens (``pfam_to_domain``);
    that map becomes Vocabulary aliases. Downloads go through torch.hub's cache, so a
    machine that fetched them once can load them offline.
    """
    from sequence_models.pretrained import load_model_and_alphabet

    try:
        carp, collater = load_model_and_alphabet(name)
    except OSError as error:  # URLError, socket and HTTP errors are all OSErrors
        raise OfficialModelError(
            f"could not download the official BiGCARP checkpoint {name!r} ({error}). It comes "
            "from Zenodo (record 6857704); on an offline machine download "
            f"https://zenodo.org/record/6857704/files/{name}.pt elsewhere and pass its path "
            "ending in .pt, or use the smoke/mini profiles, which train BiGCARP locally.") from None
    tokens, pfam_to_domain = collater.tokens, collater.pfam_to_domain
    domains = tokens["domains"]
    index = {pfam: domains[domain] for pfam, domain in pfam_to_domain.items() if domain in domains}
    vocab = Vocabulary(index, pad_index=tokens["specials"]["-"],
                       mask_index=tokens["specials"]["#"], unk_index=domains["UNK"],
                       size=tokens["size"])
    return carp.model, vocab


# --------------------------------------------------------------------------- representations


def _d_model(model: ByteNetLM) -> int:
    return model.embedder.layers[0].sequence1[0].normalized_shape[0]


def _resolve_layers(model: ByteNetLM, layers: Sequence[int] | None) -> list[int]:
    """Requested layers as 0..n_layers (negative counts from the end, None means all)."""
    n_layers = len(model.embedder.layers)
    if layers is None:
        return list(range(n_layers + 1))
    resolved = [layer if layer >= 0 else n_layers + 1 + layer for layer in layers]
    if any(not 0 <= layer <= n_layers for layer in resolved):
        raise ValueError(f"layers {list(layers)} outside 0..{n_layers}")
    return resolved


@torch.no_grad()
def _forward_layers(model: ByteNetLM, pad_index: int, encoded: Sequence[Sequence[int]],
                    layers: list[int], batch_size: int) -> list[list[np.ndarray]]:
    """Per encoded sequence, per layer, its (len, d_model) representations.

    Whole sequences are run (the network is convolutional, so no window limit); batches are
    formed from sequences of similar length, and padding is masked before every convolution,
    so a sequence's result does not depend on its batch-mates.
    """
    bytenet = model.embedder
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    results = [[np.zeros((0, _d_model(model)), dtype=np.float32) for _ in layers]
               for _ in encoded]
    order = sorted((i for i in range(len(encoded)) if len(encoded[i])),
                   key=lambda i: len(encoded[i]))
    for start in range(0, len(order), batch_size):
        members = order[start:start + batch_size]
        batch = _pad([np.asarray(encoded[i]) for i in members], pad_index).to(device)
        input_mask = (batch != pad_index).unsqueeze(-1).float()
        x = bytenet._embed(batch)
        outputs = {0: x}
        for depth, block in enumerate(bytenet.layers, start=1):
            x = block(x, input_mask=input_mask)
            outputs[depth] = x
        for row, i in enumerate(members):
            length = len(encoded[i])
            results[i] = [outputs[layer][row, :length].float().cpu().numpy() for layer in layers]
    model.train(was_training)
    return results


def layer_representations(model: ByteNetLM, vocab: Vocabulary,
                          token_lists: Sequence[Sequence[str]],
                          layers: Sequence[int] | None = None,
                          batch_size: int = 32) -> list[list[np.ndarray]]:
    """Per sequence, per layer of ``layers`` (default 0..n_layers, see the module docstring;
    negative values count from the end), a (len, d_model) float32 array of contextual token
    representations. Unknown tokens run as ``<unk>`` and are counted in the vocabulary."""
    encoded = [vocab.encode(tokens) for tokens in token_lists]
    return _forward_layers(model, vocab.pad_index, encoded, _resolve_layers(model, layers),
                           batch_size)


def _orders(encoded: Sequence[list[int]], ordered: Sequence[bool], n_orders: int,
            seed: int) -> Iterator[tuple[int, np.ndarray, float]]:
    """(row position, ids in one order, weight): ordered rows once with weight 1, unordered
    rows in ``n_orders`` seeded random orders with weight 1/n_orders each."""
    rng = _rng(seed, 0, _ORDER_STREAM)
    for position, (ids, is_ordered) in enumerate(zip(encoded, ordered)):
        row = np.asarray(ids, dtype=np.int64)
        if is_ordered:
            yield position, row, 1.0
        else:
            for _ in range(n_orders):
                yield position, rng.permutation(row), 1.0 / n_orders


def _corpus_passes(model: ByteNetLM, vocab: Vocabulary, corpus: pd.DataFrame,
                   layers: list[int], n_orders: int, seed: int, chunk: int,
                   ) -> Iterator[tuple[int, np.ndarray, float, list[np.ndarray]]]:
    """Every (row, order) of ``corpus`` with its per-layer representations, ``chunk`` orders
    at a time so that memory stays bounded on large corpora. Each row is encoded once, so
    ``vocab.unknown_counts`` counts real occurrences, not orders."""
    encoded = [vocab.encode(tokens) for tokens in split_tokens(corpus)]
    passes = _orders(encoded, corpus["ordered"].astype(bool).tolist(), n_orders, seed)
    part: list[tuple[int, np.ndarray, float]] = []
    for item in passes:
        part.append(item)
        if len(part) == chunk:
            reps = _forward_layers(model, vocab.pad_index, [ids for _, ids, _ in part], layers, 32)
            yield from ((*item, per_layer) for item, per_layer in zip(part, reps))
            part = []
    if part:
        reps = _forward_layers(model, vocab.pad_index, [ids for _, ids, _ in part], layers, 32)
        yield from ((*item, per_layer) for item, per_layer in zip(part, reps))


@dataclass
class _CorpusSums:
    """Weighted per-family sums and per-row means of one pass over a corpus, every layer."""

    family_sums: dict[int, np.ndarray]
    family_weights: np.ndarray
    row_means: dict[int, np.ndarray]


def _accumulate(model: ByteNetLM, vocab: Vocabulary, corpus: pd.DataFrame, layers: list[int],
                n_orders: int, seed: int, chunk: int) -> _CorpusSums:
    """One pass over ``corpus`` feeding both per-family averages and per-row means, so that
    exporting both costs one set of forward passes. Sums are float64 (index_add, not
    ``np.add.at``, which is slow for hundreds of thousands of tokens)."""
    width = _d_model(model)
    family_sums = {layer: torch.zeros((len(vocab), width), dtype=torch.float64) for layer in layers}
    family_weights = torch.zeros(len(vocab), dtype=torch.float64)
    row_means = {layer: np.zeros((len(corpus), width)) for layer in layers}
    is_family = np.zeros(len(vocab), dtype=bool)
    is_family[vocab.family_indices] = True
    for position, ids, weight, per_layer in _corpus_passes(model, vocab, corpus, layers,
                                                           n_orders, seed, chunk):
        keep = torch.from_numpy(ids[is_family[ids]])
        mask = is_family[ids]
        family_weights.index_add_(0, keep, torch.full((len(keep),), weight, dtype=torch.float64))
        for layer, array in zip(layers, per_layer):
            family_sums[layer].index_add_(0, keep, torch.from_numpy(array[mask]).double() * weight)
            row_means[layer][position] += weight * array.mean(axis=0)
    empty = np.array([not tokens for tokens in split_tokens(corpus)], dtype=bool)
    for layer in layers:
        row_means[layer][empty] = np.nan
    return _CorpusSums({k: v.numpy() for k, v in family_sums.items()}, family_weights.numpy(),
                       row_means)


def _family_averages(vocab: Vocabulary, sums: _CorpusSums, layers: list[int]
                     ) -> dict[int, tuple[list[str], np.ndarray]]:
    seen = np.flatnonzero(sums.family_weights > 0)
    names_of: dict[int, str] = {}
    for name in vocab.families:  # an official alias group is named by its first accession
        names_of.setdefault(vocab.index[name], name)
    families = [names_of[i] for i in seen]
    return {layer: (families, (sums.family_sums[layer][seen]
                               / sums.family_weights[seen, None]).astype(np.float32))
            for layer in layers}


def family_representations(model: ByteNetLM, vocab: Vocabulary, corpus: pd.DataFrame,
                           layers: Sequence[int] | None, n_orders: int, seed: int,
                           chunk: int = 256) -> dict[int, tuple[list[str], np.ndarray]]:
    """Per layer, (families, (n_families, d) float32 array): the mean contextual vector of each
    Pfam family over all its occurrences in ``corpus`` (``<unk>`` positions skipped; families
    absent from the corpus omitted). An unordered row's occurrences are averaged over
    ``n_orders`` random orders, so each real occurrence has total weight 1."""
    layers = _resolve_layers(model, layers)
    return _family_averages(vocab, _accumulate(model, vocab, corpus, layers, n_orders, seed,
                                               chunk), layers)


def sequence_representations(model: ByteNetLM, vocab: Vocabulary, corpus: pd.DataFrame,
                             layers: Sequence[int] | None, n_orders: int, seed: int,
                             chunk: int = 256) -> dict[int, np.ndarray]:
    """Per layer, an (n_rows, d) float32 array in ``corpus`` row order: each row's mean over
    its tokens, averaged over ``n_orders`` random orders for unordered rows (empty rows: NaN)."""
    layers = _resolve_layers(model, layers)
    sums = _accumulate(model, vocab, corpus, layers, n_orders, seed, chunk)
    return {layer: array.astype(np.float32) for layer, array in sums.row_means.items()}


def token_representations(model: ByteNetLM, vocab: Vocabulary,
                          sentences: Mapping[str, Sequence[str]], sites: Sequence[tuple[str, int]],
                          layers: Sequence[int] | None) -> dict[int, np.ndarray]:
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
            raise IndexError(f"site {key!r}: index {index} outside a sentence of "
                             f"{len(sentences[key])} tokens")
    layers = _resolve_layers(model, layers)
    if not sites:
        return {layer: np.zeros((0, _d_model(model)), dtype=np.float32) for layer in layers}
    wanted = {key for key, _ in sites}
    keys = [key for key in sentences if key in wanted]
    reps = layer_representations(model, vocab, [sentences[key] for key in keys], layers)
    row_of = {key: row for row, key in enumerate(keys)}
    return {layer: np.stack([reps[row_of[key]][n][index] for key, index in sites])
            for n, layer in enumerate(layers)}


@dataclass(frozen=True)
class Representations:
    """One run's exported representations, every layer (0 = embedder output).

    ``family[k]`` rows follow ``families`` (per-family averages over the corpus); ``bgc[k]``
    rows follow ``bgc_ids`` (per-MIBiG-BGC means); ``adomain[k]`` rows follow ``adomain_ids``
    (each A-domain's AMP-binding token in its parent NRPS protein's sentence).
    """

    layers: list[int]
    families: list[str]
    family: dict[int, np.ndarray]
    bgc_ids: list[str]
    bgc: dict[int, np.ndarray]
    adomain_ids: list[str]
    adomain: dict[int, np.ndarray]

    def save(self, path: Path | str) -> None:
        arrays = {"layers": np.asarray(self.layers), "families": np.asarray(self.families, dtype=str),
                  "bgc_ids": np.asarray(self.bgc_ids, dtype=str),
                  "adomain_ids": np.asarray(self.adomain_ids, dtype=str)}
        for layer in self.layers:
            arrays |= {f"family_L{layer}": self.family[layer], f"bgc_L{layer}": self.bgc[layer],
                       f"adomain_L{layer}": self.adomain[layer]}
        save_npz(path, arrays)

    @classmethod
    def load(cls, path: Path | str) -> Representations:
        stored = load_npz(path)
        layers = [int(k) for k in stored["layers"]]
        return cls(layers, stored["families"].tolist(),
                   {k: stored[f"family_L{k}"] for k in layers}, stored["bgc_ids"].tolist(),
                   {k: stored[f"bgc_L{k}"] for k in layers}, stored["adomain_ids"].tolist(),
                   {k: stored[f"adomain_L{k}"] for k in layers})


def export_representations(run_dir: Path | str, corpus: pd.DataFrame, adomains: pd.DataFrame,
                           n_orders: int, seed: int) -> Representations:
    """One run's representations for the probe notebooks (see :class:`Representations`);
    A-domains without a located AMP-binding token are left out."""
    run = load_checkpoint(run_dir)
    layers = _resolve_layers(run.model, None)
    sums = _accumulate(run.model, run.vocab, corpus, layers, n_orders, seed, chunk=256)
    family = _family_averages(run.vocab, sums, layers)
    is_mibig = (corpus["source"] == "mibig").to_numpy()
    per_bgc = {layer: sums.row_means[layer][is_mibig].astype(np.float32) for layer in layers}
    located = adomains[adomains["amp_token_index"] >= 0]
    sentences = corpus.set_index("seq_id")["tokens"]
    parents = {parent: sentences["nrps:" + parent].split()
               for parent in sorted(set(located["parent_protein"]))}
    per_adomain = token_representations(
        run.model, run.vocab, parents,
        list(zip(located["parent_protein"], located["amp_token_index"])), layers)
    return Representations(layers, family[layers[0]][0], {k: family[k][1] for k in layers},
                           corpus.loc[is_mibig, "seq_id"].tolist(), per_bgc,
                           located["domain_id"].tolist(), per_adomain)


# --------------------------------------------------------------------------- ESM vectors file


def save_family_vectors(path: Path | str, family_vectors: Mapping[str, np.ndarray]) -> None:
    """Write family vectors as an .npz with ``families`` (str) and ``vectors`` (n, d)."""
    names = sorted(family_vectors)
    save_npz(path, {"families": np.array(names),
                    "vectors": np.stack([np.asarray(family_vectors[n]) for n in names])})


def load_family_vectors(path: Path | str) -> dict[str, np.ndarray]:
    """Read the .npz written by :func:`save_family_vectors`."""
    stored = load_npz(path)
    return dict(zip(stored["families"].tolist(), stored["vectors"]))


# --------------------------------------------------------------------------- CLI


def add_train_command(commands: argparse._SubParsersAction) -> None:
    """Register ``train-bigcarp``: train one initialisation on the profile's domain corpus."""
    parser = commands.add_parser("train-bigcarp", help="train the BiGCARP masked LM on Pfam tokens")
    parser.add_argument("--profile", default="mini", choices=("smoke", "mini", "full"))
    parser.add_argument("--init", required=True, choices=INIT_MODES)
    parser.add_argument("--family-vectors", type=Path, default=None,
                        help=".npz with `families` and `vectors` (ESM per-family vectors); "
                             "needed for esm inits, and for random to match their table width")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None,
                        help="default: the profile's BiGCARP training seed")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: <models_dir>/bigcarp_<init>_seed<seed>")
    parser.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads; 1 is often fastest for the small profiles on a "
                             "busy machine, where OpenMP threads spin waiting for each other")

    def handle(args: argparse.Namespace) -> int:
        from crossgran.datasets import load_table
        from crossgran.profiles import get_profile

        if args.threads:
            torch.set_num_threads(args.threads)
        profile = get_profile(args.profile)
        config = replace(profile.bigcarp, **{k: v for k, v in
                                             (("epochs", args.epochs), ("lr", args.lr))
                                             if v is not None})
        seed = profile.bigcarp.seed if args.seed is None else args.seed
        out = args.out or profile.models_dir / f"bigcarp_{args.init}_seed{seed}"
        vectors = load_family_vectors(args.family_vectors) if args.family_vectors else None
        corpus = load_table(profile, "domain_corpus")
        vocab = Vocabulary.from_corpus(corpus)
        history = train_mlm(corpus, vocab, config, args.init, vectors, out, seed,
                            resume=not args.restart, progress=True)
        for row in history.itertuples():
            print(f"epoch {row.epoch}: train {row.train_loss:.3f}  valid {row.valid_loss:.3f}  "
                  f"acc {row.valid_masked_accuracy:.3f}  {row.tokens_per_s:,.0f} tokens/s")
        print(f"checkpoints in {out}")
        return 0

    parser.set_defaults(handler=handle)

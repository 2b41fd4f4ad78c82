"""ESM protein language models: loading, local pretraining and pooled embeddings.

Why this module exists instead of calling fair-esm directly:

* **Offline.** ``esm.pretrained`` downloads on a cache miss (and can hang without a
  network); :func:`load_esm` only reads files that are already on disk and, when one is
  missing, says exactly which file to place where.
* **A local model.** The offline profiles cannot fetch ESM-2 weights, so
  :func:`train_local_esm` pretrains a small ESM-2 with the same masked-LM objective on
  the project's own sequences and reports whether it beat a unigram baseline.
* **Speed on CPU.** :func:`embed` runs the transformer itself: every requested layer in one
  forward pass that stops after the deepest requested layer, no LM head, no averaged
  attention maps (fair-esm always computes them), PyTorch's fused attention, and small
  length-sorted batches (padding and quadratic attention make fair-esm's 4,096-token
  batches slower than one sequence at a time on CPU).
* **Reruns are free.** Pooled vectors are cached per sequence, keyed by everything that
  changes them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import esm
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from esm.model.esm1 import ProteinBertModel
from esm.model.esm2 import ESM2

from crossgran.cache import (
    ArrayCache,
    atomic_path,
    cache_key,
    load_npz,
    save_npz,
    sha256_file,
    write_text_atomic,
)
from crossgran.profiles import EsmConfig

HUB_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"
REGRESSION_URL = "https://dl.fbaipublicfiles.com/fair-esm/regression/{name}-contact-regression.pt"
HUB_MODELS = (
    "esm2_t6_8M_UR50D",
    "esm2_t12_35M_UR50D",
    "esm2_t30_150M_UR50D",
    "esm2_t33_650M_UR50D",
    "esm2_t36_3B_UR50D",
    "esm2_t48_15B_UR50D",
    "esm1b_t33_650M_UR50S",
)
LOCAL_PREFIX = "local:"
STANDARD_AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
ALLOWED_RESIDUES = frozenset(STANDARD_AMINO_ACIDS + "XBZUO")
CACHE_NAMESPACE = "esm-embed"
# Bump when the pooling or windowing definition changes: old cache entries become unreachable.
EMBED_VERSION = 1
# Padded tokens per batch (BOS/EOS included). Measured with an esm2_t6_8M-shaped model on 2
# CPU cores (benchmarks/bench_embed.py): with length-sorted batches, 1k-4k tokens are equally
# fast with 2 threads and 1k is best with 1 thread; 8k+ loses (attention is quadratic and
# big tensors fall out of cache). The smallest good budget also keeps memory low.
CPU_BATCH_TOKENS = 1024
# Not measured here (no GPU on the development machine): fair-esm's default for its
# extraction script, which keeps a 650M model well inside 16 GB.
CUDA_BATCH_TOKENS = 4096


class ModelFilesMissingError(FileNotFoundError):
    """A model's weights are not on disk; the message says which file goes where."""


@dataclass(frozen=True)
class LoadedEsm:
    """A ready-to-use ESM model and the facts the rest of the pipeline keys on.

    ``model_id`` names the weights by content (name + short sha256 of the weights file), so
    cached embeddings can never be attributed to a different checkpoint with the same name.
    ``max_positions`` counts BOS and EOS; sequences longer than ``max_positions - 2`` are
    embedded in overlapping windows (see :func:`embed`).
    """

    model: torch.nn.Module
    alphabet: esm.data.Alphabet
    batch_converter: esm.data.BatchConverter
    model_id: str
    num_layers: int
    embed_dim: int
    max_positions: int

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


@dataclass
class EmbeddingResult:
    """Pooled embeddings, one (n, d) float32 array per layer, rows in the order of ``ids``.

    ``mean`` is the mean over all residues; ``positions`` (only when positions were given)
    the mean over the listed residues. ``stats`` records how much was computed vs cached and
    the throughput, so notebooks and the CLI can report it.
    """

    ids: list[str]
    layers: tuple[int, ...]
    model_id: str
    num_layers: int
    mean: dict[int, np.ndarray]
    positions: dict[int, np.ndarray] | None = None
    stats: dict[str, float] = field(default_factory=dict)

    def layer_index(self, layer: int) -> int:
        """Accept negative layer numbers as in fair-esm (-1 = last layer of the model)."""
        normalised = layer + self.num_layers + 1 if layer < 0 else layer
        if normalised not in self.mean:
            raise KeyError(f"layer {layer} was not embedded; available: {list(self.layers)}")
        return normalised

    def save(self, path: Path | str) -> None:
        """Write an ``.npz`` (ids, layers, mean_L<k>, positions_L<k>) atomically."""
        arrays: dict[str, np.ndarray] = {
            "ids": np.array(self.ids, dtype=str),
            "layers": np.array(self.layers, dtype=np.int64),
            "model_id": np.array(self.model_id),
            "num_layers": np.array(self.num_layers),
        }
        for layer in self.layers:
            arrays[f"mean_L{layer}"] = self.mean[layer]
            if self.positions is not None:
                arrays[f"positions_L{layer}"] = self.positions[layer]
        save_npz(path, arrays)

    @classmethod
    def load(cls, path: Path | str) -> EmbeddingResult:
        """Read what :meth:`save` wrote (notebooks 03-05 read notebook 02's embeddings)."""
        stored = load_npz(path)
        layers = tuple(int(k) for k in stored["layers"])
        has_positions = f"positions_L{layers[0]}" in stored
        return cls(ids=stored["ids"].tolist(), layers=layers, model_id=str(stored["model_id"]),
                   num_layers=int(stored["num_layers"]),
                   mean={k: stored[f"mean_L{k}"] for k in layers},
                   positions={k: stored[f"positions_L{k}"] for k in layers} if has_positions else None)


# --------------------------------------------------------------------------- loading


def hub_checkpoint_dir() -> Path:
    """Where fair-esm (torch.hub) keeps downloaded weights: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def local_model_dir(spec: str, models_dir: Path) -> Path:
    """The folder of a ``local:<name>`` model: ``models_dir/<name>``."""
    if not spec.startswith(LOCAL_PREFIX) or not spec[len(LOCAL_PREFIX):]:
        raise ValueError(f"not a local model spec: {spec!r} (expected 'local:<name>')")
    return Path(models_dir) / spec[len(LOCAL_PREFIX):]


def load_esm(spec: str, models_dir: Path | None = None,
             device: str | torch.device | None = None) -> LoadedEsm:
    """Load an ESM model in eval mode, from disk only (never the network).

    ``spec`` is a fair-esm hub name (read from :func:`hub_checkpoint_dir`), a path to a
    fair-esm ``.pt`` checkpoint (a ``<stem>-contact-regression.pt`` beside it is optional:
    embeddings do not use the contact head), or ``local:<name>`` for a model made by
    :func:`train_local_esm` under ``models_dir``. ``device`` defaults to CUDA when present.
    """
    target = torch.device(device) if device is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith(LOCAL_PREFIX):
        if models_dir is None:
            raise ValueError(f"{spec!r} needs models_dir (the profile's models_dir)")
        loaded = _load_local(local_model_dir(spec, models_dir))
    elif spec in HUB_MODELS:
        loaded = _load_fair_esm_file(hub_checkpoint_dir() / f"{spec}.pt", hub_name=spec)
    elif spec.endswith(".pt"):
        loaded = _load_fair_esm_file(Path(spec), hub_name=None)
    else:
        raise ValueError(f"unknown ESM spec {spec!r}: use one of {', '.join(HUB_MODELS)}, "
                         "a path to a fair-esm .pt file, or 'local:<name>'")
    loaded.model.to(target)
    return loaded


def _load_fair_esm_file(path: Path, hub_name: str | None) -> LoadedEsm:
    if not path.is_file():
        name = hub_name or path.stem
        raise ModelFilesMissingError(
            f"ESM weights not found: {path}\n"
            f"This project never downloads during a run. Place the file yourself:\n"
            f"  mkdir -p {path.parent}\n"
            f"  curl -L -o {path} {HUB_URL.format(name=name)}\n"
            f"(optional, only for contact prediction: "
            f"{path.parent / (path.stem + '-contact-regression.pt')} from "
            f"{REGRESSION_URL.format(name=name)})")
    # fair-esm checkpoints pickle argparse/omegaconf objects, so weights_only loading (the
    # torch>=2.6 default, which breaks esm.pretrained.load_model_and_alphabet_local) cannot
    # read them; these are the publisher's files, which the user placed on purpose.
    model_data = torch.load(path, map_location="cpu", weights_only=False)
    regression_path = path.with_name(f"{path.stem}-contact-regression.pt")
    regression = (torch.load(regression_path, map_location="cpu", weights_only=False)
                  if regression_path.is_file() else None)
    with warnings.catch_warnings():
        # Without the regression file only contact prediction is wrong; embeddings never use it.
        warnings.filterwarnings("ignore", message="Regression weights not found")
        model, alphabet = esm.pretrained.load_model_and_alphabet_core(path.stem, model_data,
                                                                      regression)
    return wrap_model(model, alphabet, f"{path.stem}@{sha256_file(path)[:12]}")


def _load_local(directory: Path) -> LoadedEsm:
    weights, config_path = directory / "model.pt", directory / "config.json"
    if not (weights.is_file() and config_path.is_file()):
        raise ModelFilesMissingError(
            f"local ESM model not found in {directory} (needs model.pt and config.json). "
            "Create it with crossgran.esm.train_local_esm (notebook 02 does this).")
    config = json.loads(config_path.read_text())
    digest = sha256_file(weights)
    if digest != config["weights_sha256"]:
        raise ValueError(f"{weights} does not match the sha256 in {config_path}; "
                         "delete the folder and retrain")
    model = _new_local_model(config["architecture"])
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return wrap_model(model, model.alphabet, f"local:{directory.name}@{digest[:12]}",
                      max_positions=config["architecture"]["max_positions"])


def _new_local_model(architecture: Mapping[str, int]) -> ESM2:
    return ESM2(num_layers=architecture["num_layers"], embed_dim=architecture["embed_dim"],
                attention_heads=architecture["attention_heads"], alphabet="ESM-1b",
                token_dropout=True)


def wrap_model(model: torch.nn.Module, alphabet: esm.data.Alphabet, model_id: str,
               max_positions: int | None = None) -> LoadedEsm:
    """Describe an in-memory fair-esm model (e.g. randomly initialised, for benchmarks).

    ``model_id`` must name the weights uniquely: it is part of every cache key. ESM-2 has no
    position table, so its ``max_positions`` defaults to 1024, the crop it was trained on.
    """
    if isinstance(model, ESM2):
        num_layers, embed_dim = model.num_layers, model.embed_dim
        default_positions = 1024
    elif isinstance(model, ProteinBertModel) and model.model_version == "ESM-1b":
        num_layers, embed_dim = model.num_layers, model.args.embed_dim
        default_positions = model.args.max_positions
    else:
        raise TypeError(f"unsupported ESM architecture {type(model).__name__}: "
                        "crossgran.esm supports ESM-2 and ESM-1b")
    model.eval()
    return LoadedEsm(model=model, alphabet=alphabet, batch_converter=alphabet.get_batch_converter(),
                     model_id=model_id, num_layers=num_layers, embed_dim=embed_dim,
                     max_positions=max_positions or default_positions)


# --------------------------------------------------------------------------- sequences


def clean_sequence(record_id: str, sequence: str) -> str:
    """Upper-case ``sequence`` and drop one terminal ``*``; reject anything else odd.

    Case carries no meaning for the ESM alphabet (it only has upper-case letters; lower case
    in FASTA files marks masking or insert states, not different residues), and a trailing
    ``*`` is the stop codon of translated CDSs. Gaps, digits, inner stops and empty records
    mean the input is not a protein sequence, so they fail loudly instead of being mapped
    to ``<unk>``.
    """
    cleaned = sequence.strip().upper()
    cleaned = cleaned.removesuffix("*")
    if not cleaned:
        raise ValueError(f"record {record_id!r}: empty sequence")
    bad = sorted(set(cleaned) - ALLOWED_RESIDUES)
    if bad:
        raise ValueError(f"record {record_id!r}: characters that are not amino acids: "
                         f"{''.join(bad)!r} (allowed: 20 standard + X B Z U O)")
    return cleaned


def _clean_all(sequences: Mapping[str, str]) -> dict[str, str]:
    """Validate every record and report all bad ones at once (fixing one at a time is slow)."""
    cleaned: dict[str, str] = {}
    problems: list[str] = []
    for record_id, sequence in sequences.items():
        try:
            cleaned[record_id] = clean_sequence(record_id, sequence)
        except ValueError as error:
            problems.append(str(error))
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise ValueError(f"{len(problems)} invalid sequence record(s):\n  {shown}{more}")
    return cleaned


def _token_table(alphabet: esm.data.Alphabet) -> np.ndarray:
    table = np.full(256, alphabet.unk_idx, dtype=np.int64)
    for residue in ALLOWED_RESIDUES:
        table[ord(residue)] = alphabet.get_idx(residue)
    return table


def _tokenize(pieces: Sequence[str], alphabet: esm.data.Alphabet, table: np.ndarray) -> torch.Tensor:
    """BOS + residues + EOS, right-padded; same tokens as fair-esm's BatchConverter, faster."""
    width = max(len(piece) for piece in pieces) + 2
    tokens = np.full((len(pieces), width), alphabet.padding_idx, dtype=np.int64)
    for row, piece in enumerate(pieces):
        tokens[row, 0] = alphabet.cls_idx
        tokens[row, 1:len(piece) + 1] = table[np.frombuffer(piece.encode("ascii"), dtype=np.uint8)]
        tokens[row, len(piece) + 1] = alphabet.eos_idx
    return torch.from_numpy(tokens)


# --------------------------------------------------------------------------- forward pass


def _embed_tokens(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Token (and, for ESM-1b, learned position) embeddings exactly as fair-esm computes them."""
    padding = tokens.eq(model.padding_idx)
    x = model.embed_scale * model.embed_tokens(tokens)
    token_dropout = (model.token_dropout if isinstance(model, ESM2)
                     else getattr(model.args, "token_dropout", False))
    if token_dropout:
        masked = tokens.eq(model.mask_idx)
        x = x.masked_fill(masked.unsqueeze(-1), 0.0)
        observed = masked.sum(-1).to(x.dtype) / (~padding).sum(-1)
        x = x * (1 - 0.15 * 0.8) / (1 - observed)[:, None, None]
    if isinstance(model, ProteinBertModel):
        x = x + model.embed_positions(tokens)
        if model.emb_layer_norm_before:
            x = model.emb_layer_norm_before(x)
    return x * (~padding).unsqueeze(-1).to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def _transformer_layer(layer: torch.nn.Module, x: torch.Tensor, attn_mask: torch.Tensor | None,
                       rotary: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """fair-esm's pre-LN ``TransformerLayer`` in (B, T, E) layout with fused attention.

    fair-esm's own attention always materialises and head-averages the attention map (its
    layers pass ``need_weights=True``); ``scaled_dot_product_attention`` skips that.
    """
    attention = layer.self_attn
    batch, length, width = x.shape
    heads = attention.num_heads
    hidden = layer.self_attn_layer_norm(x)

    def split(projection: torch.nn.Linear) -> torch.Tensor:
        return projection(hidden).view(batch, length, heads, width // heads).transpose(1, 2)

    q, k, v = split(attention.q_proj), split(attention.k_proj), split(attention.v_proj)
    if rotary is not None:
        cos, sin = rotary
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
    mixed = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           dropout_p=attention.dropout if layer.training else 0.0)
    x = x + attention.out_proj(mixed.transpose(1, 2).reshape(batch, length, width))
    return x + layer.fc2(F.gelu(layer.fc1(layer.final_layer_norm(x))))


def _hidden_states(model: torch.nn.Module, tokens: torch.Tensor,
                   last_layer: int) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (layer, (B, T, E) hidden state) for layers 0..last_layer, then stop.

    Stopping early is the point: asking for layers 0 and 6 of a 33-layer model costs 6
    layers. As in fair-esm, the model's final layer gets the closing layer norm.
    """
    for module in model.layers[:last_layer]:
        if module.self_attn.bias_k is not None:
            raise TypeError("ESM-1 style attention with bias_kv is not supported")
    padding = tokens.eq(model.padding_idx)
    attn_mask = (~padding)[:, None, None, :] if padding.any() else None
    rotary = None
    if isinstance(model, ESM2):
        inv_freq = model.layers[0].self_attn.rot_emb.inv_freq
        steps = torch.arange(tokens.shape[1], device=tokens.device).type_as(inv_freq)
        angles = torch.outer(steps, inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        rotary = (angles.cos().to(model.embed_tokens.weight.dtype),
                  angles.sin().to(model.embed_tokens.weight.dtype))
    x = _embed_tokens(model, tokens)
    yield 0, x
    num_layers = len(model.layers)
    for index in range(last_layer):
        x = _transformer_layer(model.layers[index], x, attn_mask, rotary)
        yield index + 1, (model.emb_layer_norm_after(x) if index + 1 == num_layers else x)


def _mlm_logits(model: ESM2, tokens: torch.Tensor) -> torch.Tensor:
    """All layers, final layer norm, LM head: the pretraining forward, through the same code."""
    *_, (_, x) = _hidden_states(model, tokens, len(model.layers))
    return model.lm_head(x)


# --------------------------------------------------------------------------- embedding


@dataclass(frozen=True)
class _Piece:
    """One forward-pass unit: a whole sequence or one window of a long one.

    ``weights`` (K, len) are the pooling weights of this piece's residues: row 0 the
    over-all-residues mean, row 1 (if any) the positions mean. Summing ``weights @ reps``
    over a sequence's pieces gives its pooled vectors, so windows need no per-residue storage.
    """

    seq_index: int
    residues: str
    weights: np.ndarray


def window_starts(length: int, window: int) -> list[int]:
    """Start offsets of the overlapping windows covering a sequence of ``length`` residues.

    Windows of ``window`` residues advance by ``window // 2``, and the last one is aligned to
    the C-terminus. Half-window overlap gives every residue at least a quarter window of
    context on both sides in some window (except at the true termini).
    """
    if length <= window:
        return [0]
    stride = max(1, window // 2)
    return [*range(0, length - window, stride), length - window]


def _pieces(seq_index: int, sequence: str, positions: Sequence[int] | None,
            window: int) -> list[_Piece]:
    length = len(sequence)
    starts = window_starts(length, window)
    coverage = np.zeros(length)
    for start in starts:
        coverage[start:start + window] += 1
    per_residue = [1.0 / (coverage * length)]
    if positions is not None:
        selected = np.zeros(length)
        selected[list(positions)] = 1.0 / len(positions)
        per_residue.append(selected / coverage)
    stacked = np.stack(per_residue)
    return [_Piece(seq_index, sequence[start:start + window],
                   np.ascontiguousarray(stacked[:, start:start + window]))
            for start in starts]


def _batches(pieces: Sequence[_Piece], budget: int) -> list[list[_Piece]]:
    """Length-sorted batches whose padded size (rows x longest, BOS/EOS included) fits ``budget``.

    Sorting by length keeps padding near zero, so batching only saves per-call overhead
    and never pays for attention over padding.
    """
    ordered = sorted(pieces, key=lambda piece: len(piece.residues))
    batches: list[list[_Piece]] = []
    current: list[_Piece] = []
    for piece in ordered:
        if current and (len(current) + 1) * (len(piece.residues) + 2) > budget:
            batches.append(current)
            current = []
        current.append(piece)
    if current:
        batches.append(current)
    return batches


def default_batch_tokens(device: torch.device) -> int:
    """Token budget per batch for ``device`` (see :data:`CPU_BATCH_TOKENS`)."""
    return CUDA_BATCH_TOKENS if device.type == "cuda" else CPU_BATCH_TOKENS


def normalise_layers(layers: Sequence[int], num_layers: int) -> tuple[int, ...]:
    """Sorted unique layer numbers in 0..num_layers; negatives count from the end (-1 = last)."""
    if not layers:
        raise ValueError("ask for at least one layer")
    normalised = set()
    for layer in layers:
        value = layer + num_layers + 1 if layer < 0 else layer
        if not 0 <= value <= num_layers:
            raise ValueError(f"layer {layer} out of range for a {num_layers}-layer model")
        normalised.add(int(value))
    return tuple(sorted(normalised))


def _check_positions(cleaned: Mapping[str, str],
                     positions: Mapping[str, Sequence[int]]) -> dict[str, tuple[int, ...]]:
    missing = [record_id for record_id in cleaned if record_id not in positions]
    if missing:
        raise ValueError(f"positions missing for {len(missing)} record(s), e.g. {missing[:5]}")
    checked: dict[str, tuple[int, ...]] = {}
    for record_id, sequence in cleaned.items():
        indices = tuple(int(index) for index in positions[record_id])
        if not indices:
            raise ValueError(f"record {record_id!r}: empty positions list")
        if len(set(indices)) != len(indices):
            raise ValueError(f"record {record_id!r}: duplicate positions {indices}")
        outside = [index for index in indices if not 0 <= index < len(sequence)]
        if outside:
            raise ValueError(f"record {record_id!r}: positions {outside} outside 0..{len(sequence) - 1}")
        checked[record_id] = indices
    return checked


def _entry_key(model: LoadedEsm, layers: tuple[int, ...], sequence: str,
               positions: tuple[int, ...] | None) -> str:
    return cache_key(CACHE_NAMESPACE, EMBED_VERSION, model.model_id, list(layers),
                     model.max_positions - 2, "mean+positions" if positions else "mean",
                     list(positions) if positions else None,
                     hashlib.sha256(sequence.encode()).hexdigest())


def _valid_entry(entry: Mapping[str, np.ndarray] | None, shape: tuple[int, int, int]) -> bool:
    """Readable is not enough: a truncated or foreign array must not be used as a result."""
    if entry is None or set(entry) != {"pooled"}:
        return False
    pooled = entry["pooled"]
    return pooled.shape == shape and pooled.dtype == np.float32 and bool(np.isfinite(pooled).all())


def embed(sequences: Mapping[str, str], model: LoadedEsm, layers: Sequence[int],
          positions: Mapping[str, Sequence[int]] | None = None, cache: ArrayCache | None = None,
          batch_tokens: int | None = None, progress: bool = False) -> EmbeddingResult:
    """Mean-pooled ESM representations of ``sequences`` at ``layers``.

    Pooling uses residues only (BOS, EOS and padding get weight 0). With ``positions``
    (0-based residue indices per record, e.g. the Stachelhaus positions of an A-domain;
    required for every record) the mean over those residues is returned as well.

    Sequences are upper-cased and a terminal ``*`` dropped; empty records and other
    characters raise ``ValueError`` naming the records (see :func:`clean_sequence`).

    **Long sequences** (more than ``model.max_positions - 2`` residues): overlapping windows
    (:func:`window_starts`, half-window stride) are embedded separately and each residue's
    representation is the average over the windows containing it; pooling then runs over
    those per-residue averages. Truncation would silently drop the C-terminal part (multi-
    modular NRPS proteins are several thousand residues long, and their later A-domains would
    vanish); independent chunks without overlap would give the residues at chunk borders
    one-sided context. ESM-1b cannot exceed its position table; ESM-2 was trained on
    1,024-token crops, so longer inputs are out of its training distribution.

    **Batching**: all layers come from one forward pass that stops after the deepest
    requested layer. Sequences are sorted by length and packed into batches of at most
    ``batch_tokens`` padded tokens (default :func:`default_batch_tokens`).

    **Cache** (optional): one entry per sequence, keyed by model id, layers, window size,
    pooling and positions, and the sequence's sha256. Per sequence rather than per batch
    because batches depend on which other sequences are in the call (profiles take
    different subsets), while a sequence's vector does not. Unreadable or malformed
    entries are recomputed and overwritten.
    """
    started = time.perf_counter()
    layer_tuple = normalise_layers(layers, model.num_layers)
    cleaned = _clean_all(sequences)
    ids = list(cleaned)
    checked = _check_positions(cleaned, positions) if positions is not None else None
    n_pool = 2 if checked is not None else 1
    shape = (len(layer_tuple), n_pool, model.embed_dim)
    pooled = np.zeros((len(ids), *shape), dtype=np.float32)

    keys: list[str | None] = [None] * len(ids)
    todo: list[int] = []
    for index, record_id in enumerate(ids):
        if cache is not None:
            keys[index] = _entry_key(model, layer_tuple, cleaned[record_id],
                                     checked[record_id] if checked else None)
            entry = cache.load(CACHE_NAMESPACE, keys[index])
            if _valid_entry(entry, shape):
                pooled[index] = entry["pooled"]
                continue
        todo.append(index)

    window = model.max_positions - 2
    pieces = [piece for index in todo
              for piece in _pieces(index, cleaned[ids[index]],
                                   checked[ids[index]] if checked else None, window)]
    remaining = np.zeros(len(ids), dtype=np.int64)
    for piece in pieces:
        remaining[piece.seq_index] += 1
    accumulated = np.zeros((len(ids), *shape), dtype=np.float64)
    budget = batch_tokens or default_batch_tokens(model.device)
    computed_residues = sum(len(piece.residues) for piece in pieces)

    table = _token_table(model.alphabet)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=computed_residues, unit="res", unit_scale=True, desc="ESM embed")
    with torch.inference_mode():
        for batch in _batches(pieces, budget):
            vectors = _pool_batch(model, batch, layer_tuple, table)
            for piece, vector in zip(batch, vectors):
                accumulated[piece.seq_index] += vector
                remaining[piece.seq_index] -= 1
                if remaining[piece.seq_index] == 0:
                    pooled[piece.seq_index] = accumulated[piece.seq_index]
                    if cache is not None:
                        cache.store(CACHE_NAMESPACE, keys[piece.seq_index],
                                    {"pooled": pooled[piece.seq_index]})
            if bar is not None:
                bar.update(sum(len(piece.residues) for piece in batch))
    if bar is not None:
        bar.close()

    seconds = time.perf_counter() - started
    return EmbeddingResult(
        ids=ids, layers=layer_tuple, model_id=model.model_id, num_layers=model.num_layers,
        mean={layer: np.ascontiguousarray(pooled[:, i, 0]) for i, layer in enumerate(layer_tuple)},
        positions=({layer: np.ascontiguousarray(pooled[:, i, 1])
                    for i, layer in enumerate(layer_tuple)} if checked is not None else None),
        stats={"n_sequences": len(ids), "n_computed": len(todo), "n_cached": len(ids) - len(todo),
               "residues": sum(len(sequence) for sequence in cleaned.values()),
               "computed_residues": computed_residues, "seconds": seconds,
               "residues_per_second": sum(len(s) for s in cleaned.values()) / max(seconds, 1e-9),
               "batch_tokens": budget},
    )


def _pool_batch(model: LoadedEsm, batch: Sequence[_Piece], layers: tuple[int, ...],
                table: np.ndarray) -> np.ndarray:
    """(B, n_layers, K, d) pooled vectors of one batch: weights (B, K, T) @ states (B, T, d)."""
    device = model.device
    tokens = _tokenize([piece.residues for piece in batch], model.alphabet, table).to(device)
    weights = np.zeros((len(batch), batch[0].weights.shape[0], tokens.shape[1]), dtype=np.float32)
    for row, piece in enumerate(batch):
        weights[row, :, 1:len(piece.residues) + 1] = piece.weights
    weight_tensor = torch.from_numpy(weights).to(device)
    wanted = set(layers)
    out = []
    for layer, hidden in _hidden_states(model.model, tokens, max(layers)):
        if layer in wanted:
            out.append(torch.bmm(weight_tensor, hidden.to(torch.float32)))
    return torch.stack(out, dim=1).cpu().numpy()


# --------------------------------------------------------------------------- local pretraining


def _sequence_fraction(sequence: str) -> float:
    """A stable pseudo-random number in [0, 1) per sequence: the held-out split survives
    reordering, subsetting and reruns, and duplicates can never straddle train and valid."""
    return int(hashlib.sha256(sequence.encode()).hexdigest()[:15], 16) / 16 ** 15


def _split(unique: Sequence[str], valid_fraction: float) -> tuple[list[str], list[str]]:
    train = [s for s in unique if _sequence_fraction(s) >= valid_fraction]
    valid = [s for s in unique if _sequence_fraction(s) < valid_fraction]
    if valid_fraction > 0 and not valid:  # tiny inputs: still hold one sequence out
        held = min(unique, key=_sequence_fraction)
        valid, train = [held], [s for s in unique if s != held]
    if not train:
        raise ValueError("no training sequences left after the held-out split")
    return train, valid


def _mask_tokens(tokens: torch.Tensor, alphabet: esm.data.Alphabet, generator: torch.Generator,
                 residue_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: 15% of residues are targets; of those 80% -> <mask>, 10% -> a random
    amino acid, 10% unchanged (so the model cannot learn that unmasked means correct)."""
    special = tokens.eq(alphabet.padding_idx) | tokens.eq(alphabet.cls_idx) | tokens.eq(alphabet.eos_idx)
    draw = torch.rand(tokens.shape, generator=generator)
    targets = (draw < 0.15) & ~special
    if not targets.any():
        candidates = (~special).nonzero()
        pick = candidates[torch.randint(len(candidates), (1,), generator=generator)][0]
        targets[pick[0], pick[1]] = True
    action = torch.rand(tokens.shape, generator=generator)
    random_tokens = residue_ids[torch.randint(len(residue_ids), tokens.shape, generator=generator)]
    inputs = tokens.clone()
    inputs[targets & (action < 0.8)] = alphabet.mask_idx
    swap = targets & (action >= 0.8) & (action < 0.9)
    inputs[swap] = random_tokens[swap]
    labels = torch.where(targets, tokens, torch.full_like(tokens, -100))
    return inputs, labels


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
    return {"num_layers": config.num_layers, "embed_dim": config.embed_dim,
            "attention_heads": config.attention_heads, "train_steps": config.train_steps,
            "train_batch_tokens": config.train_batch_tokens, "train_max_len": config.train_max_len,
            "lr": config.lr, "valid_fraction": config.valid_fraction, "seed": seed,
            "data_sha256": data_hash, "code": cache_key("train_local_esm", 2)}


def _valid_batches(valid: Sequence[str], max_len: int, budget: int, alphabet: esm.data.Alphabet,
                   seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed held-out batches (every residue, in consecutive crops; masking drawn once) so
    the loss curve compares like with like across evaluation points."""
    generator = torch.Generator().manual_seed(seed + 1)
    table = _token_table(alphabet)
    residue_ids = torch.tensor([alphabet.get_idx(a) for a in STANDARD_AMINO_ACIDS])
    crops = [s[i:i + max_len] for s in valid for i in range(0, len(s), max_len)]
    crops.sort(key=len)
    per_batch = max(1, budget // (max_len + 2))
    batches = []
    for start in range(0, len(crops), per_batch):
        tokens = _tokenize(crops[start:start + per_batch], alphabet, table)
        batches.append(_mask_tokens(tokens, alphabet, generator, residue_ids))
    return batches


def _unigram_log_probs(train: Sequence[str], alphabet: esm.data.Alphabet) -> torch.Tensor:
    """Log-frequencies of residue tokens in the training set (add-one smoothed): the
    perplexity a model gets by ignoring context, the bar a useful model must clear."""
    counts = torch.zeros(len(alphabet.all_toks), dtype=torch.float64)
    table = _token_table(alphabet)
    for sequence in train:
        counts += torch.bincount(torch.from_numpy(table[np.frombuffer(sequence.encode(), np.uint8)]),
                                 minlength=len(counts)).to(torch.float64)
    for residue in ALLOWED_RESIDUES:
        counts[alphabet.get_idx(residue)] += 1
    return (counts / counts.sum()).clamp_min(1e-12).log()


def _evaluate(model: ESM2, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
              unigram: torch.Tensor) -> tuple[float, float]:
    """Held-out (model, unigram) cross-entropy in nats per masked residue."""
    model.eval()
    total = baseline = 0.0
    count = 0
    with torch.inference_mode():
        for inputs, labels in batches:
            logits = _mlm_logits(model, inputs)
            chosen = labels.ne(-100)
            total += F.cross_entropy(logits[chosen], labels[chosen], reduction="sum").item()
            baseline += -unigram[labels[chosen]].sum().item()
            count += int(chosen.sum())
    model.train()
    return total / max(count, 1), baseline / max(count, 1)


def train_local_esm(sequences: Sequence[str], config: EsmConfig, out_dir: Path,
                    seed: int) -> pd.DataFrame:
    """Pretrain a small ESM-2 by masked language modelling and save it to ``out_dir``.

    ``out_dir`` is the model folder, i.e. ``local_model_dir(config.spec, profile.models_dir)``,
    so that ``load_esm(config.spec, profile.models_dir)`` finds it. Returns the history
    (one row per evaluation: step, lr, train_loss, valid_loss, valid_perplexity,
    unigram_perplexity, tokens_seen, elapsed_s); the final numbers are also in config.json.

    Deterministic: sequences are deduplicated and sorted, the held-out set is chosen by
    sequence hash (``config.valid_fraction``), and all randomness flows from ``seed``. If a
    model with the same configuration, seed and data already exists, its stored history is
    returned without retraining. The model's ``max_positions`` is ``train_max_len + 2``: it
    never saw longer contexts, so :func:`embed` windows anything longer.
    """
    if config.train_steps < 1:
        raise ValueError("train_steps must be >= 1 for a local model")
    out_dir = Path(out_dir)
    unique = sorted({clean_sequence(f"#{i}", s) for i, s in enumerate(sequences)})
    if len(unique) < 2:
        raise ValueError("need at least two distinct sequences to pretrain and validate")
    data_hash = hashlib.sha256("\n".join(unique).encode()).hexdigest()
    signature = _training_signature(config, seed, data_hash)
    config_path, weights_path, history_path = (out_dir / "config.json", out_dir / "model.pt",
                                               out_dir / "history.csv")
    if config_path.is_file() and weights_path.is_file() and history_path.is_file():
        stored = json.loads(config_path.read_text())
        if stored.get("training") == signature and stored.get("weights_sha256") == sha256_file(weights_path):
            return pd.read_csv(history_path)

    train, valid = _split(unique, config.valid_fraction)
    torch.manual_seed(seed)
    architecture = {"num_layers": config.num_layers, "embed_dim": config.embed_dim,
                    "attention_heads": config.attention_heads,
                    "max_positions": config.train_max_len + 2}
    model = _new_local_model(architecture)
    model.apply(_init_bert_params)
    alphabet = model.alphabet
    model.train()
    table = _token_table(alphabet)
    residue_ids = torch.tensor([alphabet.get_idx(a) for a in STANDARD_AMINO_ACIDS])
    unigram = _unigram_log_probs(train, alphabet)
    valid_batches = _valid_batches(valid, config.train_max_len, config.train_batch_tokens,
                                   alphabet, seed)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    per_batch = max(1, config.train_batch_tokens // (config.train_max_len + 2))
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.98),
                                  weight_decay=0.01)
    warmup = max(1, config.train_steps // 10)

    def schedule(step: int) -> float:
        """Linear warmup (Adam's early moments are noisy), then cosine decay to 10%."""
        if step < warmup:
            return (step + 1) / warmup
        progress_ = (step - warmup) / max(1, config.train_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    eval_every = max(1, config.train_steps // 10)
    started = time.perf_counter()
    rows: list[dict[str, float]] = []
    running: list[float] = []
    tokens_seen = 0

    def record(step: int) -> None:
        valid_loss, unigram_loss = _evaluate(model, valid_batches, unigram)
        rows.append({"step": step, "lr": optimiser.param_groups[0]["lr"],
                     "train_loss": float(np.mean(running)) if running else math.nan,
                     "valid_loss": valid_loss, "valid_perplexity": math.exp(valid_loss),
                     "unigram_perplexity": math.exp(unigram_loss), "tokens_seen": tokens_seen,
                     "elapsed_s": time.perf_counter() - started})
        running.clear()

    record(0)
    for step in range(1, config.train_steps + 1):
        chosen = rng.integers(len(train), size=per_batch)
        crops = []
        for index in chosen:
            sequence = train[index]
            start = int(rng.integers(0, max(1, len(sequence) - config.train_max_len + 1)))
            crops.append(sequence[start:start + config.train_max_len])
        tokens = _tokenize(crops, alphabet, table)
        inputs, labels = _mask_tokens(tokens, alphabet, generator, residue_ids)
        logits = _mlm_logits(model, inputs)
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        scheduler.step()
        running.append(loss.item())
        tokens_seen += int(tokens.ne(alphabet.padding_idx).sum())
        if step % eval_every == 0 or step == config.train_steps:
            record(step)

    history = pd.DataFrame(rows)
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path.unlink(missing_ok=True)  # config.json is the commit marker: drop it first
    # Saved through a file handle: given a path, torch names the archive's folder after the
    # (random) temporary file, so identical weights would hash differently on every run.
    with atomic_path(weights_path) as tmp, open(tmp, "wb") as handle:
        torch.save(model.state_dict(), handle)
    with atomic_path(history_path) as tmp:
        history.to_csv(tmp, index=False)
    final = history.iloc[-1]
    write_text_atomic(config_path, json.dumps({
        "architecture": architecture, "alphabet": "ESM-1b", "training": signature,
        "weights_sha256": sha256_file(weights_path),
        "n_train": len(train), "n_valid": len(valid),
        "valid_loss": float(final["valid_loss"]), "valid_perplexity": float(final["valid_perplexity"]),
        "unigram_perplexity": float(final["unigram_perplexity"]),
    }, indent=2))
    return history


# --------------------------------------------------------------------------- CLI


def read_fasta(path: Path | str) -> dict[str, str]:
    """Records of a FASTA file by id, as written (``embed`` validates the residues and names
    any bad record); a duplicate id is an error naming the file (results are keyed by id)."""
    from crossgran.datasets import read_fasta_text

    try:
        return read_fasta_text(Path(path).read_text())
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def add_embed_command(commands: argparse._SubParsersAction) -> None:
    """Register ``crossgran embed`` on the CLI's subcommand table."""
    parser = commands.add_parser("embed", help="mean-pooled ESM embeddings of a FASTA file")
    parser.add_argument("--fasta", required=True, type=Path)
    parser.add_argument("--model", required=True,
                        help="fair-esm hub name, path to a .pt file, or local:<name>")
    parser.add_argument("--layers", required=True, type=int, nargs="+",
                        help="layer numbers, 0 = token embeddings, -1 = last")
    parser.add_argument("--out", required=True, type=Path, help="output .npz")
    parser.add_argument("--models-dir", type=Path, default=None, help="folder of local: models")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="reuse/store per-sequence results here (default: no cache)")
    parser.add_argument("--batch-tokens", type=int, default=None,
                        help="padded tokens per batch (default: chosen per device)")

    def handle(args: argparse.Namespace) -> int:
        model = load_esm(args.model, args.models_dir)
        records = read_fasta(args.fasta)
        result = embed(records, model, args.layers,
                       cache=ArrayCache(args.cache_dir) if args.cache_dir else None,
                       batch_tokens=args.batch_tokens, progress=True)
        result.save(args.out)
        stats = result.stats
        print(f"{stats['n_sequences']} sequences ({stats['n_cached']} cached), "
              f"{stats['residues']:.0f} residues in {stats['seconds']:.1f} s: "
              f"{stats['residues_per_second']:.0f} residues/s -> {args.out}", file=sys.stderr)
        return 0

    parser.set_defaults(handler=handle)


__all__ = [
    "EmbeddingResult", "LoadedEsm", "ModelFilesMissingError", "add_embed_command",
    "clean_sequence", "default_batch_tokens", "embed", "hub_checkpoint_dir", "load_esm",
    "local_model_dir", "normalise_layers", "read_fasta", "train_local_esm", "window_starts",
    "wrap_model",
]

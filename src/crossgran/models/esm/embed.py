"""Mean-pooled ESM embeddings: every requested layer from one forward pass, cached per sequence.

Why not fair-esm's extraction script: on CPU, fair-esm's 4,096-token batches (padding and
quadratic attention) are slower than one sequence at a time, it computes every layer and the
attention maps, and it truncates long proteins. :func:`embed` sorts sequences by length into
small batches, stops after the deepest requested layer, windows long proteins, and caches
each sequence's pooled vectors under a key of everything that changes them, so reruns are
free.

On CUDA the forward pass runs under bf16 autocast with a token budget sized from the GPU's
memory and the model's shape; on CPU it runs in float32 with a measured budget. Pooling is
float32 everywhere (see :func:`embed`, **Precision**, and :func:`cuda_batch_tokens`).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from crossgran.cache import ArrayCache, cache_key, load_layers, save_layers
from crossgran.models.esm.forward import clean_all, hidden_states, token_table, tokenize
from crossgran.models.esm.load import LoadedEsm
from crossgran.models.layers import resolve_layers

CACHE_NAMESPACE = "esm-embed"
# Bump when the pooling or windowing definition changes: old cache entries become unreachable.
EMBED_VERSION = 1
# Padded tokens per batch (BOS/EOS included). Measured with an esm2_t6_8M-shaped model on 2
# CPU cores (benchmarks/bench_embed.py): with length-sorted batches, 1k-4k tokens are equally
# fast with 2 threads and 1k is best with 1 thread; 8k+ loses (attention is quadratic and
# big tensors fall out of cache). The smallest good budget also keeps memory low.
CPU_BATCH_TOKENS = 1024
# CUDA budgets come from cuda_batch_tokens(): a share of the GPU's memory divided by an upper
# bound of the bytes one token occupies inside one layer, capped. Not measured on a GPU (the
# development machine has none); the bound is worked out in cuda_batch_tokens' docstring.
CUDA_MEMORY_SHARE = 0.5
CUDA_MAX_BATCH_TOKENS = 32_768
# float32 (T, E) tensors of one transformer layer, counted as if all were alive at once: the
# residual stream before, between and after its two blocks (3), two layer-norm outputs (2),
# q/k/v (3), rotated q/k (2), attention output and projection (2), fc1 and GELU (4 E each: 8),
# fc2 (1): 21, rounded up. Autocast keeps several in bf16 (2 bytes): an over-estimate.
ACTIVATION_WIDTHS = 24
# Softmax scores and probabilities of PyTorch's math attention path, float32, per head.
ATTENTION_COPIES = 2
PRECISIONS = ("fp32", "bf16")

__all__ = [
    "CACHE_NAMESPACE",
    "CPU_BATCH_TOKENS",
    "CUDA_MAX_BATCH_TOKENS",
    "EMBED_VERSION",
    "PRECISIONS",
    "EmbeddingResult",
    "cuda_batch_tokens",
    "default_batch_tokens",
    "default_precision",
    "embed",
    "window_starts",
]


@dataclass
class EmbeddingResult:
    """Pooled embeddings, one (n, d) float32 array per layer, rows in the order of ``ids``.

    ``mean`` is the mean over all residues; ``positions`` (only when positions were given)
    the mean over the listed residues. ``precision`` is the forward pass's (``fp32`` or
    ``bf16`` autocast; pooled vectors are float32 either way). ``stats`` records how much was
    computed vs cached and the throughput, so notebooks and the CLI can report it.
    """

    ids: list[str]
    layers: tuple[int, ...]
    model_id: str
    num_layers: int
    mean: dict[int, np.ndarray]
    positions: dict[int, np.ndarray] | None = None
    stats: dict[str, float] = field(default_factory=dict)
    precision: str = "fp32"

    def layer_index(self, layer: int) -> int:
        """Accept negative layer numbers as in fair-esm (-1 = last layer of the model)."""
        try:
            normalised = resolve_layers([layer], self.num_layers)[0]
        except ValueError:
            normalised = None
        if normalised not in self.mean:
            raise KeyError(f"layer {layer} was not embedded; available: {list(self.layers)}")
        return normalised

    def save(self, path: Path | str) -> None:
        """Write an ``.npz`` (ids, layers, model_id, num_layers, precision, mean_L<k>,
        positions_L<k>) atomically."""
        header = {
            "ids": np.array(self.ids, dtype=str),
            "layers": np.array(self.layers, dtype=np.int64),
            "model_id": np.array(self.model_id),
            "num_layers": np.array(self.num_layers),
            "precision": np.array(self.precision),
        }
        per_layer = {"mean": self.mean}
        if self.positions is not None:
            per_layer["positions"] = self.positions
        save_layers(path, header, per_layer)

    @classmethod
    def load(cls, path: Path | str) -> EmbeddingResult:
        """Read what :meth:`save` wrote (notebooks 03-05 read notebook 02's embeddings); files
        written before the precision was recorded were float32."""
        header, per_layer = load_layers(path)
        return cls(
            ids=header["ids"].tolist(),
            layers=tuple(int(k) for k in header["layers"]),
            model_id=str(header["model_id"]),
            num_layers=int(header["num_layers"]),
            mean=per_layer["mean"],
            positions=per_layer.get("positions"),
            precision=str(header.get("precision", "fp32")),
        )


# --------------------------------------------------------------------------- pieces and batches


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


def _pieces(
    seq_index: int, sequence: str, positions: Sequence[int] | None, window: int
) -> list[_Piece]:
    length = len(sequence)
    starts = window_starts(length, window)
    coverage = np.zeros(length)
    for start in starts:
        coverage[start : start + window] += 1
    per_residue = [1.0 / (coverage * length)]
    if positions is not None:
        selected = np.zeros(length)
        selected[list(positions)] = 1.0 / len(positions)
        per_residue.append(selected / coverage)
    stacked = np.stack(per_residue)
    return [
        _Piece(
            seq_index,
            sequence[start : start + window],
            np.ascontiguousarray(stacked[:, start : start + window]),
        )
        for start in starts
    ]


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


def cuda_batch_tokens(
    total_memory: int,
    parameter_bytes: int,
    embed_dim: int,
    attention_heads: int,
    max_positions: int,
) -> int:
    """Padded tokens per batch for a GPU of ``total_memory`` bytes and a model of that shape.

    Why a formula: one fixed budget is either too small for an 80 GB GPU or too large for a
    16 GB one, and no GPU was available here to measure. The forward pass keeps no layer's
    activations after pooling it (:func:`_pool_batch`), so peak memory is the weights plus
    one layer's working set:

    * weights: ``parameter_bytes`` in float32 plus their bf16 copies under autocast (1.5x);
    * per token, ``4 * ACTIVATION_WIDTHS * embed_dim`` bytes: every (T, E)-sized intermediate
      of one layer counted in float32 (an upper bound, autocast halves several);
    * per token, ``4 * ATTENTION_COPIES * attention_heads * max_positions`` bytes: scores and
      softmax of the math attention path (B x heads x L x L for B x L tokens, at the longest
      window). The fused kernels need less.

    The budget is :data:`CUDA_MEMORY_SHARE` of the memory, minus the weights, divided by the
    per-token bytes; the share leaves room for the CUDA context, the allocator's
    fragmentation and a second model of the same size (the untrained control, which notebook
    02 and the halogenation task embed while the trained model is loaded). It is capped at
    :data:`CUDA_MAX_BATCH_TOKENS` (one 1,280 x 5,120 FFN product over 32k tokens is ~0.4
    TFLOP, large enough to keep a current GPU busy; larger batches only raise peak memory)
    and never below one full window. ESM-1b (650M, 1,280 x 20 heads, 1,026 positions): 287 kB per token, so
    ~14k tokens on a 16 GB GPU and the cap on 40 GB and up.
    """
    per_token = 4 * (
        ACTIVATION_WIDTHS * embed_dim + ATTENTION_COPIES * attention_heads * max_positions
    )
    usable = CUDA_MEMORY_SHARE * total_memory - 1.5 * parameter_bytes
    return int(min(CUDA_MAX_BATCH_TOKENS, max(max_positions, usable // per_token)))


def default_batch_tokens(model: LoadedEsm) -> int:
    """Token budget per batch for ``model`` on its device: :data:`CPU_BATCH_TOKENS` on the
    CPU, :func:`cuda_batch_tokens` from the GPU's total memory on CUDA (total, not currently
    free, so one GPU model always gets the same batches)."""
    device = model.device
    if device.type != "cuda":
        return CPU_BATCH_TOKENS
    parameters = list(model.model.parameters())
    return cuda_batch_tokens(
        total_memory=torch.cuda.get_device_properties(device).total_memory,
        parameter_bytes=sum(p.numel() * p.element_size() for p in parameters),
        embed_dim=model.embed_dim,
        attention_heads=model.model.layers[0].self_attn.num_heads,
        max_positions=model.max_positions,
    )


def default_precision(device: torch.device) -> str:
    """``bf16`` on a CUDA GPU with native bf16 (Ampere and later), else ``fp32``.

    Why not bf16 everywhere: on the CPU the float32 numbers are the stored ``mini`` outputs
    and their cache entries, and CPU bf16 autocast was 4-9x slower than float32 on the
    development machine (no native bf16); GPUs without native bf16 (T4, V100) would only
    emulate it.
    """
    if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return "bf16"
    return "fp32"


def _autocast(precision: str, device_type: str) -> contextlib.AbstractContextManager:
    """The forward pass's numeric context: nothing for fp32, bf16 autocast on ``device_type``.

    The device type is a parameter so that the CPU runs exactly the CUDA code path (the bf16
    test on a machine without a GPU exercises what a GPU run does)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)


# --------------------------------------------------------------------------- inputs and cache


def _check_positions(
    cleaned: Mapping[str, str], positions: Mapping[str, Sequence[int]]
) -> dict[str, tuple[int, ...]]:
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
            raise ValueError(
                f"record {record_id!r}: positions {outside} outside 0..{len(sequence) - 1}"
            )
        checked[record_id] = indices
    return checked


def _entry_key(
    model: LoadedEsm,
    layers: tuple[int, ...],
    sequence: str,
    positions: tuple[int, ...] | None,
    precision: str,
) -> str:
    """The cache key of one sequence's pooled vectors.

    A bf16 vector differs from the fp32 one in the third digit, so the precision is part of
    the key; fp32 keys are exactly those written before precisions existed, so the stored
    float32 entries stay valid (other precisions add their name)."""
    return cache_key(
        CACHE_NAMESPACE,
        EMBED_VERSION,
        model.model_id,
        list(layers),
        model.max_positions - 2,
        "mean+positions" if positions else "mean",
        list(positions) if positions else None,
        hashlib.sha256(sequence.encode()).hexdigest(),
        *([] if precision == "fp32" else [precision]),
    )


def _valid_entry(entry: Mapping[str, np.ndarray] | None, shape: tuple[int, int, int]) -> bool:
    """Readable is not enough: a truncated or foreign array must not be used as a result."""
    if entry is None or set(entry) != {"pooled"}:
        return False
    pooled = entry["pooled"]
    return pooled.shape == shape and pooled.dtype == np.float32 and bool(np.isfinite(pooled).all())


@dataclass
class _Job:
    """One :func:`embed` call's validated inputs and its (n, n_layers, K, d) output buffer."""

    model: LoadedEsm
    layers: tuple[int, ...]
    ids: list[str]
    cleaned: dict[str, str]
    positions: dict[str, tuple[int, ...]] | None
    precision: str
    pooled: np.ndarray
    keys: list[str | None]

    def positions_of(self, index: int) -> tuple[int, ...] | None:
        return self.positions[self.ids[index]] if self.positions else None


def _read_cache(job: _Job, cache: ArrayCache | None) -> list[int]:
    """Fill ``job.pooled`` from valid cache entries; return the row indices left to compute."""
    todo: list[int] = []
    for index, record_id in enumerate(job.ids):
        if cache is not None:
            job.keys[index] = _entry_key(
                job.model,
                job.layers,
                job.cleaned[record_id],
                job.positions_of(index),
                job.precision,
            )
            entry = cache.load(CACHE_NAMESPACE, job.keys[index])
            if _valid_entry(entry, job.pooled.shape[1:]):
                job.pooled[index] = entry["pooled"]
                continue
        todo.append(index)
    return todo


# --------------------------------------------------------------------------- embedding


def embed(
    sequences: Mapping[str, str],
    model: LoadedEsm,
    layers: Sequence[int],
    *,
    positions: Mapping[str, Sequence[int]] | None = None,
    cache: ArrayCache | None = None,
    batch_tokens: int | None = None,
    precision: str | None = None,
    progress: bool = False,
) -> EmbeddingResult:
    """Mean-pooled ESM representations of ``sequences`` at ``layers``.

    Pooling uses residues only (BOS, EOS and padding get weight 0). With ``positions``
    (0-based residue indices per record, e.g. the Stachelhaus positions of an A-domain;
    required for every record) the mean over those residues is returned as well.

    Sequences are upper-cased and a terminal ``*`` dropped; empty records and other
    characters raise ``ValueError`` naming the records (see :func:`clean_sequence`).
    ``layers`` may count from the end (-1 = last); results are sorted and unique.

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
    ``batch_tokens`` padded tokens (default :func:`default_batch_tokens`: measured on CPU,
    sized from the GPU's memory on CUDA).

    **Precision** (``fp32`` or ``bf16``; default :func:`default_precision`: bf16 on a CUDA
    GPU with native bf16, else fp32): ``bf16`` runs the transformer under
    ``torch.autocast(<device type>, dtype=torch.bfloat16)`` (matrix products and attention in
    bf16, layer norms and the residual stream in float32); the pooling products and the sums
    over windows stay in float32/float64, so the result is float32 either way. Tolerance,
    per sequence and layer (``tests/test_esm.py::test_bf16_autocast_stays_close_to_fp32``,
    bf16 autocast on the CPU through this same code path, real proteins): cosine with the
    fp32 vector >= 0.9999 and ``||bf16 - fp32|| / ||fp32||`` <= 1%. Measured: at most 0.37%
    (1 - cosine <= 6.8e-6) for the test's three small models, 0.26% for the trained ``mini``
    ESM, 0.53% (1 - cosine <= 1.4e-5) at the deepest layers of a randomly initialised
    650M-parameter ESM-2 (33 x 1,280). Trained ESM-1b weights were not available offline;
    their activation outliers may add error, which a GPU run should check once.

    **Cache** (optional): one entry per sequence, keyed by model id, layers, window size,
    pooling and positions, precision and the sequence's sha256. Per sequence rather than per
    batch because batches depend on which other sequences are in the call (profiles take
    different subsets), while a sequence's vector does not. Unreadable or malformed
    entries are recomputed and overwritten.
    """
    started = time.perf_counter()
    if not layers:
        raise ValueError("ask for at least one layer")
    layer_tuple = tuple(sorted(set(resolve_layers(layers, model.num_layers))))
    cleaned = clean_all(sequences)
    checked = _check_positions(cleaned, positions) if positions is not None else None
    chosen = precision or default_precision(model.device)
    if chosen not in PRECISIONS:
        raise ValueError(f"precision {chosen!r}: use one of {', '.join(PRECISIONS)}")
    shape = (len(layer_tuple), 2 if checked is not None else 1, model.embed_dim)
    job = _Job(
        model,
        layer_tuple,
        list(cleaned),
        cleaned,
        checked,
        chosen,
        np.zeros((len(cleaned), *shape), dtype=np.float32),
        [None] * len(cleaned),
    )
    todo = _read_cache(job, cache)
    budget = batch_tokens or default_batch_tokens(model)
    computed_residues = _compute(job, todo, cache, budget, progress)
    seconds = time.perf_counter() - started
    residues = sum(len(sequence) for sequence in cleaned.values())
    return EmbeddingResult(
        ids=job.ids,
        layers=layer_tuple,
        model_id=model.model_id,
        num_layers=model.num_layers,
        mean={
            layer: np.ascontiguousarray(job.pooled[:, i, 0]) for i, layer in enumerate(layer_tuple)
        },
        positions=(
            {
                layer: np.ascontiguousarray(job.pooled[:, i, 1])
                for i, layer in enumerate(layer_tuple)
            }
            if checked is not None
            else None
        ),
        stats={
            "n_sequences": len(job.ids),
            "n_computed": len(todo),
            "n_cached": len(job.ids) - len(todo),
            "residues": residues,
            "computed_residues": computed_residues,
            "seconds": seconds,
            "residues_per_second": residues / max(seconds, 1e-9),
            "batch_tokens": budget,
        },
        precision=chosen,
    )


def _compute(
    job: _Job, todo: Sequence[int], cache: ArrayCache | None, budget: int, progress: bool
) -> int:
    """Embed the rows ``todo`` into ``job.pooled`` (and the cache); return the residues run.

    A sequence's windows may land in different batches: its pooled vector is the sum over
    its pieces (in float64), complete (and cached) when its last piece is done. Only the
    sequences with pieces still to come hold a partial sum: a float64 buffer of the whole
    output would take 6.8 GB for ``full``'s ~19,600 Pfam families (34 layers x 1,280).
    """
    window = job.model.max_positions - 2
    pieces = [
        piece
        for index in todo
        for piece in _pieces(index, job.cleaned[job.ids[index]], job.positions_of(index), window)
    ]
    remaining = np.zeros(len(job.ids), dtype=np.int64)
    for piece in pieces:
        remaining[piece.seq_index] += 1
    partial: dict[int, np.ndarray] = {}
    computed_residues = sum(len(piece.residues) for piece in pieces)
    table = token_table(job.model.alphabet)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=computed_residues, unit="res", unit_scale=True, desc="ESM embed")
    with torch.inference_mode():
        for batch in _batches(pieces, budget):
            vectors = _pool_batch(job.model, batch, job.layers, table, job.precision)
            for piece, vector in zip(batch, vectors, strict=True):
                index = piece.seq_index
                summed = partial.pop(index, 0.0) + vector.astype(np.float64)
                remaining[index] -= 1
                if remaining[index]:
                    partial[index] = summed
                    continue
                job.pooled[index] = summed
                if cache is not None:
                    cache.store(CACHE_NAMESPACE, job.keys[index], {"pooled": job.pooled[index]})
            if bar is not None:
                bar.update(sum(len(piece.residues) for piece in batch))
    if bar is not None:
        bar.close()
    return computed_residues


def _pool_batch(
    model: LoadedEsm,
    batch: Sequence[_Piece],
    layers: tuple[int, ...],
    table: np.ndarray,
    precision: str,
) -> np.ndarray:
    """(B, n_layers, K, d) pooled vectors of one batch: weights (B, K, T) @ states (B, T, d).

    The layers run under ``precision``'s autocast; the pooling product is taken outside it
    (autocast would run ``bmm`` in bf16 too), in float32."""
    device = model.device
    tokens = tokenize([piece.residues for piece in batch], model.alphabet, table).to(device)
    weights = np.zeros((len(batch), batch[0].weights.shape[0], tokens.shape[1]), dtype=np.float32)
    for row, piece in enumerate(batch):
        weights[row, :, 1 : len(piece.residues) + 1] = piece.weights
    weight_tensor = torch.from_numpy(weights).to(device)
    wanted = set(layers)
    out = []
    with _autocast(precision, device.type):
        for layer, hidden in hidden_states(model.model, tokens, max(layers)):
            if layer in wanted:
                with torch.autocast(device_type=device.type, enabled=False):
                    out.append(torch.bmm(weight_tensor, hidden.to(torch.float32)))
    return torch.stack(out, dim=1).cpu().numpy()

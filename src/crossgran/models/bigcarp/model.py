"""The BiGCARP network (a ByteNet masked LM) and its token-table initialisations.

The paper asks whether seeding the token table with ESM embeddings of each Pfam family
helps; the same architecture is therefore built for three initialisations (:data:`INIT_MODES`)
that differ only in the table rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import torch
from sequence_models.convolutional import ByteNetLM
from sequence_models.layers import DoubleEmbedding

from crossgran.models.bigcarp.vocab import Vocabulary
from crossgran.profiles import BigcarpConfig

InitMode = Literal["random", "esm", "esm-frozen"]
INIT_MODES: tuple[InitMode, ...] = get_args(InitMode)
# Fixed seed of the ESM -> table projection, so that every run (any ``seed``) starts from
# the same projected ESM geometry and differs only in the rest of the initialisation.
PROJECTION_SEED = 1280
ACTIVATIONS = ("relu", "gelu")  # what sequence_models' ByteNet blocks accept

__all__ = [
    "ACTIVATIONS",
    "INIT_MODES",
    "PROJECTION_SEED",
    "InitMode",
    "InitReport",
    "build_model",
    "d_model",
    "esm_projection",
    "init_token_embeddings",
    "num_blocks",
    "resolve_d_embedding",
    "token_table",
]


def resolve_d_embedding(
    config: BigcarpConfig, family_vectors: Mapping[str, np.ndarray] | None
) -> int:
    """Token-table width: the configured one, else the ESM width (as the paper ties the table
    to ESM-1b's 1280), else ``d_model`` when no vectors are at hand. Pass the vectors also for
    ``random`` runs so that all three initialisations share one architecture."""
    if config.d_embedding is not None:
        return config.d_embedding
    if family_vectors:
        return len(next(iter(family_vectors.values())))
    return config.d_model


def build_model(
    config: BigcarpConfig, vocab: Vocabulary, d_embedding: int, seed: int | None = None
) -> ByteNetLM:
    """A ByteNetLM sized by ``config``; weights drawn under ``seed`` without touching the
    global RNG (so building a model never changes what other code draws)."""
    if config.activation not in ACTIVATIONS:  # ByteNet fails on others with an unbound name
        raise ValueError(
            f"unknown BiGCARP activation {config.activation!r}; choose one of {ACTIVATIONS}"
        )
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        # dropout=0: ByteNet applies F.dropout without a training flag, i.e. also at eval time.
        # final_ln=True, slim=True: the official BiGCARP checkpoints' settings; the activation
        # is the profile's (the paper's GELU, or the ReLU of runs before it was configurable).
        return ByteNetLM(
            len(vocab),
            d_embedding,
            config.d_model,
            config.n_layers,
            config.kernel_size,
            config.r,
            padding_idx=vocab.pad_index,
            causal=False,
            dropout=0.0,
            final_ln=True,
            slim=True,
            activation=config.activation,
        )


def num_blocks(model: ByteNetLM) -> int:
    """The number of ByteNet blocks, i.e. the last layer number (layers are 0..n)."""
    return len(model.embedder.layers)


def d_model(model: ByteNetLM) -> int:
    """The width of every layer's representations (layer 0 included: the up-projected table)."""
    return model.embedder.layers[0].sequence1[0].normalized_shape[0]


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

    mode: InitMode
    n_families: int
    n_from_esm: int = 0
    missing: list[str] = field(default_factory=list)  # families left at random init
    projected_from: int | None = None  # ESM width, when a projection was needed


def init_token_embeddings(
    model: ByteNetLM,
    vocab: Vocabulary,
    mode: InitMode,
    family_vectors: Mapping[str, np.ndarray] | None,
) -> InitReport:
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

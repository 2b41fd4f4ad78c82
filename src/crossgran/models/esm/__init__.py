"""ESM protein language models: loading, local pretraining and pooled embeddings.

Why this package instead of calling fair-esm directly:

* **Offline.** ``esm.pretrained`` downloads on a cache miss (and can hang without a
  network); :func:`load_esm` only reads files that are already on disk and, when one is
  missing, says exactly which file to place where (:mod:`.load`).
* **A local model.** The offline profiles cannot fetch ESM-2 weights, so
  :func:`train_local_esm` pretrains a small ESM-2 with the same masked-LM objective on
  the project's own sequences and reports whether it beat a unigram baseline (:mod:`.pretrain`).
* **Speed on CPU and GPU.** :func:`embed` runs the transformer itself (:mod:`.forward`):
  every requested layer in one forward pass that stops after the deepest requested layer,
  no LM head, no averaged attention maps (fair-esm always computes them), PyTorch's fused
  attention, and small length-sorted batches (padding and quadratic attention make
  fair-esm's 4,096-token batches slower than one sequence at a time on CPU). On CUDA it
  runs under bf16 autocast with batches sized from the GPU's memory.
* **An untrained control.** :func:`untrained_esm` rebuilds a model's architecture with its
  initial weights, so a claim resting on pretraining can be checked against the bare network.
* **Reruns are free.** Pooled vectors are cached per sequence, keyed by everything that
  changes them (:mod:`.embed`).
"""

from crossgran.models.esm.embed import (
    CACHE_NAMESPACE,
    CPU_BATCH_TOKENS,
    CUDA_MAX_BATCH_TOKENS,
    EMBED_VERSION,
    PRECISIONS,
    EmbeddingResult,
    cuda_batch_tokens,
    default_batch_tokens,
    default_precision,
    embed,
    window_starts,
)
from crossgran.models.esm.forward import (
    ALLOWED_RESIDUES,
    STANDARD_AMINO_ACIDS,
    clean_all,
    clean_sequence,
)
from crossgran.models.esm.load import (
    HUB_MODELS,
    HUB_URL,
    LOCAL_PREFIX,
    REGRESSION_URL,
    LoadedEsm,
    ModelFilesMissingError,
    hub_checkpoint_dir,
    load_esm,
    local_model_dir,
    wrap_model,
)
from crossgran.models.esm.pretrain import (
    ESM_MASK_RATE,
    HISTORY_COLUMNS,
    MIN_FRAGMENT_LENGTH,
    ProteinFragments,
    excise_segments,
    held_out_groups,
    split_by_group,
    split_sequences,
    train_local_esm,
)
from crossgran.models.esm.untrained import UNTRAINED_MARK, untrained_esm

__all__ = [
    "ALLOWED_RESIDUES",
    "CACHE_NAMESPACE",
    "CPU_BATCH_TOKENS",
    "CUDA_MAX_BATCH_TOKENS",
    "EMBED_VERSION",
    "ESM_MASK_RATE",
    "HISTORY_COLUMNS",
    "HUB_MODELS",
    "HUB_URL",
    "LOCAL_PREFIX",
    "MIN_FRAGMENT_LENGTH",
    "PRECISIONS",
    "REGRESSION_URL",
    "STANDARD_AMINO_ACIDS",
    "UNTRAINED_MARK",
    "EmbeddingResult",
    "LoadedEsm",
    "ModelFilesMissingError",
    "ProteinFragments",
    "clean_all",
    "clean_sequence",
    "cuda_batch_tokens",
    "default_batch_tokens",
    "default_precision",
    "embed",
    "excise_segments",
    "held_out_groups",
    "hub_checkpoint_dir",
    "load_esm",
    "local_model_dir",
    "split_by_group",
    "split_sequences",
    "train_local_esm",
    "untrained_esm",
    "window_starts",
    "wrap_model",
]

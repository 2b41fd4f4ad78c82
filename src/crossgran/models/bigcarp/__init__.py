"""BiGCARP: a ByteNet masked language model over Pfam-domain tokens of gene clusters.

BiGCARP (Rios-Martinez et al. 2023) reads a biosynthetic gene cluster as the sequence of
Pfam domains of its genes and learns, by masked-token prediction, which domains co-occur
and in which order. The paper this package accompanies asks whether seeding the token
table with ESM embeddings of each Pfam family helps; its answer is no: the table barely
moves from its initialisation and what the model knows lives in the deeper blocks. This
package therefore trains the same architecture under three initialisations (``random``,
``esm``, ``esm-frozen``), keeps a snapshot of the token table at every epoch (epoch 0 is
the initialisation) for CKA-vs-init analyses, and exposes per-layer representations.

Modules: :mod:`.vocab` (tokens, the corpus columns), :mod:`.model` (network and
initialisation), :mod:`.train` (masked-LM training), :mod:`.checkpoint` (a run's folder),
:mod:`.represent` (per-layer representations and their files), :mod:`.vectors` (the ESM
family-vectors file), :mod:`.official` (the released checkpoints, imported as run folders).
"""

from crossgran.models.bigcarp.checkpoint import (
    CHECKPOINT_RULES,
    HISTORY_COLUMNS,
    CheckpointRule,
    TrainedRun,
    chosen_epoch,
    load_checkpoint,
    selected_epoch,
)
from crossgran.models.bigcarp.model import (
    ACTIVATIONS,
    INIT_MODES,
    PROJECTION_SEED,
    InitMode,
    InitReport,
    build_model,
    esm_projection,
    init_token_embeddings,
    resolve_d_embedding,
    token_table,
)
from crossgran.models.bigcarp.official import (
    OFFICIAL_INITS,
    import_official,
    official_state_dict,
    official_vocabulary,
    read_official,
)
from crossgran.models.bigcarp.represent import (
    Representations,
    export_representations,
    family_representations,
    layer_representations,
    sequence_representations,
    token_representations,
)
from crossgran.models.bigcarp.train import (
    STREAMS,
    held_out_metrics,
    length_batches,
    mask_batch,
    stream_rng,
    train_mlm,
    training_windows,
)
from crossgran.models.bigcarp.vectors import load_family_vectors, save_family_vectors
from crossgran.models.bigcarp.vocab import (
    CORPUS_COLUMNS,
    MASK,
    PAD,
    SPECIALS,
    UNK,
    Vocabulary,
    split_tokens,
)

__all__ = [
    "ACTIVATIONS",
    "CHECKPOINT_RULES",
    "CORPUS_COLUMNS",
    "HISTORY_COLUMNS",
    "INIT_MODES",
    "MASK",
    "OFFICIAL_INITS",
    "PAD",
    "PROJECTION_SEED",
    "SPECIALS",
    "STREAMS",
    "UNK",
    "CheckpointRule",
    "InitMode",
    "InitReport",
    "Representations",
    "TrainedRun",
    "Vocabulary",
    "build_model",
    "chosen_epoch",
    "esm_projection",
    "export_representations",
    "family_representations",
    "held_out_metrics",
    "import_official",
    "init_token_embeddings",
    "layer_representations",
    "length_batches",
    "load_checkpoint",
    "load_family_vectors",
    "mask_batch",
    "official_state_dict",
    "official_vocabulary",
    "read_official",
    "resolve_d_embedding",
    "save_family_vectors",
    "selected_epoch",
    "sequence_representations",
    "split_tokens",
    "stream_rng",
    "token_representations",
    "token_table",
    "train_mlm",
    "training_windows",
]

"""The untrained control of an ESM model: the same architecture with its initial weights.

A probe on ESM features can succeed through the architecture alone (random attention and
feed-forward layers still mix residue identities into position-dependent features), so a
claim that rests on *pretraining* must beat the same network before pretraining. The
untrained model is built in memory, never saved: it is a pure function of the architecture
and the seed.
"""

from __future__ import annotations

import torch
from esm.model.esm1 import ProteinBertModel
from esm.model.esm2 import ESM2

from crossgran.models.esm.load import LOCAL_PREFIX, LoadedEsm, new_local_model, wrap_model
from crossgran.models.esm.pretrain import _init_bert_params

__all__ = ["UNTRAINED_MARK", "untrained_esm"]

# Appended to the trained model's id: the embedding cache is keyed by ``model_id``, so the
# untrained model's vectors can never be read back as the trained model's (or vice versa).
UNTRAINED_MARK = "~untrained-seed"


def _fresh_network(model: LoadedEsm) -> torch.nn.Module:
    """A new module of ``model``'s architecture, initialised from the current torch RNG.

    Local models get exactly the initialisation of their pretraining (``new_local_model``
    then BERT init, :mod:`.pretrain`); fair-esm models their modules' own initialisation,
    since the publisher's initialisation code is not part of fair-esm.
    """
    network = model.model
    if model.model_id.startswith(LOCAL_PREFIX):
        if not isinstance(network, ESM2):
            raise TypeError(f"local model {model.model_id!r} is not an ESM-2")
        fresh: torch.nn.Module = new_local_model(
            {
                "num_layers": network.num_layers,
                "embed_dim": network.embed_dim,
                "attention_heads": network.attention_heads,
            }
        )
        fresh.apply(_init_bert_params)
        return fresh
    if isinstance(network, ESM2):
        return ESM2(
            num_layers=network.num_layers,
            embed_dim=network.embed_dim,
            attention_heads=network.attention_heads,
            alphabet=model.alphabet,
            token_dropout=network.token_dropout,
        )
    if isinstance(network, ProteinBertModel):
        return ProteinBertModel(network.args, model.alphabet)
    raise TypeError(f"unsupported ESM architecture {type(network).__name__}")


def untrained_esm(model: LoadedEsm, *, seed: int) -> LoadedEsm:
    """``model``'s architecture with freshly initialised weights, on ``model``'s device.

    For a local ESM-2 (``local:<name>``) the weights are those its pretraining started from
    when it was trained with the same ``seed`` (``torch.manual_seed(seed)``, the ESM-2
    constructor, then BERT's N(0, 0.02) init; :func:`crossgran.models.esm.train_local_esm`);
    for fair-esm models (ESM-2, ESM-1b) the modules' own initialisation under
    ``torch.manual_seed(seed)``. The global torch RNG is left as it was. ``model_id`` is the
    trained id plus ``~untrained-seed<seed>``, so cached embeddings of the two never mix.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = _fresh_network(model)
    fresh.to(model.device)
    return wrap_model(
        fresh,
        model.alphabet,
        f"{model.model_id}{UNTRAINED_MARK}{seed}",
        max_positions=model.max_positions,
    )

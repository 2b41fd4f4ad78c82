"""The official BiGCARP checkpoints (Rios-Martinez et al. 2023, Zenodo record 6857704), imported
as a run folder in :mod:`.checkpoint`'s layout.

Why a run folder rather than a second model type: everything that reads a run trained here
(the representations, the epoch-0 control, the checkpoint rule, the notebooks) then reads an
official checkpoint unchanged, through the same code.

The file layout is the one sequence_models 1.8.0 reads (``sequence_models.pretrained``:
``load_model_and_alphabet`` and ``load_carp``; ``collaters.BGCCollater``): a dict with

- ``model``: the checkpoint's name (``bigcarp_random``, ``bigcarp_esm1bfinetune``,
  ``bigcarp_esm1bfrozen``);
- ``d_embed``, ``d_model``, ``n_layers``, ``kernel_size``, ``r``, ``activation``, ``slim``:
  the ByteNetLM's sizes (sequence_models always builds it non-causal with ``final_ln=True``);
- ``tokens``: ``{"size": n, "specials": {"-": pad, "#": mask, <BGC class>: i, ...},
  "domains": {<domain token>: i, ..., "UNK": i}}``;
- ``pfam_to_domain``: Pfam accession without version -> domain token;
- ``model_state_dict``: the weights; the frozen checkpoint's table is a ``DoubleEmbedding``
  (sequence_models hard-codes its 19,450 frozen ESM rows after the trainable ones).

How BiGCARP reads a cluster (microsoft/bigcarp ``src/train_mlm.py``, ``src/test_dbgc.py``):
a BGC-class token (one of the specials), then the domain tokens; where the class is unknown
the mask ``#`` stands in its place, as in sequence_models' README example
(``'#;PF07690;PF06609;...'``). Here the Pfam accessions become the vocabulary's names (several
may share one domain token: aliases), the class slot is the vocabulary's ``prefix``
(``<mask>``: no class is given away), and a Pfam without a domain token is unknown and counted,
never silently read as ``UNK``.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import torch

from crossgran.cache import sha256_file, write_text_atomic
from crossgran.models.bigcarp.checkpoint import (
    RUN,
    STATE,
    VOCAB,
    TrainedRun,
    clear_run,
    load_checkpoint,
    run_record,
    write_checkpoint,
)
from crossgran.models.bigcarp.model import InitMode, build_model
from crossgran.models.bigcarp.train import held_out_metrics
from crossgran.models.bigcarp.vocab import Vocabulary, split_tokens
from crossgran.profiles import BigcarpConfig

__all__ = [
    "OFFICIAL_INITS",
    "import_official",
    "official_state_dict",
    "official_vocabulary",
    "read_official",
]

# Each released checkpoint's token-table initialisation, in this package's names.
OFFICIAL_INITS: Mapping[str, InitMode] = {
    "bigcarp_random": "random",
    "bigcarp_esm1bfinetune": "esm",
    "bigcarp_esm1bfrozen": "esm-frozen",
}
PAD, MASK, UNK = "-", "#", "UNK"  # the official specials' names (sequence_models.constants)
KEYS = ("model", "tokens", "pfam_to_domain", "model_state_dict", "slim")
# (official key, BigcarpConfig field): sizes that must agree, so that the runs trained here
# beside an imported one (the ESM-init runs) are the same network.
ARCHITECTURE = (
    ("d_embed", "d_embedding"),
    ("d_model", "d_model"),
    ("n_layers", "n_layers"),
    ("kernel_size", "kernel_size"),
    ("r", "r"),
    ("activation", "activation"),
)
UNKNOWN_EXAMPLES = 20  # most frequent unknown Pfams named in the run record
EPOCH0_NOTE = (
    "epoch 0 is this architecture initialised under the run's seed: the released run's own "
    "initialisation was not published, so it is an untrained control, not the start that "
    "training moved away from"
)


def read_official(path: Path | str) -> dict:
    """The checkpoint dict of an official BiGCARP file, checked for the keys read here."""
    path = Path(path)
    data = torch.load(path, map_location="cpu", weights_only=True)
    missing = [key for key in (*KEYS, *(k for k, _ in ARCHITECTURE)) if key not in data]
    if missing or data.get("model") not in OFFICIAL_INITS:
        raise ValueError(
            f"{path} is not an official BiGCARP checkpoint (missing keys {missing}, model "
            f"{data.get('model')!r}; expected one of {', '.join(OFFICIAL_INITS)}). Fix: fetch "
            "it again with crossgran.data.remote.fetch_remote, or delete it so that the next "
            "run downloads it"
        )
    return data


def official_vocabulary(data: Mapping) -> Vocabulary:
    """The checkpoint's tokens as a :class:`Vocabulary` over Pfam accessions: each accession of
    ``pfam_to_domain`` names its domain token's index (accessions sharing a token are aliases);
    the class slot is read as ``<mask>`` (``prefix``). Accessions mapped to ``UNK`` or to no
    token are left out, so that they are counted as unknown when encoded."""
    tokens = data["tokens"]
    specials, domains = tokens["specials"], tokens["domains"]
    unk = domains[UNK]
    index = {
        pfam: domains[domain]
        for pfam, domain in data["pfam_to_domain"].items()
        if domain in domains and domains[domain] != unk
    }
    mask = specials[MASK]
    return Vocabulary(index, specials[PAD], mask, unk, tokens["size"], prefix=(mask,))


def official_state_dict(data: Mapping) -> dict[str, torch.Tensor]:
    """The weights as :func:`~crossgran.models.bigcarp.model.build_model`'s network names them.
    A frozen checkpoint's DoubleEmbedding (trainable rows, then frozen rows, looked up by one
    index) becomes the one table of the same rows: the outputs are the same."""
    state = dict(data["model_state_dict"])
    trainable, frozen = "embedder.embedder.trainable.weight", "embedder.embedder.frozen.weight"
    if trainable in state:
        state["embedder.embedder.weight"] = torch.cat([state.pop(trainable), state.pop(frozen)])
    return state


def _check_architecture(data: Mapping, config: BigcarpConfig, path: Path) -> None:
    differ = [
        f"{field} {data[key]!r} (profile {getattr(config, field)!r})"
        for key, field in ARCHITECTURE
        if data[key] != getattr(config, field)
    ]
    if not data["slim"]:
        differ.append("slim False (build_model builds slim ByteNet blocks)")
    if differ:
        raise ValueError(
            f"{path}: the checkpoint's network differs from the profile's bigcarp settings: "
            f"{'; '.join(differ)}. Fix: set the profile's bigcarp sizes to the checkpoint's, so "
            "that the runs trained beside it are the same network"
        )


def _corpus_digest(corpus: pd.DataFrame) -> str:
    """What the import's numbers depend on in the corpus (tokens, order flag, split)."""
    text = corpus[["tokens", "ordered", "split"]].to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _unknowns(vocab: Vocabulary, corpus: pd.DataFrame) -> dict:
    """How much of the corpus the checkpoint cannot name: distinct Pfams and occurrences, and
    the most frequent of them, counted on a copy (so ``vocab`` starts its own count at 0)."""
    probe = Vocabulary.from_json(vocab.to_json())
    for tokens in split_tokens(corpus):
        probe.encode(tokens)
    counts: Counter[str] = probe.unknown_counts
    return {
        "unknown_families": len(counts),
        "unknown_occurrences": sum(counts.values()),
        "unknown_examples": dict(counts.most_common(UNKNOWN_EXAMPLES)),
    }


def _stored_record(out_dir: Path) -> dict | None:
    """The run record of a completed import in ``out_dir`` (state.pt, its commit point, at
    epoch 1), else None. A run trained here is never overwritten: its epochs cost hours."""
    if not (out_dir / RUN).is_file():
        return None
    record = json.loads((out_dir / RUN).read_text())
    if "official" not in record:
        raise ValueError(
            f"{out_dir} holds a BiGCARP run trained here, which importing an official "
            "checkpoint would delete. Fix: move or delete it first, or import elsewhere"
        )
    if not (out_dir / STATE).is_file():
        return None
    state = torch.load(out_dir / STATE, map_location="cpu", weights_only=True)
    return record if state["epoch"] == 1 else None


def _released_history(
    model: torch.nn.Module,
    corpus: pd.DataFrame,
    vocab: Vocabulary,
    config: BigcarpConfig,
    seed: int,
    device: str | torch.device | None,
) -> list[dict]:
    """The one history row of an import: the released model's held-out masked loss and
    accuracy, the training columns NaN (it was not trained here)."""
    loss, accuracy = held_out_metrics(model, corpus, vocab, config, seed, device)
    model.cpu()
    nan = float("nan")
    return [
        {
            "epoch": 1,
            "train_loss": nan,
            "valid_loss": loss,
            "valid_masked_accuracy": accuracy,
            "tokens_per_s": nan,
            "wall_s": nan,
        }
    ]


def import_official(
    checkpoint: Path | str,
    out_dir: Path | str,
    corpus: pd.DataFrame,
    config: BigcarpConfig,
    seed: int,
    *,
    device: str | torch.device | None = None,
) -> TrainedRun:
    """Write the official checkpoint ``checkpoint`` into ``out_dir`` as a run folder and read
    it back (:func:`~crossgran.models.bigcarp.checkpoint.load_checkpoint`, epoch 1).

    Epoch 1 is the released weights; epoch 0 is ``config``'s network initialised under
    ``seed`` (see ``EPOCH0_NOTE``). The history's one row holds the released model's masked
    loss and accuracy on ``corpus``'s validation rows, drawn as a run trained here under
    ``seed`` draws them (training columns NaN: it was not trained here), so the checkpoint
    rule and the notebooks read it like any run. ``run.json`` records, under ``official``, the
    file, its sha256 and how many corpus Pfams (and occurrences) the checkpoint has no token
    for. A folder already holding the same import (same file, corpus, config and seed) is
    reused; one holding a run trained here is refused, not overwritten. Raises when the
    checkpoint's sizes differ from ``config``'s. Reads the corpus columns ``tokens``,
    ``ordered`` and ``split``.
    """
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    data = read_official(checkpoint)
    _check_architecture(data, config, checkpoint)
    vocab = official_vocabulary(data)
    record = run_record(config, OFFICIAL_INITS[data["model"]], seed, config.d_embedding)
    record["official"] = {
        "model": data["model"],
        "file": checkpoint.name,
        "sha256": sha256_file(checkpoint),
        "corpus_sha256": _corpus_digest(corpus),
        "pfam_names": len(vocab.families),
        **_unknowns(vocab, corpus),
        "epoch0": EPOCH0_NOTE,
    }
    if _stored_record(out_dir) == record:
        return load_checkpoint(out_dir, 1)
    released = build_model(config, vocab, config.d_embedding, seed=seed)
    released.load_state_dict(official_state_dict(data))
    history = _released_history(released, corpus, vocab, config, seed, device)
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_run(out_dir)
    vocab.save(out_dir / VOCAB)
    write_text_atomic(out_dir / RUN, json.dumps(record, indent=1))
    write_checkpoint(
        out_dir, 0, build_model(config, vocab, config.d_embedding, seed=seed), None, []
    )
    write_checkpoint(out_dir, 1, released, None, history)
    return load_checkpoint(out_dir, 1)

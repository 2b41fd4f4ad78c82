"""A profile's model runs, as notebook 02 performs them: the local ESM-2 pretrained on the
profile's proteins, ESM embeddings of the Pfam families and A-domains, the three BiGCARP runs
and their exported representations.

Controls (issue 13): every BiGCARP run is also exported at its epoch-0 checkpoint, and the ESM
tables are also computed with the untrained ESM architecture, so each learned representation
has an untrained counterpart pooled the same way.

Under ``Profile.bigcarp_official_random`` (``full``) the random-init run is the released
checkpoint, imported into the same run folder (:mod:`crossgran.models.bigcarp.official`), so
the export and every notebook read it as they read a run trained here.

Why a module: each step reads the profile's tables and writes files that notebooks 03-05 read;
the notebook states what is done and why, these functions do it, so a user's script (or the
CLI) gets exactly the notebook's runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crossgran.cache import ArrayCache
from crossgran.data.remote import OFFICIAL_BIGCARP_RANDOM, fetch_remote, full_lock_path
from crossgran.data.tables import load_table, profile_proteins
from crossgran.models import bigcarp, esm
from crossgran.models.bigcarp.checkpoint import RUN
from crossgran.profiles import Profile

__all__ = [
    "EmbeddedTables",
    "EsmPretraining",
    "bigcarp_run_dir",
    "bigcarp_training_split",
    "embed_tables",
    "embed_untrained_tables",
    "esm_pretraining_fragments",
    "export_bigcarp_runs",
    "family_vectors_path",
    "imported_runs",
    "pretrain_local_esm",
    "train_bigcarp_runs",
]

EmbeddedTables = tuple[esm.EmbeddingResult, esm.EmbeddingResult]


def bigcarp_run_dir(settings: Profile, init: str) -> Path:
    """Checkpoints of one initialisation's run (the layout notebooks 03-05 read)."""
    return settings.models_dir / f"bigcarp_{init}"


def imported_runs(settings: Profile) -> frozenset[str]:
    """The init modes whose run folder holds an imported official checkpoint (its ``run.json``
    records ``official``). Why it matters: such a run's epoch 0 is a fresh initialisation, not
    where the released training started (``bigcarp.official.EPOCH0_NOTE``), so no claim about
    how far the run moved from its start can be tested on it."""
    imported = set()
    for init in bigcarp.INIT_MODES:
        record = bigcarp_run_dir(settings, init) / RUN
        if record.is_file() and "official" in json.loads(record.read_text()):
            imported.add(init)
    return frozenset(imported)


def family_vectors_path(settings: Profile) -> Path:
    """The ESM family vectors the BiGCARP runs start from (written by
    :func:`train_bigcarp_runs`, read by ``crossgran train-bigcarp``)."""
    return settings.processed_dir / "esm_family_vectors.npz"


@dataclass(frozen=True)
class EsmPretraining:
    """A local ESM-2's training history (:data:`esm.HISTORY_COLUMNS`) and what it was trained
    on: ``corpus`` holds :func:`esm.excise_segments`' counts plus the split's
    (train_/valid_ proteins, fragments and residues)."""

    history: pd.DataFrame
    corpus: dict[str, int]


def esm_pretraining_fragments(settings: Profile) -> esm.ProteinFragments:
    """The profile's NRPS proteins and proteome with every probed A-domain cut out.

    Why: the model later embeds the A-domains (and the Pfam consensus sequences, which are
    not proteins and are not trained on at all); trained on them, it would represent them
    by recall. The flanks stay, so the NRPS proteins' other domains are still learned."""
    nrps, proteome = profile_proteins(settings)
    adomains = load_table(settings, "adomains")
    return esm.excise_segments([*nrps.items(), *proteome.items()], adomains["sequence"])


def _split_counts(fragments: esm.ProteinFragments, valid_fraction: float) -> dict[str, int]:
    """Proteins, fragments and residues on each side of :func:`esm.split_by_group`."""
    train, valid = esm.split_by_group(fragments.sequences, fragments.groups, valid_fraction)
    held = esm.held_out_groups(fragments.groups, valid_fraction)
    return {
        "train_proteins": len(set(fragments.groups) - held),
        "valid_proteins": len(held),
        "train_fragments": len(train),
        "valid_fragments": len(valid),
        "train_residues": sum(map(len, train)),
        "valid_residues": sum(map(len, valid)),
    }


def pretrain_local_esm(settings: Profile) -> EsmPretraining | None:
    """Pretrain the profile's ``local:`` ESM-2 on real proteins: the NRPS proteins with their
    probed A-domains cut out (:func:`esm_pretraining_fragments`) and the proteome, held out
    by protein (``settings.esm.valid_fraction`` of the proteins, by hash of the whole
    sequence, so a protein's fragments, and identical proteins under other ids, stay on one
    side). A stored model with the same data and settings is reused. ``None`` when the
    profile uses a published model."""
    if not settings.esm.spec.startswith(esm.LOCAL_PREFIX):
        return None
    fragments = esm_pretraining_fragments(settings)
    history = esm.train_local_esm(
        fragments.sequences,
        settings.esm,
        out_dir=esm.local_model_dir(settings.esm.spec, settings.models_dir),
        seed=settings.seed,
        groups=fragments.groups,
    )
    counts = fragments.counts | _split_counts(fragments, settings.esm.valid_fraction)
    return EsmPretraining(history, counts)


def _embed_and_save(
    settings: Profile, model: esm.LoadedEsm, cache: ArrayCache, suffix: str
) -> EmbeddedTables:
    """The Pfam and A-domain tables of ``model`` (see :func:`embed_tables`), saved as
    ``esm_pfam<suffix>.npz`` and ``esm_adomains<suffix>.npz``."""
    families = load_table(settings, "pfam_families")
    adomains = load_table(settings, "adomains")
    layers = list(range(model.num_layers + 1))
    batch_tokens = settings.esm.embed_batch_tokens  # None: the per-device default
    pfam = esm.embed(
        dict(zip(families["pfam"], families["consensus"], strict=True)),
        model,
        layers,
        cache=cache,
        batch_tokens=batch_tokens,
    )
    stachelhaus = {
        row.domain_id: [int(p) for p in str(row.stachelhaus_positions).split()]
        for row in adomains.itertuples()
    }
    domains = esm.embed(
        dict(zip(adomains["domain_id"], adomains["sequence"], strict=True)),
        model,
        layers,
        positions=stachelhaus,
        cache=cache,
        batch_tokens=batch_tokens,
    )
    pfam.save(settings.processed_dir / f"esm_pfam{suffix}.npz")
    domains.save(settings.processed_dir / f"esm_adomains{suffix}.npz")
    return pfam, domains


def embed_tables(settings: Profile, model: esm.LoadedEsm, cache: ArrayCache) -> EmbeddedTables:
    """Every layer of ``model`` for the Pfam consensus sequences (mean over residues) and the
    A-domains (mean, and mean over the Stachelhaus positions); both saved to
    ``processed_dir`` as ``esm_pfam.npz`` and ``esm_adomains.npz``."""
    return _embed_and_save(settings, model, cache, "")


def embed_untrained_tables(
    settings: Profile, model: esm.LoadedEsm, cache: ArrayCache
) -> EmbeddedTables:
    """The tables of :func:`embed_tables` computed with ``model``'s architecture at its
    initial weights (:func:`esm.untrained_esm` under the profile's seed), saved as
    ``esm_pfam_untrained.npz`` and ``esm_adomains_untrained.npz``.

    Why: a probe result on ESM features counts as learned only if it beats the same pooling
    over an untrained network, which already mixes residues and positions at random."""
    untrained = esm.untrained_esm(model, seed=settings.seed)
    return _embed_and_save(settings, untrained, cache, "_untrained")


def train_bigcarp_runs(settings: Profile, pfam: esm.EmbeddingResult) -> dict[str, pd.DataFrame]:
    """The three BiGCARP runs, identical but for the token-table initialisation.

    The ``esm`` runs start from ``pfam``'s family vectors at the profile's ESM layer (the
    paper used ESM-1b's last layer); they are saved (:func:`family_vectors_path`) for the
    CLI's ``train-bigcarp``. Under ``bigcarp_official_random`` the ``random`` run is the
    released checkpoint, imported (downloaded when absent) rather than trained; its history
    holds one row, its masked loss on the same validation windows. Returns each run's
    history, keyed by init mode.
    """
    corpus = load_table(settings, "domain_corpus")
    layer = pfam.layer_index(settings.bigcarp.esm_layer)
    family_vectors = dict(zip(pfam.ids, pfam.mean[layer], strict=True))
    bigcarp.save_family_vectors(family_vectors_path(settings), family_vectors)
    vocab = bigcarp.Vocabulary.from_corpus(corpus)
    histories = {}
    for init in bigcarp.INIT_MODES:
        out_dir = bigcarp_run_dir(settings, init)
        if init == "random" and settings.bigcarp_official_random:
            checkpoint = fetch_remote(
                OFFICIAL_BIGCARP_RANDOM, settings.raw_dir, lock_path=full_lock_path(settings.root)
            )
            run = bigcarp.import_official(
                checkpoint, out_dir, corpus, settings.bigcarp, settings.bigcarp.seed
            )
            histories[init] = run.history
            continue
        histories[init] = bigcarp.train_mlm(
            corpus,
            vocab,
            settings.bigcarp,
            init_mode=init,
            family_vectors=family_vectors,
            out_dir=out_dir,
            seed=settings.bigcarp.seed,
        )
    return histories


def export_bigcarp_runs(settings: Profile) -> dict[str, bigcarp.Representations]:
    """Each run's representations for notebooks 03-05 (per family, per sentence, the
    A-domains' AMP-binding tokens; every layer), at the checkpoint the profile's
    ``bigcarp.checkpoint`` rule selects (best held-out loss, or last; the epoch is recorded in
    each result) and, as the untrained control, at epoch 0; saved as ``bigcarp_<init>.npz``
    and ``bigcarp_<init>_epoch0.npz``. Keyed ``"<init>"`` and ``"<init>~untrained"``."""
    corpus = load_table(settings, "domain_corpus")
    adomains = load_table(settings, "adomains")
    trained = settings.bigcarp.checkpoint
    exported = {}
    for init in bigcarp.INIT_MODES:
        for epoch, key, name in ((trained, init, ""), (0, f"{init}~untrained", "_epoch0")):
            exported[key] = bigcarp.export_representations(
                bigcarp_run_dir(settings, init),
                corpus,
                adomains,
                n_orders=settings.bigcarp.n_orders,
                seed=settings.seed,
                epoch=epoch,
            )
            exported[key].save(settings.processed_dir / f"bigcarp_{init}{name}.npz")
    return exported


def bigcarp_training_split(settings: Profile, bgc_ids: Sequence[str]) -> np.ndarray:
    """Boolean mask over ``bgc_ids``: the BGC's corpus sentence is in BiGCARP's training split
    (``domain_corpus`` row with ``seq_id`` == the id and ``split == "train"``; a BGC without a
    sentence was never trained on). Why: a probe BGC that BiGCARP saw in training is not new
    to the representation, so notebooks report how many of them the probes hold."""
    corpus = load_table(settings, "domain_corpus")
    mibig = corpus[corpus["source"] == "mibig"]
    in_train = dict(zip(mibig["seq_id"], mibig["split"] == "train", strict=True))
    return np.array([bool(in_train.get(bgc, False)) for bgc in bgc_ids], dtype=bool)

"""A profile's model runs, as notebook 02 performs them: the local ESM-2 pretrained on the
profile's proteins, ESM embeddings of the Pfam families and A-domains, the three BiGCARP runs
and their exported representations.

Controls (issue 13): every BiGCARP run is also exported at its epoch-0 checkpoint, and the ESM
tables are also computed with the untrained ESM architecture, so each learned representation
has an untrained counterpart pooled the same way.

Why a module: each step reads the profile's tables and writes files that notebooks 03-05 read;
the notebook states what is done and why, these functions do it, so a user's script (or the
CLI) gets exactly the notebook's runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from crossgran.cache import ArrayCache
from crossgran.data.tables import load_table, profile_proteins
from crossgran.models import bigcarp, esm
from crossgran.profiles import Profile

__all__ = [
    "EmbeddedTables",
    "bigcarp_run_dir",
    "bigcarp_training_split",
    "embed_tables",
    "embed_untrained_tables",
    "export_bigcarp_runs",
    "pretrain_local_esm",
    "train_bigcarp_runs",
]

EmbeddedTables = tuple[esm.EmbeddingResult, esm.EmbeddingResult]


def bigcarp_run_dir(settings: Profile, init: str) -> Path:
    """Checkpoints of one initialisation's run (the layout notebooks 03-05 read)."""
    return settings.models_dir / f"bigcarp_{init}"


def pretrain_local_esm(settings: Profile) -> pd.DataFrame | None:
    """Pretrain the profile's ``local:`` ESM-2 on its NRPS proteins, proteome and Pfam
    consensus sequences (a stored model with the same data and settings is reused); ``None``
    when the profile uses a published model."""
    if not settings.esm.spec.startswith(esm.LOCAL_PREFIX):
        return None
    nrps, proteome = profile_proteins(settings)
    families = load_table(settings, "pfam_families")
    training = [*nrps.values(), *proteome.values(), *families["consensus"]]
    return esm.train_local_esm(
        training,
        settings.esm,
        out_dir=esm.local_model_dir(settings.esm.spec, settings.models_dir),
        seed=settings.seed,
    )


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
    paper used ESM-1b's last layer); they are saved as ``esm_family_vectors.npz`` for the
    CLI's ``train-bigcarp``. Returns each run's history, keyed by init mode.
    """
    corpus = load_table(settings, "domain_corpus")
    layer = pfam.layer_index(settings.bigcarp.esm_layer)
    family_vectors = dict(zip(pfam.ids, pfam.mean[layer], strict=True))
    bigcarp.save_family_vectors(settings.processed_dir / "esm_family_vectors.npz", family_vectors)
    vocab = bigcarp.Vocabulary.from_corpus(corpus)
    return {
        init: bigcarp.train_mlm(
            corpus,
            vocab,
            settings.bigcarp,
            init_mode=init,
            family_vectors=family_vectors,
            out_dir=bigcarp_run_dir(settings, init),
            seed=settings.bigcarp.seed,
        )
        for init in bigcarp.INIT_MODES
    }


def export_bigcarp_runs(settings: Profile) -> dict[str, bigcarp.Representations]:
    """Each run's representations for notebooks 03-05 (per family, per sentence, the
    A-domains' AMP-binding tokens; every layer), at the final checkpoint and, as the untrained
    control, at epoch 0; saved as ``bigcarp_<init>.npz`` and ``bigcarp_<init>_epoch0.npz``.
    Keyed ``"<init>"`` and ``"<init>~untrained"``."""
    corpus = load_table(settings, "domain_corpus")
    adomains = load_table(settings, "adomains")
    exported = {}
    for init in bigcarp.INIT_MODES:
        for epoch, key, name in ((None, init, ""), (0, f"{init}~untrained", "_epoch0")):
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

"""The paper's halogenation task: does a MIBiG BGC with a tryptophan halogenase (PF04820) make
a halogenated compound? The label: any parsable structure of the BGC's compounds carries F, Cl,
Br or I (RDKit); BGCs without a parsable structure have no label and are left out.

Two kinds of rows, from the data a profile has:

* downloading profiles (``full``): the ``halogenase_domains`` table, one row per PF04820 hit in
  the MIBiG release's proteins, with its residues and its place in the gene-ordered sentence
  (:func:`labelled_rows`); several halogenases of one BGC share its label, so the BGC is the
  cross-validation group (``TaskData.groups``): they never straddle a split.
* offline profiles (``smoke``, ``mini``, ``evidence``): the ``halogenase_bgcs`` table
  (:mod:`crossgran.data.compounds`), one row per BGC whose GECCO bag holds PF04820, labelled
  from NPLinker's MIBiG 2.0 structures. GECCO keeps Pfam counts only: no protein sequence, no
  order, so the "domain" is the PF04820 token of the BGC's unordered bag (:func:`offline_rows`
  keeps one BGC per distinct bag).

Feature sets (the paper, Xiao et al. 2025: fused 0.761 AUC, ESM 0.661, BiGCARP domain 0.508):

* ``esm`` (downloading only): ESM last layer, mean over the halogenase domain's residues;
* ``bigcarp_domain``: BiGCARP last layer at the halogenase's token, read from the run's
  checkpoint at the export's epoch: at the hit's token index in the gene-ordered sentence
  (downloading); in an unordered bag, averaged over the bag's PF04820 tokens and over
  ``n_orders`` seeded random orders, as :func:`crossgran.models.bigcarp.sequence_representations`
  averages bags (offline);
* ``bigcarp_mean``: BiGCARP last layer, mean over the BGC's sentence (the exported per-BGC
  means, the product-class task's ``bigcarp_last``);
* ``esm+bigcarp_domain+bigcarp_mean`` (downloading only): the paper's fusion;
* controls, as for every other task (``crossgran.analysis.fusion``): ``<x>~random`` (the
  width-matched, domain-consistent random projection pooled as ``<x>``: PF04820's own random
  vector for the domain token, the BGC's count-weighted random family vectors for the mean,
  random residue vectors for ESM; a fusion's is the concatenation of its parts') and
  ``<x>~untrained`` (BiGCARP's epoch-0 checkpoint, ESM's initial weights);
* ``pfam_counts`` (the BGC's Pfam counts) and ``random`` (one N(0, 1) vector per row).

Offline the ESM feature and the fusion are not testable: without the BGCs' proteins the only
ESM input would be the Trp_halogenase consensus, one constant vector for every row.

:func:`halogenation_features` builds them all; :mod:`crossgran.analysis.halogenation_probe`
probes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crossgran.analysis.controls import (
    random_bag_means,
    random_family_vectors,
    random_residue_features,
)
from crossgran.analysis.features import (
    count_matrix,
    random_features,
    unique_bag_rows,
)
from crossgran.analysis.rows import rows_of
from crossgran.cache import ArrayCache
from crossgran.data.pfam import TRP_HALOGENASE
from crossgran.data.tables import load_table, table_path
from crossgran.models import bigcarp
from crossgran.models.bigcarp.model import num_blocks
from crossgran.models.bigcarp.train import ORDER_STREAM
from crossgran.models.esm import LoadedEsm, embed, load_esm, untrained_esm
from crossgran.models.layers import resolve_layers
from crossgran.profiles import Profile

__all__ = [
    "BIGCARP_PARTS",
    "CONTROLS",
    "FUSED",
    "MLP_HIDDEN",
    "OFFLINE_TABLE",
    "PARTS",
    "TABLE",
    "TaskData",
    "bag_token_representations",
    "bgc_sentences",
    "esm_features",
    "halogenation_features",
    "labelled_rows",
    "offline_rows",
]

TABLE = "halogenase_domains"  # downloading profiles: one row per halogenase hit
OFFLINE_TABLE = "halogenase_bgcs"  # offline profiles: one row per BGC
PARTS = ("esm", "bigcarp_domain", "bigcarp_mean")
FUSED = "+".join(PARTS)
BIGCARP_PARTS = ("bigcarp_domain", "bigcarp_mean")
CONTROLS = ("random", "untrained")
MLP_HIDDEN = (512, 128)  # the paper's halogenation probe


# ---------------------------------------------------------------- downloading profiles


def labelled_rows(profile: Profile) -> pd.DataFrame:
    """The probe's rows: ``halogenase_domains`` rows with a label, in table order.

    Raises with the fix when the table was not built (offline profiles), holds no halogenase,
    or holds no labelled row, instead of letting an empty array fail deep inside a probe.
    """
    path = table_path(profile, TABLE)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: one row per halogenase hit needs the MIBiG release's "
            f"proteins, which only the full profile's build reads (profile {profile.name!r}; "
            f"offline builds write {OFFLINE_TABLE}, one row per BGC, which "
            "halogenation_tables reads). Fix: build the full tables first (notebook 01_data or "
            "`crossgran data --profile full`)."
        )
    table = load_table(profile, TABLE)
    if table.empty:
        raise ValueError(
            f"{path} holds no {TRP_HALOGENASE} (Trp_halogenase) hit, so the halogenation task has "
            f"no rows. Fix: check that Pfam-A.hmm.gz contains {TRP_HALOGENASE} and that "
            f"max_bgcs={profile.max_bgcs} keeps the MIBiG BGCs that have one, then rebuild the "
            "tables."
        )
    rows = table[table["has_halogen"].notna()].reset_index(drop=True)
    if rows.empty:
        raise ValueError(
            f"none of the {len(table)} rows of {path} has a label: no BGC with a halogenase has a "
            "parsable compound structure (see compounds.tsv). Fix: use a MIBiG release (or a "
            "larger max_bgcs) in which halogenase BGCs record their chem_struct."
        )
    return rows


def esm_features(rows: pd.DataFrame, model: LoadedEsm, profile: Profile) -> np.ndarray:
    """(n, d) ESM last-layer mean over each halogenase domain's residues."""
    result = embed(
        dict(zip(rows["domain_id"], rows["sequence"], strict=True)),
        model,
        [-1],
        cache=ArrayCache(profile.cache_dir),
        batch_tokens=profile.esm.embed_batch_tokens,
    )
    return result.mean[result.layer_index(-1)]


def bgc_sentences(rows: pd.DataFrame, corpus: pd.DataFrame) -> dict[str, list[str]]:
    """The ``domain_corpus`` sentences of the BGCs of ``rows`` as tokens by bgc_id, checked
    against the halogenase sites.

    Token indices only mean something in gene-ordered sentences built with the halogenase
    table, so unordered bags, missing BGCs or a site that is not a halogenase token (tables
    from different builds) are errors, never silently wrong features.
    """
    wanted = set(rows["bgc_id"])
    sentences = corpus[(corpus["source"] == "mibig") & corpus["seq_id"].isin(wanted)]
    missing = sorted(wanted - set(sentences["seq_id"]))
    fix = "Fix: rebuild the tables (notebook 01_data), then retrain and rerun notebook 02."
    if missing:
        raise ValueError(
            f"domain_corpus has no sentence for {len(missing)} halogenase BGC(s), "
            f"e.g. {missing[0]}. {fix}"
        )
    if not sentences["ordered"].astype(bool).all():
        raise ValueError(
            "domain_corpus's MIBiG sentences are unordered bags, so a halogenase's "
            f"token index means nothing in them. {fix}"
        )
    tokens = dict(zip(sentences["seq_id"], sentences["tokens"].str.split(), strict=True))
    wrong = [
        f"{bgc_id}[{index}]"
        for bgc_id, index in zip(rows["bgc_id"], rows["token_index"], strict=True)
        if index >= len(tokens[bgc_id]) or tokens[bgc_id][index] != TRP_HALOGENASE
    ]
    if wrong:
        raise ValueError(
            f"{len(wrong)} halogenase site(s) are not {TRP_HALOGENASE} tokens of "
            f"domain_corpus, e.g. {wrong[0]}: the tables come from different builds. {fix}"
        )
    return tokens


# ---------------------------------------------------------------- both kinds of profile


def offline_rows(profile: Profile) -> tuple[pd.DataFrame, int]:
    """(the labelled ``halogenase_bgcs`` rows, one per distinct Pfam bag, in bgc_id order; how
    many were dropped as repeats of an identical bag).

    Why drop repeats: offline every feature is a function of the bag, so two BGCs with the
    same bag on both sides of a split would be a leaked answer
    (:func:`crossgran.analysis.features.unique_bag_rows`).
    """
    path = table_path(profile, OFFLINE_TABLE)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: the offline halogenation rows are built with the tables. "
            f"Fix: rebuild them (notebook 01_data or `crossgran data --profile {profile.name}`)."
        )
    table = load_table(profile, OFFLINE_TABLE)
    labelled = table[table["has_halogen"].notna()].reset_index(drop=True)
    if labelled.empty:
        raise ValueError(
            f"none of the {len(table)} rows of {path} has a label: no BGC with a "
            f"{TRP_HALOGENASE} token has a parsable structure in NPLinker's MIBiG 2.0 table. "
            f"Fix: a larger max_bgcs (now {profile.max_bgcs}) keeps more such BGCs."
        )
    keep, dropped = unique_bag_rows(load_table(profile, "mibig_domain_counts"), labelled["bgc_id"])
    return labelled.iloc[keep].reset_index(drop=True), dropped


def bag_token_representations(
    run: bigcarp.TrainedRun,
    bags: Mapping[str, Sequence[str]],
    family: str,
    layers: Sequence[int],
    *,
    n_orders: int,
    seed: int,
) -> dict[int, np.ndarray]:
    """Per layer (numbered as :func:`~crossgran.models.layers.resolve_layers` gives them), a
    (len(bags), d) array: for each bag, the vector of ``family``'s tokens in context, averaged
    over the bag's ``family`` tokens and over ``n_orders`` seeded random orders.

    Why orders: a bag has no order, so a token's context in one arbitrary order means
    nothing; like :func:`crossgran.models.bigcarp.sequence_representations` (same order
    stream), the average over several orders does. Every bag must hold ``family``.
    """
    absent = [key for key, tokens in bags.items() if family not in tokens]
    if absent:
        raise ValueError(f"{len(absent)} bag(s) hold no {family} token, e.g. {absent[0]}")
    resolved = resolve_layers(layers, num_blocks(run.model))
    rng = bigcarp.stream_rng(seed, 0, ORDER_STREAM)
    orders, owners = [], []
    for row, tokens in enumerate(bags.values()):
        for _ in range(n_orders):
            orders.append([tokens[i] for i in rng.permutation(len(tokens))])
            owners.append(row)
    per_order = bigcarp.layer_representations(run.model, run.vocab, orders, resolved)
    width = per_order[0][0].shape[1] if per_order else 0
    out = {layer: np.zeros((len(bags), width)) for layer in resolved}
    for sentence, row, arrays in zip(orders, owners, per_order, strict=True):
        at = [i for i, token in enumerate(sentence) if token == family]
        for layer, array in zip(resolved, arrays, strict=True):
            out[layer][row] += array[at].mean(axis=0) / n_orders
    return {layer: array.astype(np.float32) for layer, array in out.items()}


def _domain_tokens(
    settings: Profile, rows: pd.DataFrame, corpus: pd.DataFrame, run: bigcarp.TrainedRun
) -> dict[str, np.ndarray]:
    """The ``embedder`` (layer 0) and ``last`` layer vectors of every row's halogenase token:
    at its site in the gene-ordered sentence (downloading profiles), or in its BGC's bag
    over random orders (offline); ``corpus`` is the profile's ``domain_corpus``."""
    layers = [0, -1]
    if settings.downloads:
        tokens = bgc_sentences(rows, corpus)
        sites = list(zip(rows["bgc_id"], rows["token_index"], strict=True))
        reps = bigcarp.token_representations(run.model, run.vocab, tokens, sites, layers)
    else:
        sentences = corpus.set_index("seq_id")["tokens"]
        bags = {bgc_id: sentences[bgc_id].split() for bgc_id in rows["bgc_id"]}
        reps = bag_token_representations(
            run,
            bags,
            TRP_HALOGENASE,
            layers,
            n_orders=settings.bigcarp.n_orders,
            seed=settings.seed,
        )
    return dict(zip(("embedder", "last"), reps.values(), strict=True))


def _run_of(run_dir: Path | str, export: bigcarp.Representations) -> bigcarp.TrainedRun:
    """The checkpoint ``export`` was made from, loaded from ``run_dir``."""
    if export.epoch is None:
        raise ValueError(
            "the BiGCARP export does not record its checkpoint epoch (written before epochs "
            "were recorded). Fix: re-export the runs (notebook 02, runs.export_bigcarp_runs)."
        )
    run = bigcarp.load_checkpoint(run_dir, export.epoch)
    if TRP_HALOGENASE not in run.vocab.index:
        raise ValueError(
            f"the BiGCARP run in {run_dir} has no {TRP_HALOGENASE} token. Fix: train "
            "it on this profile's domain_corpus (notebook 02)."
        )
    return run


def _check_same_run(
    embedder: np.ndarray, export: bigcarp.Representations, run_dir: Path | str
) -> None:
    """The halogenase token's layer-0 vector (context-free: the embedder's output) must equal
    the export's family average at layer 0, or the run and the export are not one model (a
    different init's run, or a run retrained after the export), and the token features would
    silently come from another model than the mean-pool ones."""
    expected = export.family[0][export.families.index(TRP_HALOGENASE)]
    if not np.allclose(embedder, expected[None, :], rtol=1e-4, atol=1e-5):
        raise ValueError(
            f"the BiGCARP checkpoint {run_dir} (epoch {export.epoch}) is not the model the "
            "export was made from. Fix: pass the run directory of the exported init, or "
            "re-export the runs after training (notebook 02)."
        )


def _bigcarp_sets(
    settings: Profile,
    rows: pd.DataFrame,
    exported: Mapping[str, bigcarp.Representations],
    run_dir: Path | str,
) -> dict[str, np.ndarray]:
    """``bigcarp_domain`` and ``bigcarp_mean`` for every export (``""``: trained,
    ``"~untrained"``: epoch 0), and their random projections."""
    if set(exported) != {"", "~untrained"}:
        raise ValueError(
            f"exported has keys {sorted(exported)}; the task needs one run's exports keyed '' "
            "(trained) and '~untrained' (epoch 0), as notebook 05 loads them"
        )
    bgc_ids = rows["bgc_id"].astype(str).tolist()
    corpus = load_table(settings, "domain_corpus")
    features: dict[str, np.ndarray] = {}
    for suffix, export in exported.items():
        tokens = _domain_tokens(settings, rows, corpus, _run_of(run_dir, export))
        _check_same_run(tokens["embedder"], export, run_dir)
        features[f"bigcarp_domain{suffix}"] = tokens["last"]
        last = export.bgc[export.layers[-1]]
        features[f"bigcarp_mean{suffix}"] = last[rows_of(export.bgc_ids, bgc_ids)]
    width = features["bigcarp_mean"].shape[1]
    token = random_family_vectors([TRP_HALOGENASE], width, settings.seed)
    features["bigcarp_domain~random"] = np.repeat(token, len(rows), axis=0)
    features["bigcarp_mean~random"] = random_bag_means(
        load_table(settings, "mibig_domain_counts"), bgc_ids, width, settings.seed
    )
    return features


def _esm_sets(
    settings: Profile, rows: pd.DataFrame, model: LoadedEsm | None
) -> dict[str, np.ndarray]:
    """``esm`` (per halogenase domain) with its random-residue and untrained controls;
    ``model`` None: the profile's ESM (``settings.esm.spec``)."""
    if model is None:
        model = load_esm(settings.esm.spec, settings.models_dir)
    trained = esm_features(rows, model, settings)
    untrained = esm_features(rows, untrained_esm(model, seed=settings.seed), settings)
    residues, _ = random_residue_features(list(rows["sequence"]), trained.shape[1], settings.seed)
    return {"esm": trained, "esm~random": residues, "esm~untrained": untrained}


@dataclass(frozen=True)
class TaskData:
    """The halogenation task's rows, features (by feature-set name), 0/1 labels and BGC groups."""

    rows: pd.DataFrame
    features: dict[str, np.ndarray]
    labels: np.ndarray
    groups: np.ndarray
    n_duplicates: int  # offline: labelled BGCs dropped as repeats of an identical bag


def halogenation_features(
    settings: Profile,
    exported: Mapping[str, bigcarp.Representations],
    run_dir: Path | str,
    *,
    esm_model: LoadedEsm | None = None,
) -> TaskData:
    """Every feature set the profile's data allow (module docstring), on the labelled rows.

    ``exported``: one BiGCARP run's exports keyed ``""`` (trained) and ``"~untrained"``
    (epoch 0), e.g. ``bigcarp.Representations.load(processed_dir / "bigcarp_random.npz")``;
    ``run_dir`` its checkpoints (``runs.bigcarp_run_dir``), read at each export's epoch for
    the halogenase token. ``esm_model``: read by downloading profiles only (default: the
    profile's, ``settings.esm.spec``; tests pass a tiny one).
    """
    if settings.downloads:
        rows, duplicates = labelled_rows(settings), 0
    else:
        rows, duplicates = offline_rows(settings)
    features = _bigcarp_sets(settings, rows, exported, run_dir)
    if settings.downloads:
        features |= _esm_sets(settings, rows, esm_model)
        for suffix in ("", *(f"~{control}" for control in CONTROLS)):
            features[FUSED + suffix] = np.hstack([features[p + suffix] for p in PARTS])
    bgc_ids = rows["bgc_id"].astype(str).tolist()
    features["pfam_counts"], _ = count_matrix(load_table(settings, "mibig_domain_counts"), bgc_ids)
    widest = max(features[name].shape[1] for name in (FUSED, *BIGCARP_PARTS) if name in features)
    features["random"] = random_features(len(rows), widest, settings.seed)
    labels = rows["has_halogen"].astype(bool).astype(np.int64).to_numpy()
    return TaskData(rows, features, labels, np.asarray(bgc_ids), duplicates)

"""Notebook 05, claim 4: amino-acid-level (ESM) and domain-level (BiGCARP) representations are
complementary, so their concatenation beats either alone.

Three tasks, each probing every feature set on the same rows and folds so that every claim is
a paired bootstrap on the same out-of-fold predictions:

* MIBiG product class (BGC level, multilabel, 7 classes incl. Other): :func:`product_class_probes`;
* NRPS A-domain substrate properties (domain level, binary; folds *and* bootstrap grouped by
  parent protein): :func:`adomain_features`, :func:`adomain_probes`;
* halogenation: ``crossgran.analysis.halogenation_probe`` (its tests join :func:`fusion_tests`).

Beside every learned representation stand its controls, pooled exactly as it is: a
width-matched, domain-consistent random projection (``~random``: one fixed random vector per
Pfam family, or per amino acid for ESM's residue-level features) and the untrained model
(``~untrained``: BiGCARP's epoch-0 checkpoint, ESM's initial weights); a fusion's controls are
the concatenations of its parts' controls. The paper's baseline, Pfam2vec with a random forest,
stands beside Pfam counts. :func:`fusion_tests` gathers every comparison into
``fusion_tests.csv`` and :func:`claim4` reads the verdicts from it.

Probes: every feature set is probed with the linear probe (standardised logistic regression);
a profile with ``paper_probes`` also probes each one (controls included) with the paper's
probes: the MLP (512, 256) on pooled product-class vectors and on A-domain properties and,
where MIBiG sentences are gene-ordered, a BiLSTM over the BGC's per-domain vectors
(:func:`product_class_sequence_probes`). Pfam2vec keeps its random
forest and Pfam counts ``settings.count_probe_model`` under every probe. A task's results are
:data:`ProbeSets`, one set of feature sets per probe; every table carries a ``probe`` column
("linear probe", "MLP (512, 256)", ...: ``ProbeResult.probe``) and every comparison is run
within one probe set, so a test never pits one probe against another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crossgran.analysis import halogenation
from crossgran.analysis.comparisons import (
    PROBE_TEST_COLUMNS,
    Comparison,
    claim_verdicts,
    control_comparisons,
    run_probe_comparisons,
)
from crossgran.analysis.controls import (
    random_bag_means,
    random_family_vectors,
    random_residue_features,
)
from crossgran.analysis.features import (
    count_matrix,
    count_weighted_mean,
    one_hot_signatures,
    random_features,
)
from crossgran.analysis.labelled_rows import ProbeRows, product_class_rows
from crossgran.analysis.probes import (
    LINEAR_PROBE,
    ModelName,
    ProbeResult,
    cross_validated_scores,
    probe_label,
    summarise_sets,
)
from crossgran.analysis.probes.sequence import sequence_probe_scores
from crossgran.analysis.rows import rows_of
from crossgran.data.adomains import PROPERTIES
from crossgran.data.pfam import AMP_BINDING
from crossgran.data.tables import load_table
from crossgran.models.bigcarp import layer_representations, split_tokens
from crossgran.profiles import Profile

if TYPE_CHECKING:
    from crossgran.models.bigcarp import Representations, TrainedRun
    from crossgran.models.esm import EmbeddingResult

__all__ = [
    "CLASS_FUSION",
    "CLASS_SINGLES",
    "CONTROLS",
    "FUSIONS",
    "PAPER_MLP",
    "ProbeSets",
    "adomain_features",
    "adomain_probes",
    "claim4",
    "fusion_tests",
    "product_class_probes",
    "product_class_sequence_probes",
    "product_class_tables",
    "sequence_probe_reason",
]

CONTROLS = ("random", "untrained")
CLASS_FUSION = "esm+bigcarp_last"
CLASS_SINGLES = ["esm", "bigcarp_embedder", "bigcarp_last"]
FUSIONS = {"bigcarp+esm_mean": ["bigcarp", "esm_mean"], "bigcarp+stachel": ["bigcarp", "stachel"]}
ADOMAIN_SINGLES = ["stachel", "esm_mean", "bigcarp"]
# The A-domain feature sets probed a second time with ungrouped folds, as the paper did, for
# the properties the paper reports.
UNGROUPED = [*ADOMAIN_SINGLES, *FUSIONS]
UNGROUPED_PROPERTIES = ("is_aromatic", "has_heterocycle")
PAPER_MLP = (512, 256)  # the paper's MLP for A-domain properties and pooled product classes
# Probe label -> feature set -> result: one set of a task's feature sets per probe.
ProbeSets = dict[str, dict[str, ProbeResult]]


def _cv(settings: Profile, model: ModelName = "logreg") -> dict:
    """The profile's cross-validation settings for ``model``'s probes: the paper's probes get
    ``settings.paper_probe_seeds`` where the profile caps them (their first seeds' folds are the
    linear probe's, as folds depend on the seed alone)."""
    seeds = settings.probe_seeds
    if model in ("mlp", "bilstm") and settings.paper_probe_seeds is not None:
        seeds = settings.paper_probe_seeds
    return {"folds": settings.probe_folds, "seeds": range(seeds), "n_jobs": settings.probe_jobs}


def _probes(settings: Profile, mlp_hidden: tuple[int, ...]) -> list[tuple[ModelName, tuple]]:
    """(model, hidden sizes) of every probe a feature set gets: the linear probe, and with the
    profile's ``paper_probes`` the paper's MLP of ``mlp_hidden``."""
    probes: list[tuple[ModelName, tuple]] = [("logreg", ())]
    if settings.paper_probes:
        probes.append(("mlp", tuple(mlp_hidden)))
    return probes


def _table(settings: Profile, sets: ProbeSets, groups: np.ndarray | None = None) -> pd.DataFrame:
    """A task's summary table, every probe's rows with their ``probe``."""
    return summarise_sets(sets, settings.n_bootstrap, seed=settings.seed, groups=groups)


def _tests(
    settings: Profile, sets: ProbeSets, comparisons: Sequence[Comparison], **kwargs
) -> pd.DataFrame:
    """A task's paired tests, run within each probe (``comparisons.run_probe_comparisons``)."""
    return run_probe_comparisons(
        sets, comparisons, n_bootstrap=settings.n_bootstrap, seed=settings.seed, **kwargs
    )


def _fused(
    features: dict[str, np.ndarray],
    name: str,
    parts: Sequence[str],
    controls: Sequence[str] = CONTROLS,
) -> None:
    """Add the concatenation ``name`` of ``parts`` and, where every part has them, its
    ``controls``."""
    features[name] = np.hstack([features[p] for p in parts])
    for control in controls:
        if all(f"{p}~{control}" in features for p in parts):
            features[f"{name}~{control}"] = np.hstack([features[f"{p}~{control}"] for p in parts])


def product_class_probes(
    settings: Profile,
    esm_pfam: Mapping[str, EmbeddingResult],
    bigcarp_runs: Mapping[str, Representations],
    pfam2vec: tuple[list[str], np.ndarray],
    *,
    esm_layer: int,
) -> tuple[ProbeSets, ProbeRows]:
    """(probe results by probe and feature set, the probed rows) of the MIBiG product-class task.

    ``esm_pfam`` and ``bigcarp_runs`` map ``""`` to the trained model and ``"~untrained"`` to
    its control; ``pfam2vec`` is (families, vectors). Feature sets: ``esm`` (the BGC's family
    vectors at ``esm_layer``, weighted by domain count), ``bigcarp_embedder`` and
    ``bigcarp_last`` (random-init BiGCARP's per-BGC means at layer 0 and its last layer), their
    controls, :data:`CLASS_FUSION` and its controls, ``pfam2vec`` (random forest),
    ``pfam_counts`` (``settings.count_probe_model``) and ``random`` (one vector per BGC). Each
    is probed with the linear probe and, with ``settings.paper_probes``, the MLP
    :data:`PAPER_MLP`; Pfam2vec and Pfam counts keep their own model in every set.
    """
    counts = load_table(settings, "mibig_domain_counts")
    run = bigcarp_runs[""]
    bgc_ids = np.asarray(run.bgc_ids)
    last = run.layers[-1]
    blocks: dict[str, np.ndarray] = {}
    for suffix, result in esm_pfam.items():
        blocks[f"esm{suffix}"] = count_weighted_mean(
            counts, bgc_ids, result.ids, result.mean[esm_layer]
        )
    for suffix, export in bigcarp_runs.items():
        blocks[f"bigcarp_embedder{suffix}"] = export.bgc[0]
        blocks[f"bigcarp_last{suffix}"] = export.bgc[last]
    pooled = {}  # one random projection per width: the embedder and last layer share one
    for name in CLASS_SINGLES:
        width = blocks[name].shape[1]
        if width not in pooled:
            pooled[width] = random_bag_means(counts, bgc_ids, width, settings.seed)
        blocks[f"{name}~random"] = pooled[width]
    blocks["pfam2vec"] = count_weighted_mean(counts, bgc_ids, *pfam2vec)
    rows = product_class_rows(settings, bgc_ids, blocks.values())
    features = {name: block[rows.rows] for name, block in blocks.items()}
    _fused(features, CLASS_FUSION, ["esm", "bigcarp_last"])
    features["pfam_counts"], _ = count_matrix(counts, rows.bgc_ids)
    features["random"] = random_features(
        len(rows.rows), features[CLASS_FUSION].shape[1], settings.seed
    )
    fixed: dict[str, ModelName] = {"pfam_counts": settings.count_probe_model, "pfam2vec": "rf"}
    sets: ProbeSets = {}
    probed: dict[tuple, ProbeResult] = {}  # identical inputs to one probe are probed once
    for model, hidden in _probes(settings, PAPER_MLP):
        results: dict[str, ProbeResult] = {}
        for name, x in features.items():
            use = (fixed[name], ()) if name in fixed else (model, hidden)
            key = (hashlib.sha256(np.ascontiguousarray(x).tobytes()).digest(), *use)
            if key not in probed:
                probed[key] = cross_validated_scores(
                    x,
                    rows.targets,
                    task="multilabel",
                    model=use[0],
                    mlp_hidden=use[1],
                    **_cv(settings, use[0]),
                )
            results[name] = probed[key]
        sets[probe_label(model, hidden)] = results
    return sets, rows


def _class_comparisons() -> list[Comparison]:
    return [
        Comparison(CLASS_FUSION, tuple(CLASS_SINGLES)),
        *control_comparisons([CLASS_FUSION, *CLASS_SINGLES], CONTROLS),
        *(Comparison(name, ("pfam2vec",)) for name in [CLASS_FUSION, *CLASS_SINGLES]),
    ]


def product_class_tables(
    settings: Profile, sets: Mapping[str, Mapping[str, ProbeResult]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(``product_class_probe.csv``, the task's paired tests), both with a ``probe`` column.
    Within each probe set: the fusion against the best single representation, its
    random-projection concatenation and Pfam2vec; every single representation against its
    controls and Pfam2vec."""
    table = _table(settings, sets)
    tests = _tests(settings, sets, _class_comparisons(), task="product_class")
    return table, tests


def sequence_probe_reason(settings: Profile) -> str:
    """Why the BiLSTM product-class probe does not run under ``settings`` ("" when it does).

    It needs the paper's probes switched on and MIBiG sentences in gene order: over an
    unordered domain bag (offline, GECCO's composition table has no gene order) a sequence
    model would read an order drawn here, not the BGC's."""
    if not settings.paper_probes:
        return "this profile runs the linear probe only (paper_probes is off)"
    corpus = load_table(settings, "domain_corpus")
    mibig = corpus[corpus["source"] == "mibig"]
    unordered = int((~mibig["ordered"].astype(bool)).sum())
    if mibig.empty or unordered:
        return (
            f"{unordered} of {len(mibig)} MIBiG sentences are unordered domain bags in this "
            "profile (the offline MIBiG data has no gene order), and a sequence model over "
            "them would read an order drawn here; it runs where MIBiG is gene-ordered (`full`)"
        )
    return ""


def _token_sequences(
    settings: Profile,
    esm_pfam: Mapping[str, EmbeddingResult],
    bigcarp_models: Mapping[str, TrainedRun],
    bgc_ids: Sequence[str],
    esm_layer: int,
) -> dict[str, list[np.ndarray]]:
    """Per feature set, one (domains, width) array per BGC in gene order: the per-domain
    counterparts of :func:`product_class_probes`' pooled features (``esm``,
    ``bigcarp_embedder``, ``bigcarp_last``, their controls, :data:`CLASS_FUSION` and its
    controls). Positions are the BGC's domains whose family has an ESM vector, the domains the
    pooled ESM feature averages; BiGCARP reads the whole sentence and gives its vectors there."""
    corpus = load_table(settings, "domain_corpus").set_index("seq_id")
    sentences = split_tokens(corpus.loc[list(bgc_ids)].reset_index())
    vectors = {
        suffix: dict(zip(result.ids, result.mean[esm_layer], strict=True))
        for suffix, result in esm_pfam.items()
    }
    kept = [[i for i, token in enumerate(tokens) if token in vectors[""]] for tokens in sentences]
    if not all(kept):
        raise ValueError("a probed BGC has no domain with an ESM vector; rebuild its rows")
    sequences: dict[str, list[np.ndarray]] = {}
    for suffix, table in vectors.items():
        sequences[f"esm{suffix}"] = [
            np.stack([table[tokens[i]] for i in where])
            for tokens, where in zip(sentences, kept, strict=True)
        ]
    for suffix, run in bigcarp_models.items():
        per_layer = layer_representations(run.model, run.vocab, sentences, layers=[0, -1])
        for n, name in enumerate(["bigcarp_embedder", "bigcarp_last"]):
            sequences[f"{name}{suffix}"] = [
                layers[n][where] for layers, where in zip(per_layer, kept, strict=True)
            ]
    randoms: dict[int, list[np.ndarray]] = {}  # one random projection per width, as pooled
    for name in CLASS_SINGLES:
        width = sequences[name][0].shape[1]
        if width not in randoms:
            randoms[width] = [
                random_family_vectors([tokens[i] for i in where], width, settings.seed)
                for tokens, where in zip(sentences, kept, strict=True)
            ]
        sequences[f"{name}~random"] = randoms[width]
    for suffix in ("", *(f"~{control}" for control in CONTROLS)):
        parts = [sequences[f"esm{suffix}"], sequences[f"bigcarp_last{suffix}"]]
        sequences[f"{CLASS_FUSION}{suffix}"] = [
            np.hstack(pair) for pair in zip(*parts, strict=True)
        ]
    return sequences


def product_class_sequence_probes(
    settings: Profile,
    esm_pfam: Mapping[str, EmbeddingResult],
    bigcarp_models: Mapping[str, TrainedRun],
    pooled: Mapping[str, Mapping[str, ProbeResult]],
    rows: ProbeRows,
    *,
    esm_layer: int,
    device: str = "cpu",
) -> ProbeSets:
    """The paper's BiLSTM product-class probe (``crossgran.analysis.probes.sequence``, at the
    profile's ``sequence_probe`` sizes, the paper's but in the rehearsal; one seed) on
    :func:`product_class_probes`' rows and folds, as one more probe set for
    :func:`product_class_tables`: every per-domain feature set of :func:`_token_sequences`,
    beside the pooled Pfam2vec baseline it is compared with. Call only where
    :func:`sequence_probe_reason` is empty. ``bigcarp_models`` maps ``""`` to random-init
    BiGCARP's trained checkpoint and ``"~untrained"`` to its epoch 0
    (``bigcarp.load_checkpoint``).
    """
    reason = sequence_probe_reason(settings)
    if reason:
        raise ValueError(f"the BiLSTM probe cannot run here: {reason}")
    sequences = _token_sequences(settings, esm_pfam, bigcarp_models, rows.bgc_ids, esm_layer)
    results: dict[str, ProbeResult] = {}
    probed: dict[int, ProbeResult] = {}  # the embedder's and last layer's random control: one
    for name, inputs in sequences.items():
        if id(inputs) not in probed:
            probed[id(inputs)] = sequence_probe_scores(
                inputs,
                rows.targets,
                task="multilabel",
                folds=settings.probe_folds,
                seeds=(0,),  # the paper ran one seed: the pooled probes' first folds
                config=settings.sequence_probe,
                device=device,
                torch_threads=settings.torch_threads,
            )
        results[name] = probed[id(inputs)]
    results["pfam2vec"] = pooled[LINEAR_PROBE]["pfam2vec"]
    return {next(iter(probed.values())).probe: results}


def _residue_controls(
    settings: Profile, domains: pd.DataFrame, width: int
) -> dict[str, np.ndarray]:
    """The random projection of the residues ESM reads, pooled as ``esm_mean`` and ``stachel``."""
    positions = [[int(p) for p in str(text).split()] for text in domains["stachelhaus_positions"]]
    mean, at_positions = random_residue_features(
        list(domains["sequence"]), width, settings.seed, positions
    )
    return {"esm_mean~random": mean, "stachel~random": at_positions}


def adomain_features(
    settings: Profile,
    esm_adomains: Mapping[str, EmbeddingResult],
    bigcarp_runs: Mapping[str, Representations],
    *,
    esm_layer: int,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """(the ``adomains`` rows of the run's A-domains, feature sets on those rows).

    Rows: the A-domains located in their parent protein's sentence (so BiGCARP has a
    contextual token for them). Feature sets: ``esm_mean``, ``stachel`` (ESM at ``esm_layer``,
    mean over the domain / over its Stachelhaus positions), ``bigcarp`` (the AMP-binding token
    at random-init BiGCARP's last layer), each with its controls (``esm_adomains`` and
    ``bigcarp_runs`` map ``""`` to the trained model and ``"~untrained"`` to its control), the
    :data:`FUSIONS` and their random-projection controls, and ``stachelhaus_onehot``.
    """
    run = bigcarp_runs[""]
    domains = load_table(settings, "adomains").set_index("domain_id").loc[run.adomain_ids]
    features: dict[str, np.ndarray] = {}
    for suffix, result in esm_adomains.items():
        rows = rows_of(result.ids, run.adomain_ids)
        features[f"esm_mean{suffix}"] = result.mean[esm_layer][rows]
        features[f"stachel{suffix}"] = result.positions[esm_layer][rows]
    for suffix, export in bigcarp_runs.items():
        features[f"bigcarp{suffix}"] = export.adomain[export.layers[-1]]
    features |= _residue_controls(settings, domains, features["esm_mean"].shape[1])
    token = random_family_vectors([AMP_BINDING], features["bigcarp"].shape[1], settings.seed)
    features["bigcarp~random"] = np.repeat(token, len(domains), axis=0)
    for name, parts in FUSIONS.items():
        _fused(features, name, parts, controls=["random"])
    features["stachelhaus_onehot"] = one_hot_signatures(domains["stachelhaus"])
    return domains, features


def _adomain_comparisons() -> list[Comparison]:
    return [
        Comparison("stachel", ("esm_mean",)),
        Comparison("esm_mean", ("bigcarp",)),
        *control_comparisons(ADOMAIN_SINGLES, CONTROLS),
        *(Comparison(fused, tuple(parts)) for fused, parts in FUSIONS.items()),
        *control_comparisons(list(FUSIONS), ["random"]),
    ]


def _adomain_sets(
    settings: Profile,
    features: Mapping[str, np.ndarray],
    names: Sequence[str],
    labels: np.ndarray,
    defined: np.ndarray,
    groups: np.ndarray | None,
    *,
    paper: bool,
) -> ProbeSets:
    """The probe sets of one property: ``names``' features on the ``defined`` rows, with
    folds grouped by ``groups`` (None: plain stratified folds); ``paper``: the paper's probes
    run on this property (:func:`_paper_property`)."""
    probes = _probes(settings, PAPER_MLP) if paper else [("logreg", ())]
    return {
        probe_label(model, hidden): {
            name: cross_validated_scores(
                features[name][defined],
                labels,
                task="binary",
                groups=groups,
                model=model,
                mlp_hidden=hidden,
                **_cv(settings, model),
            )
            for name in names
        }
        for model, hidden in probes
    }


def _paper_property(settings: Profile, prop: str) -> bool:
    """Whether the paper's probes run on A-domain property ``prop`` under ``settings``."""
    chosen = settings.paper_probe_properties
    return settings.paper_probes and (chosen is None or prop in chosen)


def _first_property(table: pd.DataFrame) -> pd.DataFrame:
    return table[["property", *table.columns.drop("property")]]


def adomain_probes(
    settings: Profile, domains: pd.DataFrame, features: Mapping[str, np.ndarray]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    """(``adomain_probe.csv``, the paired tests, ``adomain_probe_ungrouped.csv``, the
    properties skipped and why).

    For each substrate property, the domains whose label leaves it undefined are dropped, and
    folds *and* bootstrap replicates are grouped by parent protein, so neither a probe nor an
    interval can lean on sibling modules of one protein; a property whose rarer class spans
    fewer parent proteins than folds is skipped. Every feature set is probed with the linear
    probe and, with ``settings.paper_probes``, the paper's MLP (512, 256); comparisons run
    within each probe. The :data:`UNGROUPED` feature sets are probed once more, for the
    :data:`UNGROUPED_PROPERTIES` the paper reports, with plain stratified folds and a row
    bootstrap, as the paper did: those numbers leak homologues between folds, so they are
    reported beside, never tested.
    """
    tables, ungrouped, tests, skipped = [], [], [], []
    for prop in PROPERTIES:
        defined = domains[prop].notna().to_numpy()
        labels = domains[prop].to_numpy()[defined].astype(int)
        parents = domains["parent_protein"].to_numpy()[defined]
        minority = min(np.unique(parents[labels == value]).size for value in (0, 1))
        if minority < settings.probe_folds:
            skipped.append(f"{prop} (only {minority} parent proteins in its rarer class)")
            continue
        paper = _paper_property(settings, prop)
        sets = _adomain_sets(
            settings, features, list(features), labels, defined, parents, paper=paper
        )
        tables.append(_table(settings, sets, groups=parents).assign(property=prop))
        tests.append(
            _tests(
                settings,
                sets,
                _adomain_comparisons(),
                task="adomain",
                prop=prop,
                metrics=("auc",),
                groups=parents,
            )
        )
        if prop in UNGROUPED_PROPERTIES:
            leaky = _adomain_sets(settings, features, UNGROUPED, labels, defined, None, paper=paper)
            ungrouped.append(_table(settings, leaky).assign(property=prop))
    if not tables:
        raise ValueError(f"no A-domain property could be probed: {'; '.join(skipped)}")
    table, leaky_table = (
        pd.concat(t or [tables[0].iloc[:0]], ignore_index=True) for t in (tables, ungrouped)
    )
    return (
        _first_property(table),
        pd.concat(tests, ignore_index=True),
        _first_property(leaky_table),
        skipped,
    )


def fusion_tests(
    class_tests: pd.DataFrame,
    domain_tests: pd.DataFrame,
    halogen_tests: Sequence[pd.DataFrame] = (),
) -> pd.DataFrame:
    """``fusion_tests.csv``: every paired test of notebook 05, all tasks and probes in one
    table (``comparisons.PROBE_TEST_COLUMNS``)."""
    tables = [class_tests, domain_tests, *halogen_tests]
    return pd.concat(tables, ignore_index=True)[PROBE_TEST_COLUMNS]


def claim4(tests: pd.DataFrame) -> pd.DataFrame:
    """Claim 4 per probe, task, property, fusion and metric: the verdict (Holm over the
    notebook's tests) of the fusion against the best single representation, the same for the
    fusion against the concatenation of its parts' random projections, and the delta and
    adjusted p of the first. A fusion gain means little unless the random concatenation fails
    to match it."""
    decided = claim_verdicts(tests)
    fusions = decided[decided["candidate"].isin([CLASS_FUSION, *FUSIONS, halogenation.FUSED])]
    best = fusions[~fusions["rival"].str.contains("~") & (fusions["rival"] != "pfam2vec")]
    control = fusions[fusions["rival"].str.endswith("~random")]
    keys = ["probe", "task", "property", "candidate", "metric"]
    merged = best.merge(
        control[[*keys, "verdict"]], on=keys, how="left", suffixes=("", "_vs_random")
    )
    merged["verdict_vs_random"] = merged["verdict_vs_random"].fillna("not run")
    return merged[
        [*keys, "rival", "delta", "low", "high", "p_holm", "verdict", "verdict_vs_random"]
    ]

"""Notebook 04: where BiGCARP keeps what it learned, layer by layer, on Pfam families.

Every representation is a Pfam family: ESM's mean over the family's HMM consensus at every
layer, and BiGCARP's mean contextual vector of the family's tokens at the embedder (layer 0)
and after each ByteNet block, for the random-init and the ESM-init run (:data:`INITS`). The
families are paired by accession (:func:`family_layers`), never by position.

Claim 2 (the token table keeps its initialisation, the deeper layers move away from it) is read
from CKA: layer x layer within each run, ESM layers x BiGCARP layers, and the headline pairs
with bootstrap intervals (:func:`initialisation_kept`). Claim 3 (deeper layers are a more
faithful record of what the model learned) from per-layer probes on the same families and folds
(:func:`layer_probes`, :func:`deeper_vs_embedder`).

Every matrix product here is small: on a busy two-core machine idle-spinning BLAS threads cost
far more than they save (CKA matrices ran ~10x slower with two threads), so the computing
functions hold BLAS to one thread while they run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from crossgran.analysis.cka import bootstrap_cka, cka_matrix, debiased_cka
from crossgran.analysis.features import family_class_association, frequent_label_matrix
from crossgran.analysis.paper import PAPER_CKA, SIGNIFICANCE
from crossgran.analysis.probes import (
    ProbeResult,
    Task,
    bootstrap_ci,
    cross_validated_scores,
    paired_bootstrap,
)
from crossgran.analysis.rows import shared_rows
from crossgran.data.tables import load_table
from crossgran.profiles import Profile
from crossgran.threads import limit

if TYPE_CHECKING:
    from crossgran.models.bigcarp import Representations
    from crossgran.models.esm import EmbeddingResult

__all__ = [
    "DEPTH",
    "INITS",
    "FamilyLayers",
    "InitialisationKept",
    "LayerTasks",
    "closest_esm_layers",
    "debiased_embedder_last",
    "deeper_vs_embedder",
    "esm_vs_bigcarp",
    "family_layers",
    "headline_cka",
    "initialisation_kept",
    "layer_probes",
    "peaks",
    "probe_tasks",
    "umap_inputs",
    "wins_by_task",
    "within_bigcarp",
]

INITS = {"random": "random-init", "esm": "ESM-init"}  # the BiGCARP runs compared, and their labels
DEPTH = "BiGCARP layer (0 = embedder)"
Fits = Mapping[tuple[str, str, int], ProbeResult]
ProbeTask = tuple[Task, np.ndarray, np.ndarray]  # (task kind, rows of the families, labels)


@dataclass(frozen=True)
class FamilyLayers:
    """Per-layer representations of the same Pfam families (rows in ``families`` order)."""

    families: list[str]
    esm: dict[int, np.ndarray]  # ESM layer -> (families, d)
    bigcarp: dict[str, dict[int, np.ndarray]]  # init -> BiGCARP layer -> (families, d)
    esm_model: str  # the ESM model's name, without its revision
    esm_init_layer: int  # the ESM layer that initialised the ESM-init token table

    @property
    def esm_last(self) -> int:
        return max(self.esm)

    @property
    def last(self) -> int:
        """BiGCARP's last layer."""
        return max(self.bigcarp["random"])


def family_layers(
    esm_pfam: EmbeddingResult, exported: Mapping[str, Representations], *, esm_layer: int
) -> FamilyLayers:
    """The families ESM and every run in ``exported`` (init -> notebook 02's export) share.

    ESM has every Pfam family, BiGCARP only those in its corpus, each in its own order, so
    rows are paired by accession. ``esm_layer`` is the profile's ``bigcarp.esm_layer``.
    """
    families, (esm_rows, *bigcarp_rows) = shared_rows(
        esm_pfam.ids, *(exported[init].families for init in exported)
    )
    esm_reps = {k: v[esm_rows] for k, v in esm_pfam.mean.items()}
    reps = {
        init: {k: v[rows] for k, v in exported[init].family.items()}
        for init, rows in zip(exported, bigcarp_rows, strict=True)
    }
    return FamilyLayers(
        families=families,
        esm=esm_reps,
        bigcarp=reps,
        esm_model=esm_pfam.model_id.split("@")[0],
        esm_init_layer=sorted(esm_reps)[esm_layer],
    )


def within_bigcarp(space: FamilyLayers) -> dict[str, pd.DataFrame]:
    """Per run label, linear CKA between every pair of its layers (``cka_layers_<init>.csv``)."""
    within = {}
    with limit(blas_threads=1):
        for init, label in INITS.items():
            layers = sorted(space.bigcarp[init])
            matrix = cka_matrix(
                [space.bigcarp[init][k] for k in layers], [space.bigcarp[init][k] for k in layers]
            )
            within[label] = pd.DataFrame(
                matrix, index=pd.Index(layers, name=DEPTH), columns=pd.Index(layers, name=DEPTH)
            )
    return within


def esm_vs_bigcarp(space: FamilyLayers) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """(per run label, ESM layers x BiGCARP layers CKA; ``cka_esm_vs_bigcarp.csv``: the same in
    long form, with ``closest`` marking the ESM layer most similar to each BiGCARP layer)."""
    cross = {}
    records = []
    with limit(blas_threads=1):
        for init, label in INITS.items():
            matrix = cka_matrix(
                [space.esm[k] for k in sorted(space.esm)],
                [space.bigcarp[init][k] for k in sorted(space.bigcarp[init])],
            )
            cross[label] = pd.DataFrame(
                matrix,
                index=pd.Index(sorted(space.esm), name="ESM layer"),
                columns=pd.Index(sorted(space.bigcarp[init]), name=DEPTH),
            )
            records += [
                {"init": init, "esm_layer": esm_layer, "bigcarp_layer": bigcarp_layer, "cka": value}
                for (esm_layer, bigcarp_layer), value in cross[label].stack().items()
            ]
    table = pd.DataFrame.from_records(records)
    table["closest"] = table["cka"] == table.groupby(["init", "bigcarp_layer"])["cka"].transform(
        "max"
    )
    return cross, table


def closest_esm_layers(table: pd.DataFrame) -> pd.DataFrame:
    """Run label x BiGCARP layer: the closest ESM layer of :func:`esm_vs_bigcarp`'s table and
    its CKA, as text ("<layer> (<cka>)")."""
    closest = table[table["closest"]].copy()
    closest["row"] = closest["init"].map(INITS)
    cells = [f"{e} ({c:.3f})" for e, c in zip(closest["esm_layer"], closest["cka"], strict=True)]
    return closest.assign(cell=cells).pivot(index="row", columns="bigcarp_layer", values="cell")


def _headline_pairs(space: FamilyLayers) -> dict[str, tuple[np.ndarray, np.ndarray, float | None]]:
    """The headline CKA pairs: (x, y, the paper's linear CKA or None) by name."""
    reps, last, esm = space.bigcarp, space.last, space.esm[space.esm_init_layer]
    return {
        "random-init embedder vs its last layer": (
            reps["random"][0],
            reps["random"][last],
            PAPER_CKA["embedder_vs_last", "random", "random"],
        ),
        "ESM-init embedder vs its last layer": (
            reps["esm"][0],
            reps["esm"][last],
            PAPER_CKA["embedder_vs_last", "esm", "esm"],
        ),
        "ESM-init embedder vs random-init last layer": (
            reps["esm"][0],
            reps["random"][last],
            PAPER_CKA["embedder_vs_last", "esm", "random"],
        ),
        "ESM-init embedder vs ESM (its initialisation)": (reps["esm"][0], esm, None),
        "random-init embedder vs ESM": (reps["random"][0], esm, None),
        "ESM-init last layer vs ESM": (reps["esm"][last], esm, None),
    }


def headline_cka(space: FamilyLayers, *, n_bootstrap: int, seed: int) -> pd.DataFrame:
    """``cka_headline.csv``: each headline pair's linear CKA with its bootstrap interval over
    families (``cka.bootstrap_cka``, one seed, so every pair sees the same resamples) and the
    paper's value where it has one."""
    records = []
    with limit(blas_threads=1):
        for name, (x, y, paper) in _headline_pairs(space).items():
            point, low, high = bootstrap_cka(x, y, n_bootstrap, seed)
            records.append(
                {
                    "pair": name,
                    "linear_cka": point,
                    "ci_low": low,
                    "ci_high": high,
                    "paper_linear_cka": paper,
                }
            )
    return pd.DataFrame(records)


def debiased_embedder_last(space: FamilyLayers) -> dict[str, float]:
    """Per run label, debiased CKA of the embedder with the last layer: a check that the
    plain values are not a small-sample artefact (debiased CKA does not drift with width)."""
    with limit(blas_threads=1):
        return {
            label: debiased_cka(space.bigcarp[init][0], space.bigcarp[init][space.last])
            for init, label in INITS.items()
        }


@dataclass(frozen=True)
class InitialisationKept:
    """Claim 2 of notebook 04: the headline CKA points and the three checks."""

    kept: float  # ESM-init embedder vs ESM
    control: float  # random-init embedder vs ESM
    deep: float  # ESM-init last layer vs ESM
    embedder_last: dict[str, float]  # per run label: embedder vs its last layer
    checks: dict[str, bool]

    @property
    def supported(self) -> bool:
        return all(self.checks.values())


def initialisation_kept(headline: pd.DataFrame, *, max_similarity: float) -> InitialisationKept:
    """Claim 2 from :func:`headline_cka`'s table: (a) the ESM-init embedder is more similar to
    ESM than the random-init embedder is and (b) than its own last layer is, intervals apart;
    (c) in both runs the embedder vs last layer interval lies below ``max_similarity``."""
    rows = headline.set_index("pair")
    kept = rows.loc["ESM-init embedder vs ESM (its initialisation)"]
    control = rows.loc["random-init embedder vs ESM"]
    deep = rows.loc["ESM-init last layer vs ESM"]
    embedder_last = {
        label: rows.loc[f"{label} embedder vs its last layer"] for label in INITS.values()
    }
    checks = {
        "(a) ESM-init embedder closer to ESM than random-init embedder": bool(
            kept["ci_low"] > control["ci_high"]
        ),
        "(b) ESM-init embedder closer to ESM than its last layer": bool(
            kept["ci_low"] > deep["ci_high"]
        ),
        f"(c) embedder vs last layer CKA < {max_similarity} in both runs": all(
            row["ci_high"] < max_similarity for row in embedder_last.values()
        ),
    }
    return InitialisationKept(
        kept=kept["linear_cka"],
        control=control["linear_cka"],
        deep=deep["linear_cka"],
        embedder_last={label: row["linear_cka"] for label, row in embedder_last.items()},
        checks=checks,
    )


@dataclass(frozen=True)
class LayerTasks:
    """The two per-family labels probed at every layer, and what was left out."""

    family_class: pd.Series  # product-class association per family (NaN: none; 'mixed')
    class_sizes: pd.Series  # families per association class, 'mixed' excluded
    kept_classes: pd.Index  # classes with enough families to probe
    class_rows: np.ndarray  # families probed for their class
    go_rows: np.ndarray  # families with a GO molecular-function annotation
    go_matrix: pd.DataFrame  # 0/1 frequent GO terms of the annotated families
    tasks: dict[str, ProbeTask]  # task name -> (kind, family rows, labels); primary first


def probe_tasks(
    settings: Profile, families: list[str], *, min_class_families: int, min_term_families: int
) -> LayerTasks:
    """Product-class association (multiclass; ``mixed`` and classes with fewer than
    ``min_class_families`` families excluded) and GO molecular function (multilabel over the
    terms held by at least ``min_term_families`` probed families; unannotated families left
    out, since they are unknown rather than known to lack every function)."""
    association = family_class_association(
        load_table(settings, "mibig_domain_counts"), load_table(settings, "mibig_classes")
    )
    family_class = association.reindex(families)
    class_sizes = family_class[family_class != "mixed"].value_counts()
    kept_classes = class_sizes[class_sizes >= min_class_families].index
    class_rows = np.flatnonzero(family_class.isin(kept_classes).to_numpy())
    class_labels = family_class.to_numpy()[class_rows]

    go = load_table(settings, "pfam_families").set_index("pfam")["go_molecular_function"]
    go = go.reindex(families)
    go_rows = np.flatnonzero(go.notna().to_numpy())
    go_matrix = frequent_label_matrix(go.iloc[go_rows], min_term_families)
    tasks: dict[str, ProbeTask] = {
        "product-class association": ("multiclass", class_rows, class_labels),
        f"GO molecular function (≥{min_term_families} families)": (
            "multilabel",
            go_rows,
            go_matrix.to_numpy(),
        ),
    }
    return LayerTasks(
        family_class=family_class,
        class_sizes=class_sizes,
        kept_classes=kept_classes,
        class_rows=class_rows,
        go_rows=go_rows,
        go_matrix=go_matrix,
        tasks=tasks,
    )


def _probed_models(space: FamilyLayers) -> dict[str, dict[int, np.ndarray]]:
    """Model name (as in ``layer_probes.csv``) -> layer -> representations."""
    return {
        f"ESM ({space.esm_model})": space.esm,
        **{f"BiGCARP {label}": space.bigcarp[init] for init, label in INITS.items()},
    }


def layer_probes(
    settings: Profile, space: FamilyLayers, tasks: Mapping[str, ProbeTask]
) -> tuple[pd.DataFrame, dict[tuple[str, str, int], ProbeResult]]:
    """(``layer_probes.csv``, the fits by (task, model, layer)): a probe on every layer of ESM
    and of both runs for every task, on the same families and folds, with the macro-F1 and its
    bootstrap interval over families. The probes are independent: one process each."""
    models = _probed_models(space)
    seeds = tuple(range(settings.seed, settings.seed + settings.probe_seeds))
    jobs = [(task, model, layer) for task in tasks for model in models for layer in models[model]]
    with limit(blas_threads=1), Parallel(n_jobs=settings.probe_jobs) as parallel:
        results = parallel(
            delayed(cross_validated_scores)(
                models[model][layer][tasks[task][1]],
                tasks[task][2],
                task=tasks[task][0],
                folds=settings.probe_folds,
                seeds=seeds,
            )
            for task, model, layer in jobs
        )
        intervals = parallel(
            delayed(bootstrap_ci)(
                result.y_true, result.oof_scores, "f1", settings.n_bootstrap, settings.seed
            )
            for result in results
        )
    rows = [
        {
            "task": task,
            "model": model,
            "layer": layer,
            "relative_depth": layer / max(models[model]),
            "metric": "macro-F1",
            "mean": point,
            "ci_low": low,
            "ci_high": high,
            "auc": result.mean()["auc"],
            "n_rows": len(tasks[task][1]),
            "n_seeds": len(seeds),
            "folds": settings.probe_folds,
        }
        for (task, model, layer), result, (point, low, high) in zip(
            jobs, results, intervals, strict=True
        )
    ]
    return pd.DataFrame.from_records(rows), dict(zip(jobs, results, strict=True))


def peaks(table: pd.DataFrame) -> pd.DataFrame:
    """The row of :func:`layer_probes`'s table where each (task, model) curve peaks."""
    return table.loc[table.groupby(["task", "model"], sort=False)["mean"].idxmax()]


def deeper_vs_embedder(
    settings: Profile, fits: Fits, space: FamilyLayers, peak_rows: pd.DataFrame
) -> pd.DataFrame:
    """Claim 3's tests: per task (in the order of the fits) and run, the paired bootstrap of
    the last layer's macro-F1 against the embedder's on the same families and folds;
    ``wins`` when one-sided p < ``SIGNIFICANCE``, with the layer where the run's curve peaks."""
    tasks = list(dict.fromkeys(task for task, _, _ in fits))
    records = []
    with limit(blas_threads=1):
        for task in tasks:
            for label in INITS.values():
                model = f"BiGCARP {label}"
                deep, embedder = fits[task, model, space.last], fits[task, model, 0]
                test = paired_bootstrap(
                    deep.y_true,
                    deep.oof_scores,
                    embedder.oof_scores,
                    "f1",
                    settings.n_bootstrap,
                    settings.seed,
                )
                peak = peak_rows[(peak_rows["task"] == task) & (peak_rows["model"] == model)]
                records.append(
                    {
                        "task": task,
                        "run": label,
                        **test,
                        "wins": test["p_value"] < SIGNIFICANCE,
                        "peak_layer": peak["layer"].iloc[0],
                    }
                )
    return pd.DataFrame.from_records(records)


def wins_by_task(deeper: pd.DataFrame) -> dict[str, int]:
    """Per task, in how many runs the last layer beats the embedder (:func:`deeper_vs_embedder`)."""
    return {task: int(group["wins"].sum()) for task, group in deeper.groupby("task", sort=False)}


def umap_inputs(
    space: FamilyLayers, family_class: pd.Series
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(panels, labels) for the UMAP of the families with a product-class association: both
    embedders, both last layers and the ESM layer that initialised the ESM-init table."""
    labelled = np.flatnonzero(family_class.notna().to_numpy())
    reps, last = space.bigcarp, space.last
    panels = {
        "ESM-init embedder": reps["esm"][0][labelled],
        "random-init embedder": reps["random"][0][labelled],
        f"ESM-init layer {last}": reps["esm"][last][labelled],
        f"random-init layer {last}": reps["random"][last][labelled],
        f"ESM layer {space.esm_init_layer}": space.esm[space.esm_init_layer][labelled],
    }
    return panels, family_class.to_numpy()[labelled]

"""Notebook 04, probe part: per-layer probes on Pfam-family tasks (claim 3: the deeper layers
are a more faithful record of what BiGCARP learned than its token table).

The families, layers and runs are :class:`crossgran.analysis.layers.FamilyLayers`; every layer
of every run is probed on the same families and folds, so layers can be compared row by row
(:func:`layer_probes`, :func:`deeper_vs_embedder`). Probe fits hold BLAS to one thread (see
:mod:`crossgran.analysis.layers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from crossgran.analysis.features import family_class_association, frequent_label_matrix
from crossgran.analysis.layers import INITS, FamilyLayers
from crossgran.analysis.paper import SIGNIFICANCE
from crossgran.analysis.probes import (
    ProbeResult,
    Task,
    bootstrap_ci,
    cross_validated_scores,
    paired_bootstrap,
)
from crossgran.data.tables import load_table
from crossgran.profiles import Profile
from crossgran.threads import limit

__all__ = [
    "LayerTasks",
    "deeper_vs_embedder",
    "layer_probes",
    "peaks",
    "probe_tasks",
    "umap_inputs",
    "wins_by_task",
]

Fits = Mapping[tuple[str, str, int], ProbeResult]
ProbeTask = tuple[Task, np.ndarray, np.ndarray]  # (task kind, rows of the families, labels)


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

"""Notebook 04, CKA part: where BiGCARP keeps what it learned, layer by layer, on Pfam families.

Every representation is a Pfam family: ESM's mean over the family's HMM consensus at every
layer, and BiGCARP's mean contextual vector of the family's tokens at the embedder (layer 0)
and after each ByteNet block, for the random-init and the ESM-init run (:data:`INITS`). The
families are paired by accession (:func:`family_layers`), never by position.

Claim 2 (the token table keeps its initialisation, the deeper layers move away from it) is read
from CKA, here: layer x layer within each run, ESM layers x BiGCARP layers, and the headline
pairs with bootstrap intervals (:func:`initialisation_kept`). Claim 3 (deeper layers are a more
faithful record of what the model learned) comes from per-layer probes on the same families
and folds (:mod:`crossgran.analysis.layer_tasks`).

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

from crossgran.analysis.cka import bootstrap_cka, cka_matrix, debiased_cka
from crossgran.analysis.paper import PAPER_CKA
from crossgran.analysis.rows import shared_rows
from crossgran.threads import limit

if TYPE_CHECKING:
    from crossgran.models.bigcarp import Representations
    from crossgran.models.esm import EmbeddingResult

__all__ = [
    "DEPTH",
    "INITS",
    "FamilyLayers",
    "InitialisationKept",
    "closest_esm_layers",
    "debiased_embedder_last",
    "esm_vs_bigcarp",
    "family_layers",
    "headline_cka",
    "initialisation_kept",
    "within_bigcarp",
]

INITS = {"random": "random-init", "esm": "ESM-init"}  # the BiGCARP runs compared, and their labels
DEPTH = "BiGCARP layer (0 = embedder)"


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
            PAPER_CKA["embedder0_vs_last", "random", "random"],
        ),
        "ESM-init embedder vs its last layer": (
            reps["esm"][0],
            reps["esm"][last],
            PAPER_CKA["embedder0_vs_last", "esm", "esm"],
        ),
        "ESM-init embedder vs random-init last layer": (
            reps["esm"][0],
            reps["random"][last],
            PAPER_CKA["embedder0_vs_last", "esm", "random"],
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

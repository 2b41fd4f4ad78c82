"""crossgran.analysis.layers and layer_tasks (notebook 04, claims 2 and 3).

Family alignment, the CKA tables and the verdicts are plumbing and arithmetic around
:mod:`crossgran.analysis.cka` and the probes, tested on small synthetic layers (the trained
runs take minutes) whose answers are known: the ESM-init embedder is planted to copy an ESM
layer, the last layers to carry the label. The probe tasks read the real smoke tables.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from crossgran.analysis import layer_tasks, layers
from crossgran.analysis.cka import cka_matrix, linear_cka
from crossgran.analysis.paper import PAPER_CKA
from crossgran.models.bigcarp import Representations
from crossgran.models.esm import EmbeddingResult

N_FAMILIES = 120


def _space(seed: int = 0) -> tuple[layers.FamilyLayers, np.ndarray]:
    """Aligned layers and a binary family label the BiGCARP last layers carry."""
    rng = np.random.default_rng(seed)
    label = rng.permutation(np.arange(N_FAMILIES) % 2)
    esm = {k: rng.normal(size=(N_FAMILIES, 8)) for k in range(3)}
    bigcarp = {}
    for init in layers.INITS:
        reps = {k: rng.normal(size=(N_FAMILIES, 6)) for k in range(4)}
        reps[3][:, 0] += 4.0 * label
        bigcarp[init] = reps
    bigcarp["esm"][0] = esm[1][:, :6] + 0.1 * rng.normal(size=(N_FAMILIES, 6))
    families = [f"PF{i:05d}" for i in range(N_FAMILIES)]
    return layers.FamilyLayers(
        families=families, esm=esm, bigcarp=bigcarp, esm_model="stand-in", esm_init_layer=1
    ), label


def test_family_layers_pairs_families_by_accession() -> None:
    space, _ = _space()
    rng = np.random.default_rng(1)
    esm_order, random_order = rng.permutation(N_FAMILIES), rng.permutation(N_FAMILIES)[:100]
    esm_pfam = EmbeddingResult(
        ids=[space.families[i] for i in esm_order],
        layers=(0, 1, 2),
        model_id="esm2_stand-in@abc123",
        num_layers=2,
        mean={k: v[esm_order] for k, v in space.esm.items()},
    )
    exported = {
        init: Representations(
            layers=[0, 1, 2, 3],
            families=[space.families[i] for i in order],
            family={k: v[order] for k, v in space.bigcarp[init].items()},
            bgc_ids=[],
            bgc={},
            adomain_ids=[],
            adomain={},
        )
        for init, order in (("random", random_order), ("esm", np.arange(N_FAMILIES)))
    }
    aligned = layers.family_layers(esm_pfam, exported, esm_layer=-2)
    assert aligned.families == sorted(space.families[i] for i in random_order)
    rows = [space.families.index(name) for name in aligned.families]
    assert np.array_equal(aligned.esm[2], space.esm[2][rows])
    assert np.array_equal(aligned.bigcarp["random"][3], space.bigcarp["random"][3][rows])
    assert np.array_equal(aligned.bigcarp["esm"][0], space.bigcarp["esm"][0][rows])
    assert (aligned.esm_model, aligned.esm_init_layer, aligned.esm_last, aligned.last) == (
        "esm2_stand-in",
        1,
        2,
        3,
    )


def test_cka_tables_and_the_closest_esm_layer() -> None:
    space, _ = _space()
    within = layers.within_bigcarp(space)
    assert list(within) == ["random-init", "ESM-init"]
    expected = cka_matrix(
        [space.bigcarp["esm"][k] for k in range(4)], [space.bigcarp["esm"][k] for k in range(4)]
    )
    assert np.array_equal(within["ESM-init"].to_numpy(), expected)
    assert within["ESM-init"].index.name == layers.DEPTH
    cross, table = layers.esm_vs_bigcarp(space)
    assert cross["ESM-init"].shape == (3, 4)
    assert list(table.columns) == ["init", "esm_layer", "bigcarp_layer", "cka", "closest"]
    assert table.groupby(["init", "bigcarp_layer"])["closest"].sum().eq(1).all()
    closest = layers.closest_esm_layers(table)
    assert closest.loc["ESM-init", 0].startswith("1 (")  # the planted copy of ESM layer 1
    assert set(closest.index) == {"random-init", "ESM-init"}


def test_headline_and_claim2_on_planted_layers() -> None:
    space, _ = _space()
    headline = layers.headline_cka(space, n_bootstrap=30, seed=0)
    assert list(headline.columns) == ["pair", "linear_cka", "ci_low", "ci_high", "paper_linear_cka"]
    rows = headline.set_index("pair")
    assert (
        rows.loc["ESM-init embedder vs its last layer", "paper_linear_cka"]
        == PAPER_CKA["embedder_vs_last", "esm", "esm"]
    )
    assert rows["paper_linear_cka"].isna().sum() == 3
    assert rows.loc["ESM-init last layer vs ESM", "linear_cka"] == pytest.approx(
        linear_cka(space.bigcarp["esm"][3], space.esm[1])
    )
    claim = layers.initialisation_kept(headline, max_similarity=0.5)
    assert list(claim.checks) == [
        "(a) ESM-init embedder closer to ESM than random-init embedder",
        "(b) ESM-init embedder closer to ESM than its last layer",
        "(c) embedder vs last layer CKA < 0.5 in both runs",
    ]
    assert claim.supported and claim.kept > 0.7 > claim.control
    # The same layers cannot pass a threshold below the embedder-vs-last similarity.
    strict = layers.initialisation_kept(headline, max_similarity=0.01)
    assert not strict.checks["(c) embedder vs last layer CKA < 0.01 in both runs"]
    assert not strict.supported
    debiased = layers.debiased_embedder_last(space)
    assert list(debiased) == ["random-init", "ESM-init"] and abs(debiased["random-init"]) < 0.2


def test_layer_probes_find_the_planted_deeper_layer(smoke_profile) -> None:
    space, label = _space()
    settings = replace(smoke_profile, probe_jobs=1, n_bootstrap=100)
    rows = np.arange(N_FAMILIES)
    tasks = {
        "planted": ("binary", rows, label),
        "planted twice": ("multilabel", rows, np.column_stack([label, 1 - label])),
    }
    table, fits = layer_tasks.layer_probes(settings, space, tasks)
    assert len(table) == len(fits) == 2 * (3 + 4 + 4)
    assert next(iter(fits)) == ("planted", "ESM (stand-in)", 0)
    assert table["relative_depth"].max() == 1.0 and (table["n_rows"] == N_FAMILIES).all()
    peaks = layer_tasks.peaks(table)
    assert len(peaks) == 2 * 3
    deeper = layer_tasks.deeper_vs_embedder(settings, fits, space, peaks)
    assert deeper[["task", "run"]].to_numpy().tolist() == [
        [task, run] for task in tasks for run in layers.INITS.values()
    ]
    assert deeper["wins"].all() and (deeper["peak_layer"] == 3).all()
    assert layer_tasks.wins_by_task(deeper) == {"planted": 2, "planted twice": 2}


def test_probe_tasks_on_real_smoke_tables(smoke_profile, smoke_build) -> None:
    from crossgran.data.tables import load_table

    families = sorted(load_table(smoke_profile, "pfam_families")["pfam"])
    tasks = layer_tasks.probe_tasks(
        smoke_profile, families, min_class_families=2, min_term_families=3
    )
    kind, class_rows, class_labels = tasks.tasks["product-class association"]
    assert kind == "multiclass" and np.array_equal(class_rows, tasks.class_rows)
    assert "mixed" not in set(class_labels)
    assert (tasks.class_sizes[tasks.kept_classes] >= 2).all()
    assert set(class_labels) == set(tasks.kept_classes)
    go_name = "GO molecular function (≥3 families)"
    assert list(tasks.tasks) == ["product-class association", go_name]
    kind, go_rows, go_labels = tasks.tasks[go_name]
    assert kind == "multilabel" and np.array_equal(go_rows, tasks.go_rows)
    assert go_labels.shape == (len(go_rows), tasks.go_matrix.shape[1])
    assert (tasks.go_matrix.sum() >= 3).all()
    panels, labels = layer_tasks.umap_inputs(_space_for(families), tasks.family_class)
    assert len(labels) == tasks.family_class.notna().sum()
    assert all(panel.shape[0] == len(labels) for panel in panels.values())


def _space_for(families: list[str]) -> layers.FamilyLayers:
    zeros = {k: np.zeros((len(families), 2)) for k in range(3)}
    return layers.FamilyLayers(
        families=families,
        esm=zeros,
        bigcarp={init: zeros for init in layers.INITS},
        esm_model="stand-in",
        esm_init_layer=1,
    )


def test_family_layers_refuses_duplicate_accessions() -> None:
    esm_pfam = EmbeddingResult(
        ids=["PF1", "PF1"], layers=(0,), model_id="m", num_layers=0, mean={0: np.zeros((2, 2))}
    )
    with pytest.raises(ValueError, match="duplicate"):
        layers.family_layers(esm_pfam, {}, esm_layer=0)

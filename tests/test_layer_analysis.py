"""crossgran.analysis.layers and layer_tasks (notebook 04, claims 2 and 3).

Family alignment, the CKA tables and the verdicts are plumbing and arithmetic around
:mod:`crossgran.analysis.cka` and the probes, tested on small synthetic layers (the trained
runs take minutes) whose answers are known: the ESM-init embedder is planted to copy an ESM
layer, the last layers to carry the label. The probe tasks read the real smoke tables.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from crossgran.analysis import layer_tasks, layers
from crossgran.analysis.cka import cka_matrix, linear_cka
from crossgran.analysis.comparisons import TEST_COLUMNS, claim_verdicts
from crossgran.analysis.controls import random_family_vectors
from crossgran.analysis.features import family_class_association
from crossgran.analysis.paper import PAPER_CKA
from crossgran.data.split import association_label_bgcs
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
        == PAPER_CKA["embedder0_vs_last", "esm", "esm"]
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


def _exports(
    space: layers.FamilyLayers, *, untrained_carries: str | None = None, seed: int = 2
) -> dict[str, Representations]:
    """Exports of both runs (``"<init>"``) and their epoch-0 checkpoints
    (``"<init>~untrained"``), each in its own row order with a family the space lacks.

    ``family_disjoint`` of a trained run holds the planted layers of ``space``; its ``family``
    is noise, so a probe that read it would find nothing. The untrained checkpoints are noise,
    except the last layer of run ``untrained_carries``, which carries the label as strongly as
    the trained one (a deep layer that only matches its untrained self).
    """
    rng = np.random.default_rng(seed)
    names = [*space.families, "PF99999"]
    exported = {}
    for init in layers.INITS:
        for suffix in ("", "~untrained"):
            reps = {k: rng.normal(size=(len(names), 6)) for k in range(4)}
            if suffix == "":
                for k, values in space.bigcarp[init].items():
                    reps[k][:-1] = values
            elif init == untrained_carries:
                reps[3][:-1] = space.bigcarp[init][3]
            order = rng.permutation(len(names))
            exported[init + suffix] = Representations(
                layers=[0, 1, 2, 3],
                families=[names[i] for i in order],
                family={k: rng.normal(size=(len(names), 6)) for k in range(4)},
                bgc_ids=[],
                bgc={},
                adomain_ids=[],
                adomain={},
                family_disjoint={k: v[order] for k, v in reps.items()},
            )
    return exported


def _esm_untrained(space: layers.FamilyLayers, seed: int = 3) -> EmbeddingResult:
    """Untrained-ESM stand-in in a shuffled row order; row i of layer k is ``1000 k + i`` for
    the i-th family of ``space``, so alignment is visible in the values."""
    order = np.random.default_rng(seed).permutation(N_FAMILIES)
    return EmbeddingResult(
        ids=[space.families[i] for i in order],
        layers=(0, 1, 2),
        model_id="esm2_stand-in@untrained",
        num_layers=2,
        mean={k: np.repeat(1000.0 * k + order[:, None], 8, axis=1) for k in range(3)},
    )


MODELS = [
    "ESM (stand-in)",
    "ESM (stand-in) (untrained)",
    "BiGCARP random-init",
    "BiGCARP random-init (untrained)",
    "BiGCARP ESM-init",
    "BiGCARP ESM-init (untrained)",
    layer_tasks.RANDOM_MODEL,
]


def test_probed_models_align_by_accession_and_read_the_disjoint_average() -> None:
    space, _ = _space()
    exported = _exports(space)
    families = space.families[::-3]  # a subset, in another order than every source
    models = layer_tasks.probed_models(space, families, _esm_untrained(space), exported, seed=11)
    assert list(models) == MODELS
    in_space = [space.families.index(name) for name in families]
    assert np.array_equal(models["ESM (stand-in)"][2], space.esm[2][in_space])
    untrained = models["ESM (stand-in) (untrained)"]
    assert np.array_equal(untrained[2][:, 0], 2000.0 + np.asarray(in_space))
    for init, label in layers.INITS.items():
        for suffix, tag in (("", ""), ("~untrained", layer_tasks.UNTRAINED_LABEL)):
            export = exported[init + suffix]
            rows = [export.families.index(name) for name in families]
            model = models[f"BiGCARP {label}{tag}"]
            assert sorted(model) == [0, 1, 2, 3]
            assert np.array_equal(model[3], export.family_disjoint[3][rows])
            assert not np.allclose(model[3], export.family[3][rows])  # never the full average
        assert np.array_equal(models[f"BiGCARP {label}"][3], space.bigcarp[init][3][in_space])
    # Chance floor: one fixed vector per family, as wide as BiGCARP, seeded by the profile.
    random = models[layer_tasks.RANDOM_MODEL]
    assert list(random) == [0] and random[0].shape == (len(families), 6)
    assert np.array_equal(random[0], random_family_vectors(families, 6, 11))
    again = layer_tasks.probed_models(
        space, families[::-1], _esm_untrained(space), exported, seed=11
    )
    assert np.array_equal(again[layer_tasks.RANDOM_MODEL][0], random[0][::-1])


def test_disjoint_families_drop_a_family_any_export_lacks_a_vector_for() -> None:
    space, _ = _space()
    exported = _exports(space)
    assert layer_tasks.disjoint_families(space, exported) == space.families
    untrained = exported["random~untrained"]
    untrained.family_disjoint[0][untrained.families.index("PF00004")] = np.nan
    trained = exported["esm"]
    trained.family_disjoint[0][trained.families.index("PF00100"), 2] = np.nan
    kept = layer_tasks.disjoint_families(space, exported)
    assert kept == [name for name in space.families if name not in {"PF00004", "PF00100"}]


def test_claim3_holds_where_only_the_trained_last_layer_carries_the_label(smoke_profile) -> None:
    """Planted: both trained last layers carry the label; the embedders, the random projection
    and the ESM-init epoch-0 checkpoint do not, but the random-init epoch-0 checkpoint's last
    layer carries it too. Claim 3 holds for the ESM-init run only, and for neither on a task
    whose label nothing carries."""
    space, label = _space()
    settings = replace(smoke_profile, probe_jobs=1, n_bootstrap=200)
    exported = _exports(space, untrained_carries="random")
    families = layer_tasks.disjoint_families(space, exported)
    models = layer_tasks.probed_models(
        space, families, _esm_untrained(space), exported, seed=settings.seed
    )
    rows = np.arange(N_FAMILIES)
    noise = np.random.default_rng(4).permutation(label)
    tasks = {"planted": ("binary", rows, label), "nothing": ("binary", rows, noise)}
    table, fits = layer_tasks.layer_probes(settings, models, tasks)
    assert len(table) == len(fits) == 2 * (3 + 3 + 4 * 4 + 1)
    assert next(iter(fits)) == ("planted", "ESM (stand-in)", 0)
    assert (table["n_rows"] == N_FAMILIES).all() and table["relative_depth"].max() == 1.0
    peaks = layer_tasks.peaks(table).set_index(["task", "model"])["layer"]
    assert peaks["planted", "BiGCARP ESM-init"] == 3
    assert peaks["planted", "BiGCARP random-init (untrained)"] == 3

    tests = layer_tasks.claim3_tests(settings, fits, last=3)
    assert list(tests.columns) == TEST_COLUMNS
    assert len(tests) == 2 * 2 * 3 and (tests["kind"] == "above").all()
    esm = tests[(tests["task"] == "planted") & (tests["property"] == "ESM-init")]
    assert set(esm["candidate"]) == {"BiGCARP ESM-init last layer"}
    assert list(esm["rival"]) == [
        "BiGCARP ESM-init embedder",
        "BiGCARP ESM-init (untrained) last layer",
        layer_tasks.RANDOM_MODEL,
    ]
    assert (esm["rivals"] == esm["rival"]).all()
    verdicts = claim_verdicts(tests).set_index(["task", "property", "rival"])["verdict"]
    assert verdicts["planted", "random-init", "BiGCARP random-init embedder"] == "holds"
    assert verdicts["planted", "random-init", layer_tasks.RANDOM_MODEL] == "holds"
    assert (
        verdicts["planted", "random-init", "BiGCARP random-init (untrained) last layer"] != "holds"
    )
    held = layer_tasks.claim3_runs(tests, "planted")
    assert held.to_dict() == {"random-init": False, "ESM-init": True}
    assert not layer_tasks.claim3_runs(tests, "nothing").any()


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


def test_family_class_association_is_read_from_the_label_bgcs_only(monkeypatch) -> None:
    """Planted MIBiG: PF_SPLIT sits in the NRPS label BGCs and in the polyketide BGCs that
    are not label BGCs; PF_UNSEEN only in BGCs that are not label BGCs. Read from the label
    BGCs alone, PF_SPLIT is NRPS and PF_UNSEEN has no association (over all BGCs both would
    be labelled otherwise)."""
    ids = [f"BGC{i:07d}" for i in range(200)]
    label_bgc = dict(zip(ids, association_label_bgcs(ids), strict=True))
    classes = pd.DataFrame(
        {
            "bgc_id": ids,
            "classes": ["NRPS" if i % 2 == 0 else "Polyketide" for i in range(len(ids))],
            "labelled": True,
        }
    )
    kind = classes.set_index("bgc_id")["classes"]
    members = {
        "PF_SPLIT": [b for b in ids if (kind[b] == "NRPS") == label_bgc[b]],
        "PF_OTHER": [b for b in ids if kind[b] == "Polyketide" and label_bgc[b]],
        "PF_UNSEEN": [b for b in ids if not label_bgc[b]],
    }
    counts = pd.DataFrame(
        [(bgc, pfam, 1) for pfam, bgcs in members.items() for bgc in bgcs],
        columns=["bgc_id", "pfam", "count"],
    )
    families = ["PF_UNSEEN", "PF_SPLIT", "PF_OTHER"]
    go = pd.DataFrame({"pfam": families, "go_molecular_function": ["GO:1", "GO:1", None]})
    tables = {"mibig_domain_counts": counts, "mibig_classes": classes, "pfam_families": go}
    monkeypatch.setattr(layer_tasks, "load_table", lambda settings, name: tables[name])
    tasks = layer_tasks.probe_tasks(None, families, min_class_families=1, min_term_families=1)
    assert list(tasks.family_class.index) == families
    assert pd.isna(tasks.family_class["PF_UNSEEN"])
    assert tasks.family_class[["PF_SPLIT", "PF_OTHER"]].tolist() == ["NRPS", "Polyketide"]
    kind_, rows, labels = tasks.tasks["product-class association"]
    assert kind_ == "multiclass" and rows.tolist() == [1, 2]
    assert labels.tolist() == ["NRPS", "Polyketide"]
    assert tasks.go_rows.tolist() == [0, 1]
    # The same tables over every BGC label both differently: the test can tell them apart.
    everywhere = family_class_association(counts, classes).reindex(families)
    assert everywhere["PF_UNSEEN"] == "Polyketide" and everywhere["PF_SPLIT"] != "NRPS"


def test_family_class_association_normalises_by_the_label_bgcs_class_sizes(monkeypatch) -> None:
    """Among the label BGCs, PF_X is in 6 of 10 NRPS and 4 of 10 polyketide BGCs: NRPS. The
    30 NRPS BGCs that are not label BGCs must not dilute the NRPS rate (6/40 against 4/10
    would make it polyketide)."""
    ids = [f"BGC{i:07d}" for i in range(400)]
    mask = association_label_bgcs(ids)
    label, other = np.asarray(ids)[mask][:20].tolist(), np.asarray(ids)[~mask][:30].tolist()
    nrps, pks = label[:10], label[10:]
    classes = pd.DataFrame(
        {
            "bgc_id": [*nrps, *pks, *other],
            "classes": ["NRPS"] * 10 + ["Polyketide"] * 10 + ["NRPS"] * 30,
            "labelled": True,
        }
    )
    members = {"PF_X": nrps[:6] + pks[:4], "PF_BACKGROUND": nrps + pks + other}
    counts = pd.DataFrame(
        [(bgc, pfam, 1) for pfam, bgcs in members.items() for bgc in bgcs],
        columns=["bgc_id", "pfam", "count"],
    )
    go = pd.DataFrame({"pfam": ["PF_X"], "go_molecular_function": ["GO:1"]})
    tables = {"mibig_domain_counts": counts, "mibig_classes": classes, "pfam_families": go}
    monkeypatch.setattr(layer_tasks, "load_table", lambda settings, name: tables[name])
    tasks = layer_tasks.probe_tasks(None, ["PF_X"], min_class_families=1, min_term_families=1)
    assert tasks.family_class["PF_X"] == "NRPS"


def test_umap_inputs_pair_labels_with_their_families_by_accession() -> None:
    families = [f"PF{i:05d}" for i in range(8)]
    space = _space_for(families)
    space.bigcarp["esm"][0][:] = np.arange(len(families))[:, None]  # row i: its family's index
    family_class = pd.Series(
        ["NRPS", None, "mixed", "RiPP"], index=["PF00006", "PF00001", "PF00003", "PF00000"]
    )
    panels, labels = layer_tasks.umap_inputs(space, family_class)
    assert labels.tolist() == ["NRPS", "mixed", "RiPP"]
    assert panels["ESM-init embedder"][:, 0].tolist() == [6, 3, 0]
    assert list(panels) == [
        "ESM-init embedder",
        "random-init embedder",
        "ESM-init layer 3",
        "random-init layer 3",
        "ESM layer 1",
    ]


def _space_for(families: list[str]) -> layers.FamilyLayers:
    """Zero layers (ESM 0-2, BiGCARP 0-3), every array its own."""
    esm = {k: np.zeros((len(families), 2)) for k in range(3)}
    return layers.FamilyLayers(
        families=families,
        esm=esm,
        bigcarp={
            init: {k: np.zeros((len(families), 2)) for k in range(4)} for init in layers.INITS
        },
        esm_model="stand-in",
        esm_init_layer=1,
    )


def test_family_layers_refuses_duplicate_accessions() -> None:
    esm_pfam = EmbeddingResult(
        ids=["PF1", "PF1"], layers=(0,), model_id="m", num_layers=0, mean={0: np.zeros((2, 2))}
    )
    with pytest.raises(ValueError, match="duplicate"):
        layers.family_layers(esm_pfam, {}, esm_layer=0)


def test_layer_probes_refuse_a_task_without_two_classes(smoke_profile, smoke_build) -> None:
    """Real smoke tables with a minimum no class reaches: the probe says what is missing and
    the fix, before any fit (not a scikit-learn error from a worker)."""
    from crossgran.data.tables import load_table

    families = sorted(load_table(smoke_profile, "pfam_families")["pfam"])
    tasks = layer_tasks.probe_tasks(
        smoke_profile, families, min_class_families=10_000, min_term_families=3
    )
    models = {"noise": {0: np.zeros((len(families), 4))}}
    with pytest.raises(ValueError, match=r"'product-class association' has 0 classes.*Fix: "):
        layer_tasks.layer_probes(smoke_profile, models, tasks.tasks)
    without_terms = layer_tasks.probe_tasks(
        smoke_profile, families, min_class_families=2, min_term_families=10_000
    )
    with pytest.raises(ValueError, match=r"GO molecular function .* has 0 labels"):
        layer_tasks.layer_probes(smoke_profile, models, without_terms.tasks)

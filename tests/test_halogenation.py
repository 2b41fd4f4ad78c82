"""The halogenation task offline, on real data: the BGCs whose GECCO bag holds PF04820, labelled
from NPLinker's MIBiG 2.0 structures (RDKit), BiGCARP features read from a tiny run trained on
the built corpus, and the probe tables in the comparisons format.

The build keeps smoke's protein subsets but the first 800 MIBiG BGCs: the first 300 (smoke's)
hold no non-halogenated halogenase BGC, the first 800 hold four, enough for smoke's 3 folds.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import make_project_root

from crossgran.analysis import halogenation
from crossgran.analysis.comparisons import PROBE_TEST_COLUMNS
from crossgran.analysis.controls import random_family_vectors
from crossgran.analysis.halogenation_probe import TASK, halogenation_tables
from crossgran.analysis.rows import rows_of
from crossgran.data.pfam import AMP_BINDING, TRP_HALOGENASE
from crossgran.data.tables import OFFLINE_TABLES, build_all, load_table
from crossgran.models import runs
from crossgran.models.bigcarp import (
    Representations,
    Vocabulary,
    export_representations,
    layer_representations,
    load_checkpoint,
    train_mlm,
)
from crossgran.profiles import BigcarpConfig, Profile, get_profile
from crossgran.threads import limit

TINY = BigcarpConfig(
    d_model=16,
    n_layers=2,
    kernel_size=3,
    r=2,
    d_embedding=8,
    epochs=1,
    batch_size=16,
    max_len=64,
    n_orders=2,
)
NOT_HALOGENATED = ["BGC0000413", "BGC0000837", "BGC0000838", "BGC0000839"]
BIGCARP_SETS = [
    "bigcarp_domain",
    "bigcarp_mean",
    "bigcarp_domain~untrained",
    "bigcarp_mean~untrained",
    "bigcarp_domain~random",
    "bigcarp_mean~random",
]


# The fixtures build tables and train a model (about a minute on a busy 2-core machine).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run faster (and reproducibly) on one thread of a busy 2-core machine."""
    with limit(torch_threads=1):
        yield


@pytest.fixture(scope="module")
def profile(smoke_build, smoke_profile: Profile, tmp_path_factory) -> Profile:
    """Smoke's tables with 800 BGCs, built reusing the smoke build's annotation cache."""
    root = make_project_root(tmp_path_factory.mktemp("halogenation"))
    (root / "data" / "cache").symlink_to(smoke_profile.cache_dir, target_is_directory=True)
    profile = get_profile("smoke", root=root, max_bgcs=800, bigcarp=TINY, n_bootstrap=100)
    build_all(profile)
    return profile


@pytest.fixture(scope="module")
def run_dir(profile: Profile) -> Path:
    corpus = load_table(profile, "domain_corpus")
    out = runs.bigcarp_run_dir(profile, "random")
    train_mlm(
        corpus,
        Vocabulary.from_corpus(corpus),
        profile.bigcarp,
        init_mode="random",
        out_dir=out,
        seed=profile.seed,
    )
    return out


@pytest.fixture(scope="module")
def exported(profile: Profile, run_dir: Path) -> dict[str, Representations]:
    """The run's exports as notebook 02 makes them: the profile's checkpoint and epoch 0."""
    corpus = load_table(profile, "domain_corpus")
    adomains = load_table(profile, "adomains")
    return {
        suffix: export_representations(
            run_dir,
            corpus,
            adomains,
            n_orders=profile.bigcarp.n_orders,
            seed=profile.seed,
            epoch=epoch,
        )
        for suffix, epoch in (("", profile.bigcarp.checkpoint), ("~untrained", 0))
    }


def test_build_writes_the_offline_task_table(profile: Profile) -> None:
    manifest = json.loads(profile.manifest_path.read_text())
    assert set(manifest["outputs"]) == set(OFFLINE_TABLES)
    table = load_table(profile, halogenation.OFFLINE_TABLE)
    counts = load_table(profile, "mibig_domain_counts")
    assert list(table["bgc_id"]) == sorted(
        set(counts.loc[counts["pfam"] == TRP_HALOGENASE, "bgc_id"])
    )
    rows, duplicates = halogenation.offline_rows(profile)
    assert duplicates == 0 and rows["bgc_id"].is_monotonic_increasing
    assert sorted(rows.loc[~rows["has_halogen"].astype(bool), "bgc_id"]) == NOT_HALOGENATED
    assert len(table) == 32 and len(rows) == int(table["has_halogen"].notna().sum()) == 31


def test_bag_tokens_are_read_at_the_family_in_every_order(run_dir: Path) -> None:
    run = load_checkpoint(run_dir, "last")
    other = "PF00668"  # condensation domain: in the vocabulary of any NRPS corpus
    bags = {
        "mixed": [TRP_HALOGENASE, other, AMP_BINDING, TRP_HALOGENASE],
        "alone": [TRP_HALOGENASE] * 3,
        "pair": [other, TRP_HALOGENASE],
    }
    reps = halogenation.bag_token_representations(
        run, bags, TRP_HALOGENASE, [0, -1], n_orders=3, seed=0
    )
    embedder, last = reps[0], reps[TINY.n_layers]
    assert embedder.shape == last.shape == (3, TINY.d_model)
    token = layer_representations(run.model, run.vocab, [[TRP_HALOGENASE]], [0])[0][0][0]
    np.testing.assert_allclose(embedder, np.tile(token, (3, 1)), rtol=1e-5, atol=1e-6)
    # Every order of a bag of one family is the same sentence: its mean over the positions.
    alone = layer_representations(run.model, run.vocab, [bags["alone"]], [-1])[0][0]
    np.testing.assert_allclose(last[1], alone.mean(axis=0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(last[0], last[2])  # the context is read
    with pytest.raises(ValueError, match=f"1 bag.*no {TRP_HALOGENASE} token, e.g. none"):
        halogenation.bag_token_representations(
            run, {"none": [other]}, TRP_HALOGENASE, [-1], n_orders=1, seed=0
        )


def test_features_have_the_rows_and_widths_of_the_task(
    profile: Profile, run_dir: Path, exported: dict[str, Representations]
) -> None:
    data = halogenation.halogenation_features(profile, exported, run_dir)
    rows, _ = halogenation.offline_rows(profile)
    assert list(data.features) == [*BIGCARP_SETS, "pfam_counts", "random"]  # no ESM offline
    n = len(rows)
    for name in [*BIGCARP_SETS, "random"]:
        assert data.features[name].shape == (n, TINY.d_model), name
        assert np.isfinite(data.features[name]).all(), name
    counts = load_table(profile, "mibig_domain_counts")
    families = counts.loc[counts["bgc_id"].isin(set(rows["bgc_id"])), "pfam"].nunique()
    assert data.features["pfam_counts"].shape == (n, families)
    assert list(data.groups) == list(rows["bgc_id"])
    assert data.labels.tolist() == rows["has_halogen"].astype(int).tolist()
    trained = exported[""]
    np.testing.assert_array_equal(
        data.features["bigcarp_mean"],
        trained.bgc[trained.layers[-1]][rows_of(trained.bgc_ids, list(rows["bgc_id"]))],
    )
    token = random_family_vectors([TRP_HALOGENASE], TINY.d_model, profile.seed)
    np.testing.assert_array_equal(data.features["bigcarp_domain~random"], np.repeat(token, n, 0))
    assert not np.allclose(data.features["bigcarp_domain"], data.features["bigcarp_mean"])
    assert not np.allclose(
        data.features["bigcarp_domain"], data.features["bigcarp_domain~untrained"]
    )
    # Context: two BGCs' halogenase tokens differ (different bags), unlike the random control.
    assert not np.allclose(data.features["bigcarp_domain"][0], data.features["bigcarp_domain"][1])


def test_features_refuse_an_export_from_another_checkpoint(
    profile: Profile, run_dir: Path, exported: dict[str, Representations]
) -> None:
    misdated = {**exported, "": dataclasses.replace(exported["~untrained"], epoch=1)}
    with pytest.raises(ValueError, match="is not the model the export was made from"):
        halogenation.halogenation_features(profile, misdated, run_dir)
    with pytest.raises(ValueError, match=r"needs one run's exports keyed '' .* '~untrained'"):
        halogenation.halogenation_features(profile, {"": exported[""]}, run_dir)
    undated = {**exported, "": dataclasses.replace(exported[""], epoch=None)}
    with pytest.raises(ValueError, match=r"does not record its checkpoint epoch.*re-export"):
        halogenation.halogenation_features(profile, undated, run_dir)


def test_tables_hold_each_probe_and_its_tests(
    profile: Profile, run_dir: Path, exported: dict[str, Representations]
) -> None:
    settings = dataclasses.replace(profile, paper_probes=True)
    table, tests, notes = halogenation_tables(settings, exported, run_dir)
    sets = [*BIGCARP_SETS, "pfam_counts", "random"]
    assert set(table["probe"]) == {"MLP (512, 128)", "linear probe"}
    for probe, rows in table.groupby("probe"):
        assert sorted(rows["feature_set"].unique()) == sorted(sets), probe
        assert (rows["n_rows"] == 31).all() and len(rows) == 3 * len(sets)
    auc = table[table["metric"] == "auc"].set_index(["probe", "feature_set"])["mean"]
    assert auc[("linear probe", "bigcarp_domain~random")] == 0.5  # one vector for every BGC
    assert table.columns[0] == "probe"
    assert list(tests.columns) == PROBE_TEST_COLUMNS
    assert (tests["metric"] == "auc").all() and (tests["property"] == "").all()
    assert (tests["task"] == TASK).all()
    assert list(tests["probe"].unique()) == ["linear probe", "MLP (512, 128)"]
    expected = {
        *(
            (name, f"{name}~{control}")
            for name in ("bigcarp_domain", "bigcarp_mean")
            for control in ("random", "untrained")
        ),
        ("bigcarp_domain", "pfam_counts"),
        ("bigcarp_mean", "pfam_counts"),
    }
    for probe, rows in tests.groupby("probe"):
        assert set(zip(rows["candidate"], rows["rival"], strict=True)) == expected, probe
    assert tests[["delta", "low", "high", "p_value"]].notna().all().all()
    assert notes[0].startswith(f"{len(load_table(profile, 'halogenase_bgcs'))} BGCs with a")
    assert notes[1].startswith("probed: 31 BGCs, 27 halogenated and 4 not; 0 BGCs dropped")
    assert any("not testable here" in note for note in notes)


def test_tables_skip_a_task_the_folds_cannot_hold(
    profile: Profile, run_dir: Path, exported: dict[str, Representations]
) -> None:
    five = dataclasses.replace(profile, probe_folds=5)  # 4 non-halogenated BGCs
    table, tests, notes = halogenation_tables(five, exported, run_dir)
    assert table.empty and tests.empty and list(tests.columns) == PROBE_TEST_COLUMNS
    assert tests["delta"].dtype == float  # concatenated with other tasks' tests, keeps theirs
    assert notes[-1] == "not run: the rarer label is held by 4 BGCs, fewer than 5 folds"

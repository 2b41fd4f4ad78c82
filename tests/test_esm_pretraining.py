"""The local ESM's pretraining material, on PARAS's real NRPS proteins and A-domains and
pyhmmer's proteome: the probed A-domains are cut out wherever they occur, only real proteins
are trained on, and the held-out split keeps every fragment of a protein on one side."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from dataclasses import replace

import pandas as pd
import pytest
from conftest import make_project_root

import crossgran.models.esm as cesm
from crossgran.data.adomains import PARAS_DIR
from crossgran.data.readers import read_fasta_member
from crossgran.data.sources import fetch_wheel
from crossgran.data.split import split_of
from crossgran.data.tables import profile_proteins, table_path
from crossgran.models import runs
from crossgran.profiles import EsmConfig, Profile
from crossgran.threads import limit

pretrain = importlib.import_module("crossgran.models.esm.pretrain")

TINY = EsmConfig(
    spec="local:tiny",
    num_layers=1,
    embed_dim=16,
    attention_heads=2,
    train_steps=3,
    train_batch_tokens=512,
    train_max_len=64,
    valid_fraction=0.2,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    with limit(torch_threads=1):
        yield


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    """A scratch profile over the first 15 NRPS proteins and 25 proteome proteins."""
    root = make_project_root(tmp_path_factory.mktemp("pretraining"))
    return Profile(
        name="scratch",
        root=root,
        max_nrps_proteins=15,
        max_proteome_proteins=25,
        torch_threads=1,
        esm=TINY,
    )


@pytest.fixture(scope="module")
def adomains(profile: Profile) -> list[str]:
    """Every PARAS A-domain sequence (most have parents outside the scratch subset)."""
    paras = fetch_wheel("paras", profile.raw_dir)
    return sorted(set(read_fasta_member(paras, f"{PARAS_DIR}/domains.fasta").values()))


@pytest.fixture(scope="module")
def proteins(profile: Profile) -> tuple[dict[str, str], dict[str, str]]:
    return profile_proteins(profile)


def test_every_adomain_occurrence_is_cut_and_the_flanks_add_up(proteins, adomains) -> None:
    nrps, proteome = proteins
    records = [*nrps.items(), *proteome.items()]
    fragments = cesm.excise_segments(records, adomains)
    counts = fragments.counts
    cleaned = {name: cesm.clean_sequence(name, s) for name, s in records}

    assert not [f for f in fragments.sequences for d in adomains if d in f]
    assert counts["proteins"] == len(records) and counts["proteins_cut"] == len(nrps)
    assert counts["segments"] == len(adomains) and 0 < counts["segments_not_found"] < len(adomains)
    assert counts["occurrences_cut"] >= counts["proteins_cut"]
    assert counts["fragments"] == len(fragments.sequences) == len(fragments.groups)
    assert counts["residues"] == sum(map(len, fragments.sequences))
    assert counts["residues"] + counts["residues_excised"] + counts[
        "residues_in_short_flanks"
    ] == sum(map(len, cleaned.values()))
    # Every fragment comes from the protein its group names; the proteome (no A-domains) is
    # kept whole, and every flank of an NRPS protein is at least MIN_FRAGMENT_LENGTH long.
    assert all(f in g for f, g in zip(fragments.sequences, fragments.groups, strict=True))
    whole = {cleaned[name] for name in proteome}
    assert whole <= set(fragments.sequences)
    flanks = [f for f in fragments.sequences if f not in whole]
    assert flanks and min(map(len, flanks)) >= cesm.MIN_FRAGMENT_LENGTH


def test_an_adomain_copied_into_another_protein_is_cut_there_too(proteins, adomains) -> None:
    _, proteome = proteins
    left, right = (cesm.clean_sequence(n, s) for n, s in list(proteome.items())[:2])
    chimera = left + adomains[0] + right + adomains[0][:10]
    fragments = cesm.excise_segments([("chimera", chimera)], adomains[:1])
    assert fragments.sequences == [left, right + adomains[0][:10]]
    assert fragments.groups == [chimera, chimera]
    assert fragments.counts["residues_excised"] == len(adomains[0])
    # A flank shorter than the minimum is dropped and counted.
    short = cesm.excise_segments([("short", "MKV" + adomains[0] + right)], adomains[:1])
    assert short.sequences == [right]
    assert (
        short.counts["short_flanks_dropped"] == 1 and short.counts["residues_in_short_flanks"] == 3
    )


def test_the_split_keeps_each_protein_on_one_side(proteins, adomains) -> None:
    nrps, proteome = proteins
    fragments = cesm.excise_segments([*nrps.items(), *proteome.items()], adomains)
    train, valid = cesm.split_by_group(fragments.sequences, fragments.groups, 0.2)
    held = cesm.held_out_groups(fragments.groups, 0.2)
    assert held == {g for g in fragments.groups if split_of(g, 0.2) == "valid"} and held
    side = {s: "valid" for s in valid} | {s: "train" for s in train}
    for fragment, group in zip(fragments.sequences, fragments.groups, strict=True):
        assert side[fragment] == ("valid" if group in held else "train")
    # A fragment shared by a held-out and a training protein is held out only.
    shared = valid[0]
    trained_group = next(g for g in fragments.groups if g not in held)
    again_train, again_valid = cesm.split_by_group(
        [*fragments.sequences, shared], [*fragments.groups, trained_group], 0.2
    )
    assert shared in again_valid and shared not in again_train
    # Tiny inputs whose hashes hold nothing out still hold out one whole group.
    groups = sorted(g for g in set(fragments.groups) if g not in held)[:2]
    pieces = [g[:40] for g in groups] + [g[-40:] for g in groups]
    tiny_train, tiny_valid = cesm.split_by_group(pieces, groups + groups, 0.2)
    assert len(tiny_valid) == 2 and len(tiny_train) == 2
    with pytest.raises(ValueError, match="3 sequences but 2 groups"):
        cesm.split_by_group(pieces[:3], groups, 0.2)


def test_pretraining_uses_real_proteins_without_adomains_or_pfam_consensus(
    profile: Profile, proteins, adomains, monkeypatch: pytest.MonkeyPatch
) -> None:
    nrps, _ = proteins
    profile.processed_dir.mkdir(parents=True, exist_ok=True)
    probed = [d for d in adomains if any(d in s for s in nrps.values())]
    pd.DataFrame({"sequence": probed}).to_csv(
        table_path(profile, "adomains"), sep="\t", index=False
    )
    # No pfam_families table exists here: loading it (for the consensus sequences) would fail.
    assert not table_path(profile, "pfam_families").exists()

    trained = runs.pretrain_local_esm(profile)
    fragments = runs.esm_pretraining_fragments(profile)
    assert not [f for f in fragments.sequences for d in probed if d in f]
    counts = trained.corpus
    assert list(trained.history.columns) == list(cesm.HISTORY_COLUMNS)
    assert counts["segments"] == len(probed) and counts["segments_not_found"] == 0
    assert counts["valid_proteins"] > 0 and counts["train_proteins"] > counts["valid_proteins"]
    stored = json.loads(
        (cesm.local_model_dir(TINY.spec, profile.models_dir) / "config.json").read_text()
    )
    assert (stored["n_train"], stored["n_valid"]) == (
        counts["train_fragments"],
        counts["valid_fragments"],
    )

    def no_training(*_args, **_kwargs):
        raise AssertionError("retrained although an identical model exists")

    monkeypatch.setattr(pretrain, "_train", no_training)
    reused = runs.pretrain_local_esm(profile)
    assert reused.history["valid_loss"].tolist() == trained.history["valid_loss"].tolist()
    # The same fragments held out one by one instead of by protein are other data: the
    # stored model is not taken for them.
    with pytest.raises(AssertionError, match="retrained"):
        cesm.train_local_esm(
            fragments.sequences,
            TINY,
            out_dir=cesm.local_model_dir(TINY.spec, profile.models_dir),
            seed=profile.seed,
            groups=fragments.sequences,
        )


def test_published_models_are_not_pretrained(profile: Profile) -> None:
    assert runs.pretrain_local_esm(replace(profile, esm=EsmConfig(spec="esm2_t6_8M_UR50D"))) is None

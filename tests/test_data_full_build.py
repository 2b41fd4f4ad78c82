"""A downloading profile's table build (``full``) on a loopback release, and the halogenation
task's features.

What the 127.0.0.1 server holds (fetched by ``build_all`` through ``$CROSSGRAN_MIRROR``; the
files are written by the shared builders of ``standins``):

* ``Pfam-A.hmm.gz``: seven real Pfam 35.0 HMMs from GECCO's pinned subset, written with
  pyhmmer (the families of BGC0001090, of the NRPS A-domains, and the tryptophan halogenase);
* ``Pfam-A.clans.tsv.gz``: one row per family in the release's five-column layout (the clan
  values are fixture-only; the test checks how they are read, not Pfam's clan assignments);
* MIBiG JSON and GenBank tarballs: pyhmmer's real BGC0001090.gbk, plus synthetic clusters
  BGC99000xx whose CDS translations are Pfam consensus sequences, so where hmmsearch must find
  each domain, and hence each token index, is known in advance. Compound structures are real
  PARAS SMILES (3-chlorotyrosine, valine) and its one unparsable SMILES.

The halogenation features (``crossgran.analysis.halogenation.halogenation_features``) are read
from a one-epoch BiGCARP run on the built corpus and a tiny random ESM: each representation at
its site, and the errors for tables or runs that do not hold the sites.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import standins
from Bio import SeqIO
from loopback import HOST, Server, json_record, serve_folder

from crossgran import threads
from crossgran.analysis import halogenation
from crossgran.cache import sha256_file
from crossgran.data import hmm, mibig_domains, remote, sources, tables
from crossgran.data.adomains import PARAS_DIR
from crossgran.data.pfam import TRP_HALOGENASE
from crossgran.data.readers import read_tsv_member
from crossgran.models import esm as cesm
from crossgran.models.bigcarp import (
    Representations,
    Vocabulary,
    export_representations,
    layer_representations,
    load_checkpoint,
    train_mlm,
)
from crossgran.profiles import BigcarpConfig, Profile, get_profile

pytestmark = pytest.mark.usefixtures("local_only")

C, A, A_C, PCP, KS, KS_C = "PF00668", "PF00501", "PF13193", "PF00550", "PF00109", "PF02801"
HALO = TRP_HALOGENASE
FAMILIES = (C, A, A_C, PCP, KS, KS_C, HALO)
CLANS = {
    C: ("CL0149", "CoA-acyltrans"),
    A: ("CL0378", "ANL"),
    KS: ("CL0046", "Thiolase"),
    KS_C: ("CL0046", "Thiolase"),
    HALO: ("CL0063", "NADP_Rossmann"),
}  # A_C, PCP: no clan
HALOGENATED, PLAIN, UNPARSABLE = "3-chlorotyrosine", "valine", "O=NN(O)CCC[C@H](N)(C(=O)O"
# Synthetic clusters: (classes, genes in gene order as Pfam families per protein, compounds).
SYNTHETIC = {
    "BGC9900001": (["NRP"], [(C, A, A_C), (HALO,), (PCP,), (HALO,)], [HALOGENATED, PLAIN]),
    "BGC9900002": (["Polyketide", "NRP"], [(HALO,), (KS, KS_C)], [PLAIN, None]),
    "BGC9900003": (["NRP"], [(A,), (HALO,)], [UNPARSABLE]),
    "BGC9900004": (["Other"], [(PCP,)], []),
}
JSON_ONLY = "BGC9900005"  # a JSON record without GenBank record
ESM_WEIGHTS = remote.REMOTE_FILES["esm1b"]  # the full profile's; the build only fetches them
BIGCARP_WEIGHTS = remote.REMOTE_FILES[remote.OFFICIAL_BIGCARP_RANDOM]  # likewise
SMALL = {
    "max_nrps_proteins": 12,
    "max_proteome_proteins": 40,
    "max_adomains": 20,
    "hmmer_cpus": 1,
    "torch_threads": 1,
    "probe_folds": 2,
    "probe_seeds": 1,
    "n_bootstrap": 50,
    "bigcarp": BigcarpConfig(
        d_model=32,
        n_layers=2,
        kernel_size=3,
        r=4,
        d_embedding=16,
        epochs=1,
        batch_size=8,
        max_len=32,
        n_orders=2,
    ),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run faster (and reproducibly) on one thread of a busy 2-core machine."""
    with threads.limit(torch_threads=1):
        yield


@pytest.fixture(scope="module")
def pfam(smoke_profile: Profile) -> dict[str, object]:
    """The fixture's real HMMs (GECCO's Pfam 35.0 subset) and their consensus sequences."""
    models = standins.gecco_hmms(smoke_profile.raw_dir)
    return {name: models[name] for name in FAMILIES}


@pytest.fixture(scope="module")
def smiles(smoke_profile: Profile) -> dict[str, str]:
    paras = sources.fetch_wheel("paras", smoke_profile.raw_dir)
    table = read_tsv_member(paras, f"{PARAS_DIR}/smiles.tsv")
    known = dict(zip(table["substrate"], table["smiles"], strict=True))
    assert UNPARSABLE in known.values()  # the one SMILES RDKit rejects (design notes)
    return {HALOGENATED: known[HALOGENATED], PLAIN: known[PLAIN], UNPARSABLE: UNPARSABLE}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, pfam, smiles) -> Path:
    folder = tmp_path_factory.mktemp("served-full")
    standins.write_pfam_release(folder, pfam, CLANS)
    compounds = {
        bgc_id: [
            {"compound": f"compound {n}", **({"chem_struct": smiles[s]} if s else {})}
            for n, s in enumerate(spec[2])
        ]
        for bgc_id, spec in SYNTHETIC.items()
    }
    records = {
        bgc_id: json_record(bgc_id, spec[0], compounds[bgc_id])
        for bgc_id, spec in SYNTHETIC.items()
    }
    records["BGC0001090"] = json_record("BGC0001090", ["Polyketide", "NRP"], [])
    records[JSON_ONLY] = json_record(
        JSON_ONLY, ["RiPP"], [{"compound": PLAIN, "chem_struct": smiles[PLAIN]}]
    )
    genbank = {
        bgc_id: standins.genbank_record(bgc_id, spec[1], pfam) for bgc_id, spec in SYNTHETIC.items()
    }
    genbank["BGC0001090"] = sources.pyhmmer_file("BGC0001090.gbk").read_bytes()
    standins.write_mibig_release(folder, records, genbank)
    (folder / ESM_WEIGHTS.filename).write_bytes(b"stand-in for the ESM-1b weights")
    (folder / BIGCARP_WEIGHTS.filename).write_bytes(b"stand-in for the released BiGCARP")
    return folder


@pytest.fixture(scope="module")
def server(served: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_folder(served, tmp_path_factory.mktemp("log-full") / "http.log")


def _build(
    server: Server, root: Path, smoke_profile: Profile, **overrides: object
) -> tuple[Profile, tables.BuildReport]:
    """build_all under ``full`` at ``root``: wheels linked from the shared raw folder, every
    remote file fetched from the loopback server (the ESM weights into ``root/torch``, the
    build's own hub cache)."""
    raw = root / "data" / "raw"
    raw.mkdir(parents=True)
    for package in sources.WHEELS:
        wheel = sources.fetch_wheel(package, smoke_profile.raw_dir)
        (raw / wheel.name).symlink_to(wheel)
    profile = get_profile("full", root=root, **{**SMALL, **overrides})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(remote.MIRROR_ENV, server.url)
        patch.setenv("NO_PROXY", HOST)
        patch.setenv("no_proxy", HOST)
        patch.setenv("TORCH_HOME", str(root / "torch"))
        report = tables.build_all(profile)
    return profile, report


@pytest.fixture(scope="module")
def built(server, tmp_path_factory, smoke_profile) -> tuple[Profile, tables.BuildReport]:
    return _build(server, tmp_path_factory.mktemp("crossgran-full"), smoke_profile)


@pytest.fixture(scope="module")
def tiny_run(built) -> Path:
    """A one-epoch BiGCARP run on the built full corpus."""
    profile, _ = built
    corpus = tables.load_table(profile, "domain_corpus")
    out = profile.models_dir / "bigcarp_random"
    train_mlm(
        corpus,
        Vocabulary.from_corpus(corpus),
        profile.bigcarp,
        init_mode="random",
        family_vectors=None,
        out_dir=out,
        seed=profile.seed,
    )
    return out


@pytest.fixture(scope="module")
def exported(built, tiny_run) -> dict[str, Representations]:
    """The tiny run's exports as notebook 05 loads them: its last epoch (the loopback corpus may
    have no validation rows for a best epoch) and epoch 0."""
    profile, _ = built
    corpus = tables.load_table(profile, "domain_corpus")
    adomains = tables.load_table(profile, "adomains")
    return {
        suffix: export_representations(
            tiny_run, corpus, adomains, n_orders=2, seed=profile.seed, epoch=epoch
        )
        for suffix, epoch in (("", "last"), ("~untrained", 0))
    }


# ---------------------------------------------------------------- the build


def test_every_table_is_built_from_the_release(built) -> None:
    profile, report = built
    for name in tables.FULL_TABLES:
        assert tables.table_path(profile, name).is_file(), name
    counts = report.counts
    assert counts["pfam_families"] == len(FAMILIES) and counts["pfam_families_without_clan"] == 2
    assert counts["mibig_bgcs"] == len(SYNTHETIC) + 2 and counts["mibig_without_genbank"] == 1
    assert counts["mibig_genbank_without_json"] == 0
    assert counts["halogenase_domains"] == 4 and counts["halogenase_bgcs"] == 3
    assert (
        counts["halogenase_halogenated"],
        counts["halogenase_not_halogenated"],
        counts["halogenase_unlabelled"],
    ) == (2, 1, 1)
    assert counts["compounds_unparsable_smiles"] == 1
    # No parsable structure: BGC0001090 (none recorded), 9900003 (unparsable), 9900004 (none).
    assert counts["mibig_without_structure"] == 3
    assert any(note.startswith("halogenase_unlabelled = 1:") for note in report.notes)
    # "Other" is a class (BGC9900004 has only it): no release BGC is left unlabelled.
    assert counts["mibig_unlabelled"] == 0
    assert [n for n in report.notes if n.startswith("mibig_unlabelled")] == [
        "mibig_unlabelled = 0: BGCs without a product class (biosyn_class empty), kept as "
        "unlabelled (no class invented)"
    ]
    families = tables.load_table(profile, "pfam_families").set_index("pfam")
    assert families.loc[KS, "clan"] == "CL0046" and families.loc[KS, "clan_name"] == "Thiolase"
    assert families["clan"].isna().sum() == 2  # A_C and PCP: "\N" in the release, empty here
    assert families.loc[HALO, "name"] == "Trp_halogenase"
    classes = tables.load_table(profile, "mibig_classes").set_index("bgc_id")
    assert classes.loc["BGC9900004", "Other"] and classes.loc["BGC9900004", "labelled"]
    assert classes.loc[JSON_ONLY, "n_domains"] == 0
    adomains = tables.load_table(profile, "adomains")
    assert 0 < len(adomains) <= SMALL["max_adomains"] and (adomains["amp_token_index"] >= 0).all()


def test_mibig_sentences_follow_the_genbank_gene_order(built, pfam) -> None:
    profile, _ = built
    corpus = tables.load_table(profile, "domain_corpus").set_index("seq_id")
    mibig_rows = corpus[corpus["source"] == "mibig"]
    assert mibig_rows["ordered"].all() and corpus["ordered"].all()
    for bgc_id, (_, genes, _) in SYNTHETIC.items():
        assert mibig_rows.loc[bgc_id, "tokens"].split() == [f for gene in genes for f in gene]
    # The real cluster: an independent search of its CDSs, in the GenBank file's gene order.
    record = SeqIO.read(sources.pyhmmer_file("BGC0001090.gbk"), "genbank")
    cds = sorted(
        (f for f in record.features if f.type == "CDS"), key=lambda f: int(f.location.start)
    )
    proteins = {f"gene{n:02d}": f.qualifiers["translation"][0] for n, f in enumerate(cds)}
    hits = hmm.resolve_overlaps(hmm.search_domains(list(pfam.values()), proteins, cpus=1))
    expected = [
        t for key in proteins for t in hits[hits["seq_id"] == key].sort_values("start")["pfam"]
    ]
    assert {A, C, KS} <= set(expected)
    assert mibig_rows.loc["BGC0001090", "tokens"].split() == expected
    counts = tables.load_table(profile, "mibig_domain_counts")
    assert counts.groupby("bgc_id")["count"].sum().to_dict() == mibig_rows["n_tokens"].to_dict()
    assert JSON_ONLY not in mibig_rows.index


def test_halogenase_rows_sit_at_their_tokens_with_labels_from_smiles(built, pfam) -> None:
    profile, _ = built
    table = tables.load_table(profile, "halogenase_domains")
    assert list(table.columns) == mibig_domains.HALOGENASE_COLUMNS
    assert list(table["bgc_id"]) == ["BGC9900001", "BGC9900001", "BGC9900002", "BGC9900003"]
    assert list(table["token_index"]) == [3, 5, 0, 1]
    assert list(table["n_tokens"]) == [6, 6, 3, 2]
    assert table["has_halogen"].tolist()[:3] == [True, True, False]  # Cl in 3-chlorotyrosine
    assert table["has_halogen"].isna().tolist() == [False, False, False, True]  # unparsable only
    consensus = hmm.consensus_sequence(pfam[HALO])
    assert (table["sequence"] == consensus).all() and (
        table["end"] - table["start"] == len(consensus)
    ).all()
    corpus = tables.load_table(profile, "domain_corpus").set_index("seq_id")["tokens"]
    for row in table.itertuples():
        assert corpus[row.bgc_id].split()[row.token_index] == HALO
        assert row.protein.startswith(f"{row.bgc_id}:") and row.domain_id.startswith(row.protein)
    compounds = tables.load_table(profile, "compounds").groupby("bgc_id")["has_halogen"]
    assert compounds.apply(list)["BGC9900001"] == [True, False]  # chlorotyrosine, valine
    assert compounds.apply(lambda flags: flags.isna().all())["BGC9900003"]  # unparsable: NA


def test_manifest_lists_remote_inputs_with_locked_hashes(built, served) -> None:
    profile, _ = built
    manifest = json.loads(profile.manifest_path.read_text())
    assert manifest["profile"] == "full"
    assert set(manifest["outputs"]) == set(tables.FULL_TABLES)
    lock = remote.read_lock(remote.full_lock_path(profile.root))
    listed = {row["filename"]: row for row in manifest["inputs"] if "filename" in row}
    assert len(listed) == len(tables.FULL_INPUTS)
    for name in tables.FULL_INPUTS:
        entry = remote.REMOTE_FILES[name]
        row = listed[entry.filename]
        assert row["sha256"] == lock[name]["sha256"] == sha256_file(served / entry.filename)
        assert row["source"] == entry.url  # the publisher's address, not the mirror's
    wheels = {f"pypi:{wheel.filename}" for wheel in sources.WHEELS.values()}
    assert wheels <= {row["source"] for row in manifest["inputs"]}


def test_build_fetches_the_esm_weights_where_the_loader_reads_them(built, served) -> None:
    """The build fetches every file the run reads, so notebook 02 loads from disk: the ESM
    weights land in the build's hub cache, hash-locked (the manifest lists table inputs only)."""
    profile, _ = built
    weights = profile.root / "torch" / "hub" / "checkpoints" / ESM_WEIGHTS.filename
    lock = remote.read_lock(remote.full_lock_path(profile.root))
    assert weights.read_bytes() == (served / ESM_WEIGHTS.filename).read_bytes()
    assert lock["esm1b"]["sha256"] == sha256_file(weights)
    assert set(lock) == set(remote.required_remote_files(profile))


# ---------------------------------------------------------------- halogenation features


def test_features_read_each_representation_at_its_site(
    built, pfam, tiny_esm, tiny_run, exported
) -> None:
    profile, _ = built
    data = halogenation.halogenation_features(profile, exported, tiny_run, esm_model=tiny_esm)
    assert data.labels.tolist() == [1, 1, 0]  # the NA-labelled BGC9900003 is left out
    assert data.groups.tolist() == ["BGC9900001", "BGC9900001", "BGC9900002"]
    features, width = data.features, SMALL["bigcarp"].d_model
    assert features["esm"].shape == (3, tiny_esm.embed_dim)
    assert features["bigcarp_domain"].shape == features["bigcarp_mean"].shape == (3, width)
    # Every feature set, controls included, is finite on every row: BGC9900001 has two rows.
    assert [name for name, x in features.items() if not np.isfinite(x).all()] == []

    run = load_checkpoint(tiny_run)  # the last epoch, the one exported as trained
    corpus = tables.load_table(profile, "domain_corpus").set_index("seq_id")["tokens"]
    for bgc_id, sites in (("BGC9900001", ((0, 3), (1, 5))), ("BGC9900002", ((2, 0),))):
        sentence = corpus[bgc_id].split()
        last = layer_representations(run.model, run.vocab, [sentence], layers=[-1])[0][0]
        for row, index in sites:  # the halogenase's token index in the gene-ordered sentence
            assert sentence[index] == HALO
            np.testing.assert_allclose(
                features["bigcarp_domain"][row], last[index], rtol=1e-5, atol=1e-5
            )
            np.testing.assert_allclose(
                features["bigcarp_mean"][row], last.mean(axis=0), rtol=1e-5, atol=1e-5
            )
    # The two halogenases of one BGC: different contexts, different vectors, one BGC mean.
    assert not np.allclose(features["bigcarp_domain"][0], features["bigcarp_domain"][1])

    # Every domain is the Trp_halogenase consensus: ESM's mean over those residues alone.
    alone = cesm.embed({"halogenase": hmm.consensus_sequence(pfam[HALO])}, tiny_esm, [-1])
    expected = alone.mean[alone.layer_index(-1)][0]
    for row in range(3):
        np.testing.assert_allclose(features["esm"][row], expected, rtol=1e-5, atol=1e-5)


def test_release_without_a_halogenase_names_the_fix(
    server, tmp_path, smoke_profile, tiny_esm, exported
) -> None:
    profile, report = _build(server, tmp_path, smoke_profile, max_bgcs=1)  # BGC0001090 only
    assert report.counts["halogenase_domains"] == 0
    assert tables.load_table(profile, "halogenase_domains").empty
    with pytest.raises(ValueError, match=rf"no {HALO} \(Trp_halogenase\) hit.*max_bgcs=1"):
        halogenation.halogenation_features(
            profile, exported, profile.models_dir / "absent", esm_model=tiny_esm
        )


@pytest.mark.parametrize(
    ("name", "table"), [("full", "halogenase_domains"), ("smoke", "halogenase_bgcs")]
)
def test_unbuilt_tables_name_the_fix(tmp_path, tiny_esm, exported, name, table) -> None:
    profile = get_profile(name, root=tmp_path)
    with pytest.raises(FileNotFoundError, match=rf"{table}\.tsv does not exist.*Fix: .*01_data"):
        halogenation.halogenation_features(
            profile, exported, profile.models_dir / "absent", esm_model=tiny_esm
        )


def test_absent_run_dir_names_the_fix(built, tiny_esm, exported) -> None:
    profile, _ = built
    absent = profile.models_dir / "absent"
    with pytest.raises(FileNotFoundError, match=r"absent has no state\.pt; train with"):
        halogenation.halogenation_features(profile, exported, absent, esm_model=tiny_esm)


def _without_sentence(corpus: pd.DataFrame) -> pd.DataFrame:
    return corpus[corpus["seq_id"] != "BGC9900002"]


def _unordered(corpus: pd.DataFrame) -> pd.DataFrame:
    return corpus.assign(ordered=False)


def _reversed(corpus: pd.DataFrame) -> pd.DataFrame:
    """BGC9900001's tokens reversed: its halogenase sites 3 and 5 now hold other families."""
    flipped = corpus["tokens"].str.split().str[::-1].str.join(" ")
    return corpus.assign(tokens=flipped.where(corpus["seq_id"] == "BGC9900001", corpus["tokens"]))


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_without_sentence, r"no sentence for 1 halogenase BGC\(s\), e\.g\. BGC9900002"),
        (_unordered, r"sentences are unordered bags"),
        (_reversed, r"2 halogenase site\(s\) .*e\.g\. BGC9900001\[3\].*different builds"),
    ],
)
def test_sentences_that_do_not_hold_the_sites_name_the_fix(
    built, tiny_run, tiny_esm, exported, tmp_path, tamper, message
) -> None:
    """The built tables with domain_corpus from elsewhere: a halogenase's token index must not
    be read in a sentence it was not found in."""
    profile, _ = built
    copy = get_profile("full", root=tmp_path, **SMALL)
    shutil.copytree(profile.processed_dir, copy.processed_dir)
    corpus = tamper(tables.load_table(profile, "domain_corpus"))
    corpus.to_csv(tables.table_path(copy, "domain_corpus"), sep="\t", index=False)
    fix = r"\. Fix: rebuild the tables \(notebook 01_data\), then retrain"
    with pytest.raises(ValueError, match=message + r".*" + fix):
        halogenation.halogenation_features(copy, exported, tiny_run, esm_model=tiny_esm)

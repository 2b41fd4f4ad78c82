"""Dataset builders on the real offline data (smoke subset)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from crossgran import datasets
from crossgran.cache import sha256_file


@pytest.mark.parametrize("substrate, aromatic, heterocycle, polar", [
    ("tyrosine", True, False, False),
    ("valine", False, False, False),
    ("tryptophan", True, True, False),
    ("proline", False, True, False),
    ("serine", False, False, True),
])
def test_substrate_properties_of_known_amino_acids(smoke_profile, substrate, aromatic, heterocycle, polar):
    smiles = _smiles(smoke_profile)
    props = datasets.substrate_properties(smiles[substrate])
    assert props == {"is_aromatic": aromatic, "has_heterocycle": heterocycle, "high_polarity": polar}


def test_multi_substrate_rule(smoke_profile) -> None:
    smiles = _smiles(smoke_profile)
    both = datasets.label_properties("isoleucine|valine", smiles)
    assert both["is_aromatic"] == 0.0 and both["is_canonical_aa"] == 1.0
    assert math.isnan(both["is_Val"])  # holds for one listed substrate only: undefined
    assert datasets.label_properties("valine", smiles)["is_Val"] == 1.0
    assert all(math.isnan(v) for v in datasets.label_properties("graminine", smiles).values())


def _smiles(profile) -> dict[str, str]:
    paras = datasets.fetch_wheel("paras", profile.raw_dir)
    table = datasets.read_tsv_member(paras, f"{datasets.PARAS_DIR}/smiles.tsv")
    return dict(zip(table["substrate"], table["smiles"]))


def test_frequencies_become_integer_counts() -> None:
    counts = datasets.frequencies_to_counts(pd.Series([0.0125, 0.025, 0.075, 0.8875], dtype=np.float32))
    assert list(counts) == [1, 2, 6, 71]


def test_split_is_deterministic_and_near_the_fraction(smoke_build, smoke_profile) -> None:
    corpus = datasets.load_table(smoke_profile, "domain_corpus")
    again = corpus["seq_id"].map(lambda s: datasets.split_of(s, smoke_profile.valid_fraction))
    assert (again == corpus["split"]).all()
    assert 0.05 < (corpus["split"] == "valid").mean() < 0.2


def test_sanitise_and_duplicate_ids() -> None:
    cleaned, changed = datasets.sanitise_proteins({"a": "MK-V*", "b": "mkv"})
    assert cleaned == {"a": "MKV", "b": "MKV"} and changed == ["a", "b"]
    with pytest.raises(ValueError, match="duplicate FASTA id 'x'"):
        datasets.read_fasta_text(">x\nMK\n>x\nMV\n")


def test_smoke_tables(smoke_build, smoke_profile) -> None:
    counts = smoke_build.counts
    assert counts["pfam_families"] == 2766
    assert counts["mibig_bgcs"] == smoke_profile.max_bgcs
    assert counts["substrate_labels"] == 342 and counts["multi_substrate_domains"] == 171
    assert counts["nrps_proteins_sanitised"] == 1
    corpus = datasets.load_table(smoke_profile, "domain_corpus")
    assert set(corpus["source"]) == {"nrps", "proteome", "mibig"}
    assert not corpus.loc[corpus["source"] == "mibig", "ordered"].any()
    assert corpus.loc[corpus["source"] != "mibig", "ordered"].all()


def test_amp_token_index_points_at_amp_binding(smoke_build, smoke_profile) -> None:
    adomains = datasets.load_table(smoke_profile, "adomains")
    corpus = datasets.load_table(smoke_profile, "domain_corpus").set_index("seq_id")
    located = adomains[adomains["amp_token_index"] >= 0]
    assert len(located) > 0.9 * len(adomains)
    for row in located.itertuples():
        tokens = corpus.loc["nrps:" + row.parent_protein, "tokens"].split()
        assert tokens[row.amp_token_index] == datasets.AMP_BINDING
    # Stachelhaus positions index the domain sequence and spell the first 9 signature letters
    # (the 10th, K517, lies outside the domain; '-' marks a position absent from the domain).
    for row in adomains.itertuples():
        positions = [int(p) for p in str(row.stachelhaus_positions).split()]
        assert "".join(row.sequence[p] for p in positions) == row.stachelhaus[:9].replace("-", "")


def test_rebuild_gives_identical_hashes(smoke_build, smoke_profile) -> None:
    first = json.loads(smoke_profile.manifest_path.read_text())["outputs"]
    datasets.build_all(smoke_profile)
    second = json.loads(smoke_profile.manifest_path.read_text())["outputs"]
    assert first == second
    for output in second.values():
        assert sha256_file(smoke_profile.root / output["file"]) == output["sha256"]

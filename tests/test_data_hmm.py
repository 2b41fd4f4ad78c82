"""Pfam annotation of a real MIBiG cluster (BGC0001090, bacillomycin D) and overlap resolution."""

from __future__ import annotations

from itertools import pairwise

import pytest
from Bio import SeqIO

from crossgran.data import hmm, sources


@pytest.fixture(scope="module")
def bgc0001090(smoke_profile):
    record = next(SeqIO.parse(sources.pyhmmer_file("BGC0001090.gbk"), "genbank"))
    proteins = {
        f.qualifiers["locus_tag"][0]: f.qualifiers["translation"][0]
        for f in record.features
        if f.type == "CDS" and "translation" in f.qualifiers
    }
    gecco = sources.fetch_wheel("gecco", smoke_profile.raw_dir)
    hmms = hmm.read_hmms(
        sources.extract_wheel_member(
            gecco, "gecco/hmmer/Pfam.h3m", smoke_profile.raw_dir / "extracted"
        )
    )
    raw = hmm.search_domains(hmms, proteins, cpus=1)
    return record, raw, hmm.resolve_overlaps(raw)


def test_core_nrps_pks_domains_match_the_genbank_annotation(bgc0001090) -> None:
    record, _, resolved = bgc0001090
    names = resolved.groupby("seq_id")["pfam_name"].apply(set)
    # antiSMASH's sec_met_domain qualifiers in the GenBank file list, per synthetase gene:
    annotated = {
        f.qualifiers["locus_tag"][0]: {d.split(" (")[0] for d in f.qualifiers["sec_met_domain"]}
        for f in record.features
        if "sec_met_domain" in f.qualifiers
    }
    for gene in ("RBAM_018160", "RBAM_018170", "RBAM_018180"):  # bacillomycin D synthetases C, B, A
        assert {"Condensation", "AMP-binding", "PP-binding"} <= annotated[gene]
        assert {"Condensation", "AMP-binding", "PP-binding"} <= names[gene]
    assert "PKS_KS" in annotated["RBAM_018180"] and "ketoacyl-synt" in names["RBAM_018180"]
    assert "PKS_AT" in annotated["RBAM_018190"] and names["RBAM_018190"] == {"Acyl_transf_1"}


def test_bacillomycin_synthetase_c_has_its_modules_in_order(bgc0001090) -> None:
    _, _, resolved = bgc0001090
    tokens = list(resolved[resolved["seq_id"] == "RBAM_018160"]["pfam_name"])
    # Synthetase C: two C-A-T modules; the A domain is followed by AMP-binding_C.
    assert tokens.count("AMP-binding") == 2
    assert tokens.index("Condensation") < tokens.index("AMP-binding") < tokens.index("PP-binding")


def test_overlap_resolution_keeps_best_and_leaves_no_overlap(bgc0001090) -> None:
    _, raw, resolved = bgc0001090
    assert len(resolved) < len(raw)  # real overlapping hits exist in this cluster
    for seq_id, kept in resolved.groupby("seq_id"):
        spans = sorted(zip(kept["start"], kept["end"], strict=True))
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in pairwise(spans))
        dropped = raw[(raw["seq_id"] == seq_id)].merge(kept, how="left", indicator=True)
        for hit in dropped[dropped["_merge"] == "left_only"].itertuples():
            rivals = kept[(kept["start"] < hit.end) & (kept["end"] > hit.start)]
            assert not rivals.empty and rivals["score"].max() >= hit.score


def test_digitize_names_the_bad_record() -> None:
    with pytest.raises(ValueError, match="'bad_protein'"):
        hmm.digitize({"ok": "MKV", "bad_protein": "MK1V"})


def test_consensus_is_upper_case_amino_acids(smoke_profile) -> None:
    gecco = sources.fetch_wheel("gecco", smoke_profile.raw_dir)
    first = hmm.read_hmms(
        sources.extract_wheel_member(
            gecco, "gecco/hmmer/Pfam.h3m", smoke_profile.raw_dir / "extracted"
        )
    )[0]
    consensus = hmm.consensus_sequence(first)
    assert len(consensus) == first.M and consensus.isupper()

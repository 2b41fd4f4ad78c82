"""Substrate properties of the A-domain table, from PARAS's real SMILES."""

from __future__ import annotations

import math

import pytest

from crossgran.data.adomains import PARAS_DIR, label_properties, substrate_properties
from crossgran.data.readers import read_tsv_member
from crossgran.data.sources import fetch_wheel


@pytest.fixture(scope="module")
def smiles(smoke_profile) -> dict[str, str]:
    paras = fetch_wheel("paras", smoke_profile.raw_dir)
    table = read_tsv_member(paras, f"{PARAS_DIR}/smiles.tsv")
    return dict(zip(table["substrate"], table["smiles"], strict=True))


@pytest.mark.parametrize(
    "substrate, aromatic, heterocycle, polar",
    [
        ("tyrosine", True, False, False),
        ("valine", False, False, False),
        ("tryptophan", True, True, False),
        ("proline", False, True, False),
        ("serine", False, False, True),
    ],
)
def test_substrate_properties_of_known_amino_acids(
    smiles, substrate, aromatic, heterocycle, polar
) -> None:
    props = substrate_properties(smiles[substrate])
    assert props == {
        "is_aromatic": aromatic,
        "has_heterocycle": heterocycle,
        "high_polarity": polar,
    }


def test_multi_substrate_rule(smiles) -> None:
    both = label_properties("isoleucine|valine", smiles)
    assert both["is_aromatic"] == 0.0 and both["is_canonical_aa"] == 1.0
    assert math.isnan(both["is_Val"])  # holds for one listed substrate only: undefined
    assert label_properties("valine", smiles)["is_Val"] == 1.0
    assert all(math.isnan(v) for v in label_properties("graminine", smiles).values())

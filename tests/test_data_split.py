"""The one hash split: pinned values (a changed formula would silently move sequences between
train and valid in every stored result) and the corpus build's use of it."""

from __future__ import annotations

import pytest

from crossgran.data.split import first_n, hash_fraction, split_of
from crossgran.data.tables import load_table


@pytest.mark.parametrize(
    "key, fraction",
    [
        ("nrps:AAA33023.2", 0.20596692296815267),
        ("BGC0000001", 0.6271746765419782),
        ("BGC0000015", 0.01409390033550884),
        ("proteome:00000-00039", 0.6687000763296849),
    ],
)
def test_hash_fraction_is_pinned(key: str, fraction: float) -> None:
    assert hash_fraction(key) == fraction
    assert split_of(key, 0.1) == ("valid" if fraction < 0.1 else "train")


def test_first_n_keeps_everything_without_a_limit() -> None:
    assert first_n(["b", "a", "c"], None) == ["b", "a", "c"]
    assert first_n(["b", "a", "c"], 2) == ["b", "a"]


def test_corpus_split_is_split_of_and_near_the_fraction(smoke_build, smoke_profile) -> None:
    corpus = load_table(smoke_profile, "domain_corpus")
    again = corpus["seq_id"].map(lambda s: split_of(s, smoke_profile.valid_fraction))
    assert (again == corpus["split"]).all()
    assert 0.05 < (corpus["split"] == "valid").mean() < 0.2

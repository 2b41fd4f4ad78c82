"""The table build on the real offline data (smoke subset): counts, cross-table links,
byte-identical rebuilds, and a tampered input refused before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from crossgran.cache import sha256_file
from crossgran.data.pfam import AMP_BINDING
from crossgran.data.sources import WHEELS, SourceError, fetch_wheel
from crossgran.data.tables import build_all, load_table
from crossgran.profiles import get_profile


def _leftovers(directory: Path) -> list[Path]:
    """Temporary files of crossgran.cache.atomic_path that a crash could leave behind."""
    return sorted(directory.rglob("*.part"))


def test_smoke_tables(smoke_build, smoke_profile) -> None:
    counts = smoke_build.counts
    assert counts["pfam_families"] == 2766
    assert counts["mibig_bgcs"] == smoke_profile.max_bgcs
    assert counts["substrate_labels"] == 342 and counts["multi_substrate_domains"] == 171
    assert counts["nrps_proteins_sanitised"] == 1
    corpus = load_table(smoke_profile, "domain_corpus")
    assert set(corpus["source"]) == {"nrps", "proteome", "mibig"}
    assert not corpus.loc[corpus["source"] == "mibig", "ordered"].any()
    assert corpus.loc[corpus["source"] != "mibig", "ordered"].all()


def test_amp_token_index_points_at_amp_binding(smoke_build, smoke_profile) -> None:
    adomains = load_table(smoke_profile, "adomains")
    corpus = load_table(smoke_profile, "domain_corpus").set_index("seq_id")
    located = adomains[adomains["amp_token_index"] >= 0]
    assert len(located) > 0.9 * len(adomains)
    for row in located.itertuples():
        tokens = corpus.loc["nrps:" + row.parent_protein, "tokens"].split()
        assert tokens[row.amp_token_index] == AMP_BINDING
    # Stachelhaus positions index the domain sequence and spell the first 9 signature letters
    # (the 10th, K517, lies outside the domain; '-' marks a position absent from the domain).
    for row in adomains.itertuples():
        positions = [int(p) for p in str(row.stachelhaus_positions).split()]
        assert "".join(row.sequence[p] for p in positions) == row.stachelhaus[:9].replace("-", "")


def test_rebuild_gives_identical_hashes(smoke_build, smoke_profile) -> None:
    first = json.loads(smoke_profile.manifest_path.read_text())["outputs"]
    build_all(smoke_profile)
    second = json.loads(smoke_profile.manifest_path.read_text())["outputs"]
    assert first == second
    for output in second.values():
        assert sha256_file(smoke_profile.root / output["file"]) == output["sha256"]


def test_tampered_wheel_is_refused_with_both_hashes_and_no_table_is_written(
    smoke_profile, tmp_path: Path
) -> None:
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    pristine = fetch_wheel("paras", smoke_profile.raw_dir)
    (raw / WHEELS["gecco"].filename).symlink_to(fetch_wheel("gecco", smoke_profile.raw_dir))
    tampered = raw / WHEELS["paras"].filename
    shutil.copyfile(pristine, tampered)
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    actual = sha256_file(tampered)
    assert actual != WHEELS["paras"].sha256 and sha256_file(pristine) == WHEELS["paras"].sha256

    profile = get_profile("smoke", root=tmp_path)
    with pytest.raises(SourceError) as caught:
        build_all(profile)
    message = str(caught.value)
    assert str(tampered) in message and "sha256 mismatch" in message
    assert f"expected {WHEELS['paras'].sha256}" in message and f"actual   {actual}" in message
    assert f"Fix: delete {tampered} and rerun" in message
    assert not any(profile.processed_dir.rglob("*")), "a table or manifest was written"
    assert not profile.manifest_path.exists()
    assert _leftovers(tmp_path) == []
    assert tampered.read_bytes() == bytes(data)  # refused, not silently replaced

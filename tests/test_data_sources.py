"""Pinned inputs: hashes are enforced, errors name the file and the fix, nothing half-written."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from crossgran.cache import sha256_file
from crossgran.data import sources


@pytest.fixture()
def gecco_copy(smoke_profile, tmp_path: Path) -> Path:
    wheel = sources.fetch_wheel("gecco", smoke_profile.raw_dir)
    raw = tmp_path / "raw"
    raw.mkdir()
    return Path(shutil.copy(wheel, raw / wheel.name))


def test_good_hash_is_accepted_and_readable(gecco_copy: Path) -> None:
    assert sources.fetch_wheel("gecco", gecco_copy.parent) == gecco_copy
    assert sha256_file(gecco_copy) == sources.WHEELS["gecco"].sha256
    types = sources.read_wheel_member(gecco_copy, "gecco/types/types.tsv")
    assert types.startswith(b"BGC0000001\tPolyketide\r\n")  # CRLF, as shipped


def test_one_changed_byte_is_refused_with_both_hashes(gecco_copy: Path) -> None:
    data = bytearray(gecco_copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    gecco_copy.write_bytes(bytes(data))
    with pytest.raises(sources.SourceError) as error:
        sources.fetch_wheel("gecco", gecco_copy.parent)
    message = str(error.value)
    assert str(gecco_copy) in message
    assert sources.WHEELS["gecco"].sha256 in message
    assert sha256_file(gecco_copy) in message
    assert "delete" in message and "rerun" in message


def test_truncated_file_is_refused(gecco_copy: Path) -> None:
    with open(gecco_copy, "r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(sources.SourceError, match="sha256 mismatch"):
        sources.fetch_wheel("gecco", gecco_copy.parent)


def test_missing_package_names_it_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    bogus = replace(sources.WHEELS["paras"], version="0.0.0.999")
    monkeypatch.setitem(sources.WHEELS, "paras", bogus)
    with pytest.raises(sources.SourceError) as error:
        sources.fetch_wheel("paras", tmp_path)
    assert "paras==0.0.0.999" in str(error.value)
    assert "place" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_unknown_member_is_named(gecco_copy: Path) -> None:
    with pytest.raises(sources.SourceError, match=r"no member 'gecco/nothing.tsv'"):
        sources.read_wheel_member(gecco_copy, "gecco/nothing.tsv")


def test_pyhmmer_files_are_pinned(monkeypatch) -> None:
    assert sources.pyhmmer_file("BGC0001090.gbk").name == "BGC0001090.gbk"
    pinned = sources.PYHMMER_FILES["BGC0001090.gbk"]
    monkeypatch.setitem(sources.PYHMMER_FILES, "BGC0001090.gbk", replace(pinned, sha256="0" * 64))
    with pytest.raises(sources.SourceError, match=r"reinstall pyhmmer==0.12.3"):
        sources.pyhmmer_file("BGC0001090.gbk")

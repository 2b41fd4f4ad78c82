"""MIBiG's "Other" from NPLinker's MIBiG 2.0 table: pinned wheel, reader, class assignment.

Run on the real pinned wheels (GECCO 0.11.0, NPLinker 1.3.2): the counts asserted here are the
ones the offline tables are built with.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from crossgran.cache import sha256_file
from crossgran.data import sources
from crossgran.data.mibig import (
    CLASS_COLUMNS,
    OTHER,
    PROBE_CLASSES,
    PRODUCT_CLASSES,
    assign_other,
    build_mibig,
)
from crossgran.data.nplinker import NPLINKER_TABLE, NplinkerFormatError, read_mibig2_classes
from crossgran.data.readers import read_tsv_member
from crossgran.data.report import BuildReport

ISSUE_SHA = "0abfa35cda46e813d71736a5c6a9a139dcedcfea1e93bc88312fb6828023dc57"


@pytest.fixture(scope="module")
def wheels(smoke_profile) -> dict[str, Path]:
    return {
        name: sources.fetch_wheel(name, smoke_profile.raw_dir) for name in ("gecco", "nplinker")
    }


@pytest.fixture(scope="module")
def built(wheels) -> tuple[pd.DataFrame, BuildReport]:
    report = BuildReport()
    classes, _ = build_mibig(wheels["gecco"], report, None, nplinker=wheels["nplinker"])
    return classes, report


def test_wheel_is_pinned_hash_checked_and_listed(wheels, tmp_path: Path) -> None:
    pinned = sources.WHEELS["nplinker"]
    assert (pinned.version, pinned.sha256, pinned.licence) == ("1.3.2", ISSUE_SHA, "Apache-2.0")
    assert sha256_file(wheels["nplinker"]) == ISSUE_SHA
    assert {row["source"]: row["sha256"] for row in sources.manifest_inputs()}[
        "pypi:nplinker-1.3.2-py3-none-any.whl"
    ] == ISSUE_SHA
    copy = Path(shutil.copy(wheels["nplinker"], tmp_path / pinned.filename))
    data = bytearray(copy.read_bytes())
    data[len(data) // 3] ^= 0x01
    copy.write_bytes(bytes(data))
    with pytest.raises(sources.SourceError, match="sha256 mismatch"):
        sources.fetch_wheel("nplinker", tmp_path)


def test_mibig2_table_gives_each_bgc_its_classes(wheels) -> None:
    table = read_mibig2_classes(wheels["nplinker"], PROBE_CLASSES)
    assert (
        len(table) == 1470 and table["bgc_id"].is_unique and table["bgc_id"].is_monotonic_increasing
    )
    by_id = table.set_index("bgc_id")["classes"]
    assert by_id["BGC0000001"] == "Polyketide"
    assert by_id["BGC0000150"] == "Polyketide;NRP"  # "NRP:...,Polyketide:..." in vocabulary order
    assert by_id["BGC0000314"] == "Polyketide;NRP;Other"
    assert set(by_id.str.split(";").explode()) == set(PROBE_CLASSES)
    raw = read_tsv_member(wheels["nplinker"], NPLINKER_TABLE)
    assert len(raw) == 2112  # compounds; several per BGC, merged above


def test_gecco_empty_classes_become_other_only_where_mibig2_says_so(wheels, built) -> None:
    classes, report = built
    assert list(classes.columns) == [*CLASS_COLUMNS, "n_domains"]
    assert report.counts["mibig_other_from_nplinker"] == 196
    assert report.counts["mibig_unlabelled_not_in_nplinker"] == 40
    assert report.counts["mibig_unlabelled"] == 40
    assert report.counts["mibig_unlabelled_nplinker_disagrees"] == 0
    assert report.counts["mibig_labelled_also_other_in_nplinker"] == 10
    types = read_tsv_member(
        wheels["gecco"], "gecco/types/types.tsv", header=None, names=["bgc_id", "classes"]
    ).set_index("bgc_id")["classes"]
    mibig2 = read_mibig2_classes(wheels["nplinker"], PROBE_CLASSES).set_index("bgc_id")["classes"]
    table = classes.set_index("bgc_id")
    other = table[table[OTHER]]
    assert (other["classes"] == OTHER).all() and not other[list(PRODUCT_CLASSES)].any().any()
    assert (types[other.index] == "").all() and (mibig2[other.index] == OTHER).all()
    kept = table[~table[OTHER]]
    assert (kept["classes"] == types[kept.index]).all()  # GECCO's labels untouched
    unlabelled = table.index[~table["labelled"]]
    assert len(unlabelled) == 40 and not unlabelled.isin(mibig2.index).any()
    assert (table["labelled"] == (table["classes"] != "")).all()


def test_assign_other_keeps_labels_and_never_guesses() -> None:
    rows = {"A": "Polyketide", "B": "", "C": "", "D": ""}
    classes = pd.DataFrame({"bgc_id": list(rows), "classes": list(rows.values())})
    for name in PRODUCT_CLASSES:
        classes[name] = classes["classes"] == name
    classes["labelled"] = classes["classes"] != ""
    mibig2 = pd.DataFrame(
        {"bgc_id": ["A", "B", "C"], "classes": ["Polyketide;Other", "Other", "NRP"]}
    )
    report = BuildReport()
    out = assign_other(classes, mibig2, report).set_index("bgc_id")
    assert out["classes"].to_dict() == {"A": "Polyketide", "B": OTHER, "C": "", "D": ""}
    assert out[OTHER].to_dict() == {"A": False, "B": True, "C": False, "D": False}
    assert out["labelled"].to_dict() == {"A": True, "B": True, "C": False, "D": False}
    assert report.counts == {
        "mibig_other_from_nplinker": 1,
        "mibig_unlabelled_not_in_nplinker": 1,
        "mibig_unlabelled_nplinker_disagrees": 1,
        "mibig_labelled_also_other_in_nplinker": 1,
    }
    assert "Other" not in classes.columns  # the input is not modified


def _fake_wheel(path: Path, rows: list[str]) -> Path:
    text = "compound_name\tclass:subclass\tas_classes\n" + "".join(f"{r}\n" for r in rows)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(NPLINKER_TABLE, text)
    path.write_bytes(buffer.getvalue())
    return path


def test_malformed_tables_are_refused_with_the_offending_value(tmp_path: Path) -> None:
    good = _fake_wheel(tmp_path / "good.whl", ["BGC0000001_x\tNRP:,Other:Nucleoside\tNRPS"])
    assert read_mibig2_classes(good, PROBE_CLASSES)["classes"].tolist() == ["NRP;Other"]
    lipid = _fake_wheel(tmp_path / "lipid.whl", ["BGC0000001_x\tLipid:\tNRPS"])
    with pytest.raises(NplinkerFormatError, match=r"\['Lipid'\]"):
        read_mibig2_classes(lipid, PROBE_CLASSES)
    nameless = _fake_wheel(tmp_path / "nameless.whl", ["abyssomicin\tPolyketide:\tT1PKS"])
    with pytest.raises(NplinkerFormatError, match="abyssomicin"):
        read_mibig2_classes(nameless, PROBE_CLASSES)

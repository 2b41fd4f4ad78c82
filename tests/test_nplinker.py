"""NPLinker's MIBiG 2.0 table: pinned wheel, readers, MIBiG's "Other" class, and the compound
structures that label the offline halogenation task.

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
from crossgran.data.compounds import (
    HALOGENASE_BGC_COLUMNS,
    build_offline_halogenation,
    halogenase_bgcs,
    label_compounds,
)
from crossgran.data.mibig import (
    CLASS_COLUMNS,
    OTHER,
    PROBE_CLASSES,
    PRODUCT_CLASSES,
    assign_other,
    build_mibig,
)
from crossgran.data.mibig_release import COMPOUND_COLUMNS
from crossgran.data.nplinker import (
    NPLINKER_TABLE,
    NplinkerFormatError,
    read_mibig2_classes,
    read_mibig2_compounds,
)
from crossgran.data.pfam import TRP_HALOGENASE
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


@pytest.fixture(scope="module")
def halogenation(wheels) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, BuildReport]:
    """The offline halogenation tables of every GECCO BGC (max_bgcs=None, as mini builds
    them), with the domain counts they were built from."""
    report = BuildReport()
    classes, counts = build_mibig(wheels["gecco"], report, None, nplinker=wheels["nplinker"])
    built = build_offline_halogenation(wheels["nplinker"], classes, counts, report)
    return built, counts, report


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


# ---------------------------------------------------------------- compound structures


def _smiles_wheel(path: Path, rows: list[tuple[str, str]]) -> Path:
    """A wheel whose MIBiG 2.0 table holds ``rows`` of (compound_name, smiles)."""
    text = "compound_name\tclass:subclass\tsmiles\n" + "".join(
        f"{name}\tNRP:\t{smiles}\n" for name, smiles in rows
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(NPLINKER_TABLE, text)
    path.write_bytes(buffer.getvalue())
    return path


def test_compound_structures_are_read_per_bgc(wheels) -> None:
    compounds = read_mibig2_compounds(wheels["nplinker"])
    assert list(compounds.columns) == ["bgc_id", "compound", "smiles"]
    assert len(compounds) == 2112 and compounds["bgc_id"].nunique() == 1470  # none lacks SMILES
    assert compounds.equals(compounds.sort_values(["bgc_id", "compound"], ignore_index=True))
    first = compounds.iloc[0]
    assert (first["bgc_id"], first["compound"]) == ("BGC0000001", "abyssomicin C")
    assert first["smiles"].startswith("CC1C[C@]23OC(=O)")


def test_offline_halogenation_counts_follow_rdkit(halogenation) -> None:
    """PF04820 BGCs of GECCO's compositions and their labels, as RDKit reads the structures."""
    built, counts, report = halogenation
    table = built["halogenase_bgcs"]
    assert list(table.columns) == HALOGENASE_BGC_COLUMNS and table["bgc_id"].is_unique
    having = set(counts.loc[counts["pfam"] == TRP_HALOGENASE, "bgc_id"])
    assert set(table["bgc_id"]) == having and len(having) == 79
    label = table.set_index("bgc_id")["has_halogen"]
    assert (int(label.eq(True).sum()), int(label.eq(False).sum()), int(label.isna().sum())) == (
        58,
        8,
        13,
    )
    assert (table.loc[label.isna().to_numpy(), "n_structures"] == 0).all()
    assert (table.loc[label.notna().to_numpy(), "n_structures"] > 0).all()
    compounds = built["compounds"]
    assert list(compounds.columns) == COMPOUND_COLUMNS
    assert compounds["has_halogen"].dtype == "boolean"
    assert compounds["has_halogen"].notna().all()  # every NPLinker SMILES parses in RDKit
    assert report.counts["compounds"] == len(compounds) == 2076
    assert report.counts["compounds_outside_class_table"] == 2112 - 2076
    assert report.counts["compounds_unparsable_smiles"] == 0
    assert (
        report.counts["halogenase_bgcs"],
        report.counts["halogenase_halogenated"],
        report.counts["halogenase_not_halogenated"],
        report.counts["halogenase_unlabelled"],
    ) == (79, 58, 8, 13)
    # Each halogenase BGC's label is whether any of its structures has F, Cl, Br or I.
    by_bgc = compounds.groupby("bgc_id")["has_halogen"].any()
    labelled = label.dropna()
    assert (by_bgc[labelled.index] == labelled.astype(bool)).all()


def test_unparsable_smiles_is_counted_and_ignored_not_fatal(tmp_path: Path) -> None:
    wheel = _smiles_wheel(
        tmp_path / "smiles.whl",
        [
            ("BGC0000001_valine", "CC(C)[C@H](N)C(=O)O"),
            ("BGC0000001_broken", "O=NN(O)CCC[C@H](N)(C(=O)O"),  # PARAS's unbalanced SMILES
            ("BGC0000002_broken", "O=NN(O)CCC[C@H](N)(C(=O)O"),
            ("BGC0000003_chlorotyrosine", "N[C@@H](Cc1ccc(O)c(Cl)c1)C(=O)O"),
            ("BGC0000003_empty", "  "),
        ],
    )
    counts = pd.DataFrame(
        {
            "bgc_id": ["BGC0000001", "BGC0000002", "BGC0000003", "BGC0000003", "BGC0000004"],
            "pfam": [TRP_HALOGENASE, TRP_HALOGENASE, TRP_HALOGENASE, "PF00501", "PF00501"],
            "count": [1, 2, 1, 3, 1],
        }
    )
    classes = pd.DataFrame({"bgc_id": ["BGC0000001", "BGC0000002", "BGC0000003", "BGC0000004"]})
    report = BuildReport()
    built = build_offline_halogenation(wheel, classes, counts, report)
    compounds = built["compounds"]
    assert compounds[["bgc_id", "compound"]].to_numpy().tolist() == [
        ["BGC0000001", "broken"],
        ["BGC0000001", "valine"],
        ["BGC0000002", "broken"],
        ["BGC0000003", "chlorotyrosine"],
    ]
    assert compounds["has_halogen"].tolist() == [pd.NA, False, pd.NA, True]
    assert report.counts["compounds"] == 4  # the empty SMILES gives no row
    assert report.counts["compounds_unparsable_smiles"] == 2
    table = built["halogenase_bgcs"].set_index("bgc_id")
    assert list(table.index) == ["BGC0000001", "BGC0000002", "BGC0000003"]  # 4: no PF04820
    # BGC0000001: the parsable valine decides, the broken SMILES is ignored; BGC0000002: only
    # an unparsable structure, so no label.
    assert table["has_halogen"].tolist() == [False, pd.NA, True]
    assert table["n_unparsable"].tolist() == [1, 1, 0]
    assert table["n_structures"].tolist() == [1, 0, 1]
    assert table["n_halogenase"].tolist() == [1, 2, 1] and table["n_tokens"].tolist() == [1, 2, 4]
    assert report.counts["halogenase_unlabelled"] == 1


def test_halogenase_rows_need_a_halogenase_token() -> None:
    counts = pd.DataFrame({"bgc_id": ["BGC0000001"], "pfam": ["PF00501"], "count": [2]})
    compounds = label_compounds(
        pd.DataFrame({"bgc_id": ["BGC0000001"], "compound": ["x"], "smiles": ["CCl"]})
    )
    table = halogenase_bgcs(counts, compounds)
    assert table.empty and list(table.columns) == HALOGENASE_BGC_COLUMNS

"""Training-run spread: measured on the committed ``mini`` result tables, perturbed the way a
different training sample perturbs them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crossgran.analysis import report, spread
from crossgran.analysis.comparisons import PROBE_TEST_COLUMNS, TEST_COLUMNS
from crossgran.analysis.verdicts import VERDICTS
from crossgran.profiles import get_profile

CHECKOUT = Path(__file__).resolve().parents[1]
STORED = spread.read_tables(CHECKOUT / "results" / "mini")


def _resampled(tables: dict[str, pd.DataFrame], seed: int, scale: float) -> dict:
    """The stored tables with every float of every BiGCARP-dependent table moved by
    N(0, scale): a stand-in for another training sample."""
    rng = np.random.default_rng(seed)
    moved = {}
    for name, table in tables.items():
        table = table.copy()
        if name.startswith(("cka", "fusion", "failed_init", "bigcarp")):
            floats = table.select_dtypes("float").columns
            table[floats] = table[floats] + rng.normal(0, scale, size=table[floats].shape)
        moved[name] = table
    return moved


@pytest.fixture(scope="module")
def measured() -> pd.DataFrame:
    samples = {f"s{i}": _resampled(STORED, i, 0.01) for i in range(6)}
    return spread.measure(samples)


TEST_TABLES = ("fusion_tests", "failed_init_tests", "cka_occurrence_tests", "layer_tests")


def test_every_stored_table_has_unique_keys() -> None:
    assert {"cka_summary", "product_class_probe", "adomain_probe", *TEST_TABLES} <= set(STORED)
    for name, table in STORED.items():
        frame = spread.long_form(name, table)
        keys = spread.TABLE_KEYS.get(name, table.columns[:1])
        assert len(frame) == len(table) * (table.shape[1] - len(keys)), name
        assert not frame.duplicated(["key", "column"]).any(), name


def test_paired_tests_are_named_by_what_they_compare() -> None:
    """A candidate is tested against several rival sets (e.g. a fusion against its parts and
    against its controls), so (task, property, candidate, metric) repeats: the rival set is
    part of a test's name, and the rival chosen from it is a value (it may vary by sample).
    Notebook 05 runs every comparison within each probe, so there the probe names it too."""
    named_by = ("task", "property", "candidate", "rivals", "metric")
    for name in TEST_TABLES:
        probed = name == "fusion_tests"
        assert spread.TABLE_KEYS[name] == (("probe", *named_by) if probed else named_by)
        table = STORED[name]
        assert list(table.columns) == (PROBE_TEST_COLUMNS if probed else TEST_COLUMNS), name
        keys = spread.long_form(name, table)
        assert "rival" in set(keys["column"]) and "rivals" not in set(keys["column"])
    fusion = STORED["fusion_tests"]
    assert fusion.duplicated(["task", "property", "candidate", "metric"]).any()
    assert spread.TABLE_KEYS["cka_occurrences"] == ("run_a", "run_b", "comparison")


def test_untouched_tables_are_exact_and_moved_ones_are_samples(measured: pd.DataFrame) -> None:
    kinds = measured.groupby("table")["kind"].agg(set)
    assert kinds["product_class_probe"] == {"fixed"}  # ESM/Pfam/random + BiGCARP, unmoved here
    moved = measured[(measured["table"] == "cka_summary") & (measured["column"] == "linear_cka")]
    assert set(moved["kind"]) == {"sample"}
    assert (moved["tolerance"] >= spread.MIN_TOLERANCE).all()
    pooled = np.sqrt(np.mean(moved["sd"] ** 2))
    assert np.allclose(moved["column_sd"], pooled)
    assert np.allclose(
        moved["tolerance"],
        np.maximum(spread.SPREAD_SIGMAS * np.maximum(moved["sd"], pooled), spread.MIN_TOLERANCE),
    )


def test_a_new_sample_from_the_same_distribution_passes(measured: pd.DataFrame) -> None:
    checked = spread.check(_resampled(STORED, 99, 0.01), measured)
    assert checked["ok"].all(), checked[~checked["ok"]].head()
    assert (checked["kind"] == "fixed").sum() > 100 and (checked["kind"] == "sample").sum() > 100


def test_a_shifted_value_and_a_missing_table_fail(measured: pd.DataFrame) -> None:
    fresh = _resampled(STORED, 99, 0.01)
    fresh["cka_summary"].loc[0, "linear_cka"] += 0.2
    del fresh["fusion_tests"]
    checked = spread.check(fresh, measured)
    failed = checked[~checked["ok"]]
    assert set(failed["table"]) == {"cka_summary", "fusion_tests"}
    assert len(failed[failed["table"] == "cka_summary"]) == 1
    assert "OUTSIDE: cka_summary" in spread.summary_line(checked, "mini")


def test_a_fixed_value_must_reproduce_up_to_blas_digits(measured: pd.DataFrame) -> None:
    fresh = _resampled(STORED, 99, 0.01)
    fresh["product_class_probe"].loc[0, "mean"] += spread.FIXED_TOLERANCE / 2
    assert spread.check(fresh, measured)["ok"].all()
    fresh["product_class_probe"].loc[0, "mean"] += spread.FIXED_TOLERANCE
    failed = spread.check(fresh, measured).query("not ok")
    assert list(failed["table"]) == ["product_class_probe"] and list(failed["kind"]) == ["fixed"]


def test_a_text_column_that_changed_anywhere_is_not_checked() -> None:
    samples = {f"s{i}": {k: v.copy() for k, v in STORED.items()} for i in range(3)}
    samples["s1"]["fusion_tests"].loc[0, "rival"] = "another"
    measured = spread.measure(samples)
    rival = measured[(measured["table"] == "fusion_tests") & (measured["column"] == "rival")]
    assert set(rival["kind"]) == {"varies"}  # one row flipped: the whole column is a sample
    fresh = {k: v.copy() for k, v in STORED.items()}
    fresh["fusion_tests"].loc[1, "rival"] = "anything"
    assert spread.check(fresh, measured)["ok"].all()
    fresh["product_class_probe"].loc[0, "model"] = "mlp"  # text no sample changed: must match
    failed = spread.check(fresh, measured).query("not ok")
    assert list(zip(failed["table"], failed["column"], strict=True)) == [
        ("product_class_probe", "model")
    ]


def test_a_column_with_one_moved_value_is_all_samples() -> None:
    samples = {f"s{i}": {k: v.copy() for k, v in STORED.items()} for i in range(3)}
    samples["s2"]["cka_summary"].loc[0, "linear_cka"] += 0.01
    measured = spread.measure(samples).query("table == 'cka_summary' and column == 'linear_cka'")
    assert set(measured["kind"]) == {"sample"}
    assert (measured["tolerance"] >= spread.MIN_TOLERANCE).all()


def test_timings_are_not_results() -> None:
    history = pd.DataFrame(
        {"epoch": [1], "valid_loss": [4.0], "wall_s": [3.1], "tokens_per_s": [5e4]}
    )
    assert list(spread.without_timings(history).columns) == ["epoch", "valid_loss"]


def test_check_results_reads_the_profiles_spread(tmp_path: Path, measured: pd.DataFrame) -> None:
    settings = get_profile("mini", root=tmp_path)
    assert spread.check_results(settings) is None
    assert "no training spread measured" in spread.summary_line(None, "mini")
    # A spread that lists none of the asked-for tables (a table newer than the measurement).
    settings.results_dir.mkdir(parents=True)
    measured[measured["table"] != "layer_tests"].to_csv(
        settings.results_dir / spread.SPREAD_NAME, index=False
    )
    STORED["layer_tests"].to_csv(settings.results_dir / "layer_tests.csv", index=False)
    unmeasured = spread.check_results(settings, ["layer_tests"])
    assert unmeasured is not None and unmeasured.empty
    assert "no training spread measured for 'mini'" in spread.summary_line(unmeasured, "mini")
    measured.to_csv(settings.results_dir / spread.SPREAD_NAME, index=False)
    for name, table in _resampled(STORED, 7, 0.01).items():
        table.to_csv(settings.results_dir / f"{name}.csv", index=False)
    checked = spread.check_results(settings, ["cka_summary"])
    assert set(checked["table"]) == {"cka_summary"} and checked["ok"].all()


def test_verdicts_that_flip_are_unstable_and_reported(tmp_path: Path) -> None:
    settings = get_profile("mini", root=tmp_path)
    results = settings.results_dir
    results.mkdir(parents=True)
    for name, table in STORED.items():
        table.to_csv(results / f"{name}.csv", index=False)
    rows = report.report_rows(settings)
    keys = [report.report_verdict_key(row) for _, row in rows.iterrows()]
    assert keys[0] == f"report: {rows['key'].iloc[0]}"
    assert set(rows["verdict"]) <= {*VERDICTS, report.NOT_A_CLAIM}
    verdicts = {f"s{i}": dict(zip(keys, rows["verdict"], strict=True)) for i in range(4)}
    verdicts["s2"][keys[0]] = _another(rows["verdict"].iloc[0])
    measured = spread.measure_verdicts(verdicts)
    assert measured.set_index("verdict")["stable"].to_dict()[keys[0]] is False
    assert measured["stable"].sum() == len(keys) - 1
    measured.to_csv(results / spread.VERDICT_SPREAD_NAME, index=False)
    line = report.agreement_line(settings)
    assert line.startswith(f"{len(keys) - 1}/{len(keys) - 1} report verdicts equal")
    assert keys[0] in line
    text = report.write_report(settings).read_text()
    assert text.count("**changes**") == 1 and "same in all 4" in text
    # A verdict that never changed before, changed now: named as a difference.
    flipped = verdicts["s0"][keys[1]]
    stable = measured.set_index("verdict")
    stable.loc[keys[1], "label"] = _another(flipped)
    stable.reset_index().to_csv(results / spread.VERDICT_SPREAD_NAME, index=False)
    assert f"DIFFERS: {keys[1]}" in report.agreement_line(replace(settings))


def _another(verdict: str) -> str:
    """A four-valued verdict other than ``verdict``."""
    return VERDICTS[1] if verdict == VERDICTS[0] else VERDICTS[0]

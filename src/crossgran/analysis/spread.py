"""How far each reported number moves between training runs, and a fresh run held against it.

Why this exists: BiGCARP (and the local ESM) train deterministically on one floating-point
path, but the last bits of a CPU kernel differ between machines (AVX-512, AVX2 or scalar ATen
kernels; MKL's code path), and after a few hundred optimiser steps those bits grow into a
different model. A stored result of a training run is therefore one *sample*, and checking its
last digits on another machine tests the machine, not the code.

``benchmarks/variance.py`` trains the runs several times (other BiGCARP seeds, other kernel
paths) and writes :data:`SPREAD_NAME` with :func:`measure`: for every number of every result
table, the samples' mean, standard deviation and range. A number no sample changed is *fixed*
(a fresh run must reproduce it, up to the last digits a CPU's BLAS kernels move:
:data:`FIXED_TOLERANCE`); the others are *samples* and a fresh value must lie within
:data:`SPREAD_SIGMAS` standard deviations of the samples' mean (its own sd or its column's
pooled sd, whichever is larger), and never closer than :data:`MIN_TOLERANCE` (a metric on a
0–1 scale is not read closer than that). Text columns
(e.g. which single representation a fusion is compared with) are fixed when every sample agreed
and unchecked when they did not. Both are decided per column: one value that moved makes
every value of its column a sample (see :func:`measure`). :func:`check_results` is what
``crossgran check-outputs`` and the notebooks' checked cells call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from crossgran.profiles import Profile

__all__ = [
    "FIXED_TOLERANCE",
    "MIN_TOLERANCE",
    "SPREAD_NAME",
    "SPREAD_SIGMAS",
    "TABLE_KEYS",
    "TIMING_COLUMNS",
    "VERDICT_SPREAD_NAME",
    "check",
    "check_results",
    "long_form",
    "measure",
    "measure_verdicts",
    "read_spread",
    "read_tables",
    "summary_line",
    "without_timings",
]

SPREAD_NAME = "training_spread.csv"
VERDICT_SPREAD_NAME = "verdict_spread.csv"
# Why 12 sds, the column's pooled sd and a floor of 0.02: from ~5 samples one value's sd is a
# poor estimate (with iid noise, 6 samples and 6 of its own sds, 3 of ~1,300 values fell
# outside: tests/test_spread.py), and the measured deviations are heavy-tailed. Chosen by
# leave-one-out over the 5 measured mini samples (benchmarks/variance.md): holding each sample
# against the spread of the other four, 8 sds and a 0.005 floor left 2 of 13,070 values
# outside, 12 sds and 0.02 none, the largest deviation using 72% of its tolerance. The floor
# is about the half-width of the probes' own 95% bootstrap intervals (0.01-0.03): a sample
# moving less than that is not a different result.
SPREAD_SIGMAS = 12.0
MIN_TOLERANCE = 0.02
EXACT_ATOL = 1e-12  # samples closer than this are bit-identical up to CSV round-tripping
# No training sample changes a fixed value (the Pfam-count probe, say), but the CPU's BLAS
# does, in the last digits: that probe's macro-AUC moved by 3.1e-6 between the Intel machine
# that first stored it and an AMD EPYC (AVX2) one. 1e-4 leaves a margin of 30.
FIXED_TOLERANCE = 1e-4
# Training-history columns that measure the machine, not the run: never part of a result table.
TIMING_COLUMNS = ("elapsed_s", "wall_s", "tokens_per_s")

# A paired test is named by what it compares (``crossgran.analysis.comparisons``); in a table
# of several probes' tests also by the probe (a comparison never pits one probe against another).
_TEST_KEYS = ("task", "property", "candidate", "rivals", "metric")
_PROBE_TEST_KEYS = ("probe", *_TEST_KEYS)
# The columns that name a row of each result table (everything else is a value). A table
# not listed here is a matrix written with its row labels in the first column.
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "adomain_probe": ("property", "probe", "feature_set", "metric"),
    "bigcarp_training": ("init", "epoch"),
    "cka_headline": ("pair",),
    "cka_esm_vs_bigcarp": ("init", "esm_layer", "bigcarp_layer"),
    "cka_evolution": ("run_a", "run_b", "comparison", "epoch"),
    "cka_summary": ("run_a", "run_b", "comparison"),
    "esm_training": ("step",),
    "esm_family_geometry": ("table",),
    "failed_init_probe": ("feature_set", "metric"),
    "fusion_tests": _PROBE_TEST_KEYS,
    "failed_init_tests": _TEST_KEYS,
    "cka_occurrence_tests": _TEST_KEYS,
    "layer_tests": _TEST_KEYS,
    "cka_occurrences": ("run_a", "run_b", "comparison"),
    "adomain_probe_ungrouped": ("property", "probe", "feature_set", "metric"),
    "halogenation_probe": ("probe", "feature_set", "metric"),
    "layer_probes": ("task", "model", "layer", "metric"),
    "product_class_probe": ("probe", "feature_set", "metric"),
}


def without_timings(history: pd.DataFrame) -> pd.DataFrame:
    """A training history as a result table: the :data:`TIMING_COLUMNS` dropped."""
    return history.drop(columns=[c for c in TIMING_COLUMNS if c in history.columns])


def read_tables(results_dir: Path | str) -> dict[str, pd.DataFrame]:
    """Every ``*.csv`` result table of a folder, by file stem (the spread file excluded)."""
    return {
        path.stem: pd.read_csv(path)
        for path in sorted(Path(results_dir).glob("*.csv"))
        if path.name not in (SPREAD_NAME, VERDICT_SPREAD_NAME)
    }


def long_form(name: str, table: pd.DataFrame) -> pd.DataFrame:
    """One row per value of ``table``: ``table``, ``key`` (the row's key columns joined by
    ``|``), ``column`` and ``value`` (float, or the text of a non-numeric column)."""
    keys = list(TABLE_KEYS.get(name, table.columns[:1]))
    missing = [k for k in keys if k not in table.columns]
    if missing:
        raise ValueError(
            f"result table {name}.csv lacks its key columns {missing}; "
            "was it written by another version of the notebooks?"
        )
    key = table[keys].astype(str).fillna("").agg("|".join, axis=1)
    if key.duplicated().any():
        raise ValueError(
            f"result table {name}.csv has repeated keys "
            f"{sorted(set(key[key.duplicated()]))[:3]} over {keys}"
        )
    records = []
    for column in table.columns.drop(keys):
        values = table[column]
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        records.append(
            pd.DataFrame(
                {
                    "table": name,
                    "key": key.to_numpy(),
                    "column": str(column),
                    "value": values.astype(float).to_numpy(dtype=object)
                    if numeric
                    else values.astype(str).to_numpy(dtype=object),
                    "numeric": numeric,
                }
            )
        )
    return pd.concat(records, ignore_index=True)


def _numeric_spread(values: np.ndarray) -> dict:
    nan = np.isnan(values)
    if nan.all():
        return {
            "kind": "fixed",
            "centre": np.nan,
            "sd": 0.0,
            "low": np.nan,
            "high": np.nan,
            "tolerance": FIXED_TOLERANCE,
        }
    if nan.any():
        return {
            "kind": "varies",
            "centre": np.nan,
            "sd": np.nan,
            "low": np.nan,
            "high": np.nan,
            "tolerance": np.nan,
        }
    low, high, sd = values.min(), values.max(), values.std(ddof=1) if values.size > 1 else 0.0
    exact = high - low <= EXACT_ATOL
    return {
        "kind": "fixed" if exact else "sample",
        "centre": values.mean(),
        "sd": sd,
        "low": low,
        "high": high,
        "tolerance": FIXED_TOLERANCE,
    }


def measure(samples: Mapping[str, Mapping[str, pd.DataFrame]]) -> pd.DataFrame:
    """The spread of every value over ``samples`` (sample label -> table name -> table).

    One row per (table, key, column): ``kind`` (fixed / sample / varies), ``n_samples``,
    ``centre`` (mean), ``sd``, ``low``, ``high``, ``tolerance`` for numbers and ``label`` (the
    text every sample agreed on, else empty) for text. A value missing from some sample is
    ``varies``: it is reported, never checked.
    """
    if len(samples) < 2:
        raise ValueError("a spread needs at least two samples")
    frames = [
        long_form(name, table).assign(sample=label)
        for label, tables in samples.items()
        for name, table in tables.items()
    ]
    values = pd.concat(frames, ignore_index=True)
    records = []
    for (table, key, column), group in values.groupby(["table", "key", "column"], sort=True):
        record = {"table": table, "key": key, "column": column, "n_samples": len(group)}
        if len(group) < len(samples):
            record.update(kind="varies")
        elif group["numeric"].all():
            record.update(_numeric_spread(group["value"].to_numpy(dtype=float)))
        else:
            labels = group["value"].astype(str).unique()
            record.update(
                kind="fixed" if len(labels) == 1 else "varies",
                label=labels[0] if len(labels) == 1 else "",
            )
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    # A column is one kind of number: if any of its values moved between samples, all of them
    # can (an accuracy that no sample happened to change, a "closest layer" flag that flipped
    # for one layer only), so all of them are samples -- or, for text, unchecked.
    moved = (
        frame["kind"]
        .isin(["sample", "varies"])
        .groupby([frame["table"], frame["column"]])
        .transform("any")
    )
    numeric = frame["centre"].notna() | frame["sd"].notna()
    frame.loc[moved & numeric & (frame["kind"] == "fixed"), "kind"] = "sample"
    frame.loc[moved & ~numeric & (frame["kind"] == "fixed"), "kind"] = "varies"
    frame.loc[frame["kind"] == "varies", "label"] = ""
    sampled = frame["kind"] == "sample"
    frame["column_sd"] = np.sqrt(
        frame[sampled].groupby(["table", "column"])["sd"].transform(lambda sd: np.mean(sd**2))
    )
    frame.loc[sampled, "tolerance"] = np.maximum(
        SPREAD_SIGMAS * np.maximum(frame.loc[sampled, "sd"], frame.loc[sampled, "column_sd"]),
        MIN_TOLERANCE,
    )
    columns = [
        "table",
        "key",
        "column",
        "kind",
        "n_samples",
        "centre",
        "sd",
        "column_sd",
        "low",
        "high",
        "tolerance",
        "label",
    ]
    return frame.reindex(columns=columns)


def check(tables: Mapping[str, pd.DataFrame], spread: pd.DataFrame) -> pd.DataFrame:
    """Hold a run's tables against a measured spread: one row per checked (fixed or sample)
    value with the run's ``value`` and ``ok``. A value the run did not write fails."""
    checked = spread[spread["kind"] != "varies"]
    fresh = (
        pd.concat([long_form(name, table) for name, table in tables.items()], ignore_index=True)
        if tables
        else pd.DataFrame(columns=["table", "key", "column", "value", "numeric"])
    )
    merged = checked.merge(fresh, on=["table", "key", "column"], how="left", indicator="found")
    ok = []
    for row in merged.itertuples():
        if row.found != "both":
            ok.append(False)
        elif isinstance(row.label, str) and row.label:
            ok.append(str(row.value) == row.label)
        else:
            value = float(row.value)
            ok.append(
                bool(
                    (np.isnan(value) and np.isnan(row.centre))
                    or abs(value - row.centre) <= row.tolerance
                )
            )
    return merged.drop(columns=["found", "numeric"]).assign(ok=ok)


def read_spread(path: Path | str) -> pd.DataFrame:
    """A spread written by :func:`measure`, with its text labels read back as text (a label
    such as "NA" or "True" must not turn into a missing value or a bool)."""
    spread = pd.read_csv(path, keep_default_na=False, na_values=[""])
    spread["label"] = spread["label"].fillna("").astype(str)
    return spread


def check_results(settings: Profile, names: Sequence[str] | None = None) -> pd.DataFrame | None:
    """:func:`check` of ``results/<profile>/`` (only the tables in ``names``, if given) against
    the profile's committed spread; None when no spread was measured for the profile."""
    path = settings.results_dir / SPREAD_NAME
    if not path.is_file():
        return None
    spread = read_spread(path)
    if names is not None:
        spread = spread[spread["table"].isin(names)]
    tables = {
        name: table
        for name, table in read_tables(settings.results_dir).items()
        if name in set(spread["table"])
    }
    return check(tables, spread)


def summary_line(checked: pd.DataFrame | None, profile: str) -> str:
    """One portable line about a check: counts only (the values are a training sample)."""
    if checked is None or checked.empty:
        return (
            f"no training spread measured for '{profile}' (or for these tables) "
            f"(python benchmarks/variance.py --profile {profile})"
        )
    fixed = checked["kind"] == "fixed"
    lines = [
        f"{int(checked.loc[fixed, 'ok'].sum())}/{int(fixed.sum())} fixed values reproduced; "
        f"{int(checked.loc[~fixed, 'ok'].sum())}/{int((~fixed).sum())} sampled values within "
        f"the spread of {int(checked['n_samples'].max())} measured training runs"
    ]
    for row in checked[~checked["ok"]].itertuples():
        lines.append(
            f"  OUTSIDE: {row.table} [{row.key}] {row.column} = {row.value} "
            f"(measured {row.centre:.4g} ± {row.tolerance:.2g}, {row.kind})"
        )
    return "\n".join(lines)


def measure_verdicts(verdicts: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """How often each verdict came out each way: ``verdicts`` maps sample label -> verdict
    name -> label (e.g. a report row's "yes"/"no"). ``stable`` is True when every sample gave
    the same label; an unstable verdict is a property of the training sample, not a result."""
    frame = pd.DataFrame(verdicts)  # verdict name x sample
    records = []
    for name, row in frame.iterrows():
        counts = row.fillna("missing").value_counts()
        records.append(
            {
                "verdict": name,
                "n_samples": int(counts.sum()),
                "labels": "; ".join(f"{label} {n}" for label, n in counts.items()),
                "stable": len(counts) == 1,
                "label": counts.index[0] if len(counts) == 1 else "",
            }
        )
    return pd.DataFrame.from_records(records)

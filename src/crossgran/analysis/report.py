"""The paper-vs-reproduced report: each anchor figure of the paper (``crossgran.analysis.paper``),
our number from the notebooks' result tables, and whether the paper's claim holds here.

Written to ``results/<profile>/paper_vs_reproduced.md`` by notebook 05 and by the ``report``
command. Since our numbers are one training sample, the report also says, per verdict,
whether it came out the same in every training run measured by ``benchmarks/variance.py``
(``verdict_spread.csv``, :func:`crossgran.analysis.spread.measure_verdicts`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from crossgran.analysis.paper import ANCHORS, CHANCE_AUC, SIGNIFICANCE, Anchor
from crossgran.analysis.spread import VERDICT_SPREAD_NAME, read_tables
from crossgran.cache import write_text_atomic
from crossgran.profiles import Profile

__all__ = ["REPORT_NAME", "agreement_line", "report_rows", "report_verdict_key", "write_report"]

REPORT_NAME = "paper_vs_reproduced.md"
Tables = Mapping[str, pd.DataFrame]


@dataclass(frozen=True)
class _Ours:
    """Our number for an anchor, if the notebooks produced one."""

    value: float
    low: float | None
    high: float | None
    p_value: float | None


def _ours(anchor: Anchor, tables: Tables) -> _Ours | None:
    """Our row for ``anchor``; None when its CSV was not written or holds no such row.

    More than one matching row means the selector is ambiguous, which would silently pick
    an arbitrary number, so that raises.
    """
    table = tables.get(anchor.source)
    if table is None:
        return None
    match = pd.Series(True, index=table.index)
    for column, wanted in anchor.select.items():
        if column not in table:
            return None
        match &= table[column].astype(str) == wanted
    rows = table[match]
    if rows.empty:
        return None
    if len(rows) > 1:
        raise ValueError(f"{anchor.source}.csv has {len(rows)} rows for {anchor.select}")
    row = rows.iloc[0]

    def optional(column: str) -> float | None:
        return float(row[column]) if column in row and pd.notna(row[column]) else None

    return _Ours(
        float(row[anchor.value]), optional("ci_low"), optional("ci_high"), optional("p_value")
    )


def _verdict(anchor: Anchor, ours: dict[str, _Ours | None]) -> tuple[str, str]:
    """(expected direction in words, "yes" / "no" / "not run") for one anchor."""
    mine = ours[anchor.key]
    if anchor.expect == "chance":
        text = f"95% CI contains chance ({CHANCE_AUC})"
        if mine is None or mine.low is None:
            return text, "not run"
        return text, "yes" if mine.low <= CHANCE_AUC <= mine.high else "no"
    if anchor.expect == "not_better":
        text = f"not significantly above random-init (paired bootstrap p ≥ {SIGNIFICANCE})"
        if mine is None or mine.p_value is None:
            return text, "not run"
        return text, "yes" if mine.p_value >= SIGNIFICANCE else "no"
    if anchor.refs:
        names = [next(a.what for a in ANCHORS if a.key == ref) for ref in anchor.refs]
        text = f"{anchor.expect} " + (
            names[0] if len(names) == 1 else "the best of " + ", ".join(names)
        )
        references = [ours[r] for r in anchor.refs]
        if mine is None or any(r is None for r in references):
            return text, "not run"
        reference = max(r.value for r in references)
    else:
        text = f"{anchor.expect} chance ({CHANCE_AUC})"
        if mine is None:
            return text, "not run"
        reference = CHANCE_AUC
    holds = mine.value > reference if anchor.expect == "above" else mine.value < reference
    return text, "yes" if holds else "no"


def _rows(profile_name: str, tables: Tables) -> pd.DataFrame:
    """One row per anchor from already-read result tables (see :func:`report_rows`)."""
    ours = {anchor.key: _ours(anchor, tables) for anchor in ANCHORS}
    records = []
    for anchor in ANCHORS:
        mine = ours[anchor.key]
        direction, holds = _verdict(anchor, ours)
        records.append(
            {
                "key": anchor.key,
                "task": anchor.task,
                "representation": anchor.what,
                "metric": anchor.metric,
                "paper": anchor.paper,
                "ours": mine.value if mine else None,
                "ci_low": mine.low if mine else None,
                "ci_high": mine.high if mine else None,
                "profile": profile_name,
                "direction": direction,
                "holds": holds,
            }
        )
    return pd.DataFrame.from_records(records)


def report_rows(settings: Profile) -> pd.DataFrame:
    """One row per anchor: the paper's value, ours (with 95% CI when known) and the verdict."""
    return _rows(settings.name, read_tables(settings.results_dir))


def report_verdict_key(row: pd.Series) -> str:
    """The name under which ``benchmarks/variance.py`` records a report row's verdict."""
    return f"report: {row['task']} | {row['representation']} | {row['metric']}"


def _verdict_spread(settings: Profile) -> pd.DataFrame | None:
    """The measured verdict spread (``spread.measure_verdicts``) by verdict name."""
    path = settings.results_dir / VERDICT_SPREAD_NAME
    if not path.is_file():
        return None
    measured = pd.read_csv(path, keep_default_na=False).set_index("verdict")
    measured["stable"] = measured["stable"].astype(str) == "True"  # bool or text, by pandas
    return measured


def _stability(row: pd.Series, measured: pd.DataFrame | None) -> str:
    """How this row's verdict came out over the measured training runs, for the report."""
    key = report_verdict_key(row)
    if measured is None or key not in measured.index:
        return "not measured"
    entry = measured.loc[key]
    if entry["stable"]:
        return f"same in all {entry['n_samples']}"
    return f"**changes** ({entry['labels']})"


def agreement_line(settings: Profile) -> str:
    """Whether this run's report verdicts agree with every verdict that was the same in all
    measured training runs: counts and names only, so the line is the same on any machine
    unless a verdict that never changed before changes now."""
    measured = _verdict_spread(settings)
    if measured is None:
        return f"no verdict spread measured for '{settings.name}'"
    rows = report_rows(settings)
    keys = rows.apply(report_verdict_key, axis=1)
    stable = measured[measured["stable"]]
    checked = [
        (key, holds) for key, holds in zip(keys, rows["holds"], strict=True) if key in stable.index
    ]
    differ = [key for key, holds in checked if stable.loc[key, "label"] != holds]
    changing = [key for key in keys if key in measured.index and key not in stable.index]
    lines = [
        f"{len(checked) - len(differ)}/{len(checked)} report verdicts equal the verdict of "
        f"every measured training run"
    ]
    lines += [f"  DIFFERS: {key}" for key in differ]
    lines += [
        f"{len(changing)} report verdicts changed between measured training runs "
        "(samples, not results):"
    ] + [f"  {key}" for key in changing]
    return "\n".join(lines)


def _format_ours(row: pd.Series) -> str:
    if pd.isna(row["ours"]):
        return "not run"
    if pd.isna(row["ci_low"]):
        return f"{row['ours']:.3f}"
    return f"{row['ours']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def _halogenation_note(tables: Tables) -> list[str]:
    """The halogenation probe's model, read from its CSV (the header's "logistic regressions"
    do not cover it); no line when the task was not run, so offline reports stay unchanged."""
    table = tables.get("halogenation_probe")
    if table is None:
        return []
    models = ", ".join(sorted(set(table["model"])))
    return [
        (
            f"Halogenation (`halogenation_probe.csv`): {models} probe (the paper: MLP 512-128), "
            "folds grouped by BGC, whose halogenases share one label."
        ),
        "",
    ]


def _header(settings: Profile, tables: Tables, rows: pd.DataFrame, measured: bool) -> list[str]:
    """The report's text above its table: sources, how to read it, the verdict counts."""
    counts = rows["holds"].value_counts()
    changing = int(rows["stability"].str.startswith("**changes").sum())
    return [
        f"# Paper vs reproduced ({settings.name} profile)",
        "",
        (
            "Paper: Xiao et al., *Cross-Granularity Representations for Biological Sequences: "
            "Insights from ESM and BiGCARP*, IEEE BIBM 2025 (doi:10.1109/BIBM66473.2025.11356265)."
        ),
        (
            "Ours: the CSVs in this folder, written by notebooks 03 and 05. Our probes are "
            "cross-validated logistic regressions on pooled vectors (Pfam counts: a random forest "
            "under `full` only); "
            "the paper used BiLSTM and MLP probes on ESM-1b and a 32-layer BiGCARP, so compare "
            "directions, not decimals. 95% CIs: row bootstrap of out-of-fold predictions."
        ),
        "",
        *_halogenation_note(tables),
        (
            f"Directions that hold: {counts.get('yes', 0)}; do not hold: {counts.get('no', 0)}; "
            f"not run: {counts.get('not run', 0)}."
        ),
        "",
        (
            "Our numbers are one training run (a sample: another CPU or seed trains another model). "
            "The last column says whether the verdict came out the same in every run measured by "
            f"`benchmarks/variance.py`; {changing} changed, and those are properties of the sample, "
            "not results."
            if measured
            else "Our numbers are one training run; no spread over training runs was measured for this "
            "profile (`benchmarks/variance.py`)."
        ),
        "",
    ]


def write_report(settings: Profile) -> Path:
    """Write ``results/<profile>/paper_vs_reproduced.md`` from the notebooks' CSVs.

    Deterministic bytes (no timestamps), so a rerun with unchanged results changes nothing.
    """
    tables = read_tables(settings.results_dir)
    rows = _rows(settings.name, tables)
    measured = _verdict_spread(settings)
    rows["stability"] = [_stability(row, measured) for _, row in rows.iterrows()]
    lines = [
        *_header(settings, tables, rows, measured is not None),
        (
            "| task | representation / comparison | metric | paper | ours (95% CI) | profile "
            "| expected direction | holds | over training runs |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {row.task} | {row.representation} | {row.metric} | {row.paper:.3f} | "
        f"{_format_ours(row)} | {row.profile} | {row.direction} | {row.holds} | "
        f"{row.stability} |"
        for _, row in rows.iterrows()
    ]
    path = settings.results_dir / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path

"""The paper-vs-reproduced report: each anchor of the paper (``crossgran.analysis.paper``),
our number from the notebooks' result tables, the paired test behind the claim and its
four-valued verdict (``crossgran.analysis.verdicts``).

Written to ``results/<profile>/paper_vs_reproduced.md`` by notebook 05 and by the ``report``
command. Holm's correction runs over every "above" comparison in the report, so a verdict here
can be stricter than the notebook line that printed it (each notebook corrects over its own
tests). Since our numbers are one training sample, the report also says, per verdict,
whether it came out the same in every training run measured by ``benchmarks/variance.py``
(``verdict_spread.csv``, :func:`crossgran.analysis.spread.measure_verdicts`).

A table probed with several probes has a ``probe`` column; a row then reads the first of its
anchor's ``probes`` (the paper's probe before the linear one, ``paper.PROBES_BY_TABLE``) that
the table holds for it (or the same kind of probe at the profile's sizes), takes its test from
the same probe, and the report names that probe.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from crossgran.analysis.paper import ANCHORS, SIGNIFICANCE, Anchor
from crossgran.analysis.spread import VERDICT_SPREAD_NAME, read_tables
from crossgran.analysis.verdicts import EQUIVALENCE_MARGIN, VERDICTS, decide, require_controls
from crossgran.cache import write_text_atomic
from crossgran.models.runs import imported_runs
from crossgran.profiles import Profile

__all__ = [
    "NOT_A_CLAIM",
    "REPORT_NAME",
    "agreement_line",
    "report_rows",
    "report_verdict_key",
    "write_report",
]

REPORT_NAME = "paper_vs_reproduced.md"
NOT_A_CLAIM = "not a claim"
Tables = Mapping[str, pd.DataFrame]
# What each task's bootstrap resamples (the unit its rows are grouped by).
RESAMPLED = {
    "MIBiG product class": "BGCs",
    "A-domain": "parent proteins",
    "halogenation": "BGCs",
    "claim 2": "held-out sentences",
    "claim 3": "Pfam families",
}
_UNTESTABLE_OFFLINE = {
    "halogenation": "ESM and the fusion need the BGCs' protein sequences, which only the MIBiG "
    "release has (`full`); offline data keep Pfam counts only",
}


def _matching(table: pd.DataFrame, select: Mapping[str, str]) -> pd.DataFrame:
    """The rows of ``table`` whose columns equal ``select`` (as text; missing is "")."""
    match = pd.Series(True, index=table.index)
    for column, wanted in select.items():
        match &= table[column].astype("string").fillna("") == wanted
    return table[match]


def _match(table: pd.DataFrame | None, select: Mapping[str, str], what: str) -> pd.Series | None:
    """The one row of ``table`` whose columns equal ``select``; None when the table or the row
    is missing. More than one row means an ambiguous selector, which would silently pick an
    arbitrary number, so that raises."""
    if table is None or any(column not in table for column in select):
        return None
    rows = _matching(table, select)
    if len(rows) > 1:
        raise ValueError(f"{what}.csv has {len(rows)} rows for {dict(select)}")
    return None if rows.empty else rows.iloc[0]


def _probe_kind(label: str) -> str:
    """A probe label without its sizes: "BiLSTM (2 x 16)" -> "BiLSTM"."""
    return label.split(" (", 1)[0]


def _probe(anchor: Anchor, tables: Tables) -> str:
    """The probe whose row ``anchor`` reads: the first of ``anchor.probes`` its source table
    holds for it, or the same kind of probe at the profile's sizes (a profile may run the
    paper's BiLSTM smaller, ``Profile.sequence_probe``), else the only probe there is; "" when
    the table has no ``probe`` column (or no row). Several probes and none of them chosen would
    make the row arbitrary, so that raises."""
    table = tables.get(anchor.source)
    if table is None or "probe" not in table or any(c not in table for c in anchor.select):
        return ""
    available = set(_matching(table, anchor.select)["probe"].astype(str))
    for wanted in anchor.probes:
        if wanted in available:
            return wanted
        kind = sorted(p for p in available if _probe_kind(p) == _probe_kind(wanted))
        if len(kind) == 1:
            return kind[0]
    if len(available) <= 1:
        return next(iter(available), "")
    raise ValueError(
        f"{anchor.source}.csv has probes {sorted(available)} for {anchor.select} and anchor "
        f"{anchor.key} names none of them, nor one probe of their kinds (paper.PROBES_BY_TABLE)"
    )


def _with_probe(select: Mapping[str, str], probe: str, table: pd.DataFrame | None) -> dict:
    """``select`` narrowed to ``probe`` where ``table`` has a ``probe`` column."""
    if probe and table is not None and "probe" in table:
        return {**select, "probe": probe}
    return dict(select)


def _ours(anchor: Anchor, tables: Tables, probe: str) -> dict[str, float]:
    table = tables.get(anchor.source)
    row = _match(table, _with_probe(anchor.select, probe, table), anchor.source)
    if row is None:
        return {"ours": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    return {
        "ours": float(row[anchor.value]),
        "ci_low": float(row.get("ci_low", np.nan)),
        "ci_high": float(row.get("ci_high", np.nan)),
    }


def _test(anchor: Anchor, tables: Tables, probe: str) -> dict[str, object]:
    """The anchor's paired test (delta, CI, one-sided p, the rival it was run against), from
    the results of the probe the anchor's number comes from."""
    empty = {"rival": "", "delta": np.nan, "low": np.nan, "high": np.nan, "p_value": np.nan}
    table = tables.get(anchor.tests)
    if anchor.kind == "none" or table is None or anchor.test_select is None:
        return empty
    table = table[table["rival"].astype(str).isin(anchor.rivals)]
    row = _match(table, _with_probe(anchor.test_select, probe, table), anchor.tests)
    if row is None:
        return empty
    return {key: row[key] for key in empty}


def _unstarted(anchor: Anchor, imported: frozenset[str]) -> list[str]:
    """The runs of ``anchor.starts`` imported from an official checkpoint: their epoch 0 is not
    where their training started, so the anchor's movement-from-start claim has no start."""
    return [run for run in anchor.starts if run in imported]


def _reason(anchor: Anchor, found: bool, controls: list[str], unstarted: list[str]) -> str:
    if anchor.kind == "none":
        return anchor.note
    if unstarted:
        return (
            f"the {' and '.join(unstarted)}-init run is the released checkpoint, whose own "
            "initialisation was never published: its epoch 0 is a fresh initialisation, not the "
            "start its training moved away from"
        )
    if not found:
        task = anchor.task.split(":")[0]
        return _UNTESTABLE_OFFLINE.get(task, "not run in this profile")
    if controls:
        return "its representation did not beat " + "; ".join(controls)
    return ""


def _rows(
    profile_name: str, tables: Tables, imported: frozenset[str] = frozenset()
) -> pd.DataFrame:
    """One row per anchor from already-read result tables (see :func:`report_rows`);
    ``imported``: the BiGCARP runs imported from official checkpoints. An anchor that measures
    movement from one of their epoch-0 checkpoints is not tested (nor counted by Holm)."""
    probes = [_probe(a, tables) for a in ANCHORS]
    unstarted = [_unstarted(a, imported) for a in ANCHORS]
    records = [
        {
            "key": a.key,
            "task": a.task,
            "representation": a.what,
            "versus": a.versus,
            "kind": a.kind,
            "note": a.note if a.kind != "none" else "",
            "metric": a.metric,
            "probe": probe,
            "paper": a.paper,
            **_ours(a, tables, probe),
            **_test(a, tables, probe),
            "profile": profile_name,
        }
        for a, probe in zip(ANCHORS, probes, strict=True)
    ]
    rows = pd.DataFrame.from_records(records)
    has_start = pd.Series([not runs for runs in unstarted], index=rows.index)
    tested = rows["kind"].ne("none") & rows["delta"].notna() & has_start
    decided = decide(rows[tested], alpha=SIGNIFICANCE, margin=EQUIVALENCE_MARGIN)
    rows["p_holm"] = decided["p_holm"].reindex(rows.index)
    rows["verdict"] = decided["verdict"].reindex(rows.index).fillna(VERDICTS[3])
    rows.loc[rows["kind"] == "none", "verdict"] = NOT_A_CLAIM
    base = rows.set_index("key")["verdict"].to_dict()
    reasons = []
    for i, anchor in enumerate(ANCHORS):
        failed = [
            f"{rows.loc[rows['key'] == c, 'representation'].iloc[0]} vs "
            f"{rows.loc[rows['key'] == c, 'versus'].iloc[0]} ({base[c]})"
            for c in anchor.controls
            if base[c] != VERDICTS[0]
        ]
        if anchor.kind != "none":
            rows.loc[i, "verdict"] = require_controls(
                base[anchor.key], [base[c] for c in anchor.controls]
            )
        reasons.append(_reason(anchor, bool(tested.iloc[i]), failed, unstarted[i]))
    rows["reason"] = reasons
    return rows


def report_rows(settings: Profile) -> pd.DataFrame:
    """One row per anchor: the probe it read, the paper's value, ours (with 95% CI), the paired
    test (delta, CI, one-sided p and its Holm adjustment) and the verdict, with the reason
    where no test ran (claim-2 rows on an imported run's epoch 0 among them:
    :func:`crossgran.models.runs.imported_runs`)."""
    return _rows(settings.name, read_tables(settings.results_dir), imported_runs(settings))


def report_verdict_key(row: pd.Series) -> str:
    """The name under which ``benchmarks/variance.py`` records a report row's verdict."""
    return f"report: {row['key']}"


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
        (key, verdict)
        for key, verdict in zip(keys, rows["verdict"], strict=True)
        if key in stable.index
    ]
    differ = [key for key, verdict in checked if stable.loc[key, "label"] != verdict]
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


def _interval(value: float, low: float, high: float, signed: bool = False) -> str:
    if pd.isna(value):
        return "—"
    form = "+.3f" if signed else ".3f"
    if pd.isna(low):
        return f"{value:{form}}"
    return f"{value:{form}} [{low:{form}}, {high:{form}}]"


def _claim(row: pd.Series) -> str:
    if row["kind"] == "none":
        return (
            f"{row['representation']} (vs {row['versus']})"
            if row["versus"]
            else row["representation"]
        )
    relation = "above" if row["kind"] == "above" else f"within ±{EQUIVALENCE_MARGIN} of"
    note = f" ({row['note']})" if row["note"] else ""
    return f"{row['representation']} **{relation}** {row['versus']}{note}"


def _test_words(row: pd.Series) -> str:
    if row["kind"] == "none" or pd.isna(row["delta"]):
        return "—"
    unit = next((u for task, u in RESAMPLED.items() if row["task"].startswith(task)), "rows")
    against = f"vs {row['rival']}; " if row["rival"] else ""
    if row["kind"] == "equivalent":
        return f"{against}paired bootstrap over {unit}, 95% CI inside ±{EQUIVALENCE_MARGIN}"
    return f"{against}one-sided paired bootstrap over {unit}, Holm"


def _verdict_text(row: pd.Series) -> str:
    return f"{row['verdict']} ({row['reason']})" if row["reason"] else row["verdict"]


def _header(settings: Profile, rows: pd.DataFrame, measured: bool) -> list[str]:
    """The report's text above its table: sources, how to read it, the verdict counts."""
    counts = rows["verdict"].value_counts()
    n_above = int(rows["p_holm"].notna().sum())
    changing = int(rows["stability"].str.startswith("**changes").sum())
    tally = "; ".join(f"{v}: {counts.get(v, 0)}" for v in (*VERDICTS, NOT_A_CLAIM))
    return [
        f"# Paper vs reproduced ({settings.name} profile)",
        "",
        (
            "Paper: Xiao et al., *Cross-Granularity Representations for Biological Sequences: "
            "Insights from ESM and BiGCARP*, IEEE BIBM 2025 (doi:10.1109/BIBM66473.2025.11356265)."
        ),
        (
            "Ours: the CSVs in this folder, written by notebooks 03 and 05; the model sizes of "
            "this profile are not the paper's, so compare verdicts, not decimals. The probe "
            "column names the probe our number and its test come from: the paper's where this "
            "profile ran it (MLP (512, 256) for A-domain properties, MLP (512, 128) for "
            "halogenation, for product classes the BiLSTM over gene-ordered domains, else the "
            "MLP (512, 256) on pooled vectors), otherwise the linear probe."
        ),
        "",
        (
            "How a verdict is reached: every claim is a paired test on our own rows. "
            f"*A above B*: one-sided paired bootstrap, p Holm-corrected over the report's {n_above} "
            f"such comparisons; **holds** when p < {SIGNIFICANCE}, **does not hold** when the "
            "difference's 95% CI lies below 0, else **inconclusive**. *A no better than B* "
            f"(claim 1): **holds** when the paired difference's 95% CI lies inside "
            f"±{EQUIVALENCE_MARGIN}, **does not hold** when it lies wholly outside, else "
            "**inconclusive**. A claim resting on a learned representation is **not testable "
            "here** unless that representation first beats its controls: a width-matched, "
            "domain-consistent random projection pooled the same way, and the untrained model "
            "(BiGCARP's epoch-0 checkpoint, ESM's initial weights). A-domain rows resample parent "
            "proteins (as their folds are grouped); product-class rows resample BGCs; CKA rows "
            "resample held-out sentences. Paper gaps smaller than the margin are shown but are "
            "not claims."
        ),
        "",
        f"Verdicts: {tally}.",
        "",
        (
            "Our numbers are one training run (a sample: another CPU or seed trains another "
            "model). The last column says whether the verdict came out the same in every run "
            f"measured by `benchmarks/variance.py`; {changing} changed, and those are properties "
            "of the sample, not results."
            if measured
            else "Our numbers are one training run; no spread over training runs was measured "
            "for this profile (`benchmarks/variance.py`)."
        ),
        "",
    ]


def write_report(settings: Profile) -> Path:
    """Write ``results/<profile>/paper_vs_reproduced.md`` from the notebooks' CSVs.

    Deterministic bytes (no timestamps), so a rerun with unchanged results changes nothing.
    """
    rows = report_rows(settings)
    measured = _verdict_spread(settings)
    rows["stability"] = [_stability(row, measured) for _, row in rows.iterrows()]
    lines = [
        *_header(settings, rows, measured is not None),
        "| task | claim | metric | probe | paper | ours (95% CI) | test | Δ (95% CI) | p (Holm) "
        "| verdict | over training runs |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, row in rows.iterrows():
        paper = "—" if pd.isna(row["paper"]) else f"{row['paper']:.3f}"
        p = "—" if pd.isna(row["p_holm"]) else f"{row['p_holm']:.3f}"
        probe = row["probe"] or "—"
        lines.append(
            f"| {row['task']} | {_claim(row)} | {row['metric']} | {probe} | {paper} | "
            f"{_interval(row['ours'], row['ci_low'], row['ci_high'])} | {_test_words(row)} | "
            f"{_interval(row['delta'], row['low'], row['high'], signed=True)} | {p} | "
            f"{_verdict_text(row)} | {row['stability']} |"
        )
    path = settings.results_dir / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path

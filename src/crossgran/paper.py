"""The paper's anchor figures as data, and the paper-vs-reproduced report built from them.

Source: Xiao H., Breitling R., Takano E., Álvarez M. A. *Cross-Granularity Representations
for Biological Sequences: Insights from ESM and BiGCARP.* IEEE BIBM 2025, pp. 6936–6943,
doi:10.1109/BIBM66473.2025.11356265, arXiv:2603.20825. The values below are copied from the
paper's results (MIBiG 3 product-class table, A-domain substrate-property and halogenation
AUCs, linear CKA between BiGCARP layers); nothing here reads the paper at run time.

Why a direction and not a tolerance: the offline profiles run a small local ESM-2 and a mini
BiGCARP with linear probes on pooled vectors (the paper: ESM-1b, a 32-layer BiGCARP, BiLSTM
and MLP probes), so absolute numbers are not expected to match. What a reproduction can test
is each figure's *claim*: fused above the best single representation, ESM initialisation not
better than random, the token table close to its initialisation, and so on. Every anchor
states that claim as a comparison with other anchors (or with chance) and the report says
whether our numbers make the same comparison come out the same way.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from crossgran.cache import write_text_atomic
from crossgran.profiles import Profile

__all__ = ["ANCHORS", "Anchor", "add_report_command", "agreement_line", "report_rows",
           "report_verdict_key", "write_report"]

Expectation = Literal["above", "below", "chance", "not_better"]
CHANCE_AUC = 0.5
SIGNIFICANCE = 0.05
REPORT_NAME = "paper_vs_reproduced.md"


@dataclass(frozen=True)
class Anchor:
    """One figure of the paper, where our counterpart lives, and the claim it supports.

    ``source`` is a results CSV stem written by a notebook and ``select`` the column values
    that pick our row from it; ``value`` names the column holding the number. ``expect``:
    ``above``/``below`` the largest of the ``refs`` anchors' values (chance AUC 0.5 when
    there are no refs), ``chance`` (our 95% CI contains 0.5), or ``not_better`` (the row's
    paired bootstrap against random initialisation has p >= 0.05, i.e. no significant gain).
    """

    key: str
    task: str
    what: str
    metric: str
    paper: float
    source: str
    select: dict[str, str] = field(default_factory=dict)
    expect: Expectation = "above"
    refs: tuple[str, ...] = ()
    value: str = "mean"


def _product_class(key: str, what: str, f1: float, auc: float, source: str,
                   select: dict[str, str], expect: Expectation,
                   refs: tuple[str, ...]) -> list[Anchor]:
    """The product-class table reports macro-F1 and macro-AUC per representation."""
    return [Anchor(f"{key}_{metric}", "MIBiG product class", what, label, paper, source,
                   {**select, "metric": metric}, expect, tuple(f"{ref}_{metric}" for ref in refs))
            for metric, label, paper in (("f1", "macro-F1", f1), ("auc", "macro-AUC", auc))]


def _adomain(prop: str, feature_set: str, what: str, auc: float, expect: Expectation,
             refs: tuple[str, ...] = ()) -> Anchor:
    return Anchor(f"{prop}_{feature_set}", f"A-domain {prop}", what, "AUC", auc, "adomain_probe",
                  {"property": prop, "feature_set": feature_set, "metric": "auc"}, expect,
                  tuple(f"{prop}_{ref}" for ref in refs))


def _cka(key: str, what: str, paper: float, select: dict[str, str], expect: Expectation,
         refs: tuple[str, ...]) -> Anchor:
    return Anchor(key, "CKA (linear)", what, "linear CKA", paper, "cka_summary", select, expect,
                  refs, value="linear_cka")


_SINGLES = ("pc_esm", "pc_random_embedder", "pc_random_last")
_NOT_BETTER = ("pc_esm_embedder", "pc_esm_last")

ANCHORS: tuple[Anchor, ...] = (
    *_product_class("pc_fused", "ESM + BiGCARP (last layer) concatenated", 0.721, 0.911,
                    "product_class_probe", {"feature_set": "esm+bigcarp_last"}, "above",
                    _SINGLES),
    *_product_class("pc_random_embedder", "random-init BiGCARP embedder", 0.719, 0.908,
                    "product_class_probe", {"feature_set": "bigcarp_embedder"}, "above",
                    ("pc_random",)),
    *_product_class("pc_esm_last", "ESM-init BiGCARP last layer", 0.717, 0.901,
                    "failed_init_probe", {"init": "esm", "layer": "last"}, "not_better", ()),
    *_product_class("pc_random_last", "random-init BiGCARP last layer", 0.707, 0.902,
                    "product_class_probe", {"feature_set": "bigcarp_last"}, "above",
                    ("pc_random",)),
    *_product_class("pc_esm_embedder", "ESM-init BiGCARP embedder", 0.704, 0.888,
                    "failed_init_probe", {"init": "esm", "layer": "embedder"}, "not_better", ()),
    *_product_class("pc_esm", "ESM (count-weighted family vectors)", 0.700, 0.900,
                    "product_class_probe", {"feature_set": "esm"}, "above", ("pc_random",)),
    *_product_class("pc_pfam2vec", "Pfam2vec + random forest (ours: Pfam domain counts)", 0.630,
                    0.908, "product_class_probe", {"feature_set": "pfam_counts"}, "above",
                    ("pc_random",)),
    Anchor("pc_random_f1", "MIBiG product class", "random vectors", "macro-F1", 0.162,
           "product_class_probe", {"feature_set": "random", "metric": "f1"}, "below",
           ("pc_esm_f1",)),
    Anchor("pc_random_auc", "MIBiG product class", "random vectors", "macro-AUC", 0.505,
           "product_class_probe", {"feature_set": "random", "metric": "auc"}, "chance"),
    _adomain("is_aromatic", "stachel", "ESM, Stachelhaus positions", 0.958, "above",
             ("esm_mean",)),
    _adomain("is_aromatic", "bigcarp+stachel", "BiGCARP + Stachelhaus-position ESM", 0.959,
             "above", ("stachel", "bigcarp")),
    _adomain("is_aromatic", "esm_mean", "ESM mean over the domain", 0.912, "above", ("bigcarp",)),
    _adomain("is_aromatic", "bigcarp+esm_mean", "BiGCARP + ESM mean", 0.904, "below",
             ("esm_mean",)),
    _adomain("is_aromatic", "bigcarp", "BiGCARP A-domain token in context", 0.719, "above",
             ("random",)),
    _adomain("is_aromatic", "random", "random vectors", 0.493, "chance"),
    _adomain("has_heterocycle", "stachel", "ESM, Stachelhaus positions", 0.939, "above",
             ("esm_mean",)),
    _adomain("has_heterocycle", "esm_mean", "ESM mean over the domain", 0.885, "above",
             ("bigcarp",)),
    _adomain("has_heterocycle", "bigcarp", "BiGCARP A-domain token in context", 0.649, "above"),
    Anchor("halo_fused", "halogenation", "ESM + BiGCARP domain + BiGCARP mean-pool", "AUC", 0.761,
           "halogenation_probe", {"feature_set": "esm+bigcarp_domain+bigcarp_mean",
                                  "metric": "auc"}, "above", ("halo_esm", "halo_bigcarp")),
    Anchor("halo_esm", "halogenation", "ESM", "AUC", 0.661, "halogenation_probe",
           {"feature_set": "esm", "metric": "auc"}, "above", ("halo_bigcarp",)),
    Anchor("halo_bigcarp", "halogenation", "BiGCARP domain", "AUC", 0.508, "halogenation_probe",
           {"feature_set": "bigcarp_domain", "metric": "auc"}, "chance"),
    _cka("cka_esm_table_init", "ESM-init token table after training vs its initialisation",
         0.954, {"comparison": "token_table_vs_init", "run_a": "esm", "run_b": "esm"}, "above",
         ("cka_esm_embedder_last",)),
    _cka("cka_esm_embedder_last", "ESM-init embedder vs ESM-init last layer", 0.285,
         {"comparison": "embedder_vs_last", "run_a": "esm", "run_b": "esm"}, "below",
         ("cka_esm_table_init",)),
    _cka("cka_random_embedder_last", "random-init embedder vs random-init last layer", 0.311,
         {"comparison": "embedder_vs_last", "run_a": "random", "run_b": "random"}, "below",
         ("cka_esm_table_init",)),
    _cka("cka_esm_embedder_random_last", "ESM-init embedder vs random-init last layer", 0.110,
         {"comparison": "embedder_vs_last", "run_a": "esm", "run_b": "random"}, "below",
         ("cka_esm_embedder_last",)),
)


@dataclass(frozen=True)
class _Ours:
    """Our number for an anchor, if the notebooks produced one."""

    value: float
    low: float | None
    high: float | None
    p_value: float | None


def _ours(anchor: Anchor, tables: dict[str, pd.DataFrame | None]) -> _Ours | None:
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

    return _Ours(float(row[anchor.value]), optional("ci_low"), optional("ci_high"),
                 optional("p_value"))


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
        text = f"{anchor.expect} " + (names[0] if len(names) == 1
                                      else "the best of " + ", ".join(names))
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


def _read_tables(results_dir: Path) -> dict[str, pd.DataFrame | None]:
    return {source: pd.read_csv(path) if (path := results_dir / f"{source}.csv").is_file() else None
            for source in sorted({anchor.source for anchor in ANCHORS})}


def report_rows(settings: Profile) -> pd.DataFrame:
    """One row per anchor: the paper's value, ours (with 95% CI when known) and the verdict."""
    tables = _read_tables(settings.results_dir)
    ours = {anchor.key: _ours(anchor, tables) for anchor in ANCHORS}
    records = []
    for anchor in ANCHORS:
        mine = ours[anchor.key]
        direction, holds = _verdict(anchor, ours)
        records.append({
            "key": anchor.key, "task": anchor.task, "representation": anchor.what,
            "metric": anchor.metric, "paper": anchor.paper,
            "ours": mine.value if mine else None,
            "ci_low": mine.low if mine else None, "ci_high": mine.high if mine else None,
            "profile": settings.name, "direction": direction, "holds": holds,
        })
    return pd.DataFrame.from_records(records)


def report_verdict_key(row: pd.Series) -> str:
    """The name under which ``benchmarks/variance.py`` records a report row's verdict."""
    return f"report: {row['task']} | {row['representation']} | {row['metric']}"


def _verdict_spread(settings: Profile) -> pd.DataFrame | None:
    """The measured verdict spread (``crossgran.spread.measure_verdicts``) by verdict name."""
    from crossgran.spread import VERDICT_SPREAD_NAME

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
    checked = [(key, holds) for key, holds in zip(keys, rows["holds"], strict=True)
               if key in stable.index]
    differ = [key for key, holds in checked if stable.loc[key, "label"] != holds]
    changing = [key for key in keys if key in measured.index and key not in stable.index]
    lines = [f"{len(checked) - len(differ)}/{len(checked)} report verdicts equal the verdict of "
             f"every measured training run"]
    lines += [f"  DIFFERS: {key}" for key in differ]
    lines += [f"{len(changing)} report verdicts changed between measured training runs "
              "(samples, not results):"] + [f"  {key}" for key in changing]
    return "\n".join(lines)


def _format_ours(row: pd.Series) -> str:
    if pd.isna(row["ours"]):
        return "not run"
    if pd.isna(row["ci_low"]):
        return f"{row['ours']:.3f}"
    return f"{row['ours']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def _halogenation_note(results_dir: Path) -> list[str]:
    """The halogenation probe's model, read from its CSV (the header's "logistic regressions"
    do not cover it); no line when the task was not run, so offline reports stay unchanged."""
    path = results_dir / "halogenation_probe.csv"
    if not path.is_file():
        return []
    models = ", ".join(sorted(set(pd.read_csv(path)["model"])))
    return [(f"Halogenation (`{path.name}`): {models} probe (the paper: MLP 512-128), folds "
             "grouped by BGC, whose halogenases share one label."), ""]


def write_report(settings: Profile) -> Path:
    """Write ``results/<profile>/paper_vs_reproduced.md`` from the notebooks' CSVs.

    Deterministic bytes (no timestamps), so a rerun with unchanged results changes nothing.
    """
    rows = report_rows(settings)
    measured = _verdict_spread(settings)
    rows["stability"] = [_stability(row, measured) for _, row in rows.iterrows()]
    counts = rows["holds"].value_counts()
    changing = int(rows["stability"].str.startswith("**changes").sum())
    lines = [
        f"# Paper vs reproduced ({settings.name} profile)",
        "",
        ("Paper: Xiao et al., *Cross-Granularity Representations for Biological Sequences: "
         "Insights from ESM and BiGCARP*, IEEE BIBM 2025 (doi:10.1109/BIBM66473.2025.11356265)."),
        ("Ours: the CSVs in this folder, written by notebooks 03 and 05. Our probes are "
         "cross-validated logistic regressions on pooled vectors (Pfam counts: a random forest "
         "under `full` only); "
         "the paper used BiLSTM and MLP probes on ESM-1b and a 32-layer BiGCARP, so compare "
         "directions, not decimals. 95% CIs: row bootstrap of out-of-fold predictions."),
        "",
        *_halogenation_note(settings.results_dir),
        (f"Directions that hold: {counts.get('yes', 0)}; do not hold: {counts.get('no', 0)}; "
         f"not run: {counts.get('not run', 0)}."),
        "",
        ("Our numbers are one training run (a sample: another CPU or seed trains another model). "
         "The last column says whether the verdict came out the same in every run measured by "
         f"`benchmarks/variance.py`; {changing} changed, and those are properties of the sample, "
         "not results." if measured is not None else
         "Our numbers are one training run; no spread over training runs was measured for this "
         "profile (`benchmarks/variance.py`)."),
        "",
        ("| task | representation / comparison | metric | paper | ours (95% CI) | profile "
         "| expected direction | holds | over training runs |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {row.task} | {row.representation} | {row.metric} | {row.paper:.3f} | "
              f"{_format_ours(row)} | {row.profile} | {row.direction} | {row.holds} | "
              f"{row.stability} |" for _, row in rows.iterrows()]
    path = settings.results_dir / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def add_report_command(commands: argparse._SubParsersAction) -> None:
    """Register ``crossgran report --profile P``: rebuild the report from existing CSVs."""
    parser = commands.add_parser("report", help="write results/<profile>/paper_vs_reproduced.md")
    parser.add_argument("--profile", default="mini", choices=("smoke", "mini", "full"))

    def handle(args: argparse.Namespace) -> int:
        from crossgran.profiles import get_profile

        path = write_report(get_profile(args.profile))
        print(path.read_text())
        print(f"written to {path}")
        return 0

    parser.set_defaults(handler=handle)

"""Train the profile's runs several times and measure how far every reported number moves.

Why: a stored result of a training run is one sample. This script draws more — other BiGCARP
seeds on the default floating-point path, and the stored seed on other kernel paths (where
the local ESM is retrained too, since it is a training run of its own) — and writes

* ``results/<profile>/training_spread.csv`` (``crossgran.analysis.spread.measure``): per value of every
  result table, fixed or sampled, mean, sd, range and the tolerance a fresh run is held to;
* ``results/<profile>/verdict_spread.csv``: how often each verdict came out each way (the
  report's rows and the notebooks' "Claim …" lines); a verdict that flips is a property of
  the sample, and the report says so;
* ``benchmarks/variance.md``: the samples, the headline quantities and which tables each kernel
  path left bit-identical.

The checkout's own ``results/<profile>`` (the stored notebooks' run: seed 0, default path) is
one of the samples. Each other sample runs in its own project root under ``--work`` (kept, so
an interrupted measurement resumes where it stopped), sharing ``data/raw`` and the
content-addressed ``data/cache`` with the checkout; seed samples also reuse the checkout's
local ESM, which the BiGCARP seed does not touch.

Usage: ``python benchmarks/variance.py [--profile mini] [--seeds 1 2]
[--kernel-paths scalar onednn-sse41] [--kernel-paths-reuse-esm] [--reanalyse]
[--keep-tables T ...]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from cold_run import machine
from determinism import CHECKOUT, KERNEL_PATHS, compare_runs, make_root, run_pipeline

from crossgran.analysis import report, spread
from crossgran.cache import write_text_atomic
from crossgran.profiles import get_profile

REFERENCE = "seed 0, default (stored)"
# Verdict lines the notebooks print: "Claim 2 is supported by this run", "-> claim 4 …",
# "(a) … : yes". They carry no numbers, so equal text means an equal verdict.
CLAIM_LINE = re.compile(r"^\s*(?:->\s*)?((?:claim \d|\([a-z]\) ).*)$", re.IGNORECASE)
# The quantities the README and the closing note quote: (label, table, key, column).
HEADLINES = [
    (
        "ESM-init layer 0, final vs epoch-0 checkpoint, linear CKA at held-out tokens",
        "cka_occurrences",
        "esm|esm|layer0_vs_epoch0",
        "linear_cka",
    ),
    (
        "random-init layer 0, final vs epoch-0 checkpoint, linear CKA at held-out tokens",
        "cka_occurrences",
        "random|random|layer0_vs_epoch0",
        "linear_cka",
    ),
    (
        "ESM-init epoch-0 embedder vs final last layer, linear CKA at held-out tokens",
        "cka_occurrences",
        "esm|esm|embedder0_vs_last",
        "linear_cka",
    ),
    (
        "ESM-init BiGCARP embedder, product-class macro-F1",
        "failed_init_probe",
        "esm/embedder|f1",
        "mean",
    ),
    (
        "random-init BiGCARP embedder, product-class macro-F1",
        "failed_init_probe",
        "random/embedder|f1",
        "mean",
    ),
    (
        "ESM-init minus random-init last layer, macro-F1",
        "failed_init_tests",
        "product_class||esm/last|random/last|f1",
        "delta",
    ),
    (
        "ESM + BiGCARP, product-class macro-F1",
        "product_class_probe",
        "linear probe|esm+bigcarp_last|f1",
        "mean",
    ),
    (
        "ESM + BiGCARP minus best single, macro-F1",
        "fusion_tests",
        "linear probe|product_class||esm+bigcarp_last|esm;bigcarp_embedder;bigcarp_last|f1",
        "delta",
    ),
    (
        "ESM + BiGCARP minus its random-projection twin, macro-F1",
        "fusion_tests",
        "linear probe|product_class||esm+bigcarp_last|esm+bigcarp_last~random|f1",
        "delta",
    ),
    (
        "BiGCARP + Stachelhaus ESM, is_aromatic AUC (grouped)",
        "adomain_probe",
        "is_aromatic|linear probe|bigcarp+stachel|auc",
        "mean",
    ),
    (
        "BiGCARP A-domain token, is_aromatic AUC",
        "adomain_probe",
        "is_aromatic|linear probe|bigcarp|auc",
        "mean",
    ),
]


def sample_plan(
    seeds: Sequence[int], kernel_paths: Sequence[str], kernel_paths_reuse_esm: bool = False
) -> dict[str, dict]:
    """Sample label -> how to run it (kernel path, BiGCARP seed, reuse the checkout's ESM).
    A kernel-path sample retrains the local ESM too, unless ``kernel_paths_reuse_esm`` (then
    only BiGCARP retrains on the other path, as in `make test`'s kernel-path pass)."""
    plan = {f"seed {s}, default": {"path": "default", "seed": s, "reuse_esm": True} for s in seeds}
    plan |= {
        f"seed 0, {p}": {"path": p, "seed": None, "reuse_esm": kernel_paths_reuse_esm}
        for p in kernel_paths
    }
    return plan


def _refresh_notebooks(root: Path) -> None:
    """Replace a sample root's notebooks with the checkout's (its models stay)."""
    shutil.rmtree(root / "notebooks")
    shutil.copytree(
        CHECKOUT / "notebooks",
        root / "notebooks",
        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
    )


def run_sample(
    work: Path, label: str, how: dict, profile: str, reanalyse: bool = False
) -> Path | None:
    """The sample's project root, running it first unless a finished run is there.

    ``reanalyse``: rerun the notebooks of a finished sample with the checkout's code, keeping
    its trained models (the notebooks reuse a stored run with the same data and settings), for
    when the analysis changed but the training did not.
    """
    root = work / re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    done = root / "sample.json"
    settings = get_profile(profile, root=root)
    if done.is_file() and not reanalyse:
        return root
    if reanalyse and (root / "notebooks").is_dir():
        _refresh_notebooks(root)
        done.unlink(missing_ok=True)
    elif root.exists():
        shutil.rmtree(root)
    if not (root / "notebooks").is_dir():
        make_root(root, share_cache=True)
    if how["reuse_esm"] and not settings.models_dir.is_dir():
        local = get_profile(profile, root=CHECKOUT).models_dir
        for model in local.glob("esm2_*"):
            shutil.copytree(model, settings.models_dir / model.name)
    extra = [] if how["seed"] is None else ["--bigcarp-seed", str(how["seed"])]
    code, seconds = run_pipeline(root, profile, how["path"], extra)
    if code != 0:
        print(
            f"sample '{label}' failed (exit {code}); see {settings.results_dir / 'failed'}",
            file=sys.stderr,
        )
        return None
    write_text_atomic(done, json.dumps({**how, "label": label, "wall_s": round(seconds)}))
    return root


def claim_labels(executed: Path) -> dict[str, str]:
    """The notebooks' printed verdict lines (:data:`CLAIM_LINE`), keyed by notebook and order."""
    labels = {}
    for notebook in sorted(executed.glob("*.ipynb")):
        found = [
            match.group(1).strip()
            for cell in json.loads(notebook.read_text())["cells"]
            for output in cell.get("outputs", [])
            for line in "".join(output.get("text", "")).splitlines()
            if (match := CLAIM_LINE.match(line))
        ]
        labels |= {f"{notebook.stem} verdict {i + 1}": text for i, text in enumerate(found)}
    return labels


def verdicts_of(root: Path, profile: str, executed: Path) -> dict[str, str]:
    """Every verdict of one sample: the report's rows and the notebooks' claim lines."""
    rows = report.report_rows(get_profile(profile, root=root))
    verdicts = {report.report_verdict_key(row): row["verdict"] for _, row in rows.iterrows()}
    return verdicts | claim_labels(executed)


def headline_table(samples: dict[str, dict[str, pd.DataFrame]]) -> pd.DataFrame:
    records = []
    for label, table, key, column in HEADLINES:
        values = []
        for tables in samples.values():
            frame = spread.long_form(table, tables[table])
            hit = frame[(frame["key"] == key) & (frame["column"] == column)]
            values.append(float(hit["value"].iloc[0]) if len(hit) else float("nan"))
        series = pd.Series(values, index=list(samples))
        records.append(
            {
                "quantity": label,
                "stored": series[REFERENCE],
                "mean": series.mean(),
                "sd": series.std(ddof=1),
                "min": series.min(),
                "max": series.max(),
            }
        )
    return pd.DataFrame.from_records(records)


def leave_one_out(samples: dict[str, dict[str, pd.DataFrame]]) -> list[tuple[str, int, int, float]]:
    """Each sample held against the spread of the others: (sample, values checked, outside,
    largest deviation as a fraction of its tolerance). What sets ``crossgran.analysis.spread``'s
    tolerance rule: a new machine's run is one more such sample."""
    rows = []
    for label, tables in samples.items():
        others = {k: v for k, v in samples.items() if k != label}
        checked = spread.check(tables, spread.measure(others))
        sampled = checked[checked["kind"] == "sample"]
        used = (
            (sampled["value"].astype(float) - sampled["centre"]).abs() / sampled["tolerance"]
        ).max()
        rows.append((label, len(checked), int((~checked["ok"]).sum()), float(used)))
    return rows


def write_markdown(
    path: Path,
    profile: str,
    walls: dict[str, int],
    heads: pd.DataFrame,
    measured: pd.DataFrame,
    verdicts: pd.DataFrame,
    identity: dict[str, list[tuple[str, bool, str]]],
    held_out: list[tuple[str, int, int, float]],
    kept: Sequence[str] = (),
) -> None:
    kinds = measured["kind"].value_counts()
    kept_counts = measured[measured["table"].isin(kept)]["n_samples"]
    lines = [
        f"# Training-run spread ({profile})",
        "",
        f"Measured {datetime.date.today().isoformat()} by `benchmarks/variance.py` on "
        + ", ".join(f"{key} {value}" for key, value in machine().items())
        + f"; {len(walls)} samples:",
        "",
        "| sample | wall s |",
        "|---|---|",
        *[f"| {label} | {wall if wall else 'stored'} |" for label, wall in walls.items()],
        "",
        f"Values in all result tables: {kinds.get('fixed', 0)} fixed (no sample changed them), "
        f"{kinds.get('sample', 0)} sampled, {kinds.get('varies', 0)} unchecked (text that "
        "differed between samples, or a value some samples lack).",
        "",
        *(
            [
                f"Kept from the stored spread (byte-identical after the change that led to this "
                f"measurement; measured by up to {int(kept_counts.max())} samples, incl. other "
                f"kernel paths): {', '.join(kept)}.",
                "",
            ]
            if len(kept_counts)
            else []
        ),
        "## Tolerances, tested by leaving one sample out",
        "",
        f"Rule (`crossgran.analysis.spread`): within {spread.SPREAD_SIGMAS:g} sds of the mean (the "
        f"value's own or its column's pooled sd, whichever is larger), at least "
        f"{spread.MIN_TOLERANCE:g}; fixed values within {spread.FIXED_TOLERANCE:g}.",
        "",
        "| held-out sample | values checked | outside | largest deviation / tolerance |",
        "|---|---|---|---|",
        *[f"| {label} | {n} | {outside} | {used:.2f} |" for label, n, outside, used in held_out],
        "",
        "## Headline quantities",
        "",
        "| quantity | stored | mean | sd | min | max |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r.quantity} | {r.stored:.3f} | {r.mean:.3f} | {r.sd:.3f} | {r.min:.3f} | "
            f"{r.max:.3f} |"
            for r in heads.itertuples()
        ],
        "",
        "## Verdicts that changed between samples",
        "",
    ]
    unstable = verdicts[~verdicts["stable"]]
    lines += [f"- {r.verdict}: {r.labels}" for r in unstable.itertuples()] or ["- none"]
    lines += [
        "",
        f"{int(verdicts['stable'].sum())} of {len(verdicts)} verdicts were the same "
        "in every sample.",
        "",
        "## Kernel paths against the stored run",
        "",
    ]
    for label, rows in identity.items():
        same = [Path(item).stem for item, equal, _ in rows if equal and item.startswith("results")]
        differ = [
            Path(item).stem for item, equal, _ in rows if not equal and item.startswith("results")
        ]
        manifest = all(equal for item, equal, _ in rows if item.startswith("MANIFEST"))
        switches = " ".join(f"`{k}={v}`" for k, v in KERNEL_PATHS[label.split(", ")[1]].items())
        lines.append(
            f"- **{label}** ({switches}): "
            f"bit-identical: {', '.join(same) or 'none'}; different: "
            f"{', '.join(differ) or 'none'}; data tables (manifest hashes) "
            f"{'identical' if manifest else 'DIFFERENT'}."
        )
    write_text_atomic(path, "\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="mini", choices=("smoke", "mini"))
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2])
    parser.add_argument(
        "--kernel-paths",
        nargs="*",
        default=["scalar", "onednn-sse41"],
        choices=[p for p in KERNEL_PATHS if p != "default"],
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=CHECKOUT / "data" / "variance",
        help="where the samples' project roots are kept (resumable)",
    )
    parser.add_argument("--markdown", type=Path, default=CHECKOUT / "benchmarks" / "variance.md")
    parser.add_argument(
        "--keep-tables",
        nargs="*",
        default=[],
        metavar="TABLE",
        help="keep these tables' rows of the stored training_spread.csv (measured before, by "
        "samples this run does not retrain) instead of re-measuring them; for tables a change "
        "left byte-identical",
    )
    parser.add_argument(
        "--reanalyse",
        action="store_true",
        help="rerun every sample's notebooks with this checkout's code, keeping its trained models",
    )
    parser.add_argument(
        "--kernel-paths-reuse-esm",
        action="store_true",
        help="kernel-path samples keep the checkout's local ESM and retrain BiGCARP only",
    )
    args = parser.parse_args(argv)

    plan = sample_plan(args.seeds, args.kernel_paths, args.kernel_paths_reuse_esm)
    roots = {
        label: run_sample(args.work / args.profile, label, how, args.profile, args.reanalyse)
        for label, how in plan.items()
    }
    if None in roots.values():
        return 2
    # The stored run is read last, so it can be re-executed while the samples train.
    checkout = get_profile(args.profile, root=CHECKOUT)
    if not (checkout.results_dir / "cka_summary.csv").is_file():
        print(
            f"no stored results in {checkout.results_dir}: run `crossgran run --profile "
            f"{args.profile}` first (the stored run is the reference sample)",
            file=sys.stderr,
        )
        return 2
    samples = {REFERENCE: spread.read_tables(checkout.results_dir)}
    verdicts = {REFERENCE: verdicts_of(CHECKOUT, args.profile, CHECKOUT / "notebooks")}
    walls: dict[str, int] = {REFERENCE: 0}
    identity = {}
    for label, root in roots.items():
        samples[label] = spread.read_tables(get_profile(args.profile, root=root).results_dir)
        verdicts[label] = verdicts_of(root, args.profile, root / "executed")
        walls[label] = json.loads((root / "sample.json").read_text())["wall_s"]
        if plan[label]["path"] != "default":
            identity[label] = compare_runs(CHECKOUT, root, args.profile, atol=0.0)

    measured = spread.measure(samples)
    if args.keep_tables:
        stored = spread.read_spread(checkout.results_dir / spread.SPREAD_NAME)
        kept = stored[stored["table"].isin(args.keep_tables)]
        measured = pd.concat(
            [measured[~measured["table"].isin(args.keep_tables)], kept], ignore_index=True
        ).sort_values(["table", "key", "column"], ignore_index=True)
    verdict_spread = spread.measure_verdicts(verdicts)
    write_text_atomic(checkout.results_dir / spread.SPREAD_NAME, measured.to_csv(index=False))
    write_text_atomic(
        checkout.results_dir / spread.VERDICT_SPREAD_NAME, verdict_spread.to_csv(index=False)
    )
    heads = headline_table(samples)
    write_markdown(
        args.markdown,
        args.profile,
        walls,
        heads,
        measured,
        verdict_spread,
        identity,
        leave_one_out(samples),
        args.keep_tables,
    )
    print(args.markdown.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

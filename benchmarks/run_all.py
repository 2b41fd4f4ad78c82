"""Run every benchmark and an end-to-end ``mini`` run; write ``benchmarks/results.md``.

Why: the README promises that the default profile runs on a laptop (target: ``crossgran run
--profile mini`` in at most 10 minutes and 4 GiB on 2 CPU cores) and the embedding code's
batching rule rests on measured ratios. One command re-measures all of it on the machine at
hand and records the numbers with the machine they came from.

Order: the ``mini`` run goes first, because peak memory is read from
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``, the largest resident set of any child
process waited for so far; measured first, it is the ``mini`` run's own (papermill's kernel
included, as it is reaped by its parent). It runs in a fresh temporary project root (made by
``determinism.make_root``), so every cache is cold and no model from an earlier run is reused;
its result tables and manifest hashes are then compared with the ones committed in the
checkout (``determinism.compare_within_spread``: bit-identical, or within the measured
training spread on a machine whose floating-point path differs), so the timed run doubles as
a determinism check. Then every other ``*.py`` in ``benchmarks/`` runs with its defaults,
except ``variance.py`` (about an hour: run it on its own).

Exit status: 1 if a benchmark failed or the mini run missed a target or differed, else 0.

Usage: ``python benchmarks/run_all.py [--skip-mini] [--output benchmarks/results.md]``
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cold_run import cold_run, machine
from determinism import CHECKOUT, compare_within_spread, scratch_dir

from crossgran.cache import write_text_atomic

HERE = Path(__file__).resolve().parent
MINI_WALL_TARGET_S = 10 * 60
MINI_RSS_TARGET_BYTES = 4 * 1024**3
RUN_SEPARATELY = {"variance.py"}  # trains the mini runs ~8 times: about an hour on 2 cores
# bench_embed.py prints its ratios as "c / max(a, b) = 1.23   (target >= 1.2)" and its
# throughputs as "<label> <rate> residues/s"; determinism.py ends with "k/n identical" and
# marks each differing item "DIFF".
KEY_LINE = re.compile(r"\(target|residues/s|identical|\bDIFF\b")


@dataclass
class Outcome:
    """What one subprocess did: its exit code, wall time and the lines worth reporting."""

    name: str
    returncode: int
    wall_s: float
    key_lines: list[str] = field(default_factory=list)


def run_streamed(
    name: str, command: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> Outcome:
    """Run ``command``, echoing its output live (these runs take minutes) and keeping the
    lines that :data:`KEY_LINE` selects."""
    print(f"\n=== {name}: {' '.join(command)}", flush=True)
    started = time.perf_counter()
    key_lines: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            if KEY_LINE.search(line):
                key_lines.append(line.rstrip())
    return Outcome(name, process.returncode, time.perf_counter() - started, key_lines)


def time_mini() -> tuple[Outcome, int, list[tuple[str, bool, str]]]:
    """``crossgran run --profile mini`` from cold (:func:`cold_run.cold_run`); (outcome, peak
    RSS in bytes, rows of :func:`determinism.compare_within_spread` holding its results against
    the committed ones)."""
    with scratch_dir("crossgran-mini-") as scratch:
        run = cold_run("mini", scratch)
        outcome = Outcome("crossgran run --profile mini", run.returncode, run.wall_s)
        compared = compare_within_spread(CHECKOUT, run.root, "mini") if run.returncode == 0 else []
    return outcome, run.peak_rss_bytes, compared


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def render(
    facts: dict[str, str], mini: tuple[Outcome, int] | None, benchmarks: Sequence[Outcome]
) -> str:
    """The Markdown report."""
    lines = [
        "# Benchmark results",
        "",
        f"Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {key} | {value} |" for key, value in facts.items()]
    lines += ["", "## End to end: `crossgran run --profile mini` (fresh root, cold caches)", ""]
    if mini is None:
        lines.append("Skipped (`--skip-mini`).")
    else:
        outcome, peak, compared = mini
        same = sum(equal for _, equal, _ in compared)
        lines += [
            "| measure | value | target | result |",
            "|---|---|---|---|",
            f"| exit code | {outcome.returncode} | 0 | {verdict(outcome.returncode == 0)} |",
            (
                f"| wall time | {outcome.wall_s / 60:.1f} min | <= {MINI_WALL_TARGET_S / 60:.0f} min"
                f" | {verdict(outcome.wall_s <= MINI_WALL_TARGET_S)} |"
            ),
            (
                f"| peak RSS | {peak / 1024**3:.2f} GiB | <= {MINI_RSS_TARGET_BYTES / 1024**3:.0f} GiB"
                f" | {verdict(peak <= MINI_RSS_TARGET_BYTES)} |"
            ),
            (
                f"| results as committed (bit-identical or within the training spread) | "
                f"{same}/{len(compared)} | all | {verdict(bool(compared) and same == len(compared))} |"
            ),
        ]
        lines += [f"- DIFF {item}: {detail}" for item, equal, detail in compared if not equal]
    for outcome in benchmarks:
        lines += [
            "",
            f"## {outcome.name}",
            "",
            f"Exit code {outcome.returncode}, {outcome.wall_s:.0f} s.",
            "",
        ]
        if outcome.key_lines:
            lines += ["```", *outcome.key_lines, "```"]
        else:
            lines.append("No ratio or summary line was printed.")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--skip-mini",
        action="store_true",
        help="skip the end-to-end mini run (about 10 minutes) for a quick pass",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=HERE / "results.md",
        help="Markdown report to write (default: benchmarks/results.md)",
    )
    args = parser.parse_args(argv)

    mini = None if args.skip_mini else time_mini()
    scripts = sorted(
        p
        for p in HERE.glob("*.py")
        if p.resolve() != Path(__file__).resolve() and p.name not in RUN_SEPARATELY
    )
    benchmarks = [run_streamed(script.name, [sys.executable, str(script)]) for script in scripts]

    report = render(machine(), mini, benchmarks)
    write_text_atomic(args.output, report)
    print(f"\n{report}\nwritten to {args.output}")
    failed = [outcome.name for outcome in benchmarks if outcome.returncode != 0]
    if mini is not None:
        outcome, peak, compared = mini
        if (
            outcome.returncode != 0
            or outcome.wall_s > MINI_WALL_TARGET_S
            or peak > MINI_RSS_TARGET_BYTES
            or not all(equal for _, equal, _ in compared)
        ):
            failed.append(outcome.name)
    if failed:
        print(f"failed or missed a target: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

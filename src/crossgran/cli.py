"""Command line: ``crossgran run|data|embed|train-bigcarp|report``.

Each subcommand lives in a ``_add_<name>`` function that registers its parser and handler,
so modules grow the CLI without touching each other's code.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossgran", description="Reproduce 'Cross-Granularity Representations for Biological "
        "Sequences: Insights from ESM and BiGCARP' (Xiao et al., BIBM 2025).")
    commands = parser.add_subparsers(dest="command", required=True)
    from crossgran.bigcarp import add_train_command
    from crossgran.esm import add_embed_command
    from crossgran.paper import add_report_command

    for add in (_add_run, _add_data, _add_check_outputs, add_embed_command, add_train_command,
                add_report_command):
        add(commands)
    return parser


def _add_run(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="execute the numbered notebooks with papermill")
    run.add_argument("--profile", default="mini", choices=("smoke", "mini", "full"))
    run.add_argument("notebooks", nargs="*", help="notebook files (default: all numbered ones)")
    run.add_argument("--output-dir", default=None,
                     help="where executed copies go (default: in place for mini, "
                          "results/<profile>/notebooks otherwise)")
    run.add_argument("--bigcarp-seed", type=int, default=None,
                     help="train BiGCARP under this seed instead of the profile's: another "
                          "sample of the same runs (benchmarks/variance.py)")

    def handle(args: argparse.Namespace) -> int:
        parameters = {} if args.bigcarp_seed is None else {"bigcarp_seed": args.bigcarp_seed}
        return run_notebooks(args.profile, args.notebooks, args.output_dir, parameters)

    run.set_defaults(handler=handle)


def _add_data(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="build the profile's tables (what notebook 01 does)")
    data.add_argument("--profile", default="mini", choices=("smoke", "mini", "full"))

    def handle(args: argparse.Namespace) -> int:
        from crossgran.datasets import build_all
        from crossgran.profiles import get_profile
        report = build_all(get_profile(args.profile))
        for key, value in report.counts.items():
            print(f"{key:32s} {value:>8,d}")
        return 0

    data.set_defaults(handler=handle)


def _add_check_outputs(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "check-outputs", help="hold results/<profile>/ against the measured training spread")
    check.add_argument("--profile", default="mini", choices=("smoke", "mini", "full"))

    def handle(args: argparse.Namespace) -> int:
        from crossgran.profiles import get_profile
        from crossgran.spread import check_results, summary_line

        settings = get_profile(args.profile)
        checked = check_results(settings)
        print(summary_line(checked, settings.name))
        if checked is None:
            return 2
        return 0 if checked["ok"].all() else 1

    check.set_defaults(handler=handle)


def numbered_notebooks(directory: Path) -> list[Path]:
    return sorted(directory.glob("[0-9][0-9]_*.ipynb"))


def run_notebooks(profile: str, notebooks: Sequence[str], output_dir: str | None,
                  parameters: dict | None = None) -> int:
    """Execute notebooks in order with papermill; stop at the first failing cell.

    ``parameters`` are passed to every notebook beside ``profile`` (papermill defines them
    whether or not a notebook's parameters cell names them).

    ``mini`` outputs replace the stored notebooks (they are what nbval checks), written to a
    temporary file first so a failed run never replaces a good stored notebook; the failed copy
    is kept under ``results/<profile>/failed/`` for inspection.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from crossgran.profiles import get_profile

    settings = get_profile(profile)
    paths = [Path(n).resolve() for n in notebooks] or numbered_notebooks(settings.root / "notebooks")
    if not paths:
        print(f"no numbered notebooks in {settings.root / 'notebooks'}", file=sys.stderr)
        return 2
    in_place = output_dir is None and profile == "mini"
    out_dir = Path(output_dir) if output_dir else settings.results_dir / "notebooks"
    for index, path in enumerate(paths, 1):
        target = path if in_place else out_dir / path.name
        print(f"[{index}/{len(paths)}] {path.name} (profile {profile}) -> {target}", flush=True)
        started = time.perf_counter()
        running = settings.results_dir / "running" / path.name
        running.parent.mkdir(parents=True, exist_ok=True)
        try:
            papermill.execute_notebook(str(path), str(running),
                                       parameters={"profile": profile, **(parameters or {})},
                                       cwd=str(path.parent), progress_bar=True,
                                       kernel_name="python3", language="python")
        except PapermillExecutionError as error:
            failed = settings.results_dir / "failed" / path.name
            failed.parent.mkdir(parents=True, exist_ok=True)
            os.replace(running, failed)
            print(f"FAILED: {path.name}, cell {error.cell_index} (execution count {error.exec_count}): "
                  f"{error.ename}: {error.evalue}\n  executed copy: {failed}", file=sys.stderr)
            return 1
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(running, target)
        print(f"    done in {time.perf_counter() - started:.0f} s", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

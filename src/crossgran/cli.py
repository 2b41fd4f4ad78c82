"""Command line: ``crossgran run|data|embed|train-bigcarp|report``.

Each subcommand lives in a ``_add_<name>`` function that registers its parser and handler,
so modules grow the CLI without touching each other's code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crossgran", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_run,):
        add(commands)
    return parser


def _add_run(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="execute the numbered notebooks with papermill")
    run.add_argument("--profile", default="mini", choices=("smoke", "mini", "full"))
    run.add_argument("notebooks", nargs="*", help="notebook files (default: all numbered ones)")
    run.add_argument("--output-dir", default=None,
                     help="where executed copies go (default: in place for mini, "
                          "results/<profile>/notebooks otherwise)")

    def handle(args: argparse.Namespace) -> int:
        from crossgran.runner import run_notebooks
        return run_notebooks(args.profile, args.notebooks, args.output_dir)

    run.set_defaults(handler=handle)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

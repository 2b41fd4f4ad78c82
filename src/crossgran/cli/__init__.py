"""Command line: ``crossgran run | data | embed | train-bigcarp | report | check-outputs |
predict | train-predictor``.

One module per command, each with a ``register(commands)`` that adds its parser. Handlers
import the heavy modules (torch, pandas, papermill) only when they run, so ``crossgran --help``
answers at once and imports no torch. A user's mistake (unknown notebook, unreadable FASTA,
missing model files, a tampered download) ends in one or two lines that name the problem and
the fix, with exit status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from crossgran.cli import check, data, embed, predict, report, run, train
from crossgran.cli.common import UserError

__all__ = ["UserError", "build_parser", "main"]

COMMANDS = (run, data, embed, train, report, check, predict)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is two lines: the error, and where the options are
    (argparse would print the whole usage block first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n  ({self.prog} --help lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="crossgran",
        description="Reproduce 'Cross-Granularity Representations for "
        "Biological Sequences: Insights from ESM and BiGCARP' (Xiao et al., BIBM 2025).",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback when a command fails"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return parser


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Failures a user can fix from the message alone: bad or missing files, bad records,
    pinned inputs that are missing or tampered with. Anything else is a bug: traceback."""
    from crossgran.data.sources import SourceError

    return UserError, SourceError, OSError, ValueError


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except Exception as error:
        if args.debug or not isinstance(error, _user_error_types()):
            raise
        print(f"crossgran {args.command}: error: {error}", file=sys.stderr)
        return 2

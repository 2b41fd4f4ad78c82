"""``crossgran report``: rebuild results/<profile>/paper_vs_reproduced.md from the result tables."""

from __future__ import annotations

import argparse

from crossgran.cli.common import add_profile_option


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("report", help="write results/<profile>/paper_vs_reproduced.md")
    add_profile_option(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from crossgran.analysis.report import write_report
    from crossgran.profiles import get_profile

    path = write_report(get_profile(args.profile))
    print(path.read_text())
    print(f"written to {path}")
    return 0

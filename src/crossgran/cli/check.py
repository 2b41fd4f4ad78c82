"""``crossgran check-outputs``: hold results/<profile>/ against the measured training spread."""

from __future__ import annotations

import argparse

from crossgran.cli.common import add_profile_option


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "check-outputs", help="hold results/<profile>/ against the measured training spread"
    )
    add_profile_option(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Exit 0 when every value is within its spread, 1 when one is not, 2 without a spread."""
    from crossgran.analysis.spread import check_results, summary_line
    from crossgran.profiles import get_profile

    settings = get_profile(args.profile)
    checked = check_results(settings)
    print(summary_line(checked, settings.name))
    if checked is None:
        return 2
    return 0 if checked["ok"].all() else 1

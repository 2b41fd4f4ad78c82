"""``crossgran data``: build a profile's tables and manifest (what notebook 01 does)."""

from __future__ import annotations

import argparse

from crossgran.cli.common import add_profile_option


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("data", help="build the profile's tables (what notebook 01 does)")
    add_profile_option(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from crossgran.data.tables import build_all
    from crossgran.profiles import get_profile

    report = build_all(get_profile(args.profile))
    for key, value in report.counts.items():
        print(f"{key:32s} {value:>8,d}")
    return 0

"""What several commands share: the ``--profile`` option and the error a user can fix."""

from __future__ import annotations

import argparse

from crossgran.profiles import DEFAULT_PROFILE, PROFILE_NAMES

__all__ = ["UserError", "add_profile_option"]


class UserError(Exception):
    """A mistake in the command line or its files; the message says what to do instead."""


def add_profile_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        choices=PROFILE_NAMES,
        help=f"run profile (default: {DEFAULT_PROFILE})",
    )

"""The build report: row counts and every quirk of the raw files met while building the tables.

Why a record of quirks: nothing is corrected silently. Each builder that drops, cleans or
reinterprets something counts it here with a note saying what and why; notebook 01 shows the
notes and MANIFEST.json keeps the counts, so a changed input shows as a changed count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BuildReport"]


@dataclass
class BuildReport:
    """Counts of rows and of every data quirk handled while building."""

    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, key: str, value: int, note: str | None = None) -> None:
        """Record ``key = value``; a ``note`` says what the count is about (kept in order)."""
        self.counts[key] = int(value)
        if note:
            self.notes.append(f"{key} = {value}: {note}")

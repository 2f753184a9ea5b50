"""What an import did, or with ``dry_run`` would do: rows created, updated and unchanged per
kind, and notes on ids that differ from the file's and on sealed secrets that will not open
here; for the audit entry and the terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Counts:
    """Rows of one kind an import created, updated (to the file's values) or found unchanged."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def as_dict(self) -> dict[str, int]:
        """``{"created": n, "updated": n, "unchanged": n}``."""
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


@dataclass(slots=True)
class ImportReport:
    """What an import did (or, with ``dry_run``, would do): counts per kind, and ``notes`` on
    ids that differ from the file's. ``digest`` is the file's SHA-256 (hex).

    ``warnings`` are the notes that need the operator's action, also in ``notes``: apps whose
    sealed secrets will not open on this site, so that their signed legacy calls fail until
    ``rotateAppSecret``. The import still succeeds (``appAccessToken`` needs only the hashes).
    """

    digest: str
    dry_run: bool
    groups: Counts = field(default_factory=Counts)
    categories: Counts = field(default_factory=Counts)
    apps: Counts = field(default_factory=Counts)
    icons: Counts = field(default_factory=Counts)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def warn(self, note: str) -> None:
        """Add ``note`` to ``notes`` as a warning (see the class docstring)."""
        self.notes.append(note)
        self.warnings.append(note)

    def summary(self) -> dict[str, Any]:
        """The report as the audit entry's ``after`` (JSON-serialisable)."""
        return {
            "sha256": self.digest,
            "groups": self.groups.as_dict(),
            "categories": self.categories.as_dict(),
            "apps": self.apps.as_dict(),
            "icons": self.icons.as_dict(),
            "notes": self.notes,
        }

    def lines(self) -> list[str]:
        """The report for a terminal: one line per kind, then the notes."""
        counts = (
            ("groups", self.groups),
            ("categories", self.categories),
            ("apps", self.apps),
            ("icons", self.icons),
        )
        return [
            f"{kind:<11} created {c.created:>5}  updated {c.updated:>5}  unchanged {c.unchanged:>5}"
            for kind, c in counts
        ] + self.notes

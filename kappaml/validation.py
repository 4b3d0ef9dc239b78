"""Telling the user when their data does not fit its declaration, before it silently fills the DLQ.

``InvalidShare`` watches a stream's first rows and says once when too many are invalid (a
target column of text sends every row to the dead-letter topic: each one is "handled", and
nothing else would say so). ``check_table`` reads a whole CSV up front and counts the reasons.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from kappaml.csvsource import CsvTable

__all__ = ["CheckReport", "InvalidShare", "check_table"]

Reason = tuple[str, str]  # (column or "", reason)


class InvalidShare:
    """Counts invalid rows; ``due()`` is True exactly once, when the first ``rows``
    (or all rows, at the end of a shorter stream) hold more than ``share`` invalid ones."""

    def __init__(self, share: float = 0.5, rows: int = 100) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be in [0, 1], got {share}")
        if rows < 1:
            raise ValueError(f"rows must be >= 1, got {rows}")
        self.share, self.rows = share, rows
        self.valid = 0
        self.invalid = 0
        self.reasons: Counter[Reason] = Counter()
        self._decided = False

    def add_invalid(self, column: str | None, reason: str) -> None:
        self.invalid += 1
        if len(self.reasons) < 100 or (column or "", reason) in self.reasons:
            self.reasons[(column or "", reason)] += 1

    def due(self, valid: int, ended: bool = False) -> bool:
        """Whether to warn now, with ``valid`` rows so far; decided once, at ``rows`` rows or at
        the end of the stream."""
        self.valid = valid
        total = self.valid + self.invalid
        if self._decided or not total or (total < self.rows and not ended):
            return False
        self._decided = True
        return self.invalid > self.share * total

    def top(self, n: int = 3) -> list[str]:
        return [f"{f'{column}: ' if column else ''}{reason} ({count})"
                for (column, reason), count in self.reasons.most_common(n)]


@dataclass
class CheckReport:
    """What a whole CSV holds: valid rows, and the invalid ones by (column, reason)."""

    rows: int = 0
    valid: int = 0
    reasons: Counter[Reason] = field(default_factory=Counter)
    first_row: dict[Reason, int] = field(default_factory=dict)

    @property
    def invalid(self) -> int:
        return self.rows - self.valid

    def render(self) -> str:
        lines = [f"{self.rows:,} rows: {self.valid:,} valid, {self.invalid:,} invalid"]
        if self.reasons:
            width = max([len("column"), *(len(c) for c, _r in self.reasons)])
            lines.append(f"{'count':>9}  {'first row':>9}  {'column':<{width}}  reason")
            for (column, reason), count in self.reasons.most_common():
                lines.append(f"{count:>9,}  {self.first_row[(column, reason)]:>9}  {column or '-':<{width}}  "
                             f"{reason}")
        return "\n".join(lines)


def check_table(table: CsvTable) -> CheckReport:
    """Validate every row of ``table`` against its declaration (the server's own parser)."""
    report = CheckReport()
    for row in table.rows():
        report.rows += 1
        if row.error is None:
            report.valid += 1
            continue
        reason = (row.error.column or "", row.error.reason)
        report.reasons[reason] += 1
        report.first_row.setdefault(reason, row.number)
    return report

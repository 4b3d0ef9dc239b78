"""The types every side of a record shares: ``Example`` (a valid labelled record), the two halves
of a delayed-label row (``FeaturesRecord``, ``LabelRecord``) and ``InvalidRecord``.

They live apart from ``kappaml.records`` (which re-exports them) so the CSV side and the
decoding side (``kappaml.records.decoding``) can both use them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Example", "FeaturesRecord", "InvalidRecord", "LabelRecord", "RawRecord"]

# Offending values are echoed in error messages; bound them so a 1 MB field stays a log line.
_MAX_ECHO = 120


def _echo(value: Any) -> Any:
    if isinstance(value, str):
        # Surrogate escapes (undecodable bytes) must not break JSON encoders downstream.
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value if len(value) <= _MAX_ECHO else value[:_MAX_ECHO] + "..."
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    return _echo(repr(value))


class InvalidRecord(ValueError):
    """A row or record that cannot become an ``Example``; ``reason`` says why.

    ``row``, ``column`` and ``value`` locate the problem when known (CSV rows: the 1-based row
    number, the column name, the offending text, shortened).
    """

    def __init__(
        self,
        reason: str,
        *,
        row: int | None = None,
        column: str | None = None,
        value: Any = None,
    ) -> None:
        self.reason = reason
        self.row = row
        self.column = column
        self.value = _echo(value)
        where = []
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + reason + (f" (value {self.value!r})" if value is not None else ""))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (the SSE ``invalid`` event and dead-letter payloads)."""
        return {"reason": self.reason, "row": self.row, "column": self.column, "value": self.value}


# The typed raw records are built once per message (kappaml.records.decode), in the processor
# and the replay: slotted and not frozen, since a frozen dataclass sets each field through
# object.__setattr__ (an Example took about 1.5 us to build so, 0.5 us now). Nothing changes
# them once decoded.
@dataclass(slots=True)
class Example:
    """One labelled example for the key's model; ``x`` keys are the declared feature names, in order."""

    id: int | str
    key: str
    x: dict[str, float | str]
    y: float
    ts: int | None = None
    # The stream the row came from (data set and source file digest, ``kappaml.provenance``);
    # row ids are unique within a stream. "" for records that name none.
    stream: str = ""
    # The pass of a looping replay this row comes from (1: the first); from 2 on the model may
    # have learned the same row before, so its error is not out of sample.
    pass_no: int = 1


@dataclass(slots=True)
class FeaturesRecord:
    """A ``features`` raw record: what is known when the prediction is needed, without the target.

    ``x`` as in ``Example`` (the declared feature names, in order). The prediction is served now;
    the model learns once the ``LabelRecord`` of the same (stream, id) arrives.
    """

    id: int | str
    key: str
    x: dict[str, float | str]
    ts: int | None = None
    stream: str = ""
    pass_no: int = 1


@dataclass(slots=True)
class LabelRecord:
    """A ``label`` raw record: the target of the ``FeaturesRecord`` with the same (stream, id) and key."""

    id: int | str
    key: str
    y: float
    ts: int | None = None
    stream: str = ""


# What ``kappaml.records.decode`` returns, by the record's kind: labelled, features or label.
RawRecord = Example | FeaturesRecord | LabelRecord

"""Delayed labels on the SSE stream: when a row's ``label`` event follows its ``features`` event.

With a ``LabelSchedule`` every valid CSV row becomes a ``features`` event at once and a ``label``
event later: ``delay_rows`` rows later (after the features of row ``r + N``), or once the event
time (the records' ``ts``) has advanced ``delay_s`` seconds. A seeded fraction ``drop`` of the
labels is never sent. At the end of a file (no ``loop``) every label still outstanding is sent
before ``end``: a finite file leaves no prediction waiting for a label that would never come,
except the dropped ones.

Event ids. An event id is ``"<rows>:<labels>"``: ``rows`` is the position of the last row sent
(features or invalid; the same positions as without delayed labels, ``k * n_rows + row`` when
looping), ``labels`` the position of the last row whose label was sent. Labels are sent in
position order (every row waits as long), so the pair is the whole state of a stream: every event
increases one of the two numbers, the ids are unique and ordered (as pairs), and a stream resumed
after ``Last-Event-ID`` sends exactly the events after it: the rows after ``rows``, and the labels
of rows after ``labels`` (re-read from the file), none twice, none missing. The drop decision is a
pure function of the seed and the record id, so a resumed stream drops the same labels.

Which labels a resumed stream sends when is exact for ``delay_rows``. For ``delay_s`` the label of
a row sent before the resumption has its features' time in the raw topic, not in the server: it is
due ``delay_s`` seconds after the resumption (a later label, never a lost or a repeated one).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

__all__ = ["LabelSchedule", "PairId", "format_pair", "parse_pair"]

_PAIR = re.compile(r"(\d{1,16}):(\d{1,16})")


@dataclass(frozen=True)
class LabelSchedule:
    """When labels follow their features: ``delay_rows`` rows or ``delay_s`` seconds (exactly one),
    and the seeded share ``drop`` of labels that never come."""

    delay_rows: int | None = None
    delay_s: float | None = None
    drop: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.delay_rows is None) == (self.delay_s is None):
            raise ValueError("a label schedule needs exactly one of --label-delay (rows) and "
                             "--label-delay-s (seconds)")
        if self.delay_rows is not None and self.delay_rows < 0:
            raise ValueError(f"--label-delay must be >= 0 rows, got {self.delay_rows}")
        if self.delay_s is not None and not (math.isfinite(self.delay_s) and self.delay_s >= 0):
            raise ValueError(f"--label-delay-s must be a finite number of seconds >= 0, got {self.delay_s}")
        if not (math.isfinite(self.drop) and 0.0 <= self.drop <= 1.0):
            raise ValueError(f"--label-drop must be a share in [0, 1], got {self.drop}")

    @classmethod
    def of(cls, delay_rows: int | None, delay_s: float | None, drop: float | None,
           seed: int) -> LabelSchedule | None:
        """The schedule the flags ask for, or None (labelled records, as without delayed labels)."""
        if delay_rows is None and delay_s is None:
            if drop:
                raise ValueError("--label-drop needs --label-delay or --label-delay-s")
            return None
        return cls(delay_rows=delay_rows, delay_s=delay_s, drop=drop or 0.0, seed=seed)

    @property
    def delay_ms(self) -> int:
        """``delay_s`` in milliseconds of event time (the records' ``ts``)."""
        return round((self.delay_s or 0.0) * 1000)

    def dropped(self, record_id: str) -> bool:
        """Whether the label of record ``record_id`` is never sent: a share ``drop`` of the ids,
        chosen by a hash of the seed and the id (the same on every stream and every resumption)."""
        if self.drop <= 0.0:
            return False
        if self.drop >= 1.0:
            return True
        digest = hashlib.blake2b(f"{self.seed}\0{record_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") < self.drop * 2**64

    def describe(self) -> dict[str, object]:
        """The schedule as JSON (``GET /health``)."""
        return {"delay_rows": self.delay_rows, "delay_s": self.delay_s, "drop": self.drop, "seed": self.seed}

    @property
    def token(self) -> str:
        """A short name of the schedule, for the ingest's identity: another schedule of the same
        file is another stream of events (its ids mean other positions), ingested afresh."""
        delay = f"r{self.delay_rows}" if self.delay_rows is not None else f"s{self.delay_s:g}"
        return f"labels-{delay}" + (f"-drop{self.drop:g}-seed{self.seed}" if self.drop else "")


PairId = tuple[int, int]


def format_pair(rows: int, labels: int) -> str:
    return f"{rows}:{labels}"


def parse_pair(text: str) -> PairId | None:
    """``(rows, labels)`` of an event id ``"rows:labels"``; None when ``text`` is not one."""
    match = _PAIR.fullmatch(text.strip())
    if match is None:
        return None
    rows, labels = int(match.group(1)), int(match.group(2))
    return (rows, labels) if labels <= rows else None

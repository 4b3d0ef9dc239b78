"""The SSE event id of the feeds: a topic position, one next-offset per partition.

``"0:124,1:98,3:77"`` means: from partition 0 the next message to send is offset 124, and so
on. Every event carries the position *after* itself for every partition of the stream, so a
client that resumes with the last id it saw gets exactly the events after it, no matter how
the partitions were interleaved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["MAX_ID_LENGTH", "Position", "parse_position"]

MAX_ID_LENGTH = 4096
_PAIR = re.compile(r"(\d{1,6}):(\d{1,19})")
_MAX_OFFSET = 2**63 - 1


@dataclass(frozen=True)
class Position:
    offsets: tuple[tuple[int, int], ...]  # (partition, next offset), sorted by partition

    @classmethod
    def of(cls, offsets: Mapping[int, int]) -> Position:
        for partition, offset in offsets.items():
            if partition < 0 or offset < 0:
                raise ValueError(f"partition and offset must be >= 0, got {partition}:{offset}")
        return cls(tuple(sorted(offsets.items())))

    def as_dict(self) -> dict[int, int]:
        return dict(self.offsets)

    def encode(self) -> str:
        return ",".join(f"{p}:{o}" for p, o in self.offsets)


def parse_position(text: str) -> Position:
    """Parse a ``Last-Event-ID``; ValueError with a message meant for the client."""
    text = text.strip()
    if not text:
        raise ValueError("Last-Event-ID is empty")
    if len(text) > MAX_ID_LENGTH:
        raise ValueError(f"Last-Event-ID is longer than {MAX_ID_LENGTH} characters")
    offsets: dict[int, int] = {}
    for part in text.split(","):
        match = _PAIR.fullmatch(part.strip())
        if match is None:
            raise ValueError(
                f"Last-Event-ID must be comma-separated partition:offset pairs such as '0:124,1:98' "
                f"(the id of the last event received), got {text[:80]!r}"
            )
        partition, offset = int(match.group(1)), int(match.group(2))
        if partition in offsets:
            raise ValueError(f"Last-Event-ID names partition {partition} twice")
        if offset > _MAX_OFFSET:
            raise ValueError(f"Last-Event-ID offset {offset} of partition {partition} is out of range")
        offsets[partition] = offset
    return Position.of(offsets)

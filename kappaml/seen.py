"""The set of row ids a key has learned, kept small for the usual case of increasing ids.

Integer ids are stored as closed intervals, so a stream of ids 1..N costs one interval
instead of N set entries; other ids (strings from an id column) fall back to a set.
Row ids are only unique within one stream (``kappaml.provenance``): ``scope(stream)`` is the
set of that stream's ids; the default stream ``""`` (records that name none) is the set itself.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

__all__ = ["SeenIds"]


class SeenIds:
    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._other: set[str] = set()
        self._scopes: dict[str, SeenIds] = {}

    def scope(self, stream: str) -> SeenIds:
        """The ids seen in ``stream`` (created empty on first use); ``""`` is this set itself."""
        if not stream:
            return self
        seen = self._scopes.get(stream)
        if seen is None:
            seen = self._scopes[stream] = SeenIds()
        return seen

    @property
    def streams(self) -> list[str]:
        return sorted(self._scopes)

    def __len__(self) -> int:
        own = sum(e - s + 1 for s, e in zip(self._starts, self._ends, strict=True)) + len(self._other)
        return own + sum(len(seen) for seen in self._scopes.values())

    def __contains__(self, row_id: int | str) -> bool:
        if not isinstance(row_id, int):
            return str(row_id) in self._other
        i = bisect_right(self._starts, row_id) - 1
        return i >= 0 and row_id <= self._ends[i]

    def add(self, row_id: int | str) -> None:
        if not isinstance(row_id, int):
            self._other.add(str(row_id))
            return
        if row_id in self:
            return
        starts, ends = self._starts, self._ends
        i = bisect_right(starts, row_id) - 1
        joins_left = i >= 0 and ends[i] == row_id - 1
        joins_right = i + 1 < len(starts) and starts[i + 1] == row_id + 1
        if joins_left and joins_right:
            ends[i] = ends[i + 1]
            del starts[i + 1], ends[i + 1]
        elif joins_left:
            ends[i] = row_id
        elif joins_right:
            starts[i + 1] = row_id
        else:
            starts.insert(i + 1, row_id)
            ends.insert(i + 1, row_id)

    @property
    def intervals(self) -> int:
        return len(self._starts)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (snapshots carry it so a cut-over keeps the duplicate rule)."""
        data: dict[str, Any] = {"starts": list(self._starts), "ends": list(self._ends),
                                "other": sorted(self._other)}
        if self._scopes:
            data["scopes"] = {name: seen.to_json() for name, seen in sorted(self._scopes.items())}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeenIds:
        seen = cls()
        scopes = data.get("scopes", {})
        if not isinstance(scopes, dict) or any(not name or "scopes" in sub for name, sub in scopes.items()):
            raise ValueError("seen ids: malformed scopes")
        seen._scopes = {str(name): cls.from_json(sub) for name, sub in scopes.items()}
        starts, ends = [int(v) for v in data["starts"]], [int(v) for v in data["ends"]]
        if len(starts) != len(ends) or any(s > e for s, e in zip(starts, ends, strict=True)) \
                or starts != sorted(starts):
            raise ValueError("seen ids: malformed intervals")
        seen._starts, seen._ends = starts, ends
        seen._other = {str(v) for v in data.get("other", [])}
        return seen

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SeenIds)
            and self._starts == other._starts
            and self._ends == other._ends
            and self._other == other._other
            and self._scopes == other._scopes
        )

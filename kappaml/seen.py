"""The set of row ids a key has learned, kept small for the usual case of increasing ids.

Integer ids are stored as closed intervals, so a stream of ids 1..N costs one interval
instead of N set entries; other ids (strings from an id column) fall back to a set.
"""

from __future__ import annotations

from bisect import bisect_right

__all__ = ["SeenIds"]


class SeenIds:
    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._other: set[str] = set()

    def __len__(self) -> int:
        return sum(e - s + 1 for s, e in zip(self._starts, self._ends, strict=True)) + len(self._other)

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

    def to_json(self) -> dict[str, list]:
        """A JSON-ready form (snapshots carry it so a cut-over keeps the duplicate rule)."""
        return {"starts": list(self._starts), "ends": list(self._ends), "other": sorted(self._other)}

    @classmethod
    def from_json(cls, data: dict[str, list]) -> SeenIds:
        seen = cls()
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
        )

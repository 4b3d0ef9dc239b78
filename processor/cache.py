"""Live models in memory, written to Quix Streams state once per checkpoint instead of per message.

Pickling a model for every message would cost more than learning from it. Instead the
processor keeps each key's :class:`KeyState` in memory and marks it dirty; when Quix commits
a checkpoint it first flushes its sinks, and :class:`CheckpointSink` uses that moment to
write every dirty state into the store transaction. The state, the changelog, the outputs and
the consumer offsets therefore still commit together (in one Kafka transaction under
exactly-once), so a crash at any moment loses nothing and repeats nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quixstreams.sinks import BaseSink
from quixstreams.state import State

from kappaml.learner import KeyState

__all__ = ["CheckpointSink", "ModelCache"]

_STATE = "key_state"
# A small value stored beside the state: how far that state has got. When another instance
# has learned more for a key in the meantime (after a rebalance), the stamps differ and the
# in-memory copy is dropped for the one in the store.
_STAMP = "stamp"


def _stamp(ks: KeyState) -> list[int]:
    return [ks.learned, ks.skipped, ks.last_offset]


class ModelCache:
    def __init__(self, new_state: Callable[[str], KeyState]) -> None:
        self._new_state = new_state
        self._live: dict[tuple[int, str], KeyState] = {}
        self._flushed: dict[tuple[int, str], list[int]] = {}
        # The Quix State handle of each key touched in the current checkpoint.
        self._dirty: dict[tuple[int, str], State] = {}

    def __len__(self) -> int:
        return len(self._live)

    def get(self, partition: int, key: str, state: State) -> KeyState:
        """The key's live state; loaded from the store on first use in each checkpoint if stale."""
        slot = (partition, key)
        if slot in self._dirty:
            return self._live[slot]
        ks = self._live.get(slot)
        stored_stamp = state.get(_STAMP)
        if ks is None or self._flushed.get(slot) != stored_stamp:
            stored = state.get(_STATE)
            if stored is not None:
                stored.check_compatible()
            ks = stored or self._new_state(key)
            self._live[slot] = ks
            self._flushed[slot] = stored_stamp
        self._dirty[slot] = state
        return ks

    def flush(self) -> list[tuple[int, KeyState]]:
        """Write every dirty state into its store transaction; return (partition, state) pairs."""
        flushed = []
        for slot, state in self._dirty.items():
            ks = self._live[slot]
            stamp = _stamp(ks)
            state.set(_STATE, ks)
            state.set(_STAMP, stamp)
            self._flushed[slot] = stamp
            flushed.append((slot[0], ks))
        self._dirty.clear()
        return flushed

    def states(self) -> list[KeyState]:
        return list(self._live.values())


class CheckpointSink(BaseSink):
    """Runs ``on_checkpoint`` at every checkpoint commit, before Quix writes changelogs and offsets."""

    def __init__(self, on_checkpoint: Callable[[], None]) -> None:
        super().__init__()
        self._on_checkpoint = on_checkpoint

    def add(self, value: Any, key: Any, timestamp: int, headers: Any, topic: str,
            partition: int, offset: int) -> None:
        pass  # outputs are produced elsewhere; this sink only hooks the checkpoint

    def flush(self) -> None:
        self._on_checkpoint()

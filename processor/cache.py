"""Live models in memory, written to Quix Streams state once per checkpoint instead of per message.

Pickling a model for every message would cost more than learning from it. Instead the
processor keeps each key's :class:`KeyState` (one per spec) in memory and marks it dirty; when Quix commits
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
from quixstreams.state.base import PartitionTransaction

from kappaml.learner import IncompatibleState, KeyState

__all__ = ["CheckpointSink", "KeyStates", "ModelCache"]

# Every spec's state of one key (champion and challengers), stored together: they learn
# the same messages, so they are always at the same offset.
KeyStates = dict[str, KeyState]
_STATE = "key_states"
_OLD_STATE = "key_state"  # kappaml <= 0.1 stored one KeyState per key under this name
# A small value stored beside the state: how far that state has got. When another instance
# has learned more for a key in the meantime (after a rebalance), the stamps differ and the
# in-memory copy is dropped for the one in the store.
_STAMP = "stamp"


def _bucket_key(spec: str, bucket: int) -> str:
    """Where one bucket of a spec's pending predictions is stored (kappaml/pending.py)."""
    return f"pending:{spec}:{bucket}"


def _restore_pending(state: State, states: KeyStates) -> None:
    """Put back the pending predictions of loaded states, which the store keeps bucket by bucket."""
    for spec, ks in states.items():
        labels = ks.labels
        if labels.external:
            labels.restore([state.get(_bucket_key(spec, b)) for b in labels.stored_buckets])
        labels.externalize()


def _stamp(states: KeyStates) -> list[list[int]]:
    # seq: the key's records of any kind (a features record changes the state, not learned).
    return [[ks.learned, ks.skipped, ks.last_offset, ks.labels.seq] for ks in states.values()]


class ModelCache:
    def __init__(self, new_states: Callable[[str], KeyStates]) -> None:
        self._new_states = new_states
        self._live: dict[tuple[int, str], KeyStates] = {}
        self._flushed: dict[tuple[int, str], Any] = {}
        # The Quix State handle of each key touched in the current checkpoint.
        self._dirty: dict[tuple[int, str], State] = {}

    def __len__(self) -> int:
        return len(self._live)

    def get(self, partition: int, key: str, transaction: Callable[[int], PartitionTransaction]) -> KeyStates:
        """The key's live states; loaded from the store on first use in each checkpoint if stale.

        ``transaction(partition)`` is the checkpoint's store transaction: opened only then,
        not for every message. Its State for the key is the one Quix would give a stateful
        operator: prefixed by the raw message key.
        """
        slot = (partition, key)
        if slot in self._dirty:
            return self._live[slot]
        state = transaction(partition).as_state(prefix=key.encode("utf-8"))
        states = self._live.get(slot)
        stored_stamp = state.get(_STAMP)
        if states is None or self._flushed.get(slot) != stored_stamp:
            stored = state.get(_STATE)
            if stored is None and state.get(_OLD_STATE) is not None:
                raise IncompatibleState(f"the stored state of key {key!r} has an older layout; run "
                                        "this code as a new --model-version, rebuilt from the log")
            for ks in (stored or {}).values():
                ks.check_compatible()
            states = self._complete(key, stored) if stored else self._new_states(key)
            _restore_pending(state, states)
            self._live[slot] = states
            self._flushed[slot] = stored_stamp
        self._dirty[slot] = state
        return states

    def _complete(self, key: str, stored: KeyStates) -> KeyStates:
        """The stored states, plus fresh ones for specs added since (a new challenger).

        A challenger added to a running version starts learning at the next message; its
        metrics then cover fewer messages than the champion's, which the comparison shows.
        """
        wanted = self._new_states(key)
        return {spec: stored.get(spec, fresh) for spec, fresh in wanted.items()}

    def flush(self) -> list[tuple[int, KeyStates]]:
        """Write every dirty state into its store transaction; return (partition, states) pairs."""
        flushed = []
        for slot, state in self._dirty.items():
            states = self._live[slot]
            stamp = _stamp(states)
            # Only the buckets of pending predictions that changed: not all of them, every time.
            for spec, ks in states.items():
                for bucket, entries in ks.labels.take_dirty_buckets():
                    if entries is None:
                        state.delete(_bucket_key(spec, bucket))
                    else:
                        state.set(_bucket_key(spec, bucket), entries)
            state.set(_STATE, states)
            state.set(_STAMP, stamp)
            self._flushed[slot] = stamp
            flushed.append((slot[0], states))
        self._dirty.clear()
        return flushed

    def states(self) -> list[tuple[int, KeyStates]]:
        return [(slot[0], states) for slot, states in self._live.items()]


class CheckpointSink(BaseSink):
    """Runs ``on_checkpoint`` at every checkpoint commit, before Quix writes changelogs and offsets.

    Registered with the processing context's sink manager, not added with ``sdf.sink()``:
    nothing is added to it per message.
    """

    def __init__(self, on_checkpoint: Callable[[], None]) -> None:
        super().__init__()
        self._on_checkpoint = on_checkpoint

    def add(self, value: Any, key: Any, timestamp: int, headers: Any, topic: str,
            partition: int, offset: int) -> None:
        pass  # outputs are produced elsewhere; this sink only hooks the checkpoint

    def flush(self) -> None:
        self._on_checkpoint()

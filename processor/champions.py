"""Which spec serves each partition, kept in that partition's state store.

Promotions are control records on the raw topic (see kappaml/lineup.py). The serving spec of
a partition is stored under the control key's prefix of the partition's store, so it
commits with the offsets and the models (a crash cannot lose or repeat a promotion) and it
moves with the partition when another instance takes it over.
"""

from __future__ import annotations

from collections.abc import Callable

from quixstreams.state import State
from quixstreams.state.base import PartitionTransaction

from kappaml.evaluation import PrequentialMetrics
from kappaml.lineup import CONTROL_KEY_BYTES, Lineup, Promotion, ServingHistory
from kappaml.logging import get_logger

__all__ = ["Champions"]

log = get_logger(__name__)

_CHAMPION = "champion"
_SERVED = "served"
_SERVED_STAMP = "served_count"


def _count(tally: PrequentialMetrics) -> int:
    return tally.n + tally.invalid


def _partition_state(transaction: PartitionTransaction) -> State:
    # The serving spec belongs to the whole partition: it lives under the control records'
    # key, in the transaction that also holds the partition's models and offsets.
    return transaction.as_state(prefix=CONTROL_KEY_BYTES)


class Champions:
    def __init__(self, lineup: Lineup) -> None:
        self.history = ServingHistory(lineup)
        # Partitions whose stored champion was read in the current checkpoint: re-read in
        # each, because a partition may have been served by another instance in between.
        self._loaded: set[int] = set()
        # Per partition, the prequential metrics of the predictions actually served, whichever
        # spec served each one: what the pipeline's users got. Stored beside the champion, so
        # they commit with the offsets and move with the partition.
        self.served: dict[int, PrequentialMetrics] = {}
        self._stamps: dict[int, int | None] = {}  # the stored tally's count, as read this checkpoint

    def champion(self, partition: int, transaction: Callable[[int], PartitionTransaction]) -> str:
        """The partition's serving spec; ``transaction(partition)`` is opened once per checkpoint."""
        if partition not in self._loaded:
            state = _partition_state(transaction(partition))
            # The tally is re-read only when the store holds another one than ours (another
            # instance served the partition meanwhile): its count of scored pairs tells.
            stamp = state.get(_SERVED_STAMP)
            mine = self.served.get(partition)
            if mine is None or stamp != _count(mine):
                served = state.get(_SERVED)
                self.served[partition] = (served if isinstance(served, PrequentialMetrics)
                                          else PrequentialMetrics(self.history.lineup.window))
            self._stamps[partition] = stamp
            stored = state.get(_CHAMPION)
            if stored in self.history.lineup.specs:
                self.history.champions[partition] = stored
            else:
                if stored is not None:
                    log.warning("the promoted spec of this partition is not running; serving the "
                                "configured champion", partition=partition, promoted=stored,
                                champion=self.history.lineup.champion)
                self.history.champions.pop(partition, None)
            self._loaded.add(partition)
        return self.history.champion(partition)

    def promote(self, partition: int, promotion: Promotion,
                transaction: Callable[[int], PartitionTransaction]) -> str | None:
        """Apply a promotion read at this point of the partition; see ServingHistory.apply."""
        self.champion(partition, transaction)
        reason = self.history.apply(partition, promotion)
        if reason is None:
            _partition_state(transaction(partition)).set(_CHAMPION, promotion.spec)
        return reason

    def checkpoint(self, transaction: Callable[[int], PartitionTransaction]) -> None:
        """Store the served metrics of the partitions they changed in since the last checkpoint."""
        for partition in self._loaded:
            count = _count(self.served[partition])
            if count != self._stamps.get(partition):
                state = _partition_state(transaction(partition))
                state.set(_SERVED, self.served[partition])
                state.set(_SERVED_STAMP, count)
        self._loaded.clear()

    def current(self) -> dict[int, str]:
        return {p: self.history.champion(p) for p in sorted(self._loaded | set(self.history.champions))}

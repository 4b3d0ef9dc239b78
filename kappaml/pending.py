"""Delayed labels: the predictions served and waiting for their label, per key and spec.

A ``features`` record is predicted at once (the served prediction) and kept here as a
:class:`PendingPrediction` until its ``label`` record arrives; a label that comes before its
features waits here as an :class:`EarlyLabel`. Both live in the key's
:class:`kappaml.learner.KeyState` (``state.labels``), so they are pickled with the model into the
processor's state store (exactly once, across crashes) and rebuilt alike by the Spark replay.

:class:`LabelPolicy` (``kappaml.labelpolicy``, re-exported here) says how long a label may
take (``--label-ttl``: ``N`` records of the key, or ``Ns`` seconds of event time, never the wall
clock) and what happens when it never comes (``--on-missing-label``: ``drop``, or
``learn=VALUE``). The rules themselves are applied by :func:`kappaml.learner.apply_record`; this
module holds the data and the bookkeeping. The processor's store keeps the pending predictions
bucket by bucket (``externalize``, ``take_dirty_buckets``, ``restore``; processor/cache.py).

Deterministic by construction: no clocks, no randomness, no hash order. Expiry follows a heap
ordered by (due, seq), seq being the key's own record count, unique per entry.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from typing import Any, NamedTuple

from kappaml.labelpolicy import NO_TTL, LabelPolicy, parse_on_missing, parse_ttl
from kappaml.seen import SeenIds

# LabelPolicy and its parsers live in kappaml.labelpolicy (not pickled); importable from here.
__all__ = ["BUCKET_BITS", "DELAY_WINDOW", "NO_TTL", "DelayedLabels", "EarlyLabel", "LabelPolicy",
           "PendingPrediction", "Ref", "parse_on_missing", "parse_ttl", "quantiles"]

# Recent label delays kept per key and spec for the p50/p95/p99 figures.
DELAY_WINDOW = 1000
# Pending predictions are grouped in buckets of 2**BUCKET_BITS consecutive record numbers: a
# state store can keep them bucket by bucket (``externalize``), so a checkpoint writes only the
# buckets that changed instead of every pending prediction.
BUCKET_BITS = 10

# (stream, id): row ids are unique within their stream (kappaml.provenance).
Ref = tuple[str, "int | str"]


class PendingPrediction(NamedTuple):
    """A served prediction waiting for its label. A NamedTuple: about 150-250 bytes pickled."""

    x: tuple[Any, ...]  # the feature values, in ``DelayedLabels.names`` order
    y_pred: float  # the prediction served
    ts: int | None  # the features record's event time
    seq: int  # the key's record number of the features record
    offset: int  # its raw-topic offset
    generation: int  # of the model that predicted
    pass_no: int = 1


class EarlyLabel(NamedTuple):
    """A label that arrived before its features."""

    y: float
    ts: int | None
    seq: int
    offset: int


# --------------------------------------------------------------------------- the state


def quantiles(values: Any, qs: tuple[int, ...] = (50, 95, 99)) -> dict[str, float]:
    """Nearest-rank percentiles ``{"p50": ..}`` of ``values``; {} when there are none."""
    ordered = sorted(values)
    if not ordered:
        return {}
    n = len(ordered)
    return {f"p{q}": ordered[min(n - 1, max(0, math.ceil(n * q / 100) - 1))] for q in qs}


def _approx_bytes(ref: Ref, p: PendingPrediction) -> int:
    """Roughly what one entry costs pickled (floats 9 bytes, strings their length + 5, overhead 40)."""
    size = 40 + (len(ref[1]) + 5 if isinstance(ref[1], str) else 9) + len(ref[0]) // 8
    for v in p.x:
        size += len(v) + 5 if isinstance(v, str) else 9
    return size


class DelayedLabels:
    """One key's (one spec's) served predictions awaiting labels, early labels, and their counts.

    ``seq`` counts every record of the key (any kind); ``clock`` is the largest event time seen.
    Counts: ``served`` = ``paired`` + ``expired`` + ``len(pending)`` always holds.
    """

    def __init__(self) -> None:
        self.names: tuple[str, ...] | None = None
        self.pending: dict[Ref, PendingPrediction] = {}
        self.early: dict[Ref, EarlyLabel] = {}
        self.closed = SeenIds()  # ids whose prediction expired: a late label or features are ignored
        self.seq = 0
        self.clock: int | None = None
        self.served = 0  # features records predicted
        self.paired = 0  # of those, learned with their label
        self.expired = 0  # of those, expired (dropped or learned with the missing-label value)
        self.expired_learned = 0  # expired and learned with the missing-label value
        self.orphans = 0  # labels that never paired: early labels expired, late labels
        self.duplicate_features = 0
        self.duplicate_labels = 0
        self.bytes = 0  # approximate pickled size of ``pending``
        self.delays_ms: deque[int] = deque(maxlen=DELAY_WINDOW)
        self.delays_rows: deque[int] = deque(maxlen=DELAY_WINDOW)
        # Expiry order: heaps of (due, seq, ref); entries whose ref left (paired) are skipped.
        self._mode: str | None = None
        self._pending_heap: list[tuple[int, int, Ref]] = []
        self._early_heap: list[tuple[int, int, Ref]] = []
        # Not pickled (rebuilt): the refs of each bucket, and the buckets changed since taken.
        self._buckets: dict[int, set[Ref]] = {}
        self._dirty: set[int] = set()
        # Pickled: whether ``pending`` lives in a store's buckets instead of in the pickle, and
        # then which buckets hold something.
        self.external = False
        self._stored_buckets: list[int] = []

    # -- bookkeeping used by kappaml.learner ----------------------------------------------
    def tick(self, ts: int | None) -> int:
        """A record of the key: the next ``seq``; ``clock`` follows the event time."""
        self.seq += 1
        if ts is not None and (self.clock is None or ts > self.clock):
            self.clock = ts
        return self.seq

    def x_of(self, x: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        names = tuple(x)
        if self.names is None:
            self.names = names
        return tuple(x.values()) if names == self.names else dict(x)

    def x_dict(self, p: PendingPrediction) -> dict[str, Any]:
        x = p.x
        return dict(x) if isinstance(x, dict) else dict(zip(self.names or (), x, strict=True))

    def _due(self, seq: int, ts: int | None) -> int | None:
        """The heap order of an entry; None: it never expires (seconds TTL, a record without ts)."""
        return seq if self._mode == "rows" else ts

    def _push(self, heap: list[tuple[int, int, Ref]], seq: int, ts: int | None, ref: Ref) -> None:
        due = self._due(seq, ts)
        if due is not None:
            heapq.heappush(heap, (due, seq, ref))

    def add_pending(self, ref: Ref, p: PendingPrediction) -> None:
        self.pending[ref] = p
        self.bytes += _approx_bytes(ref, p)
        bucket = p.seq >> BUCKET_BITS
        self._buckets.setdefault(bucket, set()).add(ref)
        self._dirty.add(bucket)
        if self._mode is not None:
            self._push(self._pending_heap, p.seq, p.ts, ref)

    def _removed(self, ref: Ref, p: PendingPrediction) -> None:
        self.bytes -= _approx_bytes(ref, p)
        bucket = p.seq >> BUCKET_BITS
        refs = self._buckets.get(bucket)
        if refs is not None:
            refs.discard(ref)
            if not refs:
                del self._buckets[bucket]
        self._dirty.add(bucket)

    def pop_pending(self, ref: Ref) -> PendingPrediction:
        p = self.pending.pop(ref)
        self._removed(ref, p)
        self._compact()
        return p

    def add_early(self, ref: Ref, label: EarlyLabel) -> None:
        self.early[ref] = label
        if self._mode is not None:
            self._push(self._early_heap, label.seq, label.ts, ref)

    def pop_early(self, ref: Ref) -> EarlyLabel:
        label = self.early.pop(ref)
        self._compact()
        return label

    def _compact(self) -> None:
        # Paired entries stay in the heaps until due; rebuild when they are most of them.
        if len(self._pending_heap) > 2 * len(self.pending) + 64:
            self._pending_heap = [e for e in self._pending_heap if self._live(self.pending, e)]
            heapq.heapify(self._pending_heap)
        if len(self._early_heap) > 2 * len(self.early) + 64:
            self._early_heap = [e for e in self._early_heap if self._live(self.early, e)]
            heapq.heapify(self._early_heap)

    @staticmethod
    def _live(entries: dict[Ref, Any], entry: tuple[int, int, Ref]) -> bool:
        current = entries.get(entry[2])
        return current is not None and current.seq == entry[1]

    def set_mode(self, policy: LabelPolicy) -> None:
        """Order the heaps for this policy's TTL kind (rebuilt if the flag changed between runs)."""
        mode = policy.mode
        if mode == self._mode:
            return
        self._mode = mode
        if mode is None:
            self._pending_heap, self._early_heap = [], []
            return
        self._rebuild_heaps()

    def _rebuild_heaps(self) -> None:
        def heap(entries: dict[Ref, Any]) -> list[tuple[int, int, Ref]]:
            out = []
            for ref, e in entries.items():
                due = self._due(e.seq, e.ts)
                if due is not None:
                    out.append((due, e.seq, ref))
            heapq.heapify(out)
            return out

        if self._mode is None:
            self._pending_heap, self._early_heap = [], []
        else:
            self._pending_heap, self._early_heap = heap(self.pending), heap(self.early)

    def _cutoff(self, policy: LabelPolicy) -> int | None:
        """Entries with due < cutoff have expired (None: nothing expires)."""
        if policy.ttl_rows is not None:
            return self.seq - policy.ttl_rows
        if policy.ttl_ms is not None and self.clock is not None:
            return self.clock - policy.ttl_ms
        return None

    @property
    def waiting(self) -> bool:
        """Whether anything may be due: the expiry heaps hold every pending prediction and early
        label a TTL applies to (and some already paired, skipped when due)."""
        return bool(self._pending_heap or self._early_heap)

    def due_pending(self, policy: LabelPolicy) -> list[tuple[Ref, PendingPrediction]]:
        """Remove and return the pending predictions past the TTL, in (due, seq) order."""
        return self._due_entries(policy, self._pending_heap, self.pending, pending=True)

    def due_early(self, policy: LabelPolicy) -> list[tuple[Ref, EarlyLabel]]:
        """Remove and return the early labels past the TTL, in (due, seq) order."""
        return self._due_entries(policy, self._early_heap, self.early, pending=False)

    def _due_entries(self, policy: LabelPolicy, heap: list[tuple[int, int, Ref]], entries: dict[Ref, Any],
                     *, pending: bool) -> list[tuple[Ref, Any]]:
        cutoff = self._cutoff(policy)
        out: list[tuple[Ref, Any]] = []
        if cutoff is None:
            return out
        while heap and heap[0][0] < cutoff:
            _due, seq, ref = heapq.heappop(heap)
            entry = entries.get(ref)
            if entry is None or entry.seq != seq:
                continue  # paired meanwhile
            del entries[ref]
            if pending:
                self._removed(ref, entry)
            out.append((ref, entry))
        return out

    # -- a state store keeping the pending predictions bucket by bucket ----------------------
    def externalize(self) -> None:
        """From now on ``pending`` is not in this object's pickle: the store keeps the buckets
        ``take_dirty_buckets`` hands out, and gives them back to ``restore`` after a load."""
        if not self.external:
            self.external = True
            self._dirty.update(self._buckets)

    def take_dirty_buckets(self) -> list[tuple[int, dict[Ref, tuple[Any, ...]] | None]]:
        """The buckets changed since the last call: (bucket, its entries as plain tuples, which
        pickle 3x faster than the NamedTuple, or None when the bucket is empty)."""
        out: list[tuple[int, dict[Ref, tuple[Any, ...]] | None]] = []
        for bucket in sorted(self._dirty):
            refs = self._buckets.get(bucket)
            out.append((bucket, {ref: tuple(self.pending[ref]) for ref in refs} if refs else None))
        self._dirty.clear()
        return out

    @property
    def stored_buckets(self) -> list[int]:
        """After a load of an externalized state: the buckets to read back for ``restore``."""
        return list(self._stored_buckets)

    def restore(self, buckets: list[dict[Ref, Any] | None]) -> None:
        """Put back the pending predictions of an externalized state from its stored buckets."""
        self.pending = {}
        for entries in buckets:
            for ref, p in (entries or {}).items():
                self.pending[tuple(ref)] = PendingPrediction(*p)  # type: ignore[index]
        self.pending = dict(sorted(self.pending.items(), key=lambda item: item[1].seq))
        self._index()
        self._rebuild_heaps()

    def _index(self) -> None:
        self._buckets = {}
        for ref, p in self.pending.items():
            self._buckets.setdefault(p.seq >> BUCKET_BITS, set()).add(ref)
        self._dirty = set()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_buckets"], state["_dirty"]
        if self.external:
            state["pending"] = None
            state["_pending_heap"] = None
            state["_stored_buckets"] = sorted(self._buckets)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.pending is None:  # externalized: restore() fills it from the store
            self.pending = {}
            self._pending_heap = []
        self._index()

    @property
    def active(self) -> bool:
        """Whether delayed labels ever touched this state (else it is a labelled-only key's)."""
        return bool(self.served or self.early or self.orphans)

    # -- figures ----------------------------------------------------------------------------
    def figures(self) -> dict[str, Any]:
        """JSON-ready counts for the metrics records (``kappaml.records.metrics``)."""
        return {
            "features_served": self.served,
            "labels_learned": self.paired,
            "expired": self.expired,
            "pending": len(self.pending),
            "pending_bytes": max(self.bytes, 0),
            "early_labels": len(self.early),
            "orphan_labels": self.orphans,
            "delay_ms": quantiles(self.delays_ms),
            "delay_rows": quantiles(self.delays_rows),
        }

    def identity(self) -> tuple[Any, ...]:
        """What the state fingerprint covers: the pending and early ids (sorted), the counts."""

        def refs(entries: dict[Ref, Any]) -> list[tuple[str, str, int | str, int]]:
            return sorted((stream, type(rid).__name__, rid, e.seq) for (stream, rid), e in entries.items())

        return (refs(self.pending), refs(self.early), self.seq, self.served, self.paired, self.expired,
                self.expired_learned, self.orphans)

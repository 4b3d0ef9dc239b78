"""An in-memory replica of the newest model snapshot per (label, key), following the models topic.

The compacted models topic holds the newest snapshot of every (label, key) (``kappaml.snapshot``:
``v1/k`` the live champion, ``v1+spec/k`` a challenger, ``v1@replay/k`` a replay's). The replica
reads it from the beginning as a read_committed consumer, so it only ever sees snapshots of
checkpoints the processor committed, and keeps following it: a snapshot is served as soon as
its transaction commits. Snapshots are decoded here, off the request path; a corrupt one is
logged and skipped, keeping the previous one of its key.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from kappaml.kafka import KafkaSettings
from kappaml.logging import get_logger
from kappaml.snapshot import Snapshot, parse_label, parse_snapshot_key

__all__ = ["Replica", "Served"]

log = get_logger(__name__)


@dataclass(frozen=True)
class Served:
    """A snapshot as the replica holds it; ``received_at``: ms since the epoch it was read."""

    label: str
    snapshot: Snapshot
    partition: int  # of the models topic
    position: int  # the snapshot's offset in the models topic
    received_at: int


class Replica:
    """``start()`` follows ``topic`` on a thread; ``get(label, key)`` is the newest snapshot."""

    def __init__(self, kafka: KafkaSettings, topic: str, poll_timeout: float = 0.1) -> None:
        self.kafka, self.topic, self.poll_timeout = kafka, topic, poll_timeout
        self._models: dict[tuple[str, str], Served] = {}
        self._positions: dict[int, int] = {}
        self.caught_up = threading.Event()
        self.failed: str | None = None
        self.skipped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="models-replica", daemon=True)

    # -- reads (any thread) ------------------------------------------------------------
    def get(self, label: str, key: str) -> Served | None:
        return self._models.get((label, key))

    def spec_of(self, label: str) -> str | None:
        """The spec of any snapshot held under ``label`` (a label's snapshots share one spec,
        but for a promotion in progress)."""
        for served in list(self._models.values()):
            if served.label == label:
                return served.snapshot.spec
        return None

    def __iter__(self) -> Iterator[Served]:
        return iter(list(self._models.values()))

    def __len__(self) -> int:
        return len(self._models)

    def positions(self) -> dict[int, int]:
        """The next models-topic offset to read, per partition."""
        return dict(self._positions)

    def summary(self) -> list[dict[str, Any]]:
        """One entry per label: version, specs, origin, keys, newest offsets and checkpoint time."""
        labels: dict[str, dict[str, Any]] = {}
        for served in self:
            snap = served.snapshot
            version, _spec, origin = parse_label(served.label)
            entry = labels.setdefault(served.label, {
                "label": served.label, "version": version, "origin": origin, "specs": set(), "keys": 0,
                "newest_offsets": {}, "newest_created_at": 0, "learned": 0})
            entry["specs"].add(snap.spec)
            entry["keys"] += 1
            entry["learned"] += snap.learned
            offsets = entry["newest_offsets"]
            offsets[str(snap.partition)] = max(offsets.get(str(snap.partition), -1), snap.offset)
            entry["newest_created_at"] = max(entry["newest_created_at"], snap.created_at)
        out = []
        for entry in sorted(labels.values(), key=lambda e: e["label"]):
            entry["specs"] = sorted(entry["specs"])
            out.append(entry)
        return out

    # -- the follower thread -----------------------------------------------------------
    def start(self) -> Replica:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def wait_caught_up(self, timeout: float) -> bool:
        return self.caught_up.wait(timeout)

    def _run(self) -> None:
        consumer = Consumer({**self.kafka.client_config(), "group.id": f"kappaml-api-{uuid.uuid4().hex}",
                             "enable.auto.commit": False, "isolation.level": "read_committed",
                             "fetch.max.bytes": 64 * 1024 * 1024, "log_level": 0})
        try:
            ends = self._assign(consumer)
            while not self._stop.is_set():
                for msg in consumer.consume(num_messages=500, timeout=self.poll_timeout):
                    if msg.error() is None:
                        self._take(msg)
                if ends is not None:
                    ends = self._check_caught_up(consumer, ends)
        except Exception as exc:  # noqa: BLE001 - reported by /health, never silent
            self.failed = f"{type(exc).__name__}: {exc}"
            log.error("the models replica stopped", topic=self.topic, error=self.failed, exc_info=exc)
        finally:
            consumer.close()

    def _assign(self, consumer: Consumer) -> dict[int, int] | None:
        deadline = time.monotonic() + 60
        while True:
            try:
                meta = consumer.list_topics(self.topic, timeout=10).topics.get(self.topic)
                if meta is None or meta.error is not None or not meta.partitions:
                    raise KafkaException(f"topic {self.topic} not found")
                ends = {p: consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
                        for p in meta.partitions}
                break
            except KafkaException as exc:
                if time.monotonic() > deadline or self._stop.is_set():
                    raise
                log.info("waiting for the models topic", topic=self.topic, error=str(exc))
                time.sleep(1.0)
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in ends])
        ends = {p: end for p, end in ends.items() if end > 0}
        if not ends:
            self.caught_up.set()
            return None
        return ends

    def _check_caught_up(self, consumer: Consumer, ends: dict[int, int]) -> dict[int, int] | None:
        # Past the end offset seen at the start (a transaction marker may be the last offset).
        for tp in consumer.position([TopicPartition(self.topic, p) for p in ends]):
            if tp.offset >= ends[tp.partition]:
                ends.pop(tp.partition)
        if ends:
            return ends
        log.info("models replica caught up", topic=self.topic, snapshots=len(self._models))
        self.caught_up.set()
        return None

    def _take(self, msg: Any) -> None:
        partition, offset = msg.partition(), msg.offset()
        self._positions[partition] = offset + 1
        raw_key = msg.key()
        try:
            label, key = parse_snapshot_key(raw_key.decode("utf-8") if raw_key is not None else "")
        except (ValueError, UnicodeDecodeError) as exc:
            self.skipped += 1
            log.warning("skipping a models-topic message without a snapshot key", partition=partition,
                        offset=offset, error=str(exc))
            return
        value = msg.value()
        if value is None:  # a tombstone withdraws the (label, key)
            self._models.pop((label, key), None)
            return
        try:
            # The header's sha256 guards the pickle; the fingerprint is not recomputed here (the
            # processor computed it from the very model), so a new snapshot is served sooner.
            snapshot = Snapshot.decode(value, verify=False)
        except ValueError as exc:
            self.skipped += 1
            log.warning("skipping a corrupt snapshot", label=label, key=key, partition=partition,
                        offset=offset, error=str(exc))
            return
        self._models[(label, key)] = Served(label=label, snapshot=snapshot, partition=partition,
                                            position=offset, received_at=int(time.time() * 1000))

"""A background thread that tails the project's topics into a ``LiveStore``.

One consumer, manually assigned (no group, nothing committed), reads the recent tail of the
predictions, metrics, drift and dead-letter topics and the whole compacted models topic. Every
couple of seconds it also looks at the cluster: topic end offsets (the raw and challengers
topics are only measured, not read), the processors' consumer-group lag, and whether Kafka
answers at all. Nothing here raises into a page: problems become the store's
status, and the thread keeps retrying until Kafka is back.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from kappaml.logging import get_logger
from kappaml.records import (
    DriftEvent,
    InvalidRecord,
    Prediction,
    ServedPrediction,
    decode_metrics,
    decode_prediction,
    read_dead_letter,
)
from ui.cluster import group_lags
from ui.settings import UISettings
from ui.store import (
    GroupLag,
    KafkaStatus,
    LiveStore,
    PipelineInfo,
    SnapshotRef,
    TopicInfo,
)

__all__ = ["LiveReader", "ReaderLimits"]

log = get_logger(__name__)

# Topics whose size the pipeline page shows but whose records no page needs: the raw input,
# the challengers' predictions (their figures come pooled in the comparison records), and the
# data set declarations (read by kappaml.catalog when a page needs them).
MEASURED_ONLY = frozenset({"raw", "challengers", "datasets"})


@dataclass(frozen=True)
class ReaderLimits:
    """How far back the reader starts on each topic, and how often it looks at the cluster."""

    metrics_backlog: int = 50_000
    predictions_backlog: int = 5_000
    dlq_backlog: int = 200
    drift_backlog: int = 500
    poll_timeout: float = 0.2
    refresh_every: float = 2.0
    request_timeout: float = 3.0
    # Last resort only (a partition stuck behind a transaction that never ends): a partition
    # counts as read once the reader reaches the end it had when assigned, however busy it is.
    load_timeout: float = 60.0

    def __post_init__(self) -> None:
        for name in ("metrics_backlog", "predictions_backlog", "dlq_backlog", "drift_backlog"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("poll_timeout", "refresh_every", "request_timeout", "load_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 seconds, got {getattr(self, name)}")


class LiveReader:
    def __init__(self, settings: UISettings, limits: ReaderLimits | None = None,
                 store: LiveStore | None = None) -> None:
        self.settings = settings
        self.limits = limits or ReaderLimits()
        self.store = store or LiveStore(predictions_cap=self.limits.predictions_backlog,
                                        dlq_cap=self.limits.dlq_backlog, drift_cap=self.limits.drift_backlog)
        topics = settings.topics
        self._roles = {
            topics.raw: "raw",
            topics.predictions: "predictions",
            topics.metrics: "metrics",
            topics.models: "models",
            topics.dlq: "dlq",
            topics.drift: "drift",
            topics.challengers: "challengers",
            topics.datasets: "datasets",
        }
        self._backlog = {
            "predictions": self.limits.predictions_backlog,
            "metrics": self.limits.metrics_backlog,
            "dlq": self.limits.dlq_backlog,
            "drift": self.limits.drift_backlog,
            "models": None,  # compacted: read it all, the newest snapshot per key wins
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kappaml-ui-reader-{settings.prefix}",
                                        daemon=True)
        self._assigned: set[tuple[str, int]] = set()
        # Partitions assigned but not yet read to their end: "loaded" once this is empty.
        self._unread: set[tuple[str, int]] = set()
        # The end offset of each unread partition when it was assigned: reaching it is enough,
        # so a partition written faster than it is read still counts as loaded.
        self._targets: dict[tuple[str, int], int] = {}
        self._load_deadline: float | None = None
        # Every consumed topic is assigned (none missing or not ready at the last look).
        self._complete = False
        self._last_raw: tuple[float, int] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> LiveReader:
        self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def wait_loaded(self, timeout: float) -> bool:
        """Block (tests, never pages) until the initial backlog has been read."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            view = self.store.view()
            if view.loaded:
                return True
            time.sleep(0.05)
        return False

    # -- the thread ------------------------------------------------------------------------
    def _client_config(self) -> dict[str, Any]:
        return {
            **self.settings.kafka.client_config(),
            # librdkafka logs every refused connection to stderr; the status line says it once.
            "log_level": 2,
            "error_cb": self._on_error,
            "reconnect.backoff.max.ms": 2000,
            "socket.connection.setup.timeout.ms": int(self.limits.request_timeout * 1000),
        }

    def _on_error(self, err: KafkaError) -> None:
        # Refused connections repeat many times a second while Kafka is down; the status
        # (from the metadata look-ups) reports that once, in words.
        pass

    def _run(self) -> None:
        consumer = Consumer({
            **self._client_config(),
            "group.id": f"kappaml-ui-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            # The processor writes in transactions: aborted output must never show.
            "isolation.level": "read_committed",
        })
        admin = AdminClient(self._client_config())
        next_refresh = 0.0
        try:
            while not self._stop.is_set():
                if time.monotonic() >= next_refresh:
                    next_refresh = time.monotonic() + self.limits.refresh_every
                    self._refresh(consumer, admin)
                if not self._assigned:
                    self._stop.wait(self.limits.poll_timeout)
                    continue
                try:
                    batch = consumer.consume(num_messages=1000, timeout=self.limits.poll_timeout)
                except KafkaException as exc:
                    log.warning("consume failed", error=str(exc))
                    self._stop.wait(self.limits.poll_timeout)
                    continue
                self._dispatch(batch)
                if self._load_deadline is not None and (
                        (self._complete and not self._unread) or time.monotonic() > self._load_deadline):
                    self._load_deadline = None
                    self.store.set_loaded()
        except Exception:  # a last net: the pages show the status, the log keeps the trace
            log.exception("ui reader stopped by an unexpected error")
            self.store.set_status(KafkaStatus(False, "the UI's Kafka reader failed; see the UI log",
                                              time.time()))
        finally:
            consumer.close()

    def _refresh(self, consumer: Consumer, admin: AdminClient) -> None:
        timeout = self.limits.request_timeout
        try:
            metadata = consumer.list_topics(timeout=timeout)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else exc
            text = error.str() if isinstance(error, KafkaError) else str(error)
            self.store.set_status(KafkaStatus(False, text, time.time()))
            return
        listed = {name: md for name, md in metadata.topics.items() if name in self._roles}
        # A topic just created may answer with an error (no leader yet) for a moment.
        present = {name: md for name, md in listed.items() if md.error is None}
        missing = tuple(name for name in self._roles if name not in listed)
        self.store.set_status(KafkaStatus(True, None, time.time(), missing))
        try:
            topic_infos = self._assign_and_measure(consumer, present, nothing_listed=not listed)
            groups = self._group_lags(admin, topic_infos)
        except KafkaException as exc:
            log.info("cluster look-up failed; retrying", error=str(exc))
            return
        self.store.set_pipeline(PipelineInfo(
            topics=tuple(topic_infos), groups=tuple(groups),
            raw_rate=self._raw_rate(topic_infos), taken_at=time.time()))

    def _assign_and_measure(self, consumer: Consumer, present: dict[str, Any], *,
                            nothing_listed: bool) -> list[TopicInfo]:
        timeout = self.limits.request_timeout
        infos: list[TopicInfo] = []
        new: list[TopicPartition] = []
        for name, role in self._roles.items():
            if name not in present:
                continue
            starts: dict[int, int] = {}
            ends: dict[int, int] = {}
            for partition in sorted(present[name].partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(name, partition),
                                                           timeout=timeout, cached=False)
                starts[partition], ends[partition] = low, high
                if role not in MEASURED_ONLY and (name, partition) not in self._assigned:
                    backlog = self._backlog[role]
                    start = low if backlog is None else max(low, high - backlog)
                    new.append(TopicPartition(name, partition, start))
                    self._targets[(name, partition)] = high
            infos.append(TopicInfo(name=name, role=role, start_offsets=starts, end_offsets=ends))
        if nothing_listed and not self._assigned:
            # No topic at all yet: the pages may say so instead of "reading".
            self.store.set_loaded()
        consumed = [name for name, role in self._roles.items() if role not in MEASURED_ONLY]
        self._complete = all(name in present for name in consumed)
        if new:
            consumer.incremental_assign(new)
            self._assigned.update((tp.topic, tp.partition) for tp in new)
            self._unread.update((tp.topic, tp.partition) for tp in new
                                if tp.offset < self._targets[(tp.topic, tp.partition)])
            if self._load_deadline is None:
                self._load_deadline = time.monotonic() + self.limits.load_timeout
            log.info("ui reader assigned", partitions=[f"{tp.topic}[{tp.partition}]@{tp.offset}"
                                                      for tp in new])
        return infos

    def _group_lags(self, admin: AdminClient, infos: list[TopicInfo]) -> list[GroupLag]:
        raw = next((t for t in infos if t.role == "raw"), None)
        if raw is None:
            return []
        return group_lags(admin, self.settings.processor_group(""), raw, self.limits.request_timeout)

    def _raw_rate(self, infos: list[TopicInfo]) -> float | None:
        raw = next((t for t in infos if t.role == "raw"), None)
        if raw is None:
            return None
        now, total = time.monotonic(), sum(raw.end_offsets.values())
        previous, self._last_raw = self._last_raw, (now, total)
        if previous is None or now <= previous[0]:
            return None
        return max(0.0, (total - previous[1]) / (now - previous[0]))

    # -- messages --------------------------------------------------------------------------
    def _dispatch(self, batch: list[Message]) -> None:
        predictions: list[Prediction | ServedPrediction] = []
        for msg in batch:
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:  # noqa: SLF001 - a public librdkafka code
                    # The event's offset is the end the reader reached (under read_committed,
                    # the first offset of a transaction still open, like the target itself).
                    self._note_progress(msg, end=msg.offset())
                else:
                    log.debug("fetch error", error=str(msg.error()))
                continue
            if self._unread:
                self._note_progress(msg, end=msg.offset() + 1)
            role = self._roles.get(msg.topic() or "")
            if role == "models":
                self._on_snapshot(msg)
                continue
            value = msg.value()
            if role == "dlq":  # a dead letter that cannot be read is shown as such, never dropped
                self.store.add_dead_letter(read_dead_letter(value))
                continue
            try:
                if role == "predictions":
                    # Scored, or served before its label (delayed labels): kappaml.records.predictions.
                    predictions.append(decode_prediction(value))
                elif role == "metrics":
                    self.store.add_metrics(decode_metrics(value))
                elif role == "drift":
                    self.store.add_drift(DriftEvent.decode(value))
            except InvalidRecord as exc:
                self.store.unreadable(f"{msg.topic()}[{msg.partition()}]@{msg.offset()}: {exc}")
        if predictions:
            self.store.add_predictions(predictions)

    def _note_progress(self, msg: Message, *, end: int | None) -> None:
        """``end``: the offset the reader has read up to in ``msg``'s partition."""
        where = (msg.topic() or "", msg.partition() or 0)
        if where in self._unread and end is not None and end >= self._targets.get(where, 0):
            self._unread.discard(where)

    def _on_snapshot(self, msg: Message) -> None:
        raw_key = msg.key()
        try:
            version, _, key = (raw_key or b"").decode("utf-8").partition("/")
        except UnicodeDecodeError:
            version, key = "", ""
        if not version or not key:
            self.store.unreadable(f"{msg.topic()}[{msg.partition()}]@{msg.offset()} (key)")
            return
        value = msg.value()
        if value is None:  # tombstone: the snapshot was deleted
            self.store.drop_snapshot(version, key)
            return
        self.store.put_snapshot(SnapshotRef(version=version, key=key, partition=msg.partition(),
                                            offset=msg.offset(), value=value, received_at=time.time()))

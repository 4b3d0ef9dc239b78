"""The Quix Streams source that ingests an SSE replay into Kafka, each row exactly once.

Guarantees, layer by layer:

* The SSE server gives every row a stable position id and resumes after ``Last-Event-ID``.
* This source produces the records of a batch *and* the batch's last event id (its source
  state, changelogged by Quix Streams) in one Kafka transaction. After a crash the open
  transaction is aborted (``read_committed`` readers never see it) and the source resumes
  from the id committed with the last records that did become visible: no gap, no duplicate
  in the raw topic. This needs the transactional producer that ``producer.ingest`` wires in;
  with a plain (non-transactional) producer the source degrades to at-least-once.
* Every raw record also carries its row id (JSON ``id`` and header ``row_id``), so a
  consumer can drop a duplicate whatever its origin (the processor's duplicate rule).
* Delayed labels (``serve --label-delay``): ``features`` and ``label`` events are raw records
  too (their ``kind`` says which), keyed by the model key like a labelled record, so a row's two
  halves land in one partition in the order the stream sent them. Their event ids are
  ``rows:labels`` pairs (``producer.labels``); the source keeps the last one like a row id.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

from confluent_kafka import Producer as ConfluentProducer
from quixstreams.sources import StatefulSource

from kappaml.dataset import Dataset
from kappaml.kafka import KafkaSettings, write_failure
from kappaml.logging import configure_logging, get_logger
from kappaml.observability import serve_metrics
from kappaml.observability.programs import IngestMetrics
from kappaml.quixcompat import confluent_producer
from kappaml.records import DeadLetter, InvalidRecord, extract
from kappaml.validation import InvalidShare
from producer.follower import Event, Follower
from producer.stopped import IngestStopped, quiet_source_traceback

__all__ = ["IngestStopped", "SSESource"]

log = get_logger(__name__)

LAST_ID = "last_event_id"
# SSE events whose data is a raw record: labelled, or the two halves of a row with delayed labels.
_RECORD_EVENTS = frozenset({"record", "features", "label"})
_loads = json.loads
# The head of a record as producer.replay writes it: id, key and ts without parsing the row.
_JSON_STR = r'"(?:[^"\\]|\\.)*"'
_HEAD = re.compile(rf'\{{"id":(-?\d+|{_JSON_STR}),"key":({_JSON_STR}),"ts":(\d+|null),')


def _head(data: str) -> tuple[str, str, int | None]:
    """(key, row id, ts) of a raw record; ValueError/KeyError/TypeError when it is not one.

    A regex over the head of the JSON is several times cheaper than parsing the whole record;
    any other layout falls back to a full parse. The row itself is validated downstream.
    """
    match = _HEAD.match(data)
    if match is None:
        record = _loads(data)
        key, row_id, ts = record["key"], record["id"], record.get("ts")
        if not isinstance(key, str) or isinstance(row_id, bool) or not isinstance(row_id, (int, str)):
            raise TypeError("id must be an integer or string and key a string")
        if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int)):
            raise TypeError("ts must be integer milliseconds")
        return key, str(row_id), ts
    raw_id, raw_key, raw_ts = match.groups()
    key = raw_key[1:-1] if "\\" not in raw_key else _loads(raw_key)
    row_id = raw_id if raw_id[0] != '"' else _loads(raw_id)
    return key, row_id, None if raw_ts == "null" else int(raw_ts)


class SSESource(StatefulSource):
    def __init__(
        self,
        name: str,
        *,
        url: str,
        dataset: Dataset,
        dlq_topic: str,
        transactional: bool = True,
        validate: bool = False,
        commit_every: int = 10_000,
        commit_interval: float = 0.5,
        log_interval: float = 5.0,
        max_backoff: float = 5.0,
        log_level: str = "INFO",
        shutdown_timeout: float = 10.0,
        invalid_share: InvalidShare | None = None,
        metrics_port: int | None = None,
        kafka: KafkaSettings | None = None,
    ) -> None:
        super().__init__(name, shutdown_timeout=shutdown_timeout)
        self.url = url
        self.dataset = dataset
        self.dlq_topic = dlq_topic
        self.transactional = transactional
        self.validate = validate
        self.commit_every = commit_every
        self.commit_interval = commit_interval
        self.log_interval = log_interval
        self.max_backoff = max_backoff
        self.log_level = log_level
        self.metrics_port = metrics_port
        self.kafka = kafka  # to say why a commit failed (kappaml.kafka.write_failure)
        self._metrics: IngestMetrics | None = None  # made in run(): the source runs in its own process
        # Counters of this run (not state: the raw topic itself is the record of what was produced).
        self.produced = 0
        self.invalid = 0
        self.committed_id: str | None = None
        self.invalid_share = invalid_share or InvalidShare()
        self._raw: ConfluentProducer | None = None
        self._topic_name = ""
        self._unpolled = 0

    # ------------------------------------------------------------------ Kafka side

    def _begin(self) -> None:
        if self.transactional:
            self.producer.begin_transaction()

    def _commit(self, last_id: str | None) -> None:
        """Make everything produced so far, and ``last_id`` with it, durable (and visible)."""
        if last_id is not None and last_id != self.committed_id:
            self.state.set(LAST_ID, last_id)
        self.flush()  # state -> changelog (inside the transaction), then the producer queue
        if self.transactional:
            started = time.perf_counter()
            self.producer.commit_transaction(positions=[], group_metadata=None)  # type: ignore[arg-type]
            if self._metrics is not None:
                self._metrics.commit.observe(time.perf_counter() - started)
        self.committed_id = last_id

    def _commit_or_stop(self, last_id: str | None) -> None:
        """``_commit``, or ``IngestStopped`` saying why Kafka did not take the transaction.

        librdkafka retries a refused write (a topic below its min.insync.replicas, a leader gone)
        until the message times out (transaction.timeout.ms): by then waiting longer would only
        hold the stream back, and a restart loses nothing.
        """
        try:
            self._commit(last_id)
        except Exception as exc:
            reason = (write_failure(self.kafka, self._topic_name or self.producer_topic.name, exc)
                      if self.kafka is not None else " ".join(str(exc).split()))
            resume = (f"after event id {self.committed_id}" if self.committed_id is not None
                      else "from the first event")
            raise IngestStopped(
                f"ingest stopped: Kafka did not take a transaction of raw records ({reason}); it never "
                f"commits, so no reader sees any of it; start the ingest again once Kafka takes writes: "
                f"it resumes {resume}") from None

    def _dead_letter(self, event: Event, details: dict[str, Any]) -> None:
        # With delayed labels the event id is "rows:labels": the row is its rows part.
        row_id = event.id.split(":", 1)[0]
        letter = DeadLetter(stage="producer", source=self.dataset.name, id=row_id,
                            ts=time.time_ns() // 1_000_000, reason=str(details.get("reason")),
                            column=details.get("column"), row=details.get("row"), value=details.get("value"))
        self.producer.produce(
            topic=self.dlq_topic,
            key=row_id.encode(),
            value=letter.encode(),
            headers=[("row_id", row_id.encode())],
        )
        self.invalid += 1
        self.invalid_share.add_invalid(details.get("column"), str(details.get("reason")))

    def _record(self, event: Event) -> None:
        try:
            if self.validate:
                example = extract(self.dataset, _loads(event.data))
                key, row_id, ts = example.key, str(example.id), example.ts
            else:
                key, row_id, ts = _head(event.data)
        except InvalidRecord as exc:
            self._dead_letter(event, {"reason": f"record from the SSE stream is invalid: {exc.reason}",
                                      "column": exc.column, "value": exc.value, "row": None})
            return
        except (ValueError, KeyError, TypeError) as exc:
            self._dead_letter(event, {"reason": f"record from the SSE stream is not a JSON record: {exc}",
                                      "value": event.data[:200], "row": None})
            return
        value, headers = event.data.encode(), [("row_id", row_id.encode())]
        raw = self._raw
        if raw is None:
            self.produce(value=value, key=key.encode(), headers=headers, timestamp=ts)
        else:
            try:
                raw.produce(self._topic_name, value, key.encode(), headers=headers, timestamp=ts or 0)
            except BufferError:  # librdkafka's queue is full: let it drain, then retry once
                raw.poll(0.5)
                raw.produce(self._topic_name, value, key.encode(), headers=headers, timestamp=ts or 0)
            self._unpolled += 1
            if self._unpolled >= 1000:
                raw.poll(0)
                self._unpolled = 0
        self.produced += 1

    def _fast_producer(self) -> ConfluentProducer | None:
        """The librdkafka producer under Quix Streams' wrappers, when it is safe to use directly.

        Quix's produce() polls librdkafka after every message, which costs more than the rest
        of the ingest together. Inside a transaction the fast path is exactly as safe: a
        message that fails makes commit_transaction fail, so nothing is half-committed.
        Without a transaction Quix's own path is used.
        """
        return confluent_producer(self.producer) if self.transactional else None

    def _invalid(self, event: Event) -> None:
        try:
            details = _loads(event.data)
            if not isinstance(details, dict):
                raise ValueError("not an object")
        except ValueError:
            details = {"reason": "invalid row (unparseable details)", "value": event.data[:200]}
        details.pop("id", None)
        details.setdefault("reason", "invalid row")
        details.setdefault("row", None)
        self._dead_letter(event, details)

    def _warn_invalid(self) -> None:
        share = self.invalid_share
        log.warning("most rows are invalid: they go to the dead-letter topic, not to the models; check "
                    "the CSV against its declaration (python -m producer serve --check ...)",
                    rows=share.valid + share.invalid, invalid=share.invalid, dataset=self.dataset.name,
                    dlq_topic=self.dlq_topic, top_reasons=share.top())

    # ------------------------------------------------------------------ main loop

    def run(self) -> None:
        # Sources run in a spawned process: logging must be set up again here.
        configure_logging(self.log_level)
        quiet_source_traceback()
        last_id: str | None = self.state.get(LAST_ID, None)
        self.committed_id = last_id
        log.info("ingest starting", url=self.url, resume_after=last_id, dataset=self.dataset.name,
                 transactional=self.transactional)
        follower = Follower(self.url, last_id, max_backoff=self.max_backoff)
        follower.start()
        if self.metrics_port is not None:
            self._metrics = IngestMetrics(self, follower)
            serve_metrics(self.metrics_port, self._metrics.registry)
        pending = 0
        opened = last_log = started = time.monotonic()
        logged_rows = 0
        ended = False
        parent = os.getppid()
        self._begin()
        self._raw = self._fast_producer()
        self._topic_name = self.producer_topic.name
        try:
            while self.running and not ended:
                # An open transaction is due commit_interval after its first event: wait no longer
                # than that, so a quiet stream's last events are not held back until the next burst.
                wait = max(0.0, opened + self.commit_interval - time.monotonic()) if pending else 0.2
                events = follower.drain(timeout=wait)
                if events and not pending:
                    opened = time.monotonic()
                for event in events:
                    kind = event.kind
                    if kind in _RECORD_EVENTS:
                        self._record(event)
                    elif kind == "invalid":
                        self._invalid(event)
                    else:  # end
                        ended = True
                        break
                    last_id = event.id
                    pending += 1
                if self.invalid_share.due(self.produced, ended):
                    self._warn_invalid()
                now = time.monotonic()
                if pending and (pending >= self.commit_every or now - opened >= self.commit_interval):
                    self._commit_or_stop(last_id)
                    self._begin()
                    pending = 0
                if now - last_log >= self.log_interval:
                    total = self.produced + self.invalid
                    log.info("ingest progress", rows=self.produced, invalid=self.invalid,
                             rate=round((total - logged_rows) / (now - last_log)), last_event_id=last_id)
                    logged_rows, last_log = total, now
                if os.getppid() != parent:
                    # The Application process died (e.g. SIGKILL): nobody would stop us any more.
                    log.warning("ingest parent process is gone; stopping")
                    break
                if follower.finished and not ended:
                    if follower.error is not None:
                        raise follower.error
                    break
            if self.invalid_share.due(self.produced, ended=True):
                self._warn_invalid()
            self._commit_or_stop(last_id)
        except BaseException:
            if self.transactional:
                try:
                    self.producer.abort_transaction(timeout=5)
                except Exception as exc:  # the original error matters more
                    log.warning("could not abort the open transaction", error=str(exc))
            raise
        finally:
            follower.stop()
        elapsed = time.monotonic() - started
        log.info("ingest finished" if ended else "ingest stopped", rows=self.produced, invalid=self.invalid,
                 last_event_id=last_id, seconds=round(elapsed, 2),
                 rate=round((self.produced + self.invalid) / elapsed) if elapsed > 0 else None)

    def cleanup(self, failed: bool) -> None:
        # run() commits (or aborts) itself; a plain flush here would try to write outside
        # a transaction on the transactional producer.
        if not failed and not self.transactional:
            super().cleanup(failed)

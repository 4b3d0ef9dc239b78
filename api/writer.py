"""Transactional writes of logged requests and labels to the raw topic, committed in groups.

Every logged request is answered only after the Kafka transaction holding its ``features``
event committed: a request that got a 200 is in the log (read_committed), and a crash before
the commit leaves nothing a reader sees (the transaction is aborted, at the latest when the
instance restarts with the same transactional id). A thread commits whatever requests are
waiting in one transaction (group commit), so the cost of a commit is shared by the requests
that arrive while the previous one runs.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaException, Producer

from kappaml.kafka import KafkaSettings, replication_shortfall, write_failure
from kappaml.logging import get_logger

__all__ = ["Message", "WriteFailed", "Writer"]

log = get_logger(__name__)


class WriteFailed(RuntimeError):
    """The transaction holding a write did not commit: the write is not in the log."""


@dataclass(frozen=True)
class Message:
    key: bytes
    value: bytes
    row_id: str


@dataclass
class _Pending:
    messages: Sequence[Message]
    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


class Writer:
    """``await write(messages)`` returns once they are committed; ``WriteFailed`` otherwise."""

    def __init__(self, kafka: KafkaSettings, topic: str, transactional_id: str, *,
                 commit_timeout: float = 10.0, max_group: int = 5000) -> None:
        self.kafka, self.topic, self.transactional_id = kafka, topic, transactional_id
        self.commit_timeout, self.max_group = commit_timeout, max_group
        self._queue: queue.Queue[_Pending] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="raw-writer", daemon=True)
        self._producer: Producer | None = None
        self.committed = 0  # transactions
        self.written = 0  # messages
        self.failed = 0  # transactions aborted
        self.ready = threading.Event()

    def start(self, timeout: float = 30.0) -> Writer:
        """Open the producer: ``init_transactions`` aborts what a killed predecessor left open."""
        self._producer = self._open(timeout)
        self.ready.set()
        self._thread.start()
        return self

    def _open(self, timeout: float) -> Producer:
        producer = Producer({**self.kafka.client_config(), "transactional.id": self.transactional_id,
                             "enable.idempotence": True, "linger.ms": 1, "log_level": 0,
                             # A transaction is open for one commit only: a short timeout
                             # bounds how long a crashed instance's can hold readers back.
                             "transaction.timeout.ms": 30_000})
        producer.init_transactions(timeout)
        log.info("raw-topic writer ready", topic=self.topic, transactional_id=self.transactional_id)
        return producer

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    async def write(self, messages: Sequence[Message], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Pending(messages, future, loop))
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            # It may still commit: the caller says the outcome is unknown, not that it failed.
            # Why it is slow (a topic below min.insync.replicas: Kafka refuses until a broker is
            # back) is asked of the cluster off the event loop.
            reason = await asyncio.to_thread(replication_shortfall, self.kafka, self.topic, 2.0)
            raise WriteFailed(f"the log write was not confirmed within {timeout:g} s: it may or may not be "
                              f"in the log{f' ({reason})' if reason else ''}") from None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            group = [first]
            size = len(first.messages)
            while size < self.max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                group.append(item)
                size += len(item.messages)
            self._commit(group)

    def _commit(self, group: list[_Pending]) -> None:
        producer = self._producer
        assert producer is not None
        try:
            producer.begin_transaction()
            for pending in group:
                for m in pending.messages:
                    producer.produce(self.topic, key=m.key, value=m.value,
                                     headers=[("row_id", m.row_id.encode())])
            self._finish(producer.commit_transaction, "commit")
        except (KafkaException, BufferError) as exc:
            self.failed += 1
            log.warning("raw-topic transaction failed", error=str(exc), requests=len(group))
            self._recover(exc)
            self._settle(group, WriteFailed(f"the raw-topic transaction failed, nothing was written; "
                                            f"retry: {write_failure(self.kafka, self.topic, exc)}"))
            return
        self.committed += 1
        self.written += sum(len(p.messages) for p in group)
        self._settle(group, None)

    def _finish(self, operation: Callable[[float], None], what: str) -> None:
        """A transaction's commit or abort, called again after each retriable timeout until done.

        librdkafka's contract: a timed-out commit or abort goes on, and anything else would only
        conflict with it. A raw topic below its min.insync.replicas (a broker down) makes it wait
        here until the broker is back, records unreplicated never visible; the requests in it get
        their 503 at their own timeout, with the reason, and the ones behind it wait their turn.
        """
        while True:
            try:
                operation(self.commit_timeout)
                return
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if error is None or not error.retriable() or self._stop.is_set():
                    raise
                log.warning(f"raw-topic {what} still waiting",
                            reason=write_failure(self.kafka, self.topic, exc))

    def _recover(self, exc: Exception) -> None:
        error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
        producer = self._producer
        assert producer is not None
        try:
            if error is not None and error.fatal():
                self._producer = self._open(self.commit_timeout)  # fenced or broken: a new epoch
            else:
                self._finish(producer.abort_transaction, "abort")
        except KafkaException as again:
            log.error("cannot recover the raw-topic producer; reopening it", error=str(again))
            try:
                self._producer = self._open(self.commit_timeout)
            except KafkaException as third:
                log.error("cannot reopen the raw-topic producer", error=str(third))

    @staticmethod
    def _settle(group: list[_Pending], error: Exception | None) -> None:
        for pending in group:
            def done(future: asyncio.Future[None] = pending.future) -> None:
                if future.done():
                    return
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)
            try:
                pending.loop.call_soon_threadsafe(done)
            except RuntimeError:  # the loop is closed: the server is stopping
                pass

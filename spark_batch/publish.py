"""Publish rebuilt models to the compacted snapshot topic, keyed ``{version}@replay/{key}``
(``{version}+{spec}@replay/{key}`` for a challenger spec, see kappaml.snapshot.snapshot_key):
never the live processor's keys, so a replay of the live version cannot replace its models."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from kappaml.kafka import KafkaSettings
from kappaml.logging import get_logger
from kappaml.snapshot import snapshot_key
from spark_batch.errors import ReplayError

__all__ = ["SnapshotPublisher"]

log = get_logger(__name__)
# The models topic accepts 16 MiB messages (kappaml.topics); a producer default of 1 MiB
# would refuse big models that the topic would take.
_MAX_MESSAGE = 16 * 1024 * 1024


class SnapshotPublisher:
    def __init__(self, kafka: KafkaSettings, topic: str, version: str) -> None:
        self.topic = topic
        self.version = version
        self.sent = 0
        self._errors: list[str] = []
        self._producer = Producer({
            **kafka.client_config(),
            "enable.idempotence": "true",
            "message.max.bytes": str(_MAX_MESSAGE + 64 * 1024),
            "compression.type": "zstd",
            "linger.ms": "20",
        })

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.key()!r}: {err.str()}")

    def publish(self, key: str, snapshot: bytes, spec: str = "") -> None:
        """``spec``: a challenger's, labelling its key; "" for the version's champion spec."""
        if len(snapshot) > _MAX_MESSAGE:
            raise ReplayError(f"snapshot of key {key!r} is {len(snapshot)} bytes, over the "
                              f"{_MAX_MESSAGE}-byte limit of topic {self.topic}")
        kafka_key = snapshot_key(self.version, key, spec, "replay").encode("utf-8")
        while True:
            try:
                self._producer.produce(self.topic, key=kafka_key, value=snapshot, on_delivery=self._delivered)
                break
            except BufferError:
                self._producer.poll(0.5)  # local queue full: let deliveries drain
            except KafkaException as exc:
                raise ReplayError(f"cannot publish snapshot of key {key!r}: {exc.args[0].str()}") from None
        self._producer.poll(0)
        self.sent += 1

    def flush(self, timeout: float = 60.0) -> None:
        left = self._producer.flush(timeout)
        if left:
            raise ReplayError(f"{left} snapshots not delivered to {self.topic} within {timeout:.0f} s")
        if self._errors:
            raise ReplayError(f"{len(self._errors)} snapshots were refused by {self.topic}, "
                              f"first: {self._errors[0]}")
        log.info("snapshots published", topic=self.topic, count=self.sent, version=self.version)

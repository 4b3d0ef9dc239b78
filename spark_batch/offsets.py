"""Pin the replayed range once, before Spark starts: per partition, [earliest, end).

The end is the last stable offset (what a ``read_committed`` consumer can see), optionally
lowered by ``--until``. Pinning it first makes the replay a fixed, reproducible slice of the
log even while producers keep appending, and gives the processor the exact offsets to start a
new version from. The same checks turn a missing broker, topic or data into one clear error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ClusterMetadata, OffsetSpec

from kappaml.kafka import KafkaSettings
from spark_batch.errors import ReplayError

__all__ = ["OffsetRange", "pin_offsets"]


@dataclass(frozen=True)
class OffsetRange:
    """The pinned slice of one topic: ``start[p] <= offset < end[p]`` for every partition p."""

    topic: str
    start: Mapping[int, int]
    end: Mapping[int, int]
    latest: Mapping[int, int]  # the committed end seen at pin time, before --until

    def __post_init__(self) -> None:
        if set(self.start) != set(self.end):
            raise ValueError("start and end must cover the same partitions")
        bad = [p for p in self.start if self.end[p] < self.start[p]]
        if bad:
            raise ValueError(f"end before start on partitions {bad}")

    @property
    def partitions(self) -> list[int]:
        return sorted(self.start)

    @property
    def span(self) -> int:
        """Offsets in range; transaction markers take offsets too, so rows may be fewer."""
        return sum(self.end[p] - self.start[p] for p in self.start)

    def spark_json(self, which: str) -> str:
        offsets = self.start if which == "start" else self.end
        return json.dumps({self.topic: {str(p): offsets[p] for p in self.partitions}})

    def assign_json(self) -> str:
        return json.dumps({self.topic: self.partitions})

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {
            "start": {str(p): self.start[p] for p in self.partitions},
            "end": {str(p): self.end[p] for p in self.partitions},
            "latest": {str(p): self.latest[p] for p in self.partitions},
        }


def _offsets(admin: AdminClient, topic: str, partitions: list[int], spec: OffsetSpec,
             timeout: float) -> dict[int, int]:
    request = {TopicPartition(topic, p): spec for p in partitions}
    futures = admin.list_offsets(
        request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=timeout
    )
    return {tp.partition: fut.result().offset for tp, fut in futures.items()}


def _metadata(admin: AdminClient, timeout: float, down: list[str]) -> ClusterMetadata | None:
    """Cluster metadata, or None once every broker refused (fast) or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
        except KafkaException:
            admin.poll(0)  # serves error_cb
            if down or time.monotonic() >= deadline:
                return None


def pin_offsets(
    kafka: KafkaSettings,
    topic: str,
    until: Mapping[int, int] | None = None,
    *,
    timeout: float = 15.0,
) -> OffsetRange:
    """Check broker and topic, and return the pinned range; every failure is a ReplayError."""
    down: list[str] = []

    def on_error(err: KafkaError) -> None:
        # librdkafka's local error codes are public but start with an underscore.
        local = (KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE, KafkaError._AUTHENTICATION)  # noqa: SLF001
        if err.code() in local:
            down.append(err.str())

    # librdkafka would print its own retry lines; every failure here becomes one ReplayError.
    admin = AdminClient({**kafka.client_config(), "log_level": "0", "error_cb": on_error})
    metadata = _metadata(admin, timeout, down)
    if metadata is None:
        auth = [d for d in down if "SASL" in d or "uthentication" in d]  # the cause, not the symptom
        detail = (auth or down)[-1] if down else f"no answer within {timeout:.0f} s"
        raise ReplayError(f"cannot reach the Kafka broker at {kafka.bootstrap_servers}: {detail}")
    info = metadata.topics.get(topic)
    if info is None or info.error is not None:
        known = sorted(t for t in metadata.topics if not t.startswith("__"))
        raise ReplayError(f"topic {topic!r} does not exist on {kafka.bootstrap_servers} "
                          f"(topics there: {', '.join(known) or 'none'})")
    partitions = sorted(info.partitions)
    try:
        start = _offsets(admin, topic, partitions, OffsetSpec.earliest(), timeout)
        latest = _offsets(admin, topic, partitions, OffsetSpec.latest(), timeout)
    except KafkaException as exc:
        raise ReplayError(f"cannot read the offsets of topic {topic!r}: {exc.args[0].str()}") from None
    end = dict(latest)
    if until:
        unknown = sorted(set(until) - set(partitions))
        if unknown:
            raise ReplayError(f"--until names partitions {unknown} that topic {topic!r} lacks "
                              f"(it has {partitions})")
        for p, offset in until.items():
            end[p] = max(start[p], min(offset, latest[p]))
    pinned = OffsetRange(topic=topic, start=start, end=end, latest=latest)
    if pinned.span == 0:
        what = "has no committed records" if not until else "has no records before --until"
        raise ReplayError(f"topic {topic!r} {what}: nothing to replay")
    return pinned

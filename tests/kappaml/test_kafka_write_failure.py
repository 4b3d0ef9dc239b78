"""kappaml.kafka.write_failure on the session's broker (one node, min.insync.replicas 1): with no
replication shortfall the reason is librdkafka's own text, never the ``KafkaError{...}`` repr.
The shortfall itself is tested on a real 3-node cluster: tests/infra/test_below_min_insync.py."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from kappaml.kafka import replication_shortfall, write_failure
from kappaml.topics import ensure_topics

pytestmark = pytest.mark.kafka


def test_without_a_shortfall_the_reason_is_librdkafkas_text(kafka_settings, topics) -> None:
    ensure_topics(kafka_settings, topics.specs())
    assert replication_shortfall(kafka_settings, topics.raw) is None
    assert replication_shortfall(kafka_settings, f"{topics.prefix}.no-such-topic") is None
    error = KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "Local: Message timed out"))  # noqa: SLF001
    reason = write_failure(kafka_settings, [topics.raw, topics.predictions], error)
    assert reason == "Local: Message timed out"
    assert write_failure(kafka_settings, topics.raw, RuntimeError("two\nlines")) == "two lines"

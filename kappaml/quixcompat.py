"""The private parts of Quix Streams that kappaml uses, in one place.

Quix Streams 3.28 has no public way to reach what the processor, the ingest and the metrics
need: the application's producer (outputs must join the checkpoint's transaction), the
librdkafka producer and consumer under its wrappers (the per-record fast path, the lag), its
processing context (to time each checkpoint), the changelog topics of its stores, and a
transactional producer for a source. Every such access is a function here, and nowhere else
(ruff's SLF001 is enabled for the rest of the tree): tests/kappaml/test_quixcompat.py calls
each against a real ``Application``, so an upgrade that renames one fails that test.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer as ConfluentConsumer
from confluent_kafka import Producer as ConfluentProducer
from quixstreams import Application
from quixstreams.app import consumer_extra_config_overrides
from quixstreams.internal_producer import InternalProducer
from quixstreams.models import Topic
from quixstreams.processing import ProcessingContext
from quixstreams.sources import BaseSource

__all__ = [
    "add_transactional_source",
    "app_producer",
    "changelog_topic_names",
    "confluent_consumer",
    "confluent_producer",
    "processing_context",
    "producer_config",
]


def app_producer(app: Application) -> InternalProducer:
    """The application's own producer: under exactly-once, what it produces joins the checkpoint's
    transaction (``app.get_producer()`` would be a separate producer, outside it)."""
    return app._producer


def confluent_producer(producer: InternalProducer) -> ConfluentProducer:
    """The confluent_kafka Producer under Quix's two wrappers (created now if not yet).

    Quix's ``produce()`` adds a delivery callback and a poll per record; inside a transaction
    producing straight to librdkafka is as safe (a failed record fails the commit).
    """
    return producer._producer._producer


def producer_config(producer: InternalProducer) -> dict[str, Any]:
    """The librdkafka configuration the producer is created with; changes count until its first use
    (``producer.instantiated``)."""
    return producer._producer._producer_config


def confluent_consumer(app: Application) -> ConfluentConsumer:
    """The confluent_kafka Consumer of the application (for local look-ups: position, watermarks)."""
    return app._consumer._consumer


def processing_context(app: Application) -> ProcessingContext:
    """The context that owns the checkpoint (``init_checkpoint``, ``checkpoint``, ``sink_manager``)."""
    return app._processing_context


def changelog_topic_names(app: Application) -> list[str]:
    """The names of the changelog topics of the stores registered so far."""
    return [topic.name for topic in app._topic_manager.changelog_topics_list]


def add_transactional_source(app: Application, source: BaseSource, topic: Topic | None = None) -> Topic:
    """``app.add_source`` but with a *transactional* producer for the source.

    Quix Streams 3.28 gives sources a plain producer, so a source's messages and its state
    changelog cannot commit atomically. The application's ``producer_extra_config`` must carry a
    stable ``transactional.id`` (it fences a previous incarnation after a crash).
    """
    if topic is None:
        default = source.default_topic()
        topic = app._topic_manager.register(default.__clone__(name=f"source__{default.name}"))
    app._source_manager.register(
        source,
        topic,
        app._get_internal_producer(transactional=True),
        app._get_internal_consumer(extra_config_overrides=consumer_extra_config_overrides),
        app._get_topic_manager(),
        broker_availability_timeout=app._broker_availability_timeout,
    )
    return topic

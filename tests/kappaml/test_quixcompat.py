"""Each accessor of kappaml.quixcompat against a real Quix Streams Application and the test broker.

These are the private parts of Quix Streams kappaml depends on: an upgrade that renames or
reshapes one fails here, by name, rather than deep inside a running processor or ingest.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer as ConfluentConsumer
from confluent_kafka import Producer as ConfluentProducer
from quixstreams import Application
from quixstreams.internal_producer import InternalProducer
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.processing import ProcessingContext
from quixstreams.sources import Source

from kappaml.kafka import KafkaSettings
from kappaml.quixcompat import (
    add_transactional_source,
    app_producer,
    changelog_topic_names,
    confluent_consumer,
    confluent_producer,
    processing_context,
    producer_config,
)
from kappaml.topics import Topics


@pytest.fixture
def app(kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[Application]:
    group = f"compat-{uuid.uuid4().hex[:8]}"
    application = Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(kafka_settings.client_config()),
        consumer_group=group, processing_guarantee="exactly-once", state_dir=str(tmp_path / "state"),
        producer_extra_config={"transactional.id": group}, loglevel=None,
    )
    yield application
    consumer = confluent_consumer(application)
    consumer.close()


class Numbers(Source):
    def run(self) -> None:
        pass


def test_the_app_producer_is_the_one_the_checkpoint_commits(app: Application) -> None:
    producer = app_producer(app)
    assert isinstance(producer, InternalProducer)
    assert processing_context(app).producer is producer


def test_the_confluent_producer_under_the_wrappers(app: Application, kafka_settings: KafkaSettings,
                                                   topics: Topics) -> None:
    producer = app_producer(app)
    config = producer_config(producer)
    assert config["bootstrap.servers"] == kafka_settings.bootstrap_servers
    assert not producer.instantiated
    config["queue.buffering.max.messages"] = 4  # counts: the producer is created after this
    raw = confluent_producer(producer)
    assert isinstance(raw, ConfluentProducer)
    assert producer.instantiated
    assert confluent_producer(producer) is raw  # created once: callers may keep it
    producer.begin_transaction()
    with pytest.raises(BufferError):  # the changed setting reached librdkafka: a queue of 4
        for _ in range(10_000):
            raw.produce(topics.raw, b"v", b"k")
    producer.abort_transaction()


def test_the_confluent_consumer(app: Application) -> None:
    consumer = confluent_consumer(app)
    assert isinstance(consumer, ConfluentConsumer)
    assert consumer.assignment() == []


def test_the_processing_context_owns_the_checkpoint(app: Application, topics: Topics) -> None:
    context = processing_context(app)
    assert isinstance(context, ProcessingContext)
    app.dataframe(app.topic(topics.raw, key_deserializer="bytes", value_deserializer="bytes"))
    context.init_checkpoint()  # what ProcessorMetrics wraps
    assert callable(context.checkpoint.commit)
    assert isinstance(context.sink_manager.sinks, list)
    assert callable(app_producer(app).commit_transaction)


def test_the_changelog_topics_of_the_registered_stores(app: Application, topics: Topics) -> None:
    assert changelog_topic_names(app) == []
    sdf = app.dataframe(app.topic(topics.raw, key_deserializer="bytes", value_deserializer="bytes"))
    sdf.register_store()
    names = changelog_topic_names(app)
    assert len(names) == 1
    assert topics.raw in names[0] and names[0].startswith("changelog__")


def test_a_source_gets_a_transactional_producer_of_its_own(app: Application, topics: Topics) -> None:
    raw = app.topic(topics.raw, key_serializer="bytes", value_serializer="bytes")
    source = Numbers("numbers")
    assert add_transactional_source(app, source, raw) is raw
    # What Quix will hand the source when it starts it.
    process = app._source_manager.processes[-1]  # noqa: SLF001 - the test looks behind the accessor
    assert process.source is source and process.topic is raw
    producer = process._producer  # noqa: SLF001
    assert producer is not app_producer(app)
    assert producer_config(producer)["transactional.id"]
    with pytest.raises(ValueError, match="already registered"):
        add_transactional_source(app, source, app.topic(topics.dlq))
    # Without a topic, Quix's own naming of a source's default topic.
    other = Numbers("others")
    assert add_transactional_source(app, other).name == "source__others"

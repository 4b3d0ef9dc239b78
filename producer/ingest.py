"""``producer ingest``: a Quix Streams Application running the ``SSESource`` into the raw topic."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from confluent_kafka import Producer as ConfluentProducer
from quixstreams import Application
from quixstreams.models import Topic
from quixstreams.sources import BaseSource, SourceException

from kappaml.catalog import publish_declaration
from kappaml.dataset import Dataset
from kappaml.kafka import KafkaSettings
from kappaml.logging import get_logger
from kappaml.quixcompat import add_transactional_source
from kappaml.topics import ensure_topics
from kappaml.validation import InvalidShare
from producer.identity import fetch_served, ingest_identity, server_json
from producer.settings import IngestSettings
from producer.source import SSESource
from producer.stopped import IngestStopped

__all__ = ["TransactionalSourceApplication", "fetch_dataset", "run_ingest", "stream_url"]

log = get_logger(__name__)

# librdkafka's default is 60 s: a crashed ingest's open transaction would block read_committed
# readers (and our own state recovery) that long if nothing fenced it.
TRANSACTION_TIMEOUT_MS = 15_000


class TransactionalSourceApplication(Application):
    """An Application whose sources get a *transactional* producer.

    Quix Streams 3.28 gives sources a plain producer, so a source's messages and its state
    changelog cannot commit atomically. With this producer ``SSESource`` wraps each batch of
    records and its last event id in one transaction (``producer_extra_config`` must carry a
    stable ``transactional.id``: it fences a previous incarnation after a crash).
    """

    def add_source(self, source: BaseSource, topic: Topic | None = None) -> Topic:
        return add_transactional_source(self, source, topic)


def stream_url(url: str, rate: float) -> str:
    """``url`` with ``rate`` added to its query (an explicit ``rate`` in the URL wins)."""
    if not rate:
        return url
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("rate", f"{rate:g}")
    return urlunsplit(parts._replace(query=urlencode(query)))


def fetch_dataset(url: str, *, attempts: int = 30, max_backoff: float = 2.0) -> Dataset:
    """The declaration the SSE server serves (GET /dataset next to the events URL)."""
    return Dataset.from_dict(server_json(url, "dataset", "the data set declaration", attempts=attempts,
                                         max_backoff=max_backoff))


def fence(kafka: KafkaSettings, transactional_id: str, timeout: float = 30.0) -> None:
    """Abort whatever transaction a crashed previous run left open under ``transactional_id``.

    init_transactions bumps the producer epoch, which aborts the old transaction at once,
    instead of leaving it to block read_committed readers until its timeout.
    """
    producer = ConfluentProducer({**kafka.client_config(), "transactional.id": transactional_id,
                                  "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS})
    producer.init_transactions(timeout)
    producer.flush(1)


def run_ingest(settings: IngestSettings) -> int:
    topics = settings.topics
    ensure_topics(settings.kafka, topics.specs())
    dataset = settings.dataset or fetch_dataset(settings.url, max_backoff=settings.max_backoff)
    # Before the first record: the log says what its records are (kappaml/catalog.py).
    publish_declaration(settings.kafka, topics.datasets, dataset)
    # One identity per (topic prefix, data set, source file): the state (last event id) and the
    # fencing transactional id follow it across restarts; another file starts afresh.
    # With delayed labels the server's label schedule is part of it: other events, other ids.
    stream, labels = fetch_served(settings.url, max_backoff=settings.max_backoff)
    identity = ingest_identity(topics.prefix, dataset.name, stream, labels)
    fence(settings.kafka, identity)
    client = {k: v for k, v in settings.kafka.client_config().items() if k != "bootstrap.servers"}
    app = TransactionalSourceApplication(
        broker_address=settings.kafka.bootstrap_servers,
        consumer_group=identity,
        producer_extra_config={
            **client,
            "transactional.id": identity,
            "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
            # Throughput: fill batches; a commit flushes them anyway.
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
        },
        consumer_extra_config=client,
        loglevel=None,  # kappaml.logging already routes the stdlib loggers
        state_dir=settings.state_dir,
        auto_create_topics=True,
    )
    source = SSESource(
        f"sse-{dataset.name}",
        url=stream_url(settings.url, settings.rate),
        dataset=dataset,
        dlq_topic=topics.dlq,
        validate=settings.validate,
        commit_every=settings.commit_every,
        commit_interval=settings.commit_interval,
        log_interval=settings.log_interval,
        max_backoff=settings.max_backoff,
        log_level=settings.log_level,
        invalid_share=InvalidShare(settings.invalid_warn_share, settings.invalid_warn_rows),
        metrics_port=settings.metrics_port,
        kafka=settings.kafka,
    )
    raw = app.topic(topics.raw, key_serializer="bytes", value_serializer="bytes")
    app.add_source(source, topic=raw)
    log.info("ingest", url=source.url, raw_topic=topics.raw, dlq_topic=topics.dlq, dataset=dataset.name,
             synthetic=dataset.synthetic, identity=identity, delayed_labels=labels or None)
    try:
        app.run()
    except SourceException as exc:
        if isinstance(exc.__cause__, IngestStopped):  # its one line says it all: no traceback
            raise exc.__cause__ from None
        raise
    return 0

"""The metrics of ``producer serve``, ``producer ingest``, ``ui feeds`` and ``python -m api``.

Their counts live on the programs' own objects (streams open, rows produced); a collector
reads them at scrape time, so the programs pay nothing per event for being observable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kappaml.observability import SECONDS_BUCKETS, Buckets, histogram_family, new_registry

# Snapshot ages: checkpoints come every second or so; a stale replica shows up at the top.
STALENESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

__all__ = ["ApiMetrics", "FeedsMetrics", "IngestMetrics", "ServeMetrics"]


class _Reader(Collector):
    def __init__(self, read: Callable[[], Iterator[Metric]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        return self._read()


def _registry(read: Callable[[], Iterator[Metric]]) -> CollectorRegistry:
    registry = new_registry()
    registry.register(_Reader(read))
    return registry


class ServeMetrics:
    """``producer serve``: streams open, events sent, resumptions (``Last-Event-ID``)."""

    def __init__(self, streams: Any, replay: Any) -> None:
        self._streams, self._replay = streams, replay
        self.resumes = 0
        self.registry = _registry(self._collect)

    def _collect(self) -> Iterator[Metric]:
        p = "kappaml_serve_"
        yield GaugeMetricFamily(p + "clients", "SSE streams open now.", value=self._streams.active)
        yield CounterMetricFamily(p + "streams", "SSE streams opened.", value=self._streams.served)
        yield CounterMetricFamily(p + "events_sent", "Row events (record or features, invalid), all streams.",
                                  value=self._replay.sent)
        yield CounterMetricFamily(p + "labels_sent", "Label events (delayed labels) sent, all streams.",
                                  value=getattr(self._replay, "labels_sent", 0))
        yield CounterMetricFamily(p + "resumes", "Streams that resumed after a Last-Event-ID.",
                                  value=self.resumes)


class IngestMetrics:
    """``producer ingest`` (inside the Quix source's process): rows, invalid rows, commits, reconnects."""

    def __init__(self, source: Any, follower: Any) -> None:
        self._source = source
        self.commit = Buckets(SECONDS_BUCKETS)
        self.follower = follower
        self.registry = _registry(self._collect)

    def _collect(self) -> Iterator[Metric]:
        p, source = "kappaml_ingest_", self._source
        yield CounterMetricFamily(p + "rows", "Records produced to the raw topic.", value=source.produced)
        yield CounterMetricFamily(p + "invalid_rows", "Rows sent to the dead-letter topic.",
                                  value=source.invalid)
        yield histogram_family(p + "transaction_commit_seconds",
                               "Duration of one Kafka transaction commit (records and source state).", [],
                               [((), self.commit)])
        connects = self.follower.connects
        yield CounterMetricFamily(p + "reconnects", "Connections to the SSE stream after the first.",
                                  value=max(connects - 1, 0))


class FeedsMetrics:
    """``ui feeds``: streams open and events sent per feed, resumptions."""

    FEEDS = ("prediction", "metrics", "drift")

    def __init__(self, feeds: Any) -> None:
        self._feeds = feeds
        self.clients = dict.fromkeys(self.FEEDS, 0)
        self.sent = dict.fromkeys(self.FEEDS, 0)
        self.resumes = 0
        self.registry = _registry(self._collect)

    def _collect(self) -> Iterator[Metric]:
        p = "kappaml_feeds_"
        clients = GaugeMetricFamily(p + "clients", "Feed streams open now, per feed.", labels=["feed"])
        sent = CounterMetricFamily(p + "events_sent", "Events relayed to clients, per feed.", labels=["feed"])
        for feed in self.FEEDS:
            clients.add_metric([feed], self.clients[feed])
            sent.add_metric([feed], self.sent[feed])
        yield clients
        yield sent
        yield CounterMetricFamily(p + "resumes", "Streams that resumed after a Last-Event-ID.",
                                  value=self.resumes)


class ApiMetrics:
    """``python -m api``: requests per endpoint and status, their durations, items answered and
    written, the transactional writer's commits and the age of the snapshots that answered.

    The request figures are plain counts the API's middleware updates (api/metering.py); the
    writer's and the replica's are read from them at scrape time.
    """

    # A fixed set of label values: an unknown path must not grow the series without bound.
    ENDPOINTS = ("/predict", "/labels", "/models", "/health")

    def __init__(self, writer: Any, replica: Any) -> None:
        self._writer, self._replica = writer, replica
        self.requests: dict[tuple[str, int], int] = {}
        self.durations = {e: Buckets(SECONDS_BUCKETS) for e in (*self.ENDPOINTS, "other")}
        self.staleness = Buckets(STALENESS_BUCKETS)
        self.predictions = 0
        self.labels = 0
        self.registry = _registry(self._collect)

    def request(self, path: str, status: int, seconds: float) -> None:
        endpoint = path if path in self.durations else "other"
        key = (endpoint, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.durations[endpoint].observe(seconds)

    def _collect(self) -> Iterator[Metric]:
        p = "kappaml_api_"
        requests = CounterMetricFamily(p + "requests", "HTTP requests answered, per endpoint and status.",
                                       labels=["endpoint", "status"])
        for (endpoint, status), count in sorted(self.requests.items()):
            requests.add_metric([endpoint, str(status)], count)
        yield requests
        yield histogram_family(p + "request_seconds", "Time from a request's arrival to its answer.",
                               ["endpoint"], [((e,), b) for e, b in self.durations.items()])
        yield CounterMetricFamily(p + "predictions", "Items answered by POST /predict.",
                                  value=self.predictions)
        yield CounterMetricFamily(p + "labels", "Labels written by POST /labels.", value=self.labels)
        yield histogram_family(p + "snapshot_staleness_seconds",
                               "Age of the snapshot that answered a prediction (since its checkpoint).", [],
                               [((), self.staleness)])
        writer = self._writer
        yield CounterMetricFamily(p + "write_transactions", "Kafka transactions committed by the raw-topic "
                                  "writer (logged requests and labels).", value=writer.committed)
        yield CounterMetricFamily(p + "written_records", "Records committed to the raw topic.",
                                  value=writer.written)
        yield CounterMetricFamily(p + "write_failures", "Writer transactions that did not commit.",
                                  value=writer.failed)
        yield GaugeMetricFamily(p + "snapshots", "Model snapshots held by the replica.",
                                value=len(self._replica))
        yield GaugeMetricFamily(p + "replica_caught_up", "1 once the replica caught up with the models "
                                "topic.", value=int(self._replica.caught_up.is_set()))

"""The metrics of ``producer serve``, ``producer ingest`` and ``ui feeds``.

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

__all__ = ["FeedsMetrics", "IngestMetrics", "ServeMetrics"]


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

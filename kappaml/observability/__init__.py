"""Prometheus metrics of every kappaml program: one registry per program, one place for the names.

Every long-running program serves ``GET /metrics`` (the Prometheus text format) on its own
port when started with ``--metrics-port`` (off by default; ``make run`` turns it on). The
metrics of each program are defined in this package only (``processor``, ``programs``,
``textfile``), so their names, help texts and buckets are reviewed in one place; docs/metrics.md
lists them. Names follow Prometheus' conventions: the ``kappaml_`` prefix, base units
(seconds, bytes), ``_total`` for counters, histograms for durations.
"""

from __future__ import annotations

import os
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import HistogramMetricFamily

from kappaml.logging import get_logger

__all__ = ["Buckets", "add_metrics_port", "histogram_family", "new_registry", "serve_metrics"]

log = get_logger(__name__)

# Only the loopback interface unless asked: metrics say a lot about a pipeline.
DEFAULT_HOST = "127.0.0.1"

# Durations from 100 us to 10 s: learn steps sit at the low end, checkpoints at the high end.
SECONDS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0)


def new_registry() -> CollectorRegistry:
    """A registry of its own (several programs may share a test process) with the process,
    platform and garbage-collector metrics every Prometheus client exposes by default."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


def serve_metrics(port: int | None, registry: CollectorRegistry | None, host: str | None = None) -> Any:
    """Serve ``registry`` at ``http://host:port/metrics`` on a daemon thread; None without a port.

    Port 0 picks a free port (the server's ``server_address`` tells which).
    """
    if port is None or registry is None:
        return None
    host = host or os.environ.get("KAPPAML_METRICS_HOST", DEFAULT_HOST)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    log.info("metrics endpoint", url=f"http://{host}:{server.server_address[1]}/metrics")
    return server


def add_metrics_port(parser: Any, env: Any = None) -> None:
    """The ``--metrics-port`` flag every long-running program has (env KAPPAML_METRICS_PORT)."""
    env = os.environ if env is None else env
    default = env.get("KAPPAML_METRICS_PORT") or None
    parser.add_argument("--metrics-port", type=int, default=int(default) if default else None,
                        help="serve Prometheus metrics at http://127.0.0.1:PORT/metrics "
                             "(env KAPPAML_METRICS_PORT; default: off)")


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry's current text exposition (what ``/metrics`` answers)."""
    return generate_latest(registry)


class Buckets:
    """A histogram's counts, cheap to update from a hot loop (no lock, no label lookup).

    prometheus_client's Histogram takes a lock per observation; the processor observes
    thousands of values a second, so it keeps these plain counts and the scrape reads them.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = SECONDS_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def observe_many(self, values: Iterable[float], scale: float = 1.0) -> None:
        """Observe every value times ``scale``: sorted once, then one bisection per bucket."""
        ordered = sorted(values)
        if not ordered:
            return
        counts, below = self.counts, 0
        for i, bound in enumerate(self.bounds):
            upto = bisect_right(ordered, bound / scale)
            counts[i] += upto - below
            below = upto
        counts[-1] += len(ordered) - below
        self.sum += sum(ordered) * scale

    def cumulative(self) -> list[tuple[str, float]]:
        running, out = 0, list[tuple[str, float]]()
        for bound, count in zip((*map(_le, self.bounds), "+Inf"), list(self.counts), strict=True):
            running += count
            out.append((bound, running))
        return out


def _le(bound: float) -> str:
    return repr(float(bound))


def histogram_family(name: str, doc: str, labelnames: Sequence[str],
                     series: Iterable[tuple[Sequence[str], Buckets]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=list(labelnames))
    for labels, buckets in series:
        family.add_metric(list(labels), buckets.cumulative(), sum_value=buckets.sum)
    return family

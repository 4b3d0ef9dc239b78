"""Shared plumbing of the benchmarks: a throw-away broker on free ports, the summary of runs.

Child processes, ports and reading topics come from the test kit, :mod:`infra.testing`.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from infra.testing import free_port
from kappaml.kafka import KafkaSettings


@contextmanager
def broker_or(bootstrap: str | None, work: Path) -> Iterator[KafkaSettings]:
    """The given broker, or a private one on free ports (never 9092/9093) stopped at the end."""
    if bootstrap:
        yield KafkaSettings(bootstrap_servers=bootstrap)
        return
    from infra.broker import BrokerConfig, LocalBroker

    broker = LocalBroker(
        BrokerConfig(
            port=free_port(),
            controller_port=free_port(),
            data_dir=work / "kafka",
            heap="1g",
            log_level="WARN",
        )
    )
    broker.start()
    try:
        yield KafkaSettings(bootstrap_servers=broker.config.bootstrap)
    finally:
        broker.stop()


def summary(values: Sequence[float]) -> dict[str, float | int]:
    """Median, min and max of the runs (the figure the report shows) and how many runs."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("no runs")
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "runs": len(vals)}

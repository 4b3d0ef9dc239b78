"""Shared plumbing of the benchmarks: a throw-away broker on free ports, child processes, timing."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from kappaml.kafka import KafkaSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the child's process group, then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


def summary(values: Sequence[float]) -> dict[str, float | int]:
    """Median, min and max of the runs (the figure the report shows) and how many runs."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("no runs")
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "runs": len(vals)}

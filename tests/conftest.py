"""Test fixtures: one real Kafka broker for the whole session, started by the test run itself."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.broker import BrokerConfig, LocalBroker
from infra.errors import InfraError
from infra.testing import free_port
from kappaml.kafka import KafkaSettings
from kappaml.logging import configure_logging
from kappaml.topics import Topics, ensure_topics

REPO = Path(__file__).resolve().parents[1]
# Real data for tests and benchmarks; never copied into the repository.
CO2_CSV = REPO.parent / "shared" / "data" / "co2_processed.csv"

configure_logging(os.environ.get("KAPPAML_LOG_LEVEL", "WARNING"), json=False)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A real single-node KRaft broker on free ports, in a temp dir, for the whole session."""
    for attempt in range(3):
        config = BrokerConfig(
            port=free_port(),
            controller_port=free_port(),
            data_dir=tmp_path_factory.mktemp("kafka"),
            heap="768m",
            log_level="WARN",
        )
        b = LocalBroker(config)
        try:
            b.start()
            break
        except InfraError:
            # A free port can be taken by another process between our probe and the bind.
            b.stop()
            if attempt == 2:
                raise
    yield b
    b.stop()


@pytest.fixture(scope="session")
def kafka_settings(broker: LocalBroker) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=broker.config.bootstrap)


@pytest.fixture
def topics(kafka_settings: KafkaSettings) -> Topics:
    """A fresh, provisioned set of the project's topics with a unique prefix for one test."""
    t = Topics(prefix=f"t{uuid.uuid4().hex[:10]}", raw_partitions=2)
    ensure_topics(kafka_settings, t.specs())
    return t


@pytest.fixture
def co2_csv() -> Path:
    if not CO2_CSV.exists():
        pytest.skip(f"{CO2_CSV} not present (shared data is optional)")
    return CO2_CSV

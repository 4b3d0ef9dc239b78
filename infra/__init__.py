"""Local infrastructure: a real single-node Apache Kafka broker, and the whole stack for ``make run``."""

import kappaml  # noqa: F401, I001 - first: outside the venv it says so in one line
from infra.broker import BrokerConfig, LocalBroker
from infra.classpath import resolve_classpath
from infra.errors import InfraError

__all__ = ["BrokerConfig", "InfraError", "LocalBroker", "resolve_classpath"]

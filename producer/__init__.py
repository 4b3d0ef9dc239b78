"""Replay a CSV as Server-Sent Events (``serve``) and ingest that stream into Kafka (``ingest``).

The Kafka side (``SSESource``, ``run_ingest``) imports Quix Streams, so it is loaded lazily:
``python -m producer serve`` never pays for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import kappaml  # noqa: F401, I001 - first: outside the venv it says so in one line
from producer import _quiet  # noqa: F401  (first: silences a dependency's import-time warning)
from producer.replay import Replay, ReplayParams
from producer.server import ServerConfig, create_app
from producer.settings import IngestSettings, ServeSettings

if TYPE_CHECKING:
    from producer.ingest import run_ingest
    from producer.source import SSESource

__all__ = [
    "IngestSettings",
    "Replay",
    "ReplayParams",
    "SSESource",
    "ServeSettings",
    "ServerConfig",
    "create_app",
    "run_ingest",
]


def __getattr__(name: str) -> Any:
    if name == "SSESource":
        from producer.source import SSESource

        return SSESource
    if name == "run_ingest":
        from producer.ingest import run_ingest

        return run_ingest
    raise AttributeError(f"module 'producer' has no attribute {name!r}")

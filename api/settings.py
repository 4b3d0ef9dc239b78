"""The prediction API's one frozen settings object (built in ``__main__`` from env and flags)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from kappaml.dataset import Dataset
from kappaml.kafka import KafkaSettings
from kappaml.models import SPECS
from kappaml.topics import Topics

__all__ = ["ApiSettings", "Fallback"]

# What answers a key no snapshot exists for yet: "fresh" is a fresh model of the version's
# spec, exactly what the processor predicts for a key's first example; "reject" is a 404.
Fallback = Literal["fresh", "reject"]

# Raw-topic stream of every logged request: ids are uuid7s, unique across instances and
# restarts, so labels can reach any instance.
STREAM = "api"


@dataclass(frozen=True)
class ApiSettings:
    dataset: Dataset
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: Topics = field(default_factory=Topics)
    host: str = "127.0.0.1"
    port: int = 8002
    # The version /predict answers with unless the request names another.
    model_version: str = "v1"
    # The spec of the fresh model of the "fresh" fallback when no snapshot of the version says.
    model_spec: str = "rls"
    fallback: Fallback = "fresh"
    cors_origins: tuple[str, ...] = ()
    # Names this instance's Kafka transactional id: give each running instance its own.
    instance_id: str = "api-1"
    max_batch: int = 1000
    max_body_bytes: int = 1024 * 1024
    # How long a logged request waits at most for the transaction holding it to commit.
    write_timeout: float = 10.0
    # Prometheus /metrics on its own port (None: off).
    metrics_port: int | None = None
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be in 1..65535, got {self.port}")
        if not self.host:
            raise ValueError("host must not be empty")
        if not self.model_version or any(c in self.model_version for c in "/@+"):
            raise ValueError("model_version must be non-empty without '/', '@' or '+', "
                             f"got {self.model_version!r}")
        if self.model_spec not in SPECS:
            raise ValueError(f"unknown model spec {self.model_spec!r}; valid: {', '.join(sorted(SPECS))}")
        if self.fallback not in ("fresh", "reject"):
            raise ValueError(f"fallback must be fresh or reject, got {self.fallback!r}")
        if not self.instance_id or any(c.isspace() for c in self.instance_id):
            raise ValueError(f"instance_id must be non-empty without spaces, got {self.instance_id!r}")
        if not 1 <= self.max_batch <= 100_000:
            raise ValueError(f"max_batch must be 1..100000, got {self.max_batch}")
        if not 1024 <= self.max_body_bytes <= 64 * 1024 * 1024:
            raise ValueError(f"max_body_bytes must be 1 KiB..64 MiB, got {self.max_body_bytes}")
        if self.metrics_port is not None and not 0 <= self.metrics_port < 65536:
            raise ValueError(f"metrics_port must be in 0..65535, got {self.metrics_port}")
        if not 0 < self.write_timeout <= 300:
            raise ValueError(f"write_timeout must be in (0, 300] s, got {self.write_timeout}")

    @property
    def transactional_id(self) -> str:
        return f"{self.topics.prefix}-{self.instance_id}"

"""Writers of the processor's model-lifecycle records (drift detections, champion/challenger
comparisons, promotions) in the formats of notes/ISSUE9.md, so the UI tests do not need a
processor running challengers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Producer

from kappaml.kafka import KafkaSettings
from kappaml.topics import Topics


def drift_record(key: str, *, learned: int, ts: int, error_before: float, error_after: float,
                 version: str = "v1", spec: str = "rls", role: str = "champion", generation: int = 0,
                 detector: str = "adwin", policy: str = "alert", partition: int = 0,
                 offset: int | None = None) -> dict[str, Any]:
    """A detection as the processor publishes it on the drift topic."""
    return {"key": key, "version": version, "spec": spec, "role": role, "generation": generation,
            "detector": detector, "policy": policy, "action": policy, "partition": partition,
            "offset": learned - 1 if offset is None else offset, "id": learned,
            "error_before": error_before, "error_after": error_after, "learned": learned,
            "event_ts": ts - 20, "ts": ts}


@dataclass(frozen=True)
class SpecFigures:
    learned: int
    rmse: float
    mae: float
    rolling_rmse: float | None
    rolling_mae: float | None
    drifts: int = 0
    role: str = "challenger"
    learn_us: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {"learned": self.learned, "rmse": self.rmse, "mae": self.mae,
                "rolling_rmse": self.rolling_rmse, "rolling_mae": self.rolling_mae,
                "drifts": self.drifts, "role": self.role, "learn_us": self.learn_us}


def comparison_record(ts: int, specs: dict[str, SpecFigures], *, champions: dict[int, str] | None = None,
                      version: str = "v1", instance: str = "host-1") -> dict[str, Any]:
    return {"scope": "comparison", "key": "__comparison__", "version": version, "instance": instance,
            "champions": {str(p): s for p, s in (champions or {}).items()},
            "specs": {spec: f.as_json() for spec, f in specs.items()}, "ts": ts}


def promotion_record(spec: str, previous: str, partition: int, offset: int, ts: int, *,
                     version: str = "v1", by: str = "tester@host") -> dict[str, Any]:
    return {"scope": "promotion", "key": "__promotion__", "version": version, "spec": spec,
            "previous": previous, "partition": partition, "offset": offset, "id": "p-1", "by": by,
            "ts": ts}


class LifecycleWriter:
    def __init__(self, kafka: KafkaSettings, topics: Topics) -> None:
        self.topics = topics
        self.producer = Producer({**kafka.client_config(), "linger.ms": 5})

    def drifts(self, records: list[dict[str, Any]]) -> None:
        for r in records:  # keyed by model key, like the processor's
            self.producer.produce(self.topics.drift, key=str(r["key"]).encode(), value=json.dumps(r).encode())
        self.flush()

    def metrics(self, records: list[dict[str, Any]]) -> None:
        for r in records:
            self.producer.produce(self.topics.metrics, key=str(r["key"]).encode(),
                                  value=json.dumps(r).encode())
        self.flush()

    def flush(self) -> None:
        assert self.producer.flush(30) == 0

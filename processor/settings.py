"""The processor's one frozen settings object (built in ``__main__`` from env and flags)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kappaml.dataset import Dataset
from kappaml.drift import DriftConfig
from kappaml.gate import GateConfig
from kappaml.kafka import KafkaSettings
from kappaml.lineup import Lineup
from kappaml.pending import LabelPolicy
from kappaml.topics import Topics

__all__ = ["Guarantee", "ProcessorSettings", "PromotionMode"]

Guarantee = Literal["exactly-once", "at-least-once"]
PromotionMode = Literal["manual", "auto"]


@dataclass(frozen=True)
class ProcessorSettings:
    dataset: Dataset
    model_spec: str
    model_version: str = "v1"
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: Topics = field(default_factory=Topics)
    consumer_group: str = ""  # empty: one group per model version, so versions run side by side
    guarantee: Guarantee = "exactly-once"
    state_dir: Path = Path(".kappaml/state")
    # Also the period of metrics and model snapshots: both are written at every checkpoint.
    commit_interval: float = 1.0
    metrics_window: int = 500
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    progress_interval: float = 10.0
    # Cut-over: seed this version from its Spark replay snapshots (see processor/cutover.py).
    from_replay: bool = False
    # Specs learning beside the champion (model_spec) on every key; see kappaml/lineup.py.
    challengers: tuple[str, ...] = ()
    # How soon the group gives a crashed instance's partitions to another (or to its restart).
    # Kafka's default is 45 s; heartbeats run on librdkafka's own thread, so a long
    # checkpoint does not count against it.
    session_timeout: float = 10.0
    # This instance's stable id in the group (transactional id, static membership); empty:
    # claimed per host, see processor/instance.py.
    instance_id: str = ""
    # None: no drift detection.
    drift: DriftConfig | None = field(default_factory=DriftConfig)
    # Serve Prometheus metrics on this port (0: any free port); None: no metrics.
    metrics_port: int | None = None
    # Delayed labels: --label-ttl and --on-missing-label (kappaml/pending.py).
    labels: LabelPolicy = field(default_factory=LabelPolicy)
    # manual: only `processor promote`/`rollback`; auto: the gate may promote too (kappaml/gate.py).
    promotion: PromotionMode = "manual"
    gate: GateConfig = field(default_factory=GateConfig)

    def __post_init__(self) -> None:
        if self.guarantee not in ("exactly-once", "at-least-once"):
            raise ValueError(f"guarantee must be exactly-once or at-least-once, got {self.guarantee!r}")
        if self.commit_interval <= 0:
            raise ValueError(f"commit_interval must be > 0 seconds, got {self.commit_interval}")
        if not 1.0 <= self.session_timeout <= 300.0:
            raise ValueError(f"session_timeout must be 1-300 seconds, got {self.session_timeout}")
        if self.metrics_window < 1:
            raise ValueError(f"metrics_window must be >= 1, got {self.metrics_window}")
        if not self.model_version or any(c in self.model_version for c in "/@+"):
            raise ValueError("model_version must be non-empty without '/', '@' or '+' (they label "
                             f"snapshots), got {self.model_version!r}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port must be 0-65535, got {self.metrics_port}")
        if self.promotion not in ("manual", "auto"):
            raise ValueError(f"promotion must be manual or auto, got {self.promotion!r}")
        if self.gate.auto_rollback and self.promotion != "auto":
            raise ValueError("--auto-rollback rolls back the gate's promotions: use it with --promotion auto")
        if self.drift is not None and self.drift.policy == "background" and self.promotion != "auto":
            raise ValueError("--drift-policy background lets the gate replace a key's model: use it with "
                             "--promotion auto")
        if self.from_replay and self.challengers:
            raise ValueError("--from-replay seeds the champion only; start challengers without it")
        self.lineup  # noqa: B018 - validates the specs now, with a clear error

    @property
    def lineup(self) -> Lineup:
        return Lineup(self.dataset, self.model_spec, self.challengers, self.model_version,
                      self.metrics_window, self.drift)

    @property
    def group(self) -> str:
        return self.consumer_group or f"{self.topics.prefix}-processor-{self.model_version}"

"""The project's topics, declared in one place, and their idempotent provisioning."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from kappaml.kafka import KafkaSettings, connect_admin
from kappaml.logging import get_logger

__all__ = ["MODEL_MESSAGE_BYTES", "TopicSpec", "Topics", "allow_model_messages", "ensure_topics"]

# Room for one pickled model per message: some specs are several MB (an AMF forest of 10
# trees pickles to about 3.6 MB), far above Kafka's default limit of 1 MB.
MODEL_MESSAGE_BYTES = 16 * 1024 * 1024

log = get_logger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 1
    config: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 249:
            raise ValueError(f"invalid topic name {self.name!r}")
        if self.partitions < 1:
            raise ValueError(f"topic {self.name}: partitions must be >= 1, got {self.partitions}")


@dataclass(frozen=True)
class Topics:
    """Names and layout of every topic; ``prefix`` lets several pipelines share a broker."""

    prefix: str = "kappaml"
    raw_partitions: int = 4

    @property
    def raw(self) -> str:
        return f"{self.prefix}.raw"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    @property
    def predictions(self) -> str:
        return f"{self.prefix}.predictions"

    @property
    def metrics(self) -> str:
        return f"{self.prefix}.metrics"

    @property
    def models(self) -> str:
        return f"{self.prefix}.models"

    @property
    def challengers(self) -> str:
        """Predictions of the challenger specs (the champion's go to ``predictions``)."""
        return f"{self.prefix}.challengers"

    @property
    def drift(self) -> str:
        return f"{self.prefix}.drift"

    @property
    def datasets(self) -> str:
        """The data set declarations (kappaml/catalog.py), keyed by data set name."""
        return f"{self.prefix}.datasets"

    def specs(self) -> list[TopicSpec]:
        # Outputs are partitioned like the input so per-key order is kept end to end.
        n = self.raw_partitions
        return [
            TopicSpec(self.raw, n),
            TopicSpec(self.dlq, 1),
            TopicSpec(self.predictions, n),
            TopicSpec(self.metrics, 1),
            TopicSpec(self.challengers, n),
            TopicSpec(self.drift, 1),
            # Compacted: the declaration of every data set in the log is kept for ever.
            TopicSpec(self.datasets, 1, {"cleanup.policy": "compact"}),
            # Compacted: the newest snapshot per (key, version) is kept for ever.
            TopicSpec(
                self.models,
                n,
                {"cleanup.policy": "compact", "max.message.bytes": str(MODEL_MESSAGE_BYTES)},
            ),
        ]


def ensure_topics(
    kafka: KafkaSettings,
    specs: Iterable[TopicSpec],
    *,
    replication_factor: int = -1,
    timeout: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    ``replication_factor`` -1 takes the cluster's ``default.replication.factor`` (1 on the local
    single broker, 3 on ``python -m infra up --brokers 3``, whatever a real cluster sets).

    Existing topics are left alone (their partition count is checked, not changed). An
    unreachable cluster or refused credentials raise ``KafkaUnavailable`` with the reason.
    """
    admin, metadata = connect_admin(kafka, timeout)
    existing = metadata.topics
    wanted = list(specs)
    for spec in wanted:
        have = existing.get(spec.name)
        if have is not None and len(have.partitions) != spec.partitions:
            log.warning(
                "topic has a different partition count",
                topic=spec.name,
                have=len(have.partitions),
                want=spec.partitions,
            )
    missing = [s for s in wanted if s.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(s.name, num_partitions=s.partitions, replication_factor=replication_factor,
                     config=dict(s.config))
            for s in missing
        ],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            # Another process may have created it between our list and create.
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    if created:
        log.info("topics created", topics=sorted(created))
    return created


def allow_model_messages(kafka: KafkaSettings, names: Iterable[str], timeout: float = 30.0) -> None:
    """Let topics created by others (Quix Streams' state changelogs) carry pickled models."""
    resources = [
        ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
            ConfigEntry("max.message.bytes", str(MODEL_MESSAGE_BYTES),
                        incremental_operation=AlterConfigOpType.SET)])
        for name in names
    ]
    if not resources:
        return
    admin, _metadata = connect_admin(kafka, timeout)
    for future in admin.incremental_alter_configs(resources, request_timeout=timeout).values():
        future.result()

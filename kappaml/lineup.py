"""Champion and challengers: several model specs learning the same log, and promotions.

A :class:`Lineup` is what one model version runs on every key: the champion spec first, then
the challengers. Each spec has its own :class:`kappaml.learner.KeyState` per key and sees
every example, predicting before learning exactly like the champion, so a challenger's model
is the model a separate run of that spec alone would build.

A promotion is an event in the log, not a setting: ``python -m processor promote SPEC``
writes a :class:`Promotion` control record to *every* partition of the raw topic, in one
Kafka transaction. In each partition, the promoted spec serves (its predictions go to the
main predictions topic) from the record after the control record on. The processor and the
Spark replay both read it in offset order, so both tell the same history of which spec
served which offset. A promotion the processor's gate decided carries the offset it decided at
(``after``) and serves from the record after that one: the processor switched there at once
(kappaml/records/control.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException, Producer

from kappaml.challengers import AUTO_SPECS, auto_challengers, resolve_challengers
from kappaml.dataset import Dataset
from kappaml.drift import DriftConfig
from kappaml.kafka import KafkaSettings, KafkaUnavailable, connect_admin, write_failure
from kappaml.learner import KeyState
from kappaml.models import SPECS
from kappaml.records import InvalidRecord, Promotion
from kappaml.records.control import TAKEOVER

__all__ = ["AUTO_SPECS", "CONTROL_HEADER", "CONTROL_KEY", "CONTROL_KEY_BYTES", "Lineup", "Promotion",
           "PromotionLog", "ServingHistory", "auto_challengers", "is_control", "publish_promotion",
           "resolve_challengers", "rollback_promotion"]

# The Kafka key of control records on the raw topic. Data keys are model keys; a dataset
# whose key column held this very string would have its rows read as control records.
CONTROL_KEY = "__kappaml_control__"
CONTROL_KEY_BYTES = CONTROL_KEY.encode()
CONTROL_HEADER = "kappaml-control"


def is_control(raw_key: bytes | None) -> bool:
    return raw_key == CONTROL_KEY_BYTES


@dataclass(frozen=True)
class Lineup:
    """The specs one model version runs per key: ``champion`` serves, ``challengers`` shadow it."""

    dataset: Dataset
    champion: str
    challengers: tuple[str, ...] = ()
    version: str = "v1"
    window: int = 500
    drift: DriftConfig | None = field(default_factory=DriftConfig)

    def __post_init__(self) -> None:
        for spec in self.specs:
            if spec not in SPECS:
                raise ValueError(f"unknown model spec {spec!r}; choose from {sorted(SPECS)}")
        if len(set(self.specs)) != len(self.specs):
            raise ValueError(f"a spec appears twice in champion + challengers: {list(self.specs)}")

    @property
    def specs(self) -> tuple[str, ...]:
        return (self.champion, *self.challengers)

    def new_states(self, key: str) -> dict[str, KeyState]:
        return {spec: KeyState.new(key, self.dataset, spec, self.version, window=self.window,
                                   drift=self.drift) for spec in self.specs}


class ServingHistory:
    """Which spec serves each partition, following the promotions read in offset order.

    ``apply`` returns None when the promotion takes effect, else the reason it cannot (a
    spec this lineup does not run); promotions of other versions are for other processors
    and return ``""``: nothing to do, nothing wrong.
    """

    def __init__(self, lineup: Lineup, champions: Mapping[int, str] | None = None) -> None:
        self.lineup = lineup
        self.champions: dict[int, str] = dict(champions or {})

    def champion(self, partition: int) -> str:
        return self.champions.get(partition, self.lineup.champion)

    def apply(self, partition: int, promotion: Promotion) -> str | None:
        if promotion.version != self.lineup.version:
            return ""
        if promotion.reason == TAKEOVER or promotion.generation is not None:
            return ""  # a key's model changes (kappaml/background.py), not the serving spec
        if promotion.spec not in self.lineup.specs:
            return (f"cannot promote {promotion.spec!r}: version {self.lineup.version} runs "
                    f"{', '.join(self.lineup.specs)} (start it with --challengers {promotion.spec})")
        self.champions[partition] = promotion.spec
        return None

    def to_json(self) -> dict[str, Any]:
        return {str(p): s for p, s in sorted(self.champions.items())}


class PromotionLog:
    """Every promotion of a replayed range, read up front: who served at any (partition, offset).

    The Spark replay collects the control records first, since a key's rows and the control
    records of its partition are not in one task's stream. The rules are ServingHistory's.
    """

    def __init__(self, lineup: Lineup, records: Iterable[tuple[int, int, bytes | None]]) -> None:
        self.lineup = lineup
        self.problems: list[tuple[int, int, str]] = []  # (partition, offset, reason)
        self._changes: dict[int, list[tuple[int, str]]] = {}
        history = ServingHistory(lineup)
        # A gate's promotion serves from the record after the offset it was decided at (its
        # ``after``), which comes before the control record itself: ordered by that offset.
        decoded: list[tuple[int, int, int, Promotion | InvalidRecord]] = []
        for partition, offset, value in records:
            try:
                promotion = Promotion.decode(value)
                decoded.append((partition, promotion.effective_after(offset), offset, promotion))
            except InvalidRecord as exc:
                decoded.append((partition, offset, offset, exc))
        for partition, after, offset, promotion in sorted(decoded, key=lambda r: r[:3]):
            if isinstance(promotion, InvalidRecord):
                reason: str | None = promotion.reason
            else:
                reason = history.apply(partition, promotion)
            if reason:
                self.problems.append((partition, offset, reason))
            elif reason is None:
                self._changes.setdefault(partition, []).append((after, history.champion(partition)))

    def champion_at(self, partition: int, offset: int) -> str:
        """The spec serving the record at ``offset``: set by the last promotion in effect before it."""
        changes = self._changes.get(partition)
        if not changes:
            return self.lineup.champion
        i = bisect.bisect_left(changes, (offset, "")) - 1
        return changes[i][1] if i >= 0 else self.lineup.champion

    def changes(self) -> dict[int, list[tuple[int, str]]]:
        return {p: list(c) for p, c in self._changes.items()}


def rollback_promotion(version: str, spec: str, by: str | None = None,
                       generation: int | None = None) -> Promotion:
    """The control record of a rollback to ``spec`` (``processor rollback --to``, the UI's button).

    A promotion with reason ``rollback``: it switches like any other, and with
    ``--promotion auto`` it also holds the gate of each partition (kappaml/gate.py). With a
    ``generation`` (``--to GENERATION``, drift policy background) it undoes the takeovers past
    that generation of ``spec``'s models (``*``: every spec's) and switches no serving spec.
    """
    extra: dict[str, Any] = {} if by is None else {"by": by}
    if generation is not None:
        extra["generation"] = generation
    return Promotion(version=version, spec=spec, reason="rollback", **extra)


def publish_promotion(kafka: KafkaSettings, raw_topic: str, promotion: Promotion,
                      timeout: float = 30.0) -> dict[int, int]:
    """Write the promotion to every partition of the raw topic in one transaction.

    All or nothing: a partition that got it while another did not would serve two champions
    for good. Returns the offset of the control record in each partition. ``KafkaUnavailable``
    with a one-line reason when the transaction does not commit within ``timeout`` (e.g. the raw
    topic is below its min.insync.replicas): then no reader ever sees the promotion.
    """
    _admin, metadata = connect_admin(kafka, timeout)
    topic = metadata.topics.get(raw_topic)
    if topic is None or not topic.partitions:
        raise KafkaUnavailable(f"topic {raw_topic!r} does not exist: start the pipeline first")
    partitions = sorted(topic.partitions)
    producer = Producer({**kafka.client_config(), "transactional.id": f"kappaml-promote-{promotion.id}",
                         "log_level": 0})
    offsets: dict[int, int] = {}

    def delivered(err: Any, msg: Any) -> None:
        if err is None:
            offsets[msg.partition()] = msg.offset()

    value = promotion.encode()
    try:
        producer.init_transactions(timeout)
        producer.begin_transaction()
        for partition in partitions:
            producer.produce(raw_topic, key=CONTROL_KEY_BYTES, value=value, partition=partition,
                             headers=[(CONTROL_HEADER, b"promote")], on_delivery=delivered)
        producer.commit_transaction(timeout)
    except KafkaException as exc:
        # Not committed, and this producer (its transactional id is the promotion's own) never
        # commits it: the coordinator aborts the open transaction when it times out.
        raise KafkaUnavailable(f"the transaction did not commit within {timeout:g} s: "
                               f"{write_failure(kafka, raw_topic, exc)}") from None
    producer.flush(timeout)
    return offsets

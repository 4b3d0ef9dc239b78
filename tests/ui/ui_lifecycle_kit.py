"""Writers of the processor's model-lifecycle records (drift detections, champion/challenger
comparisons, promotions) in the formats of notes/ISSUE9.md, so the UI tests do not need a
processor running challengers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import Producer

from kappaml import records
from kappaml.gate import GateConfig, sign_test_p
from kappaml.kafka import KafkaSettings
from kappaml.records import Comparison, DriftEvent, GateEvidence, GateLook, MetricsRecord, PromotionApplied
from kappaml.topics import Topics


def drift_record(key: str, *, learned: int, ts: int, error_before: float, error_after: float,
                 version: str = "v1", spec: str = "rls", role: str = "champion", generation: int = 0,
                 detector: str = "adwin", policy: str = "alert", partition: int = 0,
                 offset: int | None = None) -> DriftEvent:
    """A detection as the processor publishes it on the drift topic."""
    return DriftEvent(key=key, version=version, spec=spec, role=role, generation=generation,
                      detector=detector, policy=policy, action=policy, partition=partition,
                      offset=learned - 1 if offset is None else offset, id=learned,
                      error_before=error_before, error_after=error_after, learned=learned,
                      event_ts=ts - 20, ts=ts)


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

    def typed(self) -> records.SpecFigures:
        return records.SpecFigures(learned=self.learned, rmse=self.rmse, mae=self.mae,
                                   rolling_rmse=self.rolling_rmse, rolling_mae=self.rolling_mae,
                                   drifts=self.drifts, role=self.role, learn_us=self.learn_us)


def comparison_record(ts: int, specs: dict[str, SpecFigures], *, champions: dict[int, str] | None = None,
                      version: str = "v1", instance: str = "host-1") -> Comparison:
    return Comparison(version=version, instance=instance,
                      champions={str(p): s for p, s in (champions or {}).items()},
                      specs={spec: f.typed() for spec, f in specs.items()}, ts=ts)


def promotion_record(spec: str, previous: str, partition: int, offset: int, ts: int, *,
                     version: str = "v1", by: str = "tester@host", reason: str | None = None,
                     evidence: GateEvidence | None = None) -> PromotionApplied:
    return PromotionApplied(version=version, spec=spec, previous=previous, partition=partition, offset=offset,
                            id="p-1", by=by, requested_ts=ts, ts=ts, reason=reason, evidence=evidence)


GATE = GateConfig()


def gate_look(partition: int, offset: int, look: int, wins: int, *, spec: str = "linear",
              serving: str = "rls", n: int = 100, mse: tuple[float, float] = (4.0, 2.0),
              promoted: bool = False, version: str = "v1", ts: int = 1) -> GateLook:
    """A look of the gate as the processor publishes it (p-value and alpha computed as the gate does)."""
    p, alpha = sign_test_p(wins, n), GATE.alpha_at(look)
    return GateLook(version=version, partition=partition, offset=offset, scored=offset + 1, look=look,
                    serving=serving, spec=spec, pairs=n, n=n, wins=wins, p_value=p, alpha=alpha,
                    mse_serving=mse[0], mse_challenger=mse[1], passed=promoted or p <= alpha,
                    promoted=promoted, why="test", ts=ts, instance="host-1")


def evidence_of(look: GateLook) -> GateEvidence:
    """The evidence the gate writes into its control record at ``look``."""
    return GateEvidence(partition=look.partition, offset=look.offset, scored=look.scored,
                        serving=look.serving, pairs=look.pairs, n=look.n, wins=look.wins,
                        p_value=look.p_value, look=look.look,
                        alpha=look.alpha, mse_serving=look.mse_serving, mse_challenger=look.mse_challenger,
                        confidence=GATE.confidence, margin=GATE.margin, window=GATE.window)


class LifecycleWriter:
    def __init__(self, kafka: KafkaSettings, topics: Topics) -> None:
        self.topics = topics
        self.producer = Producer({**kafka.client_config(), "linger.ms": 5})

    def drifts(self, events: Sequence[DriftEvent]) -> None:
        for r in events:  # keyed by model key, like the processor's
            self.producer.produce(self.topics.drift, key=r.key.encode(), value=r.encode())
        self.flush()

    def metrics(self, written: Sequence[MetricsRecord]) -> None:
        for r in written:
            self.producer.produce(self.topics.metrics, key=r.key.encode(), value=r.encode())
        self.flush()

    def flush(self) -> None:
        assert self.producer.flush(30) == 0

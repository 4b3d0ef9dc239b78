"""The processor's metrics: counted on plain attributes in the hot path, exposed at scrape time.

Per message the processor only adds to counters it already keeps (``processor.stats``); this
module folds them in once per checkpoint, with the event-to-prediction latencies and each
spec's prequential error. Checkpoint and transaction commit durations and the consumer lag
come from light wrappers around Quix Streams' checkpoint, set up once. A scrape reads
finished numbers only: it never touches Kafka or the models.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kappaml.learner import ModelError
from kappaml.logging import get_logger
from kappaml.observability import Buckets, histogram_family, new_registry
from kappaml.quixcompat import app_producer, confluent_consumer, processing_context

__all__ = ["DLQ_REASONS", "LATENCY_BUCKETS", "LEARN_BUCKETS", "MetricsOff", "ProcessorMetrics", "dlq_reason"]

log = get_logger(__name__)

# Event (its ``ts``) to prediction, in seconds: a live pipeline sits at a few ms, a backlog at minutes.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                   60.0, 300.0)
# Learning steps: River models take 10 us to a few ms per example.
LEARN_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                 0.1)
_STATE_SIZE_EVERY = 10.0  # seconds between walks of the state directory
_ASK_EVERY = 5.0  # seconds between watermark requests for a partition nothing was fetched from yet

# The DLQ reason label: a handful of classes, never the free text (one series per distinct text
# would grow without bound). The record in the DLQ topic keeps the full reason.
_REASONS = (  # first match wins
    ("control record", "bad_control"),
    ("cannot promote", "bad_control"),
    ("not UTF-8", "not_utf8"),
    ("tombstone", "empty"),
    ("not JSON", "not_json"),
    ("unexpected record shape", "not_json"),
    ("not a JSON object", "not_json"),
    ("does not match", "key_mismatch"),
)
DLQ_REASONS = ("bad_control", "not_utf8", "empty", "not_json", "key_mismatch", "model_error",
               "invalid_record")


def dlq_reason(exc: Exception) -> str:
    """The bounded label of a dead letter's reason (docs/metrics.md lists the values)."""
    if isinstance(exc, ModelError):
        return "model_error"
    text = str(getattr(exc, "reason", exc))
    for needle, label in _REASONS:
        if needle in text:
            return label
    if isinstance(exc, UnicodeDecodeError):
        return "not_utf8"
    return "invalid_record"


class MetricsOff:
    """The processor's metrics when they are off: every hook does nothing, nothing is served."""

    registry = None

    def dead_lettered(self, exc: Exception) -> None:
        pass

    def drift(self, spec: str, action: str) -> None:
        pass

    def promoted(self, spec: str) -> None:
        pass

    def on_checkpoint(self) -> None:
        pass


class ProcessorMetrics(Collector):
    """Everything ``/metrics`` shows of one processor; its own registry."""

    def __init__(self, processor: Any, pooled: Callable[[list[Any]], dict[str, Any]]) -> None:
        self._processor = processor
        self._pooled = pooled
        self.messages = 0
        self.learned = 0
        self.dead_letters: dict[str, int] = {}
        self.drifts: dict[tuple[str, str], int] = {}
        self.promotions: dict[str, int] = {}
        self.latency = Buckets(LATENCY_BUCKETS)
        self.checkpoint = Buckets()
        self.transaction = Buckets()
        self.lag: dict[int, int] = {}
        self._asked: dict[int, tuple[float, int, int]] = {}
        self.errors: dict[tuple[str, str], tuple[float | None, float | None]] = {}
        self.keys = 0
        self.state_bytes = 0
        self._state_at = 0.0
        self._instrument(processor.app)
        self.registry = new_registry()
        self.registry.register(self)

    # -- fed by the processor -------------------------------------------------------------
    def dead_lettered(self, exc: Exception) -> None:
        reason = dlq_reason(exc)
        self.dead_letters[reason] = self.dead_letters.get(reason, 0) + 1

    def drift(self, spec: str, action: str) -> None:
        self.drifts[(spec, action)] = self.drifts.get((spec, action), 0) + 1

    def promoted(self, spec: str) -> None:
        self.promotions[spec] = self.promotions.get(spec, 0) + 1

    def on_checkpoint(self) -> None:
        """Fold in the interval's counts (before the processor's stats start the next interval)."""
        p = self._processor
        stats = p.stats
        self.messages += stats.messages
        self.learned += stats.learned
        self.latency.observe_many(stats.latencies_ms, 0.001)
        by_spec: dict[str, list[Any]] = {}
        for _partition, states in p.cache.states():
            for spec, ks in states.items():
                by_spec.setdefault(spec, []).append(ks)
        serving = set(p.champions.current().values()) or {p.lineup.champion}
        errors = {}
        for spec, states in by_spec.items():
            figures = self._pooled(states)
            role = "champion" if spec in serving else "challenger"
            errors[(spec, role)] = (figures["rolling_rmse"], figures["rmse"])
        self.errors = errors
        self.keys = len(p.cache)

    # -- Quix Streams' checkpoint ---------------------------------------------------------
    def _instrument(self, app: Any) -> None:
        """Time each checkpoint commit and transaction commit; refresh the lag at each checkpoint.

        The wrappers sit on objects of the Application (its producer, its processing context,
        each checkpoint), once per checkpoint: nothing runs per message.
        """
        context = processing_context(app)
        producer = app_producer(app)
        init_checkpoint = context.init_checkpoint

        def init_and_time() -> None:
            init_checkpoint()
            checkpoint = context.checkpoint
            checkpoint.commit = _timed(checkpoint.commit, self.checkpoint)
            self._refresh_lag(app)

        context.init_checkpoint = init_and_time
        producer.commit_transaction = _timed(producer.commit_transaction, self.transaction)

    def _refresh_lag(self, app: Any) -> None:
        """Lag per assigned partition: the high watermark librdkafka last fetched minus the position.

        Both are local look-ups (no request to the broker), so this can run at every checkpoint.
        """
        try:
            consumer = confluent_consumer(app)
            assigned = consumer.assignment()
            lag = {}
            for tp in consumer.position(assigned) if assigned else []:
                low, high = consumer.get_watermark_offsets(tp, cached=True)
                if tp.offset < 0 or high < 0:
                    # Nothing fetched from this partition yet: ask the broker, now and then.
                    low, high = self._watermarks(consumer, tp)
                position = tp.offset if tp.offset >= 0 else low
                if position >= 0 and high >= 0:
                    lag[tp.partition] = max(high - position, 0)
            self.lag = lag
        except Exception as exc:  # metrics must never stop the processor
            log.debug("consumer lag unavailable", error=str(exc))

    def _watermarks(self, consumer: Any, tp: Any) -> tuple[int, int]:
        """The partition's (low, high) watermarks from the broker, asked at most every few seconds."""
        now = time.monotonic()
        known = self._asked.get(tp.partition)
        if known is None or now - known[0] >= _ASK_EVERY:
            try:
                low, high = consumer.get_watermark_offsets(tp, timeout=1.0, cached=False)
            except Exception:  # unknown for now; asked again next time
                low, high = -1, -1
            known = self._asked[tp.partition] = (now, low, high)
        return known[1], known[2]

    def _state_size(self) -> int:
        now = time.monotonic()
        if now - self._state_at >= _STATE_SIZE_EVERY:
            self._state_at = now
            self.state_bytes = _du(Path(self._processor.settings.state_dir))
        return self.state_bytes

    # -- the scrape -----------------------------------------------------------------------
    def describe(self) -> list[Metric]:
        return []  # registering must not collect: the state size would be measured before any state

    def collect(self) -> Iterator[Metric]:
        p = "kappaml_processor_"
        yield _counter(p + "messages", "Raw-topic messages processed (valid, invalid and control).",
                       self.messages)
        yield _counter(p + "messages_learned", "Messages the serving (champion) model learned.",
                       self.learned)
        dlq = CounterMetricFamily(p + "dead_letters", "Messages sent to the dead-letter topic, by reason.",
                                  labels=["reason"])
        for reason, count in sorted(dict(self.dead_letters).items()):
            dlq.add_metric([reason], count)
        yield dlq
        learn = dict(getattr(self._processor.learn_cost, "buckets", {}))
        yield histogram_family(p + "learn_seconds", "Time of one model's predict-then-learn step, per spec.",
                               ["spec"], [((spec,), b) for spec, b in sorted(learn.items())])
        yield histogram_family(p + "event_to_prediction_seconds",
                               "From the event's timestamp to its prediction (serving model).", [],
                               [((), self.latency)])
        yield histogram_family(p + "checkpoint_seconds", "Duration of a checkpoint commit (models, "
                               "metrics and snapshots, changelogs, offsets).", [], [((), self.checkpoint)])
        yield histogram_family(p + "transaction_commit_seconds",
                               "Duration of the Kafka transaction commit (exactly-once only).", [],
                               [((), self.transaction)])
        rolling = GaugeMetricFamily(p + "rolling_rmse", "Prequential RMSE over each key's rolling window, "
                                    "pooled over the keys, per spec (target units).", labels=["spec", "role"])
        cumulative = GaugeMetricFamily(p + "rmse", "Prequential RMSE since each model started, pooled over "
                                       "the keys, per spec (target units).", labels=["spec", "role"])
        for (spec, role), (roll, total) in sorted(dict(self.errors).items()):
            if roll is not None:
                rolling.add_metric([spec, role], roll)
            if total is not None:
                cumulative.add_metric([spec, role], total)
        yield rolling
        yield cumulative
        lag = GaugeMetricFamily(p + "consumer_lag_messages", "Raw-topic messages not yet processed, per "
                                "partition assigned to this instance.", labels=["partition"])
        for partition, value in sorted(dict(self.lag).items()):
            lag.add_metric([str(partition)], value)
        yield lag
        yield GaugeMetricFamily(p + "state_keys", "Keys whose models this instance holds.", value=self.keys)
        yield GaugeMetricFamily(p + "state_bytes", "Bytes of the local state directory (RocksDB).",
                                value=self._state_size())
        drift = CounterMetricFamily(p + "drift_detections", "Drift detections, per spec and policy action.",
                                    labels=["spec", "action"])
        for (spec, action), count in sorted(dict(self.drifts).items()):
            drift.add_metric([spec, action], count)
        yield drift
        promotions = CounterMetricFamily(p + "promotions", "Promotions applied (one per raw partition), "
                                         "by the promoted spec.", labels=["spec"])
        for spec, count in sorted(dict(self.promotions).items()):
            promotions.add_metric([spec], count)
        yield promotions


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _timed(call: Callable[..., Any], buckets: Buckets) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            buckets.observe(time.perf_counter() - started)
    return timed


def _du(path: Path) -> int:
    total = 0
    try:
        for entry in path.rglob("*"):
            try:
                if entry.is_file():
                    total += entry.stat().st_size
            except OSError:
                continue  # RocksDB removes files as it compacts
    except OSError:
        return 0
    return total

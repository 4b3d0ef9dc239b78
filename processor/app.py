"""The processor: a Quix Streams application that predicts, then learns, for every raw message."""

from __future__ import annotations

import logging
import pickle
import time
from time import perf_counter
from typing import Any

from confluent_kafka import Producer as ConfluentProducer
from quixstreams import Application, message_context
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.state.base import PartitionTransaction
from quixstreams.state.rocksdb import RocksDBOptions

from kappaml.catalog import LogDeclarations
from kappaml.fingerprint import fingerprint
from kappaml.learner import KeyState, ModelError, learn_step
from kappaml.lineup import Promotion, is_control
from kappaml.logging import get_logger
from kappaml.observability import serve_metrics
from kappaml.observability.processor import MetricsOff, ProcessorMetrics
from kappaml.quixcompat import app_producer, changelog_topic_names, confluent_producer
from kappaml.records import (
    CHALLENGER,
    CHAMPION,
    COMPARISON_KEY,
    OVERALL_KEY,
    PROMOTION_KEY,
    Comparison,
    InvalidRecord,
    OverallMetrics,
    PromotionApplied,
)
from kappaml.snapshot import Snapshot, snapshot_key
from kappaml.topics import MODEL_MESSAGE_BYTES, allow_model_messages, ensure_topics
from processor.cache import CheckpointSink, KeyStates, ModelCache
from processor.champions import Champions
from processor.cutover import load_replay_seed
from processor.duplicates import DuplicateWatch
from processor.instance import claim_identity
from processor.outputs import (
    dead_letter,
    drift_event,
    key_metrics,
    now_ms,
    pooled,
    pooled_metrics,
    prediction,
    spec_figures,
)
from processor.settings import ProcessorSettings
from processor.stats import IntervalStats, LearnCost, TimedLearnCost
from processor.timing import CheckpointTimer, GcPauses

__all__ = ["Processor"]

log = get_logger(__name__)

# A restart under the same transactional id aborts its predecessor's open transaction at once.
# An instance that dies for good is not restarted: its transaction then blocks read_committed
# readers until this timeout (librdkafka's default is 60 s); a checkpoint's transaction lasts
# about one commit interval.
TRANSACTION_TIMEOUT_MS = 15_000


class Processor:
    """Builds the Quix Streams application; ``run()`` processes until SIGTERM/Ctrl-C."""

    def __init__(self, settings: ProcessorSettings) -> None:
        self.settings = settings
        logging.getLogger("quixstreams").setLevel(max(logging.WARNING, logging.getLogger().level))
        self.identity = claim_identity(settings.group, settings.instance_id)
        self.instance = self.identity.instance
        ensure_topics(settings.kafka, settings.topics.specs())
        self.declarations = LogDeclarations(settings.kafka, settings.topics.datasets)
        self.app = Application(
            broker_address=ConnectionConfig.from_librdkafka_dict(settings.kafka.client_config()),
            consumer_group=settings.group,
            auto_offset_reset=settings.auto_offset_reset,
            commit_interval=settings.commit_interval,
            # Quix commits a due checkpoint only once a poll returns: with its default of 1 s,
            # the last messages of a burst waited for the next burst, or a whole second when the
            # stream went quiet (bench/latency.py measured a max of about 1,040 ms).
            consumer_poll_timeout=0.005,
            processing_guarantee=settings.guarantee,
            state_dir=settings.state_dir,
            # Models are Python objects: the store keeps them pickled, not as JSON.
            rocksdb_options=RocksDBOptions(dumps=pickle.dumps, loads=pickle.loads),
            producer_extra_config={"message.max.bytes": MODEL_MESSAGE_BYTES + 65536,
                                   # Stable across restarts: see processor/instance.py.
                                   "transactional.id": self.identity.transactional_id,
                                   "transaction.timeout.ms": max(TRANSACTION_TIMEOUT_MS,
                                                                 int(settings.commit_interval * 3000))},
            consumer_extra_config={"session.timeout.ms": int(settings.session_timeout * 1000),
                                   "heartbeat.interval.ms": max(int(settings.session_timeout * 200), 100),
                                   "group.instance.id": self.identity.group_instance_id},
            # Quix's own handler would print its lines (librdkafka's among them) raw, past
            # kappaml.logging's JSON and its masking of secrets: route them through ours.
            loglevel=None,
        )
        self.producer = app_producer(self.app)
        self._raw: ConfluentProducer | None = None
        self.lineup = settings.lineup
        self._direct = settings.guarantee == "exactly-once"
        self.champions = Champions(self.lineup)
        self.seed = (load_replay_seed(settings.kafka, settings.topics.models, settings.model_version,
                                      settings.model_spec) if settings.from_replay else None)
        self.cache = ModelCache(self._new_states)
        self.stats = IntervalStats()
        self.learn_cost = TimedLearnCost() if settings.metrics_port is not None else LearnCost()
        self.duplicates = DuplicateWatch()
        self.timer = CheckpointTimer()
        self.gc_pauses = GcPauses()
        self._last_progress = time.monotonic()
        self._build()
        self.metrics = ProcessorMetrics(self, pooled) if settings.metrics_port is not None else MetricsOff()
        # register_store() in _build has registered (and created) the changelog topic by now.
        allow_model_messages(settings.kafka, changelog_topic_names(self.app))

    def _new_states(self, key: str) -> KeyStates:
        lineup = self.lineup
        if self.seed is not None:
            return {lineup.champion: self.seed.state_for(key, lineup.dataset, lineup.champion, lineup.version,
                                                         lineup.window, lineup.drift)}
        return lineup.new_states(key)

    def _build(self) -> None:
        self.raw_topic = self.app.topic(self.settings.topics.raw, key_deserializer="bytes",
                                        value_deserializer="bytes")
        sdf = self.app.dataframe(self.raw_topic)
        # One operator does all the per-message work and produces its own outputs (through
        # the application's producer, so they join the checkpoint's transaction): each
        # further Quix operator (filter, to_topic, sink) adds its own per-message overhead.
        # It is not declared stateful either, which would build a State for every message:
        # the models live in memory (processor/cache.py) and the store is opened only once
        # per key and checkpoint, through _transaction().
        sdf.register_store()
        sdf.update(self._process, metadata=True)
        self._sdf = sdf
        # Registered, a sink is flushed at every checkpoint; it needs no per-message add().
        sdf.processing_context.sink_manager.register(CheckpointSink(self._on_checkpoint))

    def _transaction(self, partition: int) -> PartitionTransaction:
        """This checkpoint's store transaction of the partition (started on first use)."""
        return self._sdf.processing_context.checkpoint.get_store_transaction(
            stream_id=self._sdf.stream_id, partition=partition)

    def run(self, idle_timeout: float = 0.0) -> None:
        """Process until stopped, or, with ``idle_timeout``, until no message came for that long."""
        log.info("processor starting", group=self.settings.group, raw=self.settings.topics.raw,
                 spec=self.settings.model_spec, version=self.settings.model_version,
                 guarantee=self.settings.guarantee, from_replay=self.settings.from_replay,
                 instance=self.instance)
        if self.seed is not None:
            self.seed.commit_start_offsets(self.settings.kafka, self.settings.group, self.settings.topics.raw)
        server = serve_metrics(self.settings.metrics_port, self.metrics.registry)
        self.gc_pauses.install()
        try:
            self.app.run(timeout=idle_timeout, collect=False)
        finally:
            self.gc_pauses.uninstall()
            self.identity.release()
            if server is not None:
                server.shutdown()

    def stop(self) -> None:
        self.app.stop()

    # -- per message ------------------------------------------------------------------
    def _process(self, value: bytes, key: bytes, timestamp: int, headers: Any) -> None:
        self.timer.message()
        ctx = message_context()
        partition, offset = ctx.partition, ctx.offset
        self.stats.messages += 1
        if is_control(key):
            self._control(value, key, partition, offset)
            return
        try:
            model_key = key.decode("utf-8") if key is not None else None
            example = self.declarations.decode(self.settings.dataset, value)
            if model_key is None or example.key != model_key:
                raise InvalidRecord(f"record key {example.key!r} does not match the message key "
                                    f"{model_key!r}")
        except (InvalidRecord, UnicodeDecodeError) as exc:
            self._send_dead_letter(exc, partition, offset, key, value)
            return
        champion = self.champions.champion(partition, self._transaction)
        topics, produce = self.settings.topics, self._produce
        processed = 0
        for spec, ks in self.cache.get(partition, model_key, self._transaction).items():
            started = perf_counter()
            try:
                result = learn_step(ks, example, offset)
            except ModelError as exc:
                log.error("model failed on a message; sent to the dead-letter topic", key=model_key,
                          spec=spec, partition=partition, offset=offset, reason=exc.reason)
                self._send_dead_letter(exc, partition, offset, key, value)
                continue
            finally:
                self.learn_cost.add(spec, perf_counter() - started)
            if result is None:
                self.duplicates.skipped += spec == champion
                continue
            processed = processed or now_ms()
            serving = spec == champion
            self.stats.learned += serving
            role = "champion" if serving else "challenger"
            record = prediction(ks, example, result, partition, offset, processed, role)
            produce(topics.predictions if serving else topics.challengers, key, record.encode())
            if serving:
                self.champions.served[partition].update(result.y_true, result.y_pred)
                if example.ts is not None:
                    self.stats.latencies_ms.append(processed - example.ts)
            if result.drift is not None:
                event = drift_event(ks, example, result, partition, offset, role, processed)
                log.warning("drift detected", key=model_key, spec=spec, offset=offset,
                            error_before=round(event.error_before, 3),
                            error_after=round(event.error_after, 3), action=event.action)
                produce(topics.drift, key, event.encode())
                self.metrics.drift(spec, event.action)

    def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        """Produce one output of a message, inside the checkpoint's transaction."""
        quix = self.producer
        if self._direct:
            # Straight to the transactional confluent-kafka producer: Quix's wrapper adds a
            # delivery callback and a poll per record (bench: 4.1-4.8 vs 1.4-1.9 us per
            # record). A record that fails delivery makes the transaction's commit fail: none
            # of that checkpoint is committed and a restart resumes from the last one, so
            # nothing is lost without a callback.
            try:
                raw = self._raw
                if raw is None:  # created by Quix on its first use, the same one from then on
                    raw = self._raw = confluent_producer(quix)
                raw.produce(topic, value, key)
                return
            except BufferError:
                pass  # queue full: Quix's produce polls and retries
        quix.produce(topic, value=value, key=key)

    def _control(self, value: bytes, key: bytes, partition: int, offset: int) -> None:
        """A control record (a promotion): applied to this partition from the next offset on."""
        previous = self.champions.champion(partition, self._transaction)
        try:
            promotion = Promotion.decode(value)
        except InvalidRecord as exc:
            self._send_dead_letter(exc, partition, offset, key, value)
            return
        reason = self.champions.promote(partition, promotion, self._transaction)
        if reason == "":
            return  # another version's promotion: for the processors of that version
        if reason is not None:
            self._send_dead_letter(InvalidRecord(reason), partition, offset, key, value)
            return
        log.info("promotion", partition=partition, offset=offset, spec=promotion.spec,
                 previous=previous, by=promotion.by)
        self.metrics.promoted(promotion.spec)
        record = PromotionApplied(version=promotion.version, spec=promotion.spec, previous=previous,
                                  partition=partition, offset=offset, id=promotion.id, by=promotion.by,
                                  requested_ts=promotion.ts, ts=now_ms(), instance=self.instance)
        self.producer.produce(self.settings.topics.metrics, key=PROMOTION_KEY, value=record.encode())

    def _send_dead_letter(self, exc: Exception, partition: int, offset: int, key: bytes | None,
                          value: bytes | None) -> None:
        self.stats.invalid += 1
        self.metrics.dead_lettered(exc)
        detail = exc.to_dict() if isinstance(exc, InvalidRecord) else {}
        reason = exc.reason if isinstance(exc, InvalidRecord) else f"key is not UTF-8: {exc}"
        record = dead_letter(reason, topic=self.settings.topics.raw, partition=partition,
                             offset=offset, key=key, value=value, detail=detail)
        # The application's own producer: under exactly-once this joins the open transaction.
        self.producer.produce(self.settings.topics.dlq, value=record, key=key)

    # -- per checkpoint ---------------------------------------------------------------
    def _on_checkpoint(self) -> None:
        """Persist dirty models and publish their metrics and snapshots, inside the checkpoint."""
        timer = self.timer
        timer.start()
        # Both read this interval's figures before _overall starts the next interval of self.stats.
        self.metrics.on_checkpoint()
        self.duplicates.learned += self.stats.learned
        flushed = self.cache.flush()
        timer.lap("states")
        ts = now_ms()
        producer = self.producer
        topics, lineup = self.settings.topics, self.lineup
        champions = self.champions.current()
        for partition, states in flushed:
            champion = champions.get(partition, lineup.champion)
            for spec, ks in states.items():
                role = "champion" if spec == champion else "challenger"
                producer.produce(topics.metrics, key=ks.key, value=key_metrics(ks, ts, role).encode())
                snapshot = Snapshot(
                    key=ks.key, version=ks.version, spec=spec, origin="live", partition=partition,
                    offset=ks.last_offset, learned=ks.learned, fingerprint=fingerprint(ks.model),
                    model=ks.model, created_at=ts, extra={"generation": ks.generation, "drifts": ks.drifts},
                )
                label = "" if spec == lineup.champion else spec
                producer.produce(topics.models, key=snapshot_key(ks.version, ks.key, label),
                                 value=snapshot.encode())
        self.champions.checkpoint(self._transaction)
        timer.lap("snapshots")
        if flushed or self.stats.messages:
            due = time.monotonic() - self._last_progress >= self.settings.progress_interval
            # Sorting the timing samples costs more than a checkpoint: only now and then.
            overall = self._overall(ts, champions, timing=due)
            producer.produce(topics.metrics, key=OVERALL_KEY, value=overall.encode())
            if lineup.challengers:
                producer.produce(topics.metrics, key=COMPARISON_KEY,
                                 value=self._comparison(ts, champions).encode())
            if due:
                self._log_progress(overall)
        timer.lap("metrics")
        timer.done()

    def _serving(self, champions: dict[int, str]) -> list[KeyState]:
        champion = self.lineup.champion
        return [states[champions.get(p, champion)] for p, states in self.cache.states()]

    def _overall(self, ts: int, champions: dict[int, str], *, timing: bool = False) -> OverallMetrics:
        every = [ks for _p, states in self.cache.states() for ks in states.values()]
        serving_states = self._serving(champions)
        served = pooled_metrics(list(self.champions.served.values()))
        interval = self.stats.take()
        skipped = sum(ks.skipped for ks in serving_states)
        return OverallMetrics(
            version=self.settings.model_version,
            spec=self.settings.model_spec,
            champions={str(p): spec for p, spec in champions.items()},
            challengers=list(self.lineup.challengers),
            instance=self.instance,
            keys=len(self.cache),
            # "spec" above names the version (the spec it was started with); the errors are of
            # the predictions served, whichever spec served each one (see "champions").
            scored="served",
            learned=sum(ks.learned for ks in serving_states),
            skipped=skipped,
            invalid=interval["invalid_total"],
            served=served["n"],
            rmse=served["rmse"],
            mae=served["mae"],
            rolling_rmse=served["rolling_rmse"],
            rolling_mae=served["rolling_mae"],
            drifts=sum(ks.drifts for ks in every),
            throughput=interval["throughput"],
            latency_ms=interval["latency_ms"],
            ts=ts,
            duplicates=self.duplicates.update(skipped),
            timing=({"checkpoint_ms": self.timer.summary(), "gc": self.gc_pauses.summary()}
                    if timing else None),
        )

    def _comparison(self, ts: int, champions: dict[int, str]) -> Comparison:
        """Every spec's pooled metrics over the same messages: champion and challengers side by side."""
        by_spec: dict[str, list[KeyState]] = {spec: [] for spec in self.lineup.specs}
        for _p, states in self.cache.states():
            for spec, ks in states.items():
                by_spec.setdefault(spec, []).append(ks)
        serving = set(champions.values()) or {self.lineup.champion}
        return Comparison(
            version=self.settings.model_version, instance=self.instance,
            champions={str(p): spec for p, spec in champions.items()},
            specs={spec: spec_figures(states, CHAMPION if spec in serving else CHALLENGER,
                                      self.learn_cost.micros(spec))
                   for spec, states in by_spec.items()},
            ts=ts,
        )

    def _log_progress(self, overall: OverallMetrics) -> None:
        self._last_progress = time.monotonic()
        log.debug("checkpoint timing", **(overall.timing or {}))
        log.info("progress", learned=overall.learned, skipped=overall.skipped,
                 invalid=overall.invalid, keys=overall.keys, rate=overall.throughput,
                 rmse=overall.rmse and round(overall.rmse, 3),
                 latency_p99_ms=(overall.latency_ms or {}).get("p99"))

"""The processor: a Quix Streams application that predicts, then learns, for every raw message.

Every raw record (labelled, ``features`` or ``label``: delayed labels, docs/processor.md) goes
through ``kappaml.learner.apply_record`` for each spec of the line-up; ``processor.emit``
publishes what it did.
"""

from __future__ import annotations

import logging
import pickle
from time import perf_counter
from typing import Any

from confluent_kafka import Producer as ConfluentProducer
from quixstreams import Application, message_context
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.state.base import PartitionTransaction
from quixstreams.state.rocksdb import RocksDBOptions

from kappaml.catalog import LogDeclarations
from kappaml.learner import apply_record
from kappaml.lineup import Promotion, is_control
from kappaml.logging import get_logger
from kappaml.observability import serve_metrics
from kappaml.observability.processor import MetricsOff, ProcessorMetrics
from kappaml.quixcompat import app_producer, changelog_topic_names, confluent_producer
from kappaml.records import (
    PROMOTION_KEY,
    InvalidRecord,
    PromotionApplied,
)
from kappaml.records.control import TAKEOVER
from kappaml.topics import MODEL_MESSAGE_BYTES, allow_model_messages, ensure_topics
from processor.background import Backgrounds
from processor.cache import CheckpointSink, KeyStates, ModelCache
from processor.champions import Champions
from processor.checkpoint import CheckpointWriter
from processor.cutover import load_replay_seed
from processor.duplicates import DuplicateWatch
from processor.emit import Emitter
from processor.gatekeeper import Gatekeeper
from processor.instance import claim_identity
from processor.outputs import (
    dead_letter,
    now_ms,
    pooled,
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
        self.emitter = Emitter(self)
        self.checkpoints = CheckpointWriter(self)
        # --promotion auto (processor/gatekeeper.py); None: promotions only by hand.
        self.gatekeeper = Gatekeeper(self, settings.gate) if settings.promotion == "auto" else None
        # --drift-policy background (processor/background.py); its gate: the --gate-* settings.
        drift = settings.drift
        background = drift is not None and drift.policy == "background"
        self.backgrounds = Backgrounds(self, drift.gate) if drift is not None and background else None
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
        # per key and checkpoint, through store_transaction().
        sdf.register_store()
        sdf.update(self._process, metadata=True)
        self._sdf = sdf
        # Registered, a sink is flushed at every checkpoint; it needs no per-message add().
        sdf.processing_context.sink_manager.register(CheckpointSink(self._on_checkpoint))

    def store_transaction(self, partition: int) -> PartitionTransaction:
        """This checkpoint's store transaction of the partition (started on first use)."""
        return self._sdf.processing_context.checkpoint.get_store_transaction(
            stream_id=self._sdf.stream_id, partition=partition)

    def run(self, idle_timeout: float = 0.0) -> None:
        """Process until stopped, or, with ``idle_timeout``, until no message came for that long."""
        log.info("processor starting", group=self.settings.group, raw=self.settings.topics.raw,
                 spec=self.settings.model_spec, challengers=list(self.lineup.challengers),
                 promotion=self.settings.promotion, version=self.settings.model_version,
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
            record = self.declarations.decode(self.settings.dataset, value)
            if model_key is None or record.key != model_key:
                raise InvalidRecord(f"record key {record.key!r} does not match the message key "
                                    f"{model_key!r}")
        except (InvalidRecord, UnicodeDecodeError) as exc:
            self.send_dead_letter(exc, partition, offset, key, value)
            return
        champion = self.champions.champion(partition, self.store_transaction)
        policy, emit, cost = self.settings.labels, self.emitter.outcome, self.learn_cost
        gate, backgrounds = self.gatekeeper, self.backgrounds
        states = self.cache.get(partition, model_key, self.store_transaction)
        if backgrounds is not None:
            backgrounds.before(states, partition, offset)
        for spec, ks in states.items():
            started = perf_counter()
            outcome = apply_record(ks, record, offset, policy)
            cost.add(spec, perf_counter() - started)
            emit(ks, outcome, serving=spec == champion, key=key, partition=partition, offset=offset,
                 ts=record.ts, value=value)
            if gate is not None:
                gate.scored(spec, outcome)
            if backgrounds is not None:
                backgrounds.step(ks, record, offset, outcome, serving=spec == champion, key=key,
                                 partition=partition, ts=record.ts, value=value)
        if gate is not None:
            gate.record_done(partition, offset, champion)

    def produce_output(self, topic: str, key: bytes, value: bytes) -> None:
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
        """A control record (a promotion): applied to this partition from the next offset on, or,
        decided by our own gate (``after``), skipped: it is in effect since that offset."""
        previous = self.champions.champion(partition, self.store_transaction)
        try:
            promotion = Promotion.decode(value)
        except InvalidRecord as exc:
            self.send_dead_letter(exc, partition, offset, key, value)
            return
        if promotion.version == self.lineup.version and promotion.reason == TAKEOVER:
            if self.backgrounds is None or promotion.key is None or promotion.generation is None:
                return  # written by a processor with the background policy; this one has none
            if self.backgrounds.control(promotion, partition, offset):
                self.record_applied(promotion, previous, partition, offset, model_key=promotion.key,
                                    generation=promotion.generation)
            return
        if promotion.version == self.lineup.version and promotion.generation is not None:
            if self.backgrounds is None:
                log.warning("a rollback to a generation needs --drift-policy background (only takeovers "
                            "keep the model they replaced): ignored", partition=partition, offset=offset)
                return
            self.backgrounds.rollback(promotion, partition, offset)
            self.record_applied(promotion, previous, partition, offset, generation=promotion.generation)
            return
        if promotion.after is not None and promotion.version == self.lineup.version:
            if self.gatekeeper is not None:
                # Our gate's decision: it took effect at ``after``. Every record up to there was
                # handled before this one, and the gate decides the same at the same offset on
                # any instance and after any crash, so it is in effect here (however many other
                # decisions came since: with a backlog it is read back after the whole backlog).
                return
            log.warning("a gate's promotion read by a processor without --promotion auto: applied from "
                        "here, later than the replay applies it (after its offset)", partition=partition,
                        offset=offset, after=promotion.after, id=promotion.id)
        reason = self.apply_promotion(promotion, partition, offset, previous)
        if reason:
            self.send_dead_letter(InvalidRecord(reason), partition, offset, key, value)

    def apply_promotion(self, promotion: Promotion, partition: int, offset: int, previous: str) -> str | None:
        """From the record after ``offset`` on, the promoted spec serves the partition (a control
        record read there, or the gate's decision at that record). None when it took effect, else
        ServingHistory.apply's reason ("": another version's, nothing to do)."""
        reason = self.champions.promote(partition, promotion, self.store_transaction)
        if reason is not None:
            return reason
        log.info("promotion", partition=partition, offset=offset, spec=promotion.spec,
                 previous=previous, by=promotion.by, reason=promotion.reason)
        if self.gatekeeper is not None:
            self.gatekeeper.applied(partition, promotion, previous)
        self.metrics.promoted(promotion.spec)
        self.record_applied(promotion, previous, partition, offset)
        return None

    def record_applied(self, promotion: Promotion, previous: str, partition: int, offset: int,
                       **extra: Any) -> None:
        """The ``promotion`` record of a control record applied here (kappaml.metrics)."""
        record = PromotionApplied(version=promotion.version, spec=promotion.spec, previous=previous,
                                  partition=partition, offset=offset, id=promotion.id, by=promotion.by,
                                  requested_ts=promotion.ts, ts=now_ms(), instance=self.instance,
                                  reason=promotion.reason, evidence=promotion.evidence, **extra)
        self.producer.produce(self.settings.topics.metrics, key=PROMOTION_KEY, value=record.encode())

    def send_dead_letter(self, exc: Exception, partition: int, offset: int, key: bytes | None,
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
        """Persist dirty models and publish their metrics and snapshots (processor/checkpoint.py)."""
        if self.gatekeeper is not None:
            self.gatekeeper.checkpoint()
        if self.backgrounds is not None:
            self.backgrounds.checkpoint()
        self.checkpoints.on_checkpoint()

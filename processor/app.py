"""The processor: a Quix Streams application that predicts, then learns, for every raw message."""

from __future__ import annotations

import json
import math
import os
import pickle
import socket
import time
from typing import Any

from quixstreams import Application, message_context
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.state import State
from quixstreams.state.rocksdb import RocksDBOptions

from kappaml.fingerprint import fingerprint
from kappaml.learner import KeyState, ModelError, learn_step
from kappaml.logging import get_logger
from kappaml.records import InvalidRecord, decode
from kappaml.snapshot import Snapshot, snapshot_key
from kappaml.topics import ensure_topics
from processor.cache import CheckpointSink, ModelCache
from processor.cutover import load_replay_seed
from processor.outputs import dead_letter, key_metrics, now_ms, prediction
from processor.settings import ProcessorSettings
from processor.stats import IntervalStats

__all__ = ["Processor"]

log = get_logger(__name__)


class Processor:
    """Builds the Quix Streams application; ``run()`` processes until SIGTERM/Ctrl-C."""

    def __init__(self, settings: ProcessorSettings) -> None:
        self.settings = settings
        self.instance = f"{socket.gethostname()}-{os.getpid()}"
        ensure_topics(settings.kafka, settings.topics.specs())
        self.app = Application(
            broker_address=ConnectionConfig.from_librdkafka_dict(settings.kafka.client_config()),
            consumer_group=settings.group,
            auto_offset_reset=settings.auto_offset_reset,
            commit_interval=settings.commit_interval,
            processing_guarantee=settings.guarantee,
            state_dir=settings.state_dir,
            # Models are Python objects: the store keeps them pickled, not as JSON.
            rocksdb_options=RocksDBOptions(dumps=pickle.dumps, loads=pickle.loads),
            loglevel="WARNING",
        )
        self.seed = (load_replay_seed(settings.kafka, settings.topics.models, settings.model_version,
                                      settings.model_spec) if settings.from_replay else None)
        self.cache = ModelCache(self._new_state)
        self.stats = IntervalStats()
        self._last_progress = time.monotonic()
        self._build()

    def _new_state(self, key: str) -> KeyState:
        s = self.settings
        if self.seed is not None:
            return self.seed.state_for(key, s.dataset, s.model_spec, s.model_version, s.metrics_window)
        return KeyState.new(key, s.dataset, s.model_spec, s.model_version, window=s.metrics_window)

    def _build(self) -> None:
        topics = self.settings.topics
        self.raw_topic = self.app.topic(topics.raw, key_deserializer="bytes", value_deserializer="bytes")
        predictions = self.app.topic(topics.predictions, key_serializer="str", value_serializer="json")
        sdf = self.app.dataframe(self.raw_topic)
        sdf = sdf.apply(self._process, stateful=True, metadata=True)
        sdf = sdf.filter(lambda value: value is not None)
        sdf = sdf.to_topic(predictions, key=lambda value: value["key"])
        sdf.sink(CheckpointSink(self._on_checkpoint))

    def run(self, idle_timeout: float = 0.0) -> None:
        """Process until stopped, or, with ``idle_timeout``, until no message came for that long."""
        log.info("processor starting", group=self.settings.group, raw=self.settings.topics.raw,
                 spec=self.settings.model_spec, version=self.settings.model_version,
                 guarantee=self.settings.guarantee, from_replay=self.settings.from_replay)
        if self.seed is not None:
            self.seed.commit_start_offsets(self.settings.kafka, self.settings.group, self.settings.topics.raw)
        self.app.run(timeout=idle_timeout, collect=False)

    def stop(self) -> None:
        self.app.stop()

    # -- per message ------------------------------------------------------------------
    def _process(self, value: bytes, key: bytes, timestamp: int, headers: Any,
                 state: State) -> dict[str, Any] | None:
        ctx = message_context()
        self.stats.messages += 1
        try:
            model_key = key.decode("utf-8") if key is not None else None
            example = decode(self.settings.dataset, value)
            if model_key is None or example.key != model_key:
                raise InvalidRecord(f"record key {example.key!r} does not match the message key "
                                    f"{model_key!r}")
        except (InvalidRecord, UnicodeDecodeError) as exc:
            self._send_dead_letter(exc, ctx.partition, ctx.offset, key, value)
            return None
        ks = self.cache.get(ctx.partition, model_key, state)
        try:
            result = learn_step(ks, example, ctx.offset)
        except ModelError as exc:
            log.error("model failed on a message; sent to the dead-letter topic", key=model_key,
                      partition=ctx.partition, offset=ctx.offset, reason=exc.reason)
            self._send_dead_letter(exc, ctx.partition, ctx.offset, key, value)
            return None
        if result is None:
            return None
        processed = now_ms()
        if example.ts is not None:
            self.stats.latencies_ms.append(processed - example.ts)
        return prediction(ks, example, result, ctx.partition, ctx.offset, processed)

    def _send_dead_letter(self, exc: Exception, partition: int, offset: int, key: bytes | None,
                          value: bytes | None) -> None:
        self.stats.invalid += 1
        detail = exc.to_dict() if isinstance(exc, InvalidRecord) else {}
        reason = exc.reason if isinstance(exc, InvalidRecord) else f"key is not UTF-8: {exc}"
        record = dead_letter(reason, topic=self.settings.topics.raw, partition=partition,
                             offset=offset, key=key, value=value, detail=detail)
        # The application's own producer: under exactly-once this joins the open transaction.
        self.app._producer.produce(self.settings.topics.dlq, value=record, key=key)  # noqa: SLF001

    # -- per checkpoint ---------------------------------------------------------------
    def _on_checkpoint(self) -> None:
        """Persist dirty models and publish their metrics and snapshots, inside the checkpoint."""
        flushed = self.cache.flush()
        ts = now_ms()
        producer = self.app._producer  # noqa: SLF001 - see _send_dead_letter
        topics = self.settings.topics
        for _partition, ks in flushed:
            producer.produce(topics.metrics, key=ks.key, value=json.dumps(key_metrics(ks, ts)))
            snapshot = Snapshot(
                key=ks.key, version=ks.version, spec=ks.spec, origin="live",
                partition=_partition, offset=ks.last_offset, learned=ks.learned,
                fingerprint=fingerprint(ks.model), model=ks.model, created_at=ts,
            )
            producer.produce(topics.models, key=snapshot_key(ks.version, ks.key), value=snapshot.encode())
        if flushed or self.stats.messages:
            overall = self._overall(ts)
            producer.produce(topics.metrics, key="__overall__", value=json.dumps(overall))
            self._log_progress(overall)

    def _overall(self, ts: int) -> dict[str, Any]:
        states = self.cache.states()
        cumulative = [m for m in (ks.metrics.get() for ks in states) if m["n"]]
        n = sum(m["n"] for m in cumulative)
        interval = self.stats.take()
        return {
            "scope": "overall",
            "key": "__overall__",
            "version": self.settings.model_version,
            "spec": self.settings.model_spec,
            "instance": self.instance,
            "keys": len(states),
            "learned": sum(ks.learned for ks in states),
            "skipped": sum(ks.skipped for ks in states),
            "invalid": interval["invalid_total"],
            # Exact pooled values of the per-key cumulative metrics.
            "rmse": math.sqrt(sum(m["n"] * m["rmse"] ** 2 for m in cumulative) / n) if n else None,
            "mae": sum(m["n"] * m["mae"] for m in cumulative) / n if n else None,
            "throughput": interval["throughput"],
            "latency_ms": interval["latency_ms"],
            "ts": ts,
        }

    def _log_progress(self, overall: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self._last_progress < self.settings.progress_interval:
            return
        self._last_progress = now
        log.info("progress", learned=overall["learned"], skipped=overall["skipped"],
                 invalid=overall["invalid"], keys=overall["keys"], rate=overall["throughput"],
                 rmse=overall["rmse"] and round(overall["rmse"], 3),
                 latency_p99_ms=overall["latency_ms"].get("p99"))

"""What the processor publishes at every checkpoint, inside its transaction: the dirty keys'
states (into the store), their metrics and snapshots, the overall metrics and the comparison."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kappaml.fingerprint import fingerprint, state_fingerprint
from kappaml.learner import KeyState
from kappaml.logging import get_logger
from kappaml.records import CHALLENGER, CHAMPION, COMPARISON_KEY, OVERALL_KEY, Comparison, OverallMetrics
from kappaml.snapshot import Snapshot, snapshot_key
from processor.outputs import key_metrics, label_figures, now_ms, pooled_metrics, spec_figures

if TYPE_CHECKING:
    from processor.app import Processor

__all__ = ["CheckpointWriter"]

log = get_logger("processor.app")


class CheckpointWriter:
    """The processor's per-checkpoint work; reads the processor's state, never changes its models."""

    def __init__(self, processor: Processor) -> None:
        self.p = processor
        self._last_progress = time.monotonic()

    def on_checkpoint(self) -> None:
        """Persist dirty models and publish their metrics and snapshots, inside the checkpoint."""
        timer = self.p.timer
        timer.start()
        # Both read this interval's figures before _overall starts the next interval of self.p.stats.
        self.p.metrics.on_checkpoint()
        self.p.duplicates.learned += self.p.stats.learned + self.p.stats.served
        flushed = self.p.cache.flush()
        timer.lap("states")
        ts = now_ms()
        producer = self.p.producer
        topics, lineup = self.p.settings.topics, self.p.lineup
        champions = self.p.champions.current()
        for partition, states in flushed:
            champion = champions.get(partition, lineup.champion)
            for spec, ks in states.items():
                role = "champion" if spec == champion else "challenger"
                producer.produce(topics.metrics, key=ks.key, value=key_metrics(ks, ts, role).encode())
                snapshot = Snapshot(
                    key=ks.key, version=ks.version, spec=spec, origin="live", partition=partition,
                    offset=ks.last_offset, learned=ks.learned, fingerprint=fingerprint(ks.model),
                    model=ks.model, created_at=ts, extra=self._snapshot_extra(ks),
                )
                label = "" if spec == lineup.champion else spec
                producer.produce(topics.models, key=snapshot_key(ks.version, ks.key, label),
                                 value=snapshot.encode())
        self.p.champions.checkpoint(self.p.store_transaction)
        timer.lap("snapshots")
        if flushed or self.p.stats.messages:
            due = time.monotonic() - self._last_progress >= self.p.settings.progress_interval
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

    @staticmethod
    def _snapshot_extra(ks: KeyState) -> dict[str, Any]:
        extra: dict[str, Any] = {"generation": ks.generation, "drifts": ks.drifts}
        if ks.labels.active:
            # The model and the pending/early ids: equal to the replay's and the sequential loop's.
            extra.update(state_fingerprint=state_fingerprint(ks), pending=len(ks.labels.pending),
                         expired=ks.labels.expired, features_served=ks.labels.served)
        return extra

    def _serving(self, champions: dict[int, str]) -> list[KeyState]:
        champion = self.p.lineup.champion
        return [states[champions.get(p, champion)] for p, states in self.p.cache.states()]

    def _overall(self, ts: int, champions: dict[int, str], *, timing: bool = False) -> OverallMetrics:
        every = [ks for _p, states in self.p.cache.states() for ks in states.values()]
        serving_states = self._serving(champions)
        labels = self.p.settings.labels
        served = pooled_metrics(list(self.p.champions.served.values()))
        interval = self.p.stats.take()
        skipped = sum(ks.skipped for ks in serving_states)
        return OverallMetrics(
            version=self.p.settings.model_version,
            spec=self.p.settings.model_spec,
            champions={str(p): spec for p, spec in champions.items()},
            challengers=list(self.p.lineup.challengers),
            instance=self.p.instance,
            keys=len(self.p.cache),
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
            duplicates=self.p.duplicates.update(skipped),
            timing=({"checkpoint_ms": self.p.timer.summary(), "gc": self.p.gc_pauses.summary()}
                    if timing else None),
            label_ttl=labels.ttl_text, on_missing_label=labels.on_missing_text,
            **label_figures(serving_states),
        )

    def _comparison(self, ts: int, champions: dict[int, str]) -> Comparison:
        """Every spec's pooled metrics over the same messages: champion and challengers side by side."""
        by_spec: dict[str, list[KeyState]] = {spec: [] for spec in self.p.lineup.specs}
        for _p, states in self.p.cache.states():
            for spec, ks in states.items():
                by_spec.setdefault(spec, []).append(ks)
        serving = set(champions.values()) or {self.p.lineup.champion}
        return Comparison(
            version=self.p.settings.model_version, instance=self.p.instance,
            champions={str(p): spec for p, spec in champions.items()},
            specs={spec: spec_figures(states, CHAMPION if spec in serving else CHALLENGER,
                                      self.p.learn_cost.micros(spec))
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

"""The function Spark runs on its workers: stream a task's records through per-key replays.

Each task gets its records in Arrow batches (``mapInArrow``), every key's records in offset
order; :class:`spark_batch.rebuild.KeyReplay` does the per-key work, this module the routing
of records to keys, the outputs (a prediction file per task, a few rows back to Spark) and
the progress lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from kappaml.background import GenerationRollback
from kappaml.lineup import CONTROL_KEY_BYTES, Lineup, Promotion, PromotionLog
from kappaml.logging import configure_logging, get_logger
from kappaml.pending import NO_TTL, LabelPolicy
from kappaml.records import InvalidRecord
from kappaml.records.control import TAKEOVER
from spark_batch.rebuild import KeyReplay
from spark_batch.rows import OutputRows, PredictionFile, PredictionRows

__all__ = ["StreamRebuild"]

_PROGRESS_EVERY_S = 5.0
Slot = tuple[int, bytes | None]  # (Kafka partition, raw key): the processor's unit of state


@dataclass(frozen=True)
class StreamRebuild:
    """The function Spark runs per partition of the job (``mapInArrow``), picklable.

    Its input is the records of that partition in Arrow batches, each key's records in offset
    order. ``clustered``: the records are also grouped by (partition, key) (the job shuffled
    and sorted them), so a key is finished, its model row emitted and its state dropped as soon
    as the next key starts: a worker holds one key's state at a time. Not clustered: the
    records come straight from one Kafka partition, keys interleaved as the processor sees
    them, and every key of the partition stays live until the end. Order and clustering are
    checked, not assumed. Control records (promotions) are not data: they are passed on as
    ``control`` rows, for the driver to apply. Each task writes its predictions to a file in
    ``predictions_dir`` (a folder the workers and the driver share) and names it in its output.
    """

    lineup: Lineup
    predictions_dir: str
    clustered: bool = True
    end_offsets: Mapping[int, int] | None = None
    rows_total: int = 0
    log_level: str = "INFO"
    log_json: bool | None = None
    declared: frozenset[str] | None = None  # the data set names the log declares (DLQ reasons)
    # Drift policy background: the range's control records (partition, offset, value), read
    # before the rebuild (job.control_records): who serves a record is PromotionLog's answer,
    # since a gate's promotion serves from its ``after``, before its own record comes.
    controls: tuple[tuple[int, int, bytes | None], ...] = ()
    labels: LabelPolicy = NO_TTL  # --label-ttl / --on-missing-label, the processor's

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        configure_logging(self.log_level, json=self.log_json)
        progress = _TaskProgress(self.rows_total)
        finished: set[Slot] = set()
        live: dict[Slot, KeyReplay] = {}
        current: KeyReplay | None = None
        slot: Slot | None = None
        predictions = PredictionFile(Path(self.predictions_dir))
        # Drift policy background (never clustered then, see job.arrange): who serves each
        # record, by the processor's rules (PromotionLog), and the takeovers and rollbacks to a
        # generation applied to their keys in offset order.
        background = self.lineup.drift is not None and self.lineup.drift.policy == "background"
        promotions = PromotionLog(self.lineup, self.controls) if background else None
        rollbacks: dict[int, list[GenerationRollback]] = {}  # rollbacks to a generation, per partition
        for batch in batches:
            progress.busy()
            out, rows = OutputRows(), PredictionRows()
            keys, partitions, offsets, values = (batch.column(name).to_pylist()
                                                 for name in ("key", "partition", "offset", "value"))
            for raw, partition, offset, value in zip(keys, partitions, offsets, values, strict=True):
                if raw == CONTROL_KEY_BYTES:
                    out.control(partition, offset, value)
                    if background:
                        _control(self.lineup.version, live, rollbacks, partition, offset, value)
                    continue
                this = (partition, raw)
                if this != slot:
                    if self.clustered and current is not None and slot is not None:
                        current.finish(out)
                        finished.add(slot)
                        del live[slot]
                        progress.key_done()
                    if this in finished:
                        raise RuntimeError(f"records of key {raw!r} (partition {partition}) arrived "
                                           "in two runs: the input is not clustered by key")
                    slot = this
                    current = live.get(this)
                    if current is None:
                        current = live[this] = KeyReplay(raw, partition, self.lineup, self.end_offsets,
                                                         self.declared, self.labels)
                assert current is not None
                if promotions is not None:
                    current.step(offset, value, rows, promotions.champion_at(partition, offset),
                                 rollbacks.get(partition))
                else:
                    current.step(offset, value, rows)
            predictions.write(rows)
            progress.rows_done(len(offsets))
            result = out.batch()
            progress.idle()
            if len(out):
                yield result
        progress.busy()
        out = OutputRows()
        for replay in live.values():
            replay.finish(out)
            progress.key_done()
        predictions.close(out)
        result = out.batch()
        progress.idle()
        progress.log(final=True)
        yield result

    def as_udf(self) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
        """A plain function: pyspark inspects the arguments of what it is given, and counts
        ``self`` in those of a callable object."""

        def rebuild_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            return self(batches)

        return rebuild_partition


def _control(version: str, live: dict[Slot, KeyReplay], rollbacks: dict[int, list[GenerationRollback]],
             partition: int, offset: int, value: bytes | None) -> None:
    """A control record read in offset order: a takeover of one key's model or a rollback to a
    generation (applied to each key before its next record, as the processor does). Promotions
    of a spec are PromotionLog's, read before (StreamRebuild.controls)."""
    try:
        promotion = Promotion.decode(value)
    except InvalidRecord:
        return  # the driver reports it (kappaml.lineup.PromotionLog)
    if promotion.version == version and promotion.generation is not None:
        if promotion.reason == TAKEOVER:
            replay = live.get((partition, (promotion.key or "").encode("utf-8")))
            if replay is not None:
                replay.take_over(promotion.spec, promotion.generation, rollbacks.get(partition), offset)
        else:
            rollbacks.setdefault(partition, []).append((offset, promotion.spec, promotion.generation))


class _TaskProgress:
    """Rows and keys finished by one Spark task, logged every few seconds and at its end.

    Also where the task's time goes: ``busy_s`` in the replay's own code, the rest of
    ``task_s`` in pyspark (Arrow batches in and out) or waiting for the JVM; ``cpu_s``: the
    worker's CPU time (less than ``busy_s`` when the cores are shared with the JVM).
    """

    def __init__(self, rows_total: int) -> None:
        self.rows_total = rows_total
        self.keys = 0
        self.rows = 0
        self.began = self.last = time.monotonic()
        self.cpu_began = time.process_time()
        self.busy_s = 0.0
        self._busy_since: float | None = None
        self.log_ = get_logger("spark_batch.worker")

    def busy(self) -> None:
        self._busy_since = time.monotonic()

    def idle(self) -> None:
        if self._busy_since is not None:
            self.busy_s += time.monotonic() - self._busy_since
            self._busy_since = None

    def key_done(self) -> None:
        self.keys += 1

    def rows_done(self, n: int) -> None:
        self.rows += n
        if time.monotonic() - self.last >= _PROGRESS_EVERY_S:
            self.log()

    def log(self, final: bool = False) -> None:
        self.last = time.monotonic()
        # rows_total: the whole replay's, every task shares it; a task does its part of it.
        self.log_.info("replay task done" if final else "replay progress (this task)",
                       rows_done=self.rows, rows_total=self.rows_total, keys_done=self.keys,
                       busy_s=round(self.busy_s, 2), task_s=round(self.last - self.began, 2),
                       cpu_s=round(time.process_time() - self.cpu_began, 2))

"""The function Spark runs on its workers: stream a task's records through per-key replays.

Each task gets its records in Arrow batches (``mapInPandas``), every key's records in offset
order; :class:`spark_batch.rebuild.KeyReplay` does the per-key work, this module the routing
of records to keys, the output batches and the progress lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import pandas as pd

from kappaml.lineup import CONTROL_KEY_BYTES, Lineup, PromotionLog
from kappaml.logging import configure_logging, get_logger
from spark_batch.rebuild import KeyReplay, OutputRows

__all__ = ["StreamRebuild"]

_PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True)
class StreamRebuild:
    """The function Spark runs per partition of the job (``mapInPandas``), picklable.

    Its input is the records of that partition in Arrow batches, each key's records in offset
    order. ``clustered``: the records are also grouped by (partition, key) (the job shuffled
    and sorted them), so a key is finished, its model row emitted and its state dropped as soon
    as the next key starts: a worker holds one key's state at a time. Not clustered: the
    records come straight from one Kafka partition, keys interleaved as the processor sees
    them, and every key of the partition stays live until the end. Order and clustering are
    checked, not assumed. Control records (promotions) are skipped: the driver read them
    first, into ``promotions``.
    """

    lineup: Lineup
    promotions: PromotionLog | None = None
    clustered: bool = True
    end_offsets: Mapping[int, int] | None = None
    rows_total: int = 0
    log_level: str = "INFO"
    log_json: bool | None = None

    def __call__(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        configure_logging(self.log_level, json=self.log_json)
        progress = _TaskProgress(self.rows_total)
        finished: set[tuple[int, bytes | None]] = set()
        live: dict[tuple[int, bytes | None], KeyReplay] = {}
        current: KeyReplay | None = None
        slot: tuple[int, bytes | None] | None = None
        for pdf in batches:
            out = OutputRows()
            keys = pdf["key"].to_numpy()
            partitions = pdf["partition"].to_numpy().tolist()
            offsets = pdf["offset"].to_numpy().tolist()
            values = pdf["value"].to_numpy()
            for i, offset in enumerate(offsets):
                raw = keys[i]
                if raw == CONTROL_KEY_BYTES:
                    continue
                this = (partitions[i], None if raw is None else bytes(raw))
                if this != slot:
                    if self.clustered and current is not None and slot is not None:
                        current.finish(out)
                        finished.add(slot)
                        del live[slot]
                        progress.key_done()
                    if this in finished:
                        raise RuntimeError(f"records of key {this[1]!r} (partition {this[0]}) arrived "
                                           "in two runs: the input is not clustered by key")
                    slot = this
                    current = live.get(this)
                    if current is None:
                        current = live[this] = KeyReplay(raw, this[0], self.lineup, self.promotions,
                                                         self.end_offsets)
                assert current is not None
                current.step(offset, values[i], out)
            progress.rows_done(len(offsets))
            yield out.frame()
        out = OutputRows()
        for replay in live.values():
            replay.finish(out)
            progress.key_done()
        yield out.frame()
        progress.log(final=True)

    def as_udf(self) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
        """A plain function: pyspark inspects the arguments of what it is given, and counts
        ``self`` in those of a callable object."""

        def rebuild_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            return self(batches)

        return rebuild_partition


class _TaskProgress:
    """Rows and keys finished by one Spark task, logged every few seconds and at its end."""

    def __init__(self, rows_total: int) -> None:
        self.rows_total = rows_total
        self.keys = 0
        self.rows = 0
        self.last = time.monotonic()
        self.log_ = get_logger("spark_batch.worker")

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
                       rows_done=self.rows, rows_total=self.rows_total, keys_done=self.keys)

"""The Spark side of the replay: Kafka batch read of the pinned range, per-key rebuild, output.

Keys are independent: a few tasks (one Python worker each) rebuild their keys in parallel,
one task per Kafka partition or, when that is too few, per shuffle partition of (partition,
key) (see :func:`arrange`); within a key the rows are replayed strictly in offset order by
:class:`spark_batch.stream.StreamRebuild`. One global model is one key, hence one task.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from kappaml.lineup import CONTROL_KEY_BYTES
from kappaml.logging import get_logger
from spark_batch.offsets import OffsetRange
from spark_batch.rows import INPUT_COLUMNS, OUTPUT_SCHEMA
from spark_batch.settings import ReplaySettings
from spark_batch.stream import StreamRebuild

__all__ = ["StageProgress", "arrange", "control_records", "read_raw", "rebuild", "write_output"]

log = get_logger(__name__)


def read_raw(spark: SparkSession, settings: ReplaySettings, pinned: OffsetRange) -> DataFrame:
    """The pinned range of the raw topic, committed records only, as (key, partition, offset, value)."""
    reader = spark.read.format("kafka")
    for k, v in settings.kafka.spark_options().items():
        reader = reader.option(k, v)
    return (
        reader.option("assign", pinned.assign_json())
        .option("startingOffsets", pinned.spark_json("start"))
        .option("endingOffsets", pinned.spark_json("end"))
        .option("kafka.isolation.level", "read_committed")
        # The range was pinned a moment ago: records missing from it now were deleted by
        # retention mid-replay, and a silently shorter replay would give other models.
        .option("failOnDataLoss", "true")
        .load()
        .select(*INPUT_COLUMNS)
    )


def control_records(raw: DataFrame) -> list[tuple[int, int, bytes | None]]:
    """(partition, offset, value) of the range's control records, read before the rebuild.

    Only for drift policy background: its tasks follow the serving spec record by record, and
    a gate's promotion serves from the offset it was decided at (its ``after``), before the
    control record itself comes in the stream. One more read of the range by Spark, no Python
    per record: the filter runs in the JVM.
    """
    control = raw.where(F.col("key") == F.lit(CONTROL_KEY_BYTES))
    rows = control.select("partition", "offset", "value").collect()
    return [(r["partition"], r["offset"], None if r["value"] is None else bytes(r["value"])) for r in rows]


def arrange(raw: DataFrame, settings: ReplaySettings, pinned: OffsetRange) -> tuple[DataFrame, bool]:
    """The records laid out for the rebuild tasks, and whether each task's keys are clustered.

    Spark's Kafka source makes one task per Kafka partition, records in offset order: that is
    the processor's own unit of order and state, so with at least as many partitions holding
    data as parallel tasks wanted, the records are rebuilt straight from it (keys interleaved,
    no shuffle). With fewer (one busy partition, or a cluster with more cores than partitions),
    they are shuffled by (partition, key) into ``shuffle_partitions`` tasks and sorted so each
    key's records are together and in offset order: per-key work then scales with executors.
    """
    busy = sum(1 for p in pinned.partitions if pinned.end[p] > pinned.start[p])
    # One global model is one key: a shuffle could not spread it over more tasks. Drift policy
    # background: a takeover is a control record the key's task must read in offset order
    # among the key's records, and the serving spec (whose drift starts a background model)
    # follows the partition's promotions: one task per Kafka partition, as the processor.
    background = settings.lineup.drift is not None and settings.lineup.drift.policy == "background"
    if settings.shuffle_partitions <= busy or settings.lineup.dataset.key is None or background:
        return raw, False
    shuffled = raw.repartition(settings.shuffle_partitions, "partition", "key").sortWithinPartitions(
        "partition", "key", "offset"
    )
    return shuffled, True


def rebuild(records: DataFrame, settings: ReplaySettings, clustered: bool, pinned: OffsetRange,
            predictions_dir: Path, controls: list[tuple[int, int, bytes | None]] | None = None) -> DataFrame:
    """Stream each task's records through ``apply_record`` (``mapInArrow``), in offset order.

    Not ``groupBy(key).applyInPandas``: that pays pyspark's per-group cost (a DataFrame in
    and out, Arrow conversions) for every key, measured at ~9 ms, i.e. 9 s per 1,000 keys on
    two cores, and holds a whole key in memory, i.e. everything for one global model. Not
    ``mapInPandas`` either: converting every batch to pandas and back cost more than the
    records' own plumbing (Arrow batches become Python lists in C).
    """
    fn = StreamRebuild(
        lineup=settings.lineup, predictions_dir=str(predictions_dir.resolve()), clustered=clustered,
        end_offsets=dict(pinned.end), rows_total=pinned.span,
        log_level=settings.log_level, log_json=settings.log_json, declared=settings.declared,
        labels=settings.labels, controls=tuple(controls or ()),
    )
    return records.mapInArrow(fn.as_udf(), OUTPUT_SCHEMA)


def write_output(result: DataFrame, staging: Path) -> None:
    """The one Spark action of the replay: the tasks' output rows, split by kind into folders
    (``kind=model``: one row per key and spec with its snapshot, ``kind=file``: the prediction
    files the tasks wrote, ``kind=control``: the control records, if any)."""
    result.write.mode("overwrite").partitionBy("kind").parquet(str(staging))


class StageProgress:
    """Logs Spark's task progress every few seconds while the driver waits on an action."""

    def __init__(self, spark: SparkSession, every: float = 5.0) -> None:
        self._tracker = spark.sparkContext.statusTracker()
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replay-progress", daemon=True)

    def __enter__(self) -> StageProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._every)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                stages = [self._tracker.getStageInfo(s) for s in self._tracker.getActiveStageIds()]
            except Exception:  # the JVM may be shutting down; progress is best effort
                return
            for st in filter(None, stages):
                log.info("spark progress", stage=st.stageId, tasks_done=st.numCompletedTasks,
                         tasks_active=st.numActiveTasks, tasks_total=st.numTasks)

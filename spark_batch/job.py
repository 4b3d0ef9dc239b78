"""The Spark side of the replay: session, Kafka batch read of the pinned range, per-key rebuild.

Keys are independent: the records are shuffled by (partition, key) into a few tasks (one
Python worker each) that rebuild their keys in parallel; within a key the rows are replayed
strictly in offset order by :class:`spark_batch.rebuild.StreamRebuild`. One global model is
one key, hence one task.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark import SparkConf, StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from kappaml.logging import get_logger
from spark_batch.offsets import OffsetRange
from spark_batch.rebuild import INPUT_COLUMNS, OUTPUT_SCHEMA, StreamRebuild
from spark_batch.settings import ReplaySettings

__all__ = ["KeyCounts", "ReplayRun", "StageProgress", "by_key", "count_keys", "read_raw", "rebuild",
           "spark_session", "under_spark_submit"]

log = get_logger(__name__)


def under_spark_submit() -> bool:
    # spark-submit's Python runner hands its JVM to the script through this variable.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def spark_session(settings: ReplaySettings, jars: list[Path]) -> SparkSession:
    """A session for the replay; settings spark-submit already fixed (master, jars) are kept."""
    # Python workers default to `python3` on PATH, which may lack pandas, River and kappaml:
    # they run this interpreter unless the user chose one.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    given = SparkConf()
    builder = SparkSession.builder.appName(f"kappaml-replay-{settings.version}")
    if not given.contains("spark.master"):
        builder = builder.master(settings.master)
    master = given.get("spark.master", settings.master)
    if not under_spark_submit():
        # Only effective while Python still launches the JVM itself (python replay.py).
        builder = builder.config("spark.driver.memory", settings.driver_memory)
        builder = builder.config("spark.jars", ",".join(str(j) for j in jars))
    if master.startswith("local"):
        # Local mode talks to itself only: never bind or advertise a network interface.
        builder = builder.config("spark.driver.host", "127.0.0.1")
        builder = builder.config("spark.driver.bindAddress", "127.0.0.1")
    defaults = {
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        # AQE would merge small key groups into one partition, i.e. one task for every key.
        "spark.sql.adaptive.coalescePartitions.enabled": "false",
        "spark.ui.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
    }
    for k, v in {**defaults, **settings.spark_conf}.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR" if settings.log_level in ("WARNING", "ERROR") else "WARN")
    return spark


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


def by_key(raw: DataFrame, settings: ReplaySettings) -> DataFrame:
    """The raw rows shuffled once by (partition, key), each key's rows together and in offset
    order, cached: counting the keys and rebuilding them share one Kafka read and one shuffle."""
    return (
        raw.repartition(settings.shuffle_partitions, "partition", "key")
        .sortWithinPartitions("partition", "key", "offset")
        .persist(StorageLevel.MEMORY_AND_DISK)
    )


@dataclass(frozen=True)
class KeyCounts:
    keys: int
    rows: int


def count_keys(raw: DataFrame) -> KeyCounts:
    groups = raw.groupBy("partition", "key").count()
    row = groups.agg(F.count("*").alias("keys"), F.sum("count").alias("rows")).first()
    return KeyCounts(keys=int(row["keys"] or 0), rows=int(row["rows"] or 0))


@dataclass
class ReplayRun:
    """The persisted output of the per-key rebuild, read by several actions without recomputing."""

    result: DataFrame
    source: DataFrame

    def rows(self) -> DataFrame:
        return self.result.filter(F.col("kind") == "row").drop("kind", "snapshot", "summary")

    def models(self) -> Iterator[Any]:
        # One row per key, streamed partition by partition so the driver never holds them all.
        models = self.result.filter(F.col("kind") == "model").select("key", "snapshot", "summary")
        return models.toLocalIterator()

    def release(self) -> None:
        self.result.unpersist()
        self.source.unpersist()


def rebuild(keyed: DataFrame, settings: ReplaySettings, keys_total: int) -> ReplayRun:
    """Stream each task's keys through ``learn_step`` (``mapInPandas``, in the sorted order).

    Not ``groupBy(key).applyInPandas``: that pays pyspark's per-group cost (a DataFrame in
    and out, Arrow conversions) for every key, measured at ~9 ms, i.e. 9 s per 1,000 keys on
    two cores, and holds a whole key in memory, i.e. everything for one global model.
    """
    fn = StreamRebuild(
        dataset=settings.dataset, spec=settings.spec, version=settings.version,
        window=settings.metrics_window, keys_total=keys_total, log_level=settings.log_level,
        log_json=settings.log_json,
    )
    result = keyed.mapInPandas(fn.as_udf(), OUTPUT_SCHEMA)
    return ReplayRun(result.persist(StorageLevel.MEMORY_AND_DISK), keyed)


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

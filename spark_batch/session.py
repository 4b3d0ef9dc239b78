"""The replay's Spark session, started in the background while the driver gets ready.

Starting the session (the SparkContext in the JVM) takes seconds of waiting for the JVM, and
so does the driver's own start (importing River, pyarrow and kappaml, pinning the offsets):
:func:`start_session` overlaps the two. This module imports pyspark only, so it can be
imported and started first.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from pyspark import SparkConf
from pyspark.sql import SparkSession

from spark_batch.settings import ReplaySettings

__all__ = ["spark_session", "start_session", "under_spark_submit"]


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
        # The output folders (models, files, control) written side by side, instead of sorting
        # the whole output by kind first, which a partitioned write does by default.
        "spark.sql.maxConcurrentOutputFileWriters": "3",
        # Workers forked from a daemon that imported the replay's modules once (see there).
        "spark.python.daemon.module": "spark_batch.daemon",
    }
    for k, v in {**defaults, **settings.spark_conf}.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR" if settings.log_level in ("WARNING", "ERROR") else "WARN")
    return spark


def start_session(settings: ReplaySettings, jars: list[Path]) -> Future[SparkSession]:
    """:func:`spark_session` in a thread; ``result()`` gives the session or raises its error."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spark-session")
    try:
        return pool.submit(spark_session, settings, jars)
    finally:
        pool.shutdown(wait=False)  # the thread ends with the call

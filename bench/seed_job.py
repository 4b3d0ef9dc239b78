"""The seed design, reproduced: Spark Structured Streaming + scikit-learn SGDRegressor per micro-batch.

Run by ``bench/seed_design.py`` through ``spark-submit`` (local[2]). It reads the raw topic
(read_committed), parses the JSON record, and in ``foreachBatch`` does what the seed did: the
micro-batch goes to pandas, the model predicts it (prequential: before learning it; the first
batch, before any fit, is predicted as 0), then ``SGDRegressor.partial_fit`` learns it on the
unscaled features, once. Predictions go to ``--out-topic`` as JSON with the record's event time;
per-batch timings and squared errors go to ``--stats`` (JSON lines). Self-contained on purpose:
nothing from kappaml is imported.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from confluent_kafka import Producer
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, DoubleType, LongType, StringType, StructField, StructType
from sklearn.linear_model import SGDRegressor


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--out-topic", required=True)
    p.add_argument("--features", required=True, help='JSON list of [name, "numeric"|"boolean"]')
    p.add_argument("--target", required=True)
    p.add_argument("--stats", type=Path, required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--ready", type=Path, required=True, help="touched once the query has started")
    p.add_argument("--expect", type=int, required=True, help="stop after this many rows")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--max-offsets", type=int, default=0, help="maxOffsetsPerTrigger (0: Spark's default)")
    args = p.parse_args()
    features = [(name, kind) for name, kind in json.loads(args.features)]
    if any(kind not in ("numeric", "boolean") for _, kind in features):
        sys.stderr.write("the seed design only knows numeric and boolean features\n")
        return 2

    spark = SparkSession.builder.appName("seed-design").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    row_type = StructType(
        [StructField(n, BooleanType() if k == "boolean" else DoubleType()) for n, k in features]
        + [StructField(args.target, DoubleType())]
    )
    schema = StructType(
        [
            StructField("id", LongType()),
            StructField("key", StringType()),
            StructField("ts", LongType()),
            StructField("row", row_type),
        ]
    )
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", args.bootstrap)
        .option("subscribe", args.topic)
        .option("startingOffsets", "earliest")
        .option("kafka.isolation.level", "read_committed")
        .option("failOnDataLoss", "false")
    )
    if args.max_offsets > 0:
        reader = reader.option("maxOffsetsPerTrigger", args.max_offsets)
    parsed = reader.load().select(F.from_json(F.col("value").cast("string"), schema).alias("r"))
    cols = [F.col("r.id").alias("id"), F.col("r.ts").alias("ts")]
    cols += [F.col("r.row").getField(n).cast("double").alias(n) for n, _ in features]
    cols.append(F.col("r.row").getField(args.target).alias("y"))
    table = parsed.select(*cols)

    model = SGDRegressor()
    fitted = False
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 5})
    total = 0
    stats = args.stats.open("a")
    names = [n for n, _ in features]

    def on_batch(batch_df, batch_id: int) -> None:
        nonlocal fitted, total
        start = time.time()
        pdf = batch_df.toPandas()
        if pdf.empty:
            return
        x, y = pdf[names].to_numpy(dtype=float), pdf["y"].to_numpy(dtype=float)
        predicted = model.predict(x) if fitted else np.zeros(len(y))
        fit_error = None
        try:
            model.partial_fit(x, y)
            fitted = True
        except ValueError as exc:  # sklearn refuses non-finite weights once SGD has diverged
            fit_error = str(exc)[:200]
        for rid, ts, yt, yp in zip(pdf["id"], pdf["ts"], y, predicted, strict=True):
            producer.produce(
                args.out_topic,
                value=json.dumps(
                    {"id": int(rid), "event_ts": int(ts), "y_true": float(yt), "y_pred": float(yp)}
                ),
            )
            producer.poll(0)
        producer.flush(30)
        with np.errstate(over="ignore", invalid="ignore"):
            sse = float(np.sum((y - predicted) ** 2))
        total += len(pdf)
        stats.write(
            json.dumps(
                {
                    "batch": batch_id,
                    "rows": len(pdf),
                    "start": start,
                    "end": time.time(),
                    "sse": sse if math.isfinite(sse) else None,
                    "fit_error": fit_error,
                }
            )
            + "\n"
        )
        stats.flush()

    query = table.writeStream.foreachBatch(on_batch).option("checkpointLocation", args.checkpoint).start()
    args.ready.write_text(str(time.time()))
    deadline = time.monotonic() + args.timeout
    while total < args.expect and time.monotonic() < deadline and query.isActive:
        time.sleep(0.05)
    query.stop()
    stats.close()
    spark.stop()
    return 0 if total >= args.expect else 1


if __name__ == "__main__":
    sys.exit(main())

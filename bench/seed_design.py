"""Baseline: the seed design (Spark Structured Streaming + SGDRegressor.partial_fit per micro-batch).

    python -m bench.seed_design [--messages 20000] [--bootstrap HOST:PORT]

The job itself is bench/seed_job.py, run with ``spark-submit`` (local[2]) and the Kafka
connector jars ``spark_batch`` resolves. Measured here:

- throughput: rows/s over a backlog of synthetic CO2 records, from the first micro-batch's
  start to the last one's end (Spark's start-up is reported apart), Spark's default trigger and
  no ``maxOffsetsPerTrigger``, as the seed ran;
- prequential RMSE on the real CO2 CSV: each micro-batch predicted before it is learned, in the
  Spark job (file order, ``maxOffsetsPerTrigger`` = 1,000, one second of data at 1,000 msg/s),
  and the same per-batch computation in memory over the file order and shuffles;
- latency at a steady rate: bench/latency.py runs this job as its "processor".
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.memory import TreePeak
from kappaml.dataset import Dataset
from kappaml.kafka import KafkaSettings
from kappaml.topics import TopicSpec, ensure_topics

REPO = Path(__file__).resolve().parents[1]
JOB = Path(__file__).with_name("seed_job.py")
RMSE_BATCH = 1000


@dataclass(frozen=True)
class SeedRun:
    cmd: list[str]
    env: dict[str, str]
    stats: Path
    ready: Path
    out_topic: str


def prepare(
    kafka: KafkaSettings, topic: str, dataset: Dataset, work: Path, expect: int, max_offsets: int = 0
) -> SeedRun:
    from spark_batch.connector import connector_jars

    if any(f.kind not in ("numeric", "boolean") for f in dataset.features):
        raise ValueError("the seed design only handles numeric and boolean features")
    run = work / f"seed-{uuid.uuid4().hex[:8]}"
    run.mkdir(parents=True)
    out_topic = f"{topic}.seed-predictions"
    ensure_topics(kafka, [TopicSpec(out_topic, 1)])
    spark_submit = Path(sys.executable).with_name("spark-submit")
    jars = ",".join(str(j) for j in connector_jars())
    features = json.dumps([[f.name, f.kind] for f in dataset.features])
    cmd = [
        str(spark_submit),
        "--master",
        "local[2]",
        "--jars",
        jars,
        "--conf",
        "spark.driver.host=127.0.0.1",
        "--conf",
        "spark.driver.bindAddress=127.0.0.1",
        str(JOB),
        "--bootstrap",
        kafka.bootstrap_servers,
        "--topic",
        topic,
        "--out-topic",
        out_topic,
        "--features",
        features,
        "--target",
        dataset.target,
        "--stats",
        str(run / "stats.jsonl"),
        "--checkpoint",
        str(run / "checkpoint"),
        "--ready",
        str(run / "ready"),
        "--expect",
        str(expect),
        "--max-offsets",
        str(max_offsets),
    ]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    return SeedRun(cmd, env, run / "stats.jsonl", run / "ready", out_topic)


def read_stats(path: Path) -> list[dict]:
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )


def run_to_end(run: SeedRun, timeout: float = 900) -> dict:
    """Run the job until it has processed what it expects; wall time, batches and peak memory."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        run.cmd, env=run.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    with TreePeak(proc.pid) as peak:
        out, _ = proc.communicate(timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"seed job failed ({proc.returncode}):\n{out[-3000:]}")
    batches = read_stats(run.stats)
    return {"wall_s": wall, "batches": batches, "peak_rss_mb": peak.peak_mb}


def throughput(kafka: KafkaSettings, topic: str, dataset: Dataset, n: int, work: Path) -> dict:
    """One run over a backlog of ``n`` records already in ``topic``."""
    result = run_to_end(prepare(kafka, topic, dataset, work, expect=n))
    b = result["batches"]
    rows = sum(x["rows"] for x in b)
    busy = b[-1]["end"] - b[0]["start"]
    return {
        "rows": rows,
        "msg_per_s": rows / max(busy, 1e-3),
        "batches": len(b),
        "wall_s": round(result["wall_s"], 2),
        "peak_rss_mb": result["peak_rss_mb"],
    }


def rmse_spark(kafka: KafkaSettings, topic: str, dataset: Dataset, n: int, work: Path) -> dict:
    result = run_to_end(prepare(kafka, topic, dataset, work, expect=n, max_offsets=RMSE_BATCH))
    return _rmse(result["batches"])


def _rmse(batches: list[dict]) -> dict:
    rows = sum(b["rows"] for b in batches)
    if any(b["sse"] is None for b in batches):
        value = math.inf
        after_first = math.inf
    else:
        value = math.sqrt(sum(b["sse"] for b in batches) / rows)
        rest = rows - batches[0]["rows"]
        after_first = math.sqrt(sum(b["sse"] for b in batches[1:]) / rest) if rest else math.nan
    return {
        "rmse": value,
        "rmse_after_first_batch": after_first,
        "rows": rows,
        "batches": len(batches),
        "fit_errors": sum(1 for b in batches if b.get("fit_error")),
    }


def rmse_in_memory(x: np.ndarray, y: np.ndarray, batch: int = RMSE_BATCH) -> dict:
    """The job's foreachBatch computation without Spark: predict the batch, then partial_fit it."""
    from sklearn.linear_model import SGDRegressor

    model, fitted, batches = SGDRegressor(), False, []
    for i in range(0, len(y), batch):
        xb, yb = x[i : i + batch], y[i : i + batch]
        predicted = model.predict(xb) if fitted else np.zeros(len(yb))
        fit_error = None
        try:
            model.partial_fit(xb, yb)
            fitted = True
        except ValueError as exc:
            fit_error = str(exc)
        with np.errstate(over="ignore", invalid="ignore"):
            sse = float(np.sum((yb - predicted) ** 2))
        batches.append({"rows": len(yb), "sse": sse if math.isfinite(sse) else None, "fit_error": fit_error})
    return _rmse(batches)


def arrays(dataset: Dataset, rows: list[dict], seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    order = list(rows)
    if seed is not None:
        random.Random(seed).shuffle(order)
    names = [f.name for f in dataset.features]
    x = np.array([[float(r[n]) for n in names] for r in order], dtype=float)
    y = np.array([float(r[dataset.target]) for r in order], dtype=float)
    return x, y


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    from bench.harness import broker_or
    from infra.testing import produce_raw, typed_rows
    from kappaml import synthetic
    from kappaml.dataset import builtin
    from kappaml.topics import Topics

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=20_000)
    p.add_argument("--bootstrap")
    args = p.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="kappaml-seed-") as tmp,
        broker_or(args.bootstrap, Path(tmp)) as kafka,
    ):
        work = Path(tmp)
        dataset = builtin("co2")
        topics = Topics(prefix=f"seed{uuid.uuid4().hex[:6]}", raw_partitions=1)
        ensure_topics(kafka, topics.specs())
        csv_path = synthetic.write_csv(work / "rows.csv", args.messages, seed=1)
        produce_raw(kafka, topics.raw, dataset, typed_rows(synthetic.dataset(), csv_path))
        sys.stdout.write(json.dumps(throughput(kafka, topics.raw, dataset, args.messages, work)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

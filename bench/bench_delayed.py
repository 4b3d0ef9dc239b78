"""Delayed labels (issue 17): what waiting for labels costs, in one run.

    python -m bench.bench_delayed [--csv PATH] [--delays 0,100,1000] [--pending 1000000]
                                  [--messages 50000] [--runs 3] [--bootstrap HOST:PORT] [--out FILE]

1. **Accuracy**: the delayed prequential RMSE of the served predictions on the CSV (the CO2 rows by
   default) with labels ``--delays`` rows late, beside the labelled records (learn at once); no
   Kafka, the shared core (``kappaml.learner.apply_record``) as the processor and replay run it.
2. **Pending state**: ``--pending`` served predictions whose label never comes, held by one key:
   bytes per pending prediction in the state store (buckets of 1,024 record numbers, as the
   processor stores them), the time to pickle one bucket and the key state without them (what a
   checkpoint writes for a changed key), the whole state pickled as one value for comparison,
   and the process's RSS growth per pending prediction. Expiry cost per message: ``apply_record`` with a
   row TTL that expires one prediction at every message, against no TTL, same records.
3. **Throughput**: the exactly-once processor over a backlog of ``--messages`` rows, as labelled
   records and as split features + label events (200 rows late), same run, ``--runs`` pairs:
   messages per second and the ratio per message (goal >= 0.8).
"""

from __future__ import annotations

import argparse
import gc
import json
import pickle
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench.harness import broker_or
from bench.machine import cpu_seconds, describe, load_average, others_cpu
from infra.testing import read_all, typed_rows
from kappaml import synthetic
from kappaml.dataset import Dataset, builtin
from kappaml.evaluation import PrequentialMetrics
from kappaml.kafka import KafkaSettings
from kappaml.learner import KeyState, apply_record, learn_step
from kappaml.logging import configure_logging
from kappaml.models import DEFAULT_SPEC
from kappaml.pending import LabelPolicy
from kappaml.records import decode, encode_record, make_features, make_label, make_record, model_key
from kappaml.topics import Topics, ensure_topics
from processor import Processor, ProcessorSettings

SHARED_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "co2_processed.csv"
TS0, TS_STEP = 1_700_000_000_000, 1000


def split(dataset: Dataset, rows: list[dict[str, Any]], delay: int, drop: float = 0.0,
          seed: int = 1) -> list[dict[str, Any]]:
    """Every row as ``features`` now and its ``label`` ``delay`` rows later, in log order."""
    rng = random.Random(seed)
    events: list[tuple[int, int, dict[str, Any]]] = []
    for i, row in enumerate(rows, start=1):
        ts = TS0 + i * TS_STEP
        events.append((i, 1, make_features(dataset, i, row, ts)))
        if rng.random() >= drop:
            events.append((i + delay, 0, make_label(dataset, i, model_key(dataset, row),
                                                    float(row[dataset.target]), ts + delay * TS_STEP)))
    events.sort(key=lambda e: (e[0], e[1]))
    return [record for _pos, _order, record in events]


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def served_rmse(dataset: Dataset, records: list[dict[str, Any]]) -> dict[str, float]:
    """RMSE of the served predictions, scored when their label comes (one global model)."""
    state = KeyState.new("bench", dataset, DEFAULT_SPEC, "bench")
    policy = LabelPolicy()
    for offset, record in enumerate(records):
        value = decode(dataset, encode_record(record))
        if record.get("kind") is None:
            learn_step(state, value, offset)  # type: ignore[arg-type]
        else:
            apply_record(state, value, offset, policy)  # type: ignore[arg-type]
    metrics: PrequentialMetrics = state.metrics
    return {"rmse": round(metrics.get()["rmse"], 3), "learned": state.learned}


def accuracy(dataset: Dataset, rows: list[dict[str, Any]], delays: list[int]) -> list[dict[str, Any]]:
    labelled = [make_record(dataset, i, row, TS0 + i * TS_STEP) for i, row in enumerate(rows, start=1)]
    out = [{"delay_rows": "labelled", **served_rmse(dataset, labelled)}]
    out += [{"delay_rows": d, **served_rmse(dataset, split(dataset, rows, d))} for d in delays]
    return out


def _synthetic_rows(n: int, seed: int, tmp: Path) -> tuple[Dataset, list[dict[str, Any]]]:
    dataset = synthetic.dataset()
    return dataset, typed_rows(dataset, synthetic.write_csv(tmp / f"rows-{n}-{seed}.csv", n, seed=seed))


def pending_cost(n: int, tmp: Path) -> dict[str, float]:
    dataset, rows = _synthetic_rows(min(n, 20_000), 7, tmp)
    state = KeyState.new("bench", dataset, DEFAULT_SPEC, "bench")
    empty = len(pickle.dumps(state))
    gc.collect()
    rss0 = _rss_kb()
    policy = LabelPolicy()
    for i in range(1, n + 1):
        row = rows[i % len(rows)]
        value = decode(dataset, encode_record(make_features(dataset, i, row, TS0 + i)))
        apply_record(state, value, i, policy)  # type: ignore[arg-type]
    gc.collect()
    rss1 = _rss_kb()
    start = time.perf_counter()
    whole = len(pickle.dumps(state))
    whole_s = time.perf_counter() - start
    # As the processor stores it: the key state without its pending predictions, and these in
    # buckets of consecutive record numbers; a checkpoint writes the buckets that changed.
    state.labels.externalize()
    buckets = state.labels.take_dirty_buckets()
    start = time.perf_counter()
    blobs = [pickle.dumps(entries) for _bucket, entries in buckets]
    buckets_s = time.perf_counter() - start
    start = time.perf_counter()
    key_state = len(pickle.dumps(state))
    key_state_s = time.perf_counter() - start
    return {"pending": n, "store_bytes_per_pending": round(sum(map(len, blobs)) / n, 1),
            "buckets": len(blobs), "bucket_pickle_ms": round(buckets_s / len(blobs) * 1000, 3),
            "key_state_kb": round(key_state / 1e3, 1), "key_state_pickle_ms": round(key_state_s * 1000, 2),
            "rss_bytes_per_pending": round((rss1 - rss0) * 1024 / n, 1),
            "unbucketed_pickle_ms": round(whole_s * 1000, 1),
            "unbucketed_bytes_per_pending": round((whole - empty) / n, 1)}


def expiry_cost(tmp: Path, messages: int = 50_000, ttl: int = 1000) -> dict[str, float]:
    """µs per message with every label missing: no TTL vs a row TTL expiring one per message."""
    dataset, rows = _synthetic_rows(5_000, 3, tmp)
    values = [decode(dataset, encode_record(make_features(dataset, i, rows[i % len(rows)], TS0 + i)))
              for i in range(1, messages + 1)]
    out: dict[str, float] = {}
    for name, policy in (("no_ttl", LabelPolicy()), ("ttl", LabelPolicy(ttl_rows=ttl))):
        best = float("inf")
        for _ in range(3):
            state = KeyState.new("bench", dataset, DEFAULT_SPEC, "bench")
            start = time.perf_counter()
            for offset, value in enumerate(values):
                apply_record(state, value, offset, policy)  # type: ignore[arg-type]
            best = min(best, time.perf_counter() - start)
        out[f"{name}_us"] = round(best / messages * 1e6, 2)
    out["expiry_us"] = round(out["ttl_us"] - out["no_ttl_us"], 2)
    return out


def _backlog(kafka: KafkaSettings, dataset: Dataset, records: list[dict[str, Any]]) -> Topics:
    topics = Topics(prefix=f"benchd{uuid.uuid4().hex[:6]}", raw_partitions=1)
    ensure_topics(kafka, topics.specs())
    producer = Producer({**kafka.client_config(), "linger.ms": 5})
    for record in records:
        producer.produce(topics.raw, key=str(record["key"]).encode(), value=encode_record(record))
        producer.poll(0)
    producer.flush(60)
    return topics


def processor_rate(kafka: KafkaSettings, dataset: Dataset, records: list[dict[str, Any]], outputs: int,
                   state: Path) -> float:
    topics = _backlog(kafka, dataset, records)
    settings = ProcessorSettings(dataset=dataset, model_spec=DEFAULT_SPEC, kafka=kafka, topics=topics,
                                 guarantee="exactly-once", state_dir=state,  # type: ignore[arg-type]
                                 consumer_group=f"bench-{uuid.uuid4().hex[:8]}")
    Processor(settings).run(idle_timeout=3)
    stamps = sorted(json.loads(v)["processed_ts"]
                    for _k, v, _p, _o in read_all(kafka, topics.predictions, expect=outputs, timeout=120))
    if len(stamps) != outputs:
        raise RuntimeError(f"expected {outputs} predictions, read {len(stamps)}")
    return len(records) / max((stamps[-1] - stamps[0]) / 1000, 1e-3)


def throughput(bootstrap: str | None, n: int, runs: int, work: Path) -> list[dict[str, float]]:
    dataset, rows = _synthetic_rows(n, 11, work)
    labelled = [make_record(dataset, i, row, TS0 + i * TS_STEP) for i, row in enumerate(rows, start=1)]
    split_records = split(dataset, rows, 200)
    out = []
    with (tempfile.TemporaryDirectory(prefix="kappaml-delayed-") as tmp,
          broker_or(bootstrap, Path(tmp)) as kafka):
        for run in range(runs):
            order = ("labelled", "split") if run % 2 == 0 else ("split", "labelled")
            rates = {}
            for name in order:
                records = labelled if name == "labelled" else split_records
                # A served and a scored prediction per split row; one prediction per labelled row.
                rates[name] = processor_rate(kafka, dataset, records, n if name == "labelled" else 2 * n,
                                             Path(tmp) / f"{name}{run}")
            out.append({"labelled_msg_s": round(rates["labelled"]), "split_msg_s": round(rates["split"]),
                        "ratio_per_message": round(rates["split"] / rates["labelled"], 3)})
            sys.stdout.write(json.dumps(out[-1]) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", type=Path, default=SHARED_CSV if SHARED_CSV.exists() else None,
                   help="labelled CSV of the co2 data set (default: the shared CO2 rows if present, else "
                        "7,385 synthetic rows)")
    p.add_argument("--delays", default="0,100,1000")
    p.add_argument("--pending", type=int, default=1_000_000)
    p.add_argument("--messages", type=int, default=50_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--bootstrap")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    configure_logging("WARNING")
    started, cpu0 = load_average(), cpu_seconds()
    work = Path(tempfile.mkdtemp(prefix="kappaml-bench-delayed-"))
    if args.csv:
        dataset, rows = builtin("co2"), typed_rows(builtin("co2"), args.csv)
    else:
        dataset, rows = _synthetic_rows(7385, 1, work)
    report: dict[str, Any] = {"machine": describe(), "load_start": started,
                              "csv": str(args.csv or "synthetic"), "rows": len(rows)}
    report["accuracy"] = accuracy(dataset, rows, [int(d) for d in args.delays.split(",")])
    sys.stdout.write(json.dumps(report["accuracy"]) + "\n")
    report["pending"] = pending_cost(args.pending, work)
    sys.stdout.write(json.dumps(report["pending"]) + "\n")
    report["expiry"] = expiry_cost(work)
    sys.stdout.write(json.dumps(report["expiry"]) + "\n")
    if args.runs:
        pairs = throughput(args.bootstrap, args.messages, args.runs, work)
        ratios = [r["ratio_per_message"] for r in pairs]
        report["throughput"] = {"runs": pairs, "ratio_median": statistics.median(ratios),
                                "ratio_min": min(ratios), "ratio_max": max(ratios)}
    report["load_end"] = load_average()
    report["cpu_others"] = others_cpu(cpu0, cpu_seconds())
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

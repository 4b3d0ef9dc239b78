"""Processor throughput over a backlog, beside a hand-written loop and River alone, in one run.

    python -m bench.bench_processor [--messages 200000] [--runs 5] [--bootstrap HOST:PORT]

Each run writes ``--messages`` synthetic CO2 records to a fresh one-partition raw topic (one
global model), then measures, on that same backlog:

- ``kappaml exactly-once`` / ``kappaml at-least-once``: the processor (Quix Streams) in-process;
  throughput = messages / (last prediction's processed_ts - first's), so start-up and the
  consumer-group join are not counted;
- ``hand-written loop``: confluent-kafka consume -> learn_step -> transactional produce, with a
  model checkpoint and the offsets in the same transaction (bench/handwritten_loop.py);
- ``River alone``: decode + learn_step over the same values in memory, no Kafka: the upper bound;
- ``Quix Streams alone``: a Quix Streams application set up like the processor (exactly-once,
  5 ms polls, a registered store, one non-stateful operator) whose operator does no learning
  and produces one fixed prediction-sized record per message: the floor the framework itself
  sets (consume, per-message pipeline, produce, transactions).

Writes bench/results/processor.json and prints a table (median, min-max over runs).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from quixstreams import Application
from quixstreams.kafka.configuration import ConnectionConfig

from bench.handwritten_loop import run_loop
from infra.broker import BrokerConfig, LocalBroker
from infra.testing import produce_raw, read_all, typed_rows
from kappaml import synthetic
from kappaml.dataset import builtin
from kappaml.kafka import KafkaSettings
from kappaml.learner import KeyState, learn_step
from kappaml.logging import configure_logging
from kappaml.models import DEFAULT_SPEC
from kappaml.quixcompat import app_producer
from kappaml.records import Prediction, decode
from kappaml.topics import Topics, TopicSpec, ensure_topics
from processor import Processor, ProcessorSettings

RESULTS = Path(__file__).resolve().parent / "results"


def kappaml_rate(kafka: KafkaSettings, topics: Topics, guarantee: str, n: int, state: Path,
                 metrics_port: int | None = None, hook: Callable[[Processor], None] | None = None) -> float:
    dataset = builtin("co2")
    settings = ProcessorSettings(dataset=dataset, model_spec=DEFAULT_SPEC, kafka=kafka, topics=topics,
                                 guarantee=guarantee, state_dir=state,  # type: ignore[arg-type]
                                 consumer_group=f"bench-{uuid.uuid4().hex[:8]}", metrics_port=metrics_port)
    # A fresh predictions topic per variant, so each one's timestamps are its own.
    processor = Processor(settings)
    if hook is not None:
        hook(processor)
    processor.run(idle_timeout=3)
    preds = [Prediction.decode(v)
             for _k, v, _p, _o in read_all(kafka, topics.predictions, expect=n, timeout=120)]
    stamps = sorted(p.processed_ts for p in preds)
    return len(preds) / max((stamps[-1] - stamps[0]) / 1000, 1e-3)


def quix_alone_rate(kafka: KafkaSettings, topics: Topics, n: int, state: Path) -> float:
    """A Quix Streams app set up like the processor (exactly-once, 5 ms polls, a registered
    store, one non-stateful operator) whose operator only produces one record."""
    app = Application(broker_address=ConnectionConfig.from_librdkafka_dict(kafka.client_config()),
                      consumer_group=f"bench-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest",
                      processing_guarantee="exactly-once", state_dir=str(state), consumer_poll_timeout=0.005,
                      loglevel="WARNING")
    record = Prediction(key="__all__", id=1, y_true=250.0, y_pred=249.5, error=-0.5, version="v1",
                        spec=DEFAULT_SPEC, partition=0, offset=1, event_ts=0, processed_ts=0, role="champion",
                        generation=0).encode()
    stamps: list[float] = []
    producer = app_producer(app)  # as the processor produces its outputs

    def operator(value: bytes, key: bytes, timestamp: int, headers: object) -> None:
        producer.produce(topics.predictions, key=key, value=record)
        stamps.append(time.perf_counter())

    sdf = app.dataframe(app.topic(topics.raw, key_deserializer="bytes", value_deserializer="bytes"))
    sdf.register_store()
    sdf.update(operator, metadata=True)
    app.run(timeout=3)
    if len(stamps) != n:
        raise RuntimeError(f"Quix Streams alone processed {len(stamps)} of {n} messages")
    return n / max(stamps[-1] - stamps[0], 1e-3)


def river_alone_rate(values: list[bytes]) -> float:
    dataset = builtin("co2")
    ks = KeyState.new("__all__", dataset, DEFAULT_SPEC, "bench")
    start = time.perf_counter()
    for offset, value in enumerate(values):
        learn_step(ks, decode(dataset, value), offset)
    return len(values) / (time.perf_counter() - start)


def _backlog(kafka: KafkaSettings, rows: list[dict]) -> Topics:
    topics = Topics(prefix=f"bench{uuid.uuid4().hex[:6]}", raw_partitions=1)
    ensure_topics(kafka, topics.specs())
    produce_raw(kafka, topics.raw, builtin("co2"), rows)
    return topics


def one_run(kafka: KafkaSettings, rows: list[dict], tmp: Path) -> dict[str, float]:
    n = len(rows)
    rates = {}
    for guarantee in ("exactly-once", "at-least-once"):
        rates[f"kappaml {guarantee}"] = kappaml_rate(kafka, _backlog(kafka, rows), guarantee, n,
                                                     tmp / guarantee)
    topics = _backlog(kafka, rows)
    out, ckpt = f"{topics.prefix}.hand.out", f"{topics.prefix}.hand.ckpt"
    ensure_topics(kafka, [TopicSpec(out, 1), TopicSpec(ckpt, 1, {"cleanup.policy": "compact"})])
    rates["hand-written loop"] = n / run_loop(kafka, topics.raw, out, ckpt, builtin("co2"), DEFAULT_SPEC, n)
    values = [v for _k, v, _p, _o in read_all(kafka, topics.raw, expect=n)]
    rates["River alone"] = river_alone_rate(values)
    rates["Quix Streams alone"] = quix_alone_rate(kafka, _backlog(kafka, rows), n, tmp / "quix")
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--bootstrap", default=None)
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    with tempfile.TemporaryDirectory(prefix="kappaml-bench-") as tmpdir:
        tmp = Path(tmpdir)
        broker = None
        if args.bootstrap is None:
            broker = LocalBroker(BrokerConfig(port=_free(), controller_port=_free(), data_dir=tmp / "kafka",
                                              heap="1g", log_level="WARN"))
            broker.start()
        kafka = KafkaSettings(bootstrap_servers=args.bootstrap or broker.config.bootstrap)  # type: ignore[union-attr]
        try:
            csv_path = synthetic.write_csv(tmp / "rows.csv", args.messages, seed=1)
            rows = typed_rows(synthetic.dataset(), csv_path)
            runs = [one_run(kafka, rows, tmp / f"run{i}") for i in range(args.runs)]
        finally:
            if broker:
                broker.stop()
    summary = {name: {"median": statistics.median(r[name] for r in runs),
                      "min": min(r[name] for r in runs), "max": max(r[name] for r in runs)}
               for name in runs[0]}
    loop = summary["hand-written loop"]["median"]
    lines = [f"{'variant':<26} {'median msg/s':>12} {'min':>9} {'max':>9} {'vs loop':>8}"]
    for name, s in summary.items():
        lines.append(f"{name:<26} {s['median']:>12,.0f} {s['min']:>9,.0f} {s['max']:>9,.0f} "
                     f"{s['median'] / loop:>7.0%}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "processor.json").write_text(json.dumps(
        {"messages": args.messages, "runs": runs, "summary": summary}, indent=2))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _free() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    raise SystemExit(main())

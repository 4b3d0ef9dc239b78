"""Benchmark of the Spark replay against a pure-Python sequential replay of the same events.

    python -m bench.bench_replay [--sizes 10000,100000] [--keys 1,1000] [--spec rls]
                                 [--bootstrap HOST:PORT] [--master local[2]]

For every size and key count: N synthetic events are written to a fresh raw topic (2
partitions), then replayed twice in the same run:

* pure Python: one confluent-kafka consumer (read_committed) + ``records.decode`` +
  ``learner.learn_step`` per (partition, key), in offset order, in this process, with the
  replay's default lineup (the spec alone, ADWIN drift monitor, alert policy): the same work;
* Spark: ``python -m spark_batch replay --no-publish`` (spark-submit, local[2]) as a user
  runs it, wall time including the JVM, the Python workers and the report.

Spark's fixed cost is measured as the replay of a one-event topic. Each measurement is the
best of ``--repeat`` runs (the machine is shared). Both replays must end
with the same fingerprints per key (checked). Without ``--bootstrap`` a private broker is
started on free ports in a temporary folder. Writes bench/results/replay.json and replay.md;
timings depend on the machine and its load (2 shared cores here).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.harness import broker_or
from kappaml.dataset import Dataset
from kappaml.fingerprint import fingerprint
from kappaml.kafka import KafkaSettings
from kappaml.learner import KeyState, ModelError, learn_step
from kappaml.lineup import Lineup
from kappaml.models import DEFAULT_SPEC
from kappaml.records import InvalidRecord, decode, encode_record, make_record, model_key
from kappaml.topics import Topics, ensure_topics
from spark_batch.offsets import pin_offsets

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

_FEATURES = """\
target = "fuel"
features = [
  { name = "km", kind = "numeric" },
  { name = "load", kind = "numeric" },
  { name = "speed", kind = "numeric" },
  { name = "road", kind = "categorical" },
  { name = "winter", kind = "boolean" },
]
"""


def _dataset(folder: Path, keyed: bool) -> Path:
    name = "bench_keyed" if keyed else "bench_global"
    path = folder / f"{name}.toml"
    path.write_text(f'name = "{name}"\n' + ('key = "vehicle"\n' if keyed else "") + _FEATURES)
    return path


def _rows(n: int, keys: int, seed: int = 11) -> Any:
    rng = random.Random(seed)
    base = [rng.uniform(4.0, 12.0) for _ in range(keys)]
    for _ in range(n):
        v = rng.randrange(keys)
        km, load, speed = rng.uniform(1, 300), rng.uniform(0, 2), rng.uniform(20, 130)
        road = rng.choice(("city", "highway", "mixed"))
        winter = rng.random() < 0.3
        fuel = km * (base[v] + 1.5 * load + 0.01 * speed + (2.0 if road == "city" else 0.0)) / 100
        yield {"km": km, "load": load, "speed": speed, "road": road, "winter": winter,
               "fuel": fuel + (0.8 if winter else 0.0) + rng.gauss(0, 0.3), "vehicle": f"veh-{v:04d}"}


def produce(kafka: KafkaSettings, topic: str, dataset: Dataset, n: int, keys: int) -> float:
    producer = Producer({**kafka.client_config(), "linger.ms": 50, "batch.size": 1_000_000,
                         "compression.type": "lz4", "queue.buffering.max.messages": 500_000})
    start = time.perf_counter()
    for i, row in enumerate(_rows(n, keys), start=1):
        record = make_record(dataset, i, row, 1_700_000_000_000 + i)
        while True:
            try:
                producer.produce(topic, key=model_key(dataset, row).encode(), value=encode_record(record))
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(120):
        raise RuntimeError("events not delivered")
    return time.perf_counter() - start


def python_replay(kafka: KafkaSettings, topic: str, dataset: Dataset, spec: str) -> tuple[float, dict]:
    """The pure-Python replay: consume to the pinned end, learn_step per (partition, key)."""
    start = time.perf_counter()
    pinned = pin_offsets(kafka, topic)
    consumer = Consumer({**kafka.client_config(), "group.id": f"bench-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "fetch.max.bytes": 52_428_800})
    consumer.assign([TopicPartition(topic, p, pinned.start[p]) for p in pinned.partitions])
    states: dict[tuple[int, str], KeyState] = {}
    lineup = Lineup(dataset, spec, version="bench")  # what the Spark replay runs by default
    remaining = {p for p in pinned.partitions if pinned.end[p] > pinned.start[p]}
    try:
        while remaining:
            batch = consumer.consume(num_messages=10_000, timeout=1.0)
            for msg in batch:
                if msg.error():
                    raise RuntimeError(str(msg.error()))
                p, offset = msg.partition(), msg.offset()
                if offset >= pinned.end[p]:
                    continue
                try:
                    key = msg.key().decode("utf-8") if msg.key() is not None else None
                    example = decode(dataset, msg.value())
                    if key is None or example.key != key:
                        continue
                    state = states.get((p, key))
                    if state is None:
                        state = states[(p, key)] = lineup.new_states(key)[spec]
                    learn_step(state, example, offset)
                except (InvalidRecord, UnicodeDecodeError, ModelError):
                    continue
            for tp in consumer.position([TopicPartition(topic, p) for p in list(remaining)]):
                if tp.offset >= pinned.end[tp.partition]:
                    remaining.discard(tp.partition)
    finally:
        consumer.close()
    seconds = time.perf_counter() - start
    return seconds, {f"{p}/{k}": fingerprint(s.model) for (p, k), s in states.items()}


def spark_replay(kafka: KafkaSettings, prefix: str, dataset_toml: Path, spec: str, master: str,
                 out: Path) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "spark_batch", "replay", "--bootstrap", kafka.bootstrap_servers,
           "--topic-prefix", prefix, "--dataset", str(dataset_toml), "--model-spec", spec,
           "--version", "bench", "--output-dir", str(out), "--master", master, "--no-publish",
           "--log-level", "WARNING"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"spark replay failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return seconds, summary


def scenario(kafka: KafkaSettings, work: Path, n: int, keys: int, spec: str, master: str,
             repeat: int) -> dict:
    """Best of ``repeat`` runs of each replay: the machine is shared, the minimum is the
    least disturbed measurement."""
    toml = _dataset(work, keyed=keys > 1)
    dataset = Dataset.from_toml(toml)
    topics = Topics(prefix=f"bench{uuid.uuid4().hex[:8]}", raw_partitions=2)
    ensure_topics(kafka, topics.specs())
    produce_s = produce(kafka, topics.raw, dataset, n, keys)
    py_runs, spark_runs = [], []
    for _ in range(repeat):
        py_s, py_fps = python_replay(kafka, topics.raw, dataset, spec)
        py_runs.append(py_s)
        spark_s, summary = spark_replay(kafka, topics.prefix, toml, spec, master, work / topics.prefix)
        spark_runs.append((spark_s, summary["seconds"], summary.get("phases", {})))
        spark_fps = {f"{k['partition']}/{k['key']}": k["fingerprint"] for k in summary["keys"]}
        if spark_fps != py_fps:
            raise RuntimeError(f"fingerprints differ between the replays ({n} events, {keys} keys)")
    spark_s, inside_s, phases = min(spark_runs, key=lambda run: run[0])
    return {"events": n, "keys": len(py_fps), "produce_s": round(produce_s, 2),
            "python_s": round(min(py_runs), 2), "spark_s": round(spark_s, 2),
            "spark_inside_s": inside_s, "spark_phases_s": phases, "runs": repeat, "equal_fingerprints": True,
            "python_runs_s": [round(s, 3) for s in py_runs],
            "spark_runs_s": [round(s, 3) for s, _, _ in spark_runs]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_replay", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="10000,100000", help="event counts, comma separated")
    p.add_argument("--keys", default="1,1000", help="key counts, comma separated (1 = one global model)")
    p.add_argument("--spec", default=DEFAULT_SPEC)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--bootstrap", help="use this broker instead of starting a private one")
    p.add_argument("--repeat", type=int, default=2, help="runs per measurement, the best is kept")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    key_counts = [int(k) for k in args.keys.split(",")]
    out = sys.stdout

    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        work = Path(tmp)
        with broker_or(args.bootstrap, work) as kafka:
            startup = scenario(kafka, work, 1, 1, args.spec, args.master, args.repeat)
            out.write(f"spark fixed cost (1 event): {startup['spark_s']:.1f} s\n")
            results = []
            for keys in key_counts:
                for n in sizes:
                    r = scenario(kafka, work, n, keys, args.spec, args.master, args.repeat)
                    budget = 1.5 * r["python_s"] + startup["spark_s"]
                    r["goal"] = ("spark <= 1.5 x python + fixed cost" if keys == 1
                                 else "spark < python")
                    r["goal_met"] = r["spark_s"] <= budget if keys == 1 else r["spark_s"] < r["python_s"]
                    results.append(r)
                    out.write(f"{n:>9} events {r['keys']:>5} keys: python {r['python_s']:7.2f} s  "
                              f"spark {r['spark_s']:7.2f} s (inside the driver {r['spark_inside_s']:.2f} s)"
                              f"  goal met: {r['goal_met']}\n")
                    out.flush()

    RESULTS.mkdir(parents=True, exist_ok=True)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None
    doc = {"spec": args.spec, "master": args.master, "repeat": args.repeat,
           "spark_fixed_cost_s": startup["spark_s"], "load_average_at_end": load, "results": results}
    (RESULTS / "replay.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = ["| events | keys | python s | spark s | spark in driver s | goal | met |",
             "|---:|---:|---:|---:|---:|---|---|"]
    lines += [f"| {r['events']} | {r['keys']} | {r['python_s']} | {r['spark_s']} | {r['spark_inside_s']} "
              f"| {r['goal']} | {r['goal_met']} |" for r in results]
    (RESULTS / "replay.md").write_text(f"Spark fixed cost (1 event): {startup['spark_s']} s\n\n"
                                       + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Helpers for the replay tests: write raw records transactionally, and the reference replay.

The reference is deliberately written here from the shared contracts only (no spark_batch
code): read the topic with a plain consumer, apply the processor's rules message by message
in offset order, one ``learn_step`` at a time per (partition, key).
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from confluent_kafka import Producer

from kappaml.dataset import Dataset
from kappaml.kafka import KafkaSettings
from kappaml.records import InvalidRecord, decode, encode_record, make_record, model_key, parse_row

REPO = Path(__file__).resolve().parents[2]


Message = tuple[bytes | None, bytes | None]  # (kafka key, value)


class FakeMessage(SimpleNamespace):
    """Just enough of confluent_kafka.Message (k, v, p, o) for the sequential reference."""

    def key(self) -> Any:
        return self.k

    def value(self) -> Any:
        return self.v

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o


def fake_messages(messages: Sequence[Message], partition: int, first_offset: int = 0) -> list[FakeMessage]:
    """The messages as one partition holds them, from ``first_offset`` on."""
    return [FakeMessage(k=k, v=v, p=partition, o=first_offset + i) for i, (k, v) in enumerate(messages)]


def record_message(dataset: Dataset, number: int, row: Mapping[str, Any], ts: int | None = None) -> Message:
    """A raw-topic message exactly as the ingest writes it."""
    record = make_record(dataset, number, row, ts if ts is not None else 1_700_000_000_000 + number)
    return model_key(dataset, row).encode("utf-8"), encode_record(record)


def csv_messages(path: Path, dataset: Dataset, limit: int | None = None) -> list[Message]:
    out: list[Message] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for number, fields in enumerate(csv.DictReader(fh), start=1):
            if limit is not None and number > limit:
                break
            out.append(record_message(dataset, number, parse_row(dataset, fields, number)))
    return out


def produce_transactions(
    kafka: KafkaSettings,
    topic: str,
    batches: Sequence[Sequence[Message]],
    *,
    abort: Iterable[int] = (),
) -> None:
    """Write each batch in its own transaction; batches whose index is in ``abort`` are aborted
    after reaching the log, so a read_committed reader must skip them."""
    aborted = set(abort)
    producer = Producer({
        **kafka.client_config(),
        "transactional.id": f"test-raw-{uuid.uuid4().hex[:8]}",
        "linger.ms": 5,
    })
    producer.init_transactions(30)
    for i, batch in enumerate(batches):
        producer.begin_transaction()
        for key, value in batch:
            headers = {}
            if value is not None and value.startswith(b"{"):
                try:
                    headers = {"row_id": str(json.loads(value)["id"])}
                except (ValueError, KeyError, TypeError):
                    headers = {}
            producer.produce(topic, key=key, value=value, headers=headers)
            producer.poll(0)
        if i in aborted:
            assert producer.flush(30) == 0  # on the log first, then aborted
            producer.abort_transaction(30)
        else:
            producer.commit_transaction(30)
    assert producer.flush(30) == 0


def chunks(messages: Sequence[Message], size: int) -> list[Sequence[Message]]:
    return [messages[i:i + size] for i in range(0, len(messages), size)]


@dataclass
class Outcome:
    status: str  # learned | duplicate | invalid
    y_pred: float | None = None
    generation: int = 0  # of the model that predicted (learned rows), as the processor's predictions say


@dataclass
class Reference:
    states: dict[tuple[int, str], Any] = field(default_factory=dict)  # KeyState per (partition, key)
    outcomes: dict[tuple[int, int], Outcome] = field(default_factory=dict)  # (partition, offset)
    # Drift detections: (partition, offset, key, generation after the step, reset or not).
    drifts: list[tuple[int, int, str, int, bool]] = field(default_factory=list)
    control: list[tuple[int, int]] = field(default_factory=list)  # (partition, offset) of control records

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes.values() if o.status == status)


def sequential_replay(
    messages: Iterable[Any],
    dataset: Dataset,
    spec: str,
    version: str,
    until: Mapping[int, int] | None = None,
    states: dict[tuple[int, str], Any] | None = None,
    window: int = 500,
    drift: Any = None,
) -> Reference:
    """The processor's per-message rules for one spec, applied in offset order with plain Python.

    Control records (promotions) are no data: they are listed, not learned or counted.
    ``drift``: a kappaml.drift.DriftConfig, as the processor's lineup has it.
    """
    from kappaml.learner import KeyState, ModelError, learn_step
    from kappaml.lineup import CONTROL_KEY_BYTES

    ref = Reference(states=states if states is not None else {})
    ordered = sorted(messages, key=lambda m: (m.partition(), m.offset()))
    for msg in ordered:
        p, off = msg.partition(), msg.offset()
        if until is not None and off >= until.get(p, 1 << 62):
            continue
        if msg.key() == CONTROL_KEY_BYTES:
            ref.control.append((p, off))
            continue
        try:
            key = msg.key().decode("utf-8") if msg.key() is not None else None
            example = decode(dataset, msg.value())
            if key is None or example.key != key:
                raise InvalidRecord("key mismatch")
        except (InvalidRecord, UnicodeDecodeError):
            ref.outcomes[(p, off)] = Outcome("invalid")
            continue
        state = ref.states.get((p, key))
        if state is None:
            state = ref.states[(p, key)] = KeyState.new(key, dataset, spec, version, window=window,
                                                        drift=drift)
        try:
            result = learn_step(state, example, off)
        except ModelError:
            ref.outcomes[(p, off)] = Outcome("invalid", generation=state.generation)
            continue
        if result is None:
            ref.outcomes[(p, off)] = Outcome("duplicate", generation=state.generation)
            continue
        ref.outcomes[(p, off)] = Outcome("learned", result.y_pred, result.generation)
        if result.drift is not None:
            ref.drifts.append((p, off, key, state.generation, result.reset))
    return ref


def fingerprints(ref: Reference) -> dict[tuple[int, str], str]:
    from kappaml.fingerprint import fingerprint

    return {slot: fingerprint(s.model) for slot, s in ref.states.items()}


def stream_rebuild(lineup: Any, frame: Any, batch: int, clustered: bool = True, **options: Any) -> Any:
    """What one Spark task does with ``frame`` (columns key, partition, offset, value) fed in
    Arrow batches of ``batch`` rows: its prediction file's rows (``kind`` "row") and then the
    rows it hands back to Spark, as one pandas frame. ``options``: more StreamRebuild fields."""
    import tempfile

    import pandas as pd
    import pyarrow as pa

    from spark_batch.stream import StreamRebuild

    schema = pa.schema([("key", pa.binary()), ("partition", pa.int32()), ("offset", pa.int64()),
                        ("value", pa.binary())])
    parts = [pa.RecordBatch.from_pandas(frame.iloc[i:i + batch], schema=schema, preserve_index=False)
             for i in range(0, len(frame), batch)]
    with tempfile.TemporaryDirectory() as folder:
        fn = StreamRebuild(lineup, folder, clustered=clustered, rows_total=len(frame), **options).as_udf()
        out = pd.concat([b.to_pandas() for b in fn(iter(parts))], ignore_index=True)
        files = out[out.kind == "file"]
        assert len(files) == len(list(Path(folder).iterdir())) <= 1  # one file per task, named
        rows = [pd.read_parquet(Path(folder) / name).assign(kind="row") for name in files.summary]
        assert sum(len(r) for r in rows) == files.offset.sum()
    return pd.concat([*rows, out[out.kind != "file"]], ignore_index=True)


# ---------------------------------------------------------------- a keyed synthetic data set

FLEET_TOML = """\
name = "fleet"
description = "synthetic per-vehicle consumption, for replay tests"
target = "fuel"
key = "vehicle"
id_column = "trip"
features = [
  { name = "km", kind = "numeric" },
  { name = "load", kind = "numeric" },
  { name = "road", kind = "categorical" },
  { name = "winter", kind = "boolean" },
]
"""


def fleet_rows(n: int, vehicles: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    base = {f"veh-{v:03d}": rng.uniform(4.0, 12.0) for v in range(vehicles)}
    rows = []
    for i in range(n):
        vehicle = f"veh-{rng.randrange(vehicles):03d}"
        km = rng.uniform(1, 300)
        load = rng.uniform(0, 2)
        road = rng.choice(["city", "highway", "mixed"])
        winter = rng.random() < 0.3
        fuel = km * (base[vehicle] + 1.5 * load + (2.0 if road == "city" else 0.0)) / 100
        fuel += (0.8 if winter else 0.0) + rng.gauss(0, 0.3)
        rows.append({"km": km, "load": load, "road": road, "winter": winter, "fuel": fuel,
                     "vehicle": vehicle, "trip": f"t{i + 1:06d}"})
    return rows


# ---------------------------------------------------------------- running the replay

def run_cli(args: Sequence[str], timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    """``python -m spark_batch ...`` as a user runs it, from the repository root."""
    env = {**os.environ, "KAPPAML_LOG_LEVEL": "INFO"}
    return subprocess.run([sys.executable, "-m", "spark_batch", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def base_args(kafka: KafkaSettings, prefix: str, out: Path, dataset: str, version: str) -> list[str]:
    return [
        "replay", "--bootstrap", kafka.bootstrap_servers, "--topic-prefix", prefix,
        "--dataset", dataset, "--version", version, "--output-dir", str(out),
        "--spark-conf", "spark.ui.enabled=false",
    ]


def check_replay_metrics(kafka: KafkaSettings, metrics_topic: str, proc: subprocess.CompletedProcess[str],
                         summary: Mapping[str, Any], version: str, spec: str, rows: int) -> None:
    """A replay of ``rows`` rows of the global co2 model: its metrics in the metrics topic (what the
    Evaluation page draws), cumulative and rolling, ending on its own figures; its headline printed."""
    from infra.testing import read_topic

    records = [json.loads(m.value()) for m in read_topic(kafka, metrics_topic)]
    replay = [r for r in records if r.get("version") == version and r.get("origin") == "replay"]
    assert replay and all(r["spec"] == spec for r in replay)
    keys = [r for r in replay if r["scope"] == "key"]
    overall = [r for r in replay if r["scope"] == "overall"]
    assert {r["key"] for r in keys} == {"__all__"} and all(r["key"] == "__overall__" for r in overall)
    assert [r["learned"] for r in keys] == sorted(r["learned"] for r in keys) and keys[-1]["learned"] == rows
    assert math.isclose(keys[-1]["rmse"], summary["metrics"]["rmse"], rel_tol=1e-9)
    assert math.isclose(overall[-1]["rmse"], summary["metrics"]["rmse"], rel_tol=1e-9)
    assert keys[-1]["rolling_rmse"] is not None and keys[-1]["window"] == 500
    assert summary["metrics_published"] == len(replay)
    # The end of `python -m spark_batch replay`: its headline figures.
    rmse = summary["metrics"]["rmse"]
    assert (f"replay {version} ({spec}): {rows} rows, 1 keys, {rows} learned, 0 duplicates, 0 invalid; "
            f"RMSE {rmse:.3f}") in proc.stdout, proc.stdout[-2000:]
    assert "shown on the UI's Evaluation page (origin=replay)" in proc.stdout

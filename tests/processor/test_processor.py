"""The processor against the real broker: outputs, poison messages, duplicates, crashes, keys."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from infra.testing import json_values, produce_bytes, produce_raw, read_all, typed_rows
from kappaml import synthetic
from kappaml.dataset import Dataset, Feature, builtin
from kappaml.fingerprint import fingerprint
from kappaml.kafka import KafkaSettings
from kappaml.learner import KeyState, learn_step
from kappaml.models import DEFAULT_SPEC
from kappaml.quixcompat import producer_config
from kappaml.records import decode
from kappaml.snapshot import Snapshot
from kappaml.topics import Topics
from processor import Processor, ProcessorSettings
from tests.conftest import REPO

pytestmark = pytest.mark.kafka


def synthetic_rows(tmp_path: Path, n: int, seed: int = 7) -> list[dict]:
    csv_path = synthetic.write_csv(tmp_path / "synthetic.csv", n_rows=n, seed=seed)
    return typed_rows(synthetic.dataset(), csv_path)


def reference_states(settings: KafkaSettings, topics: Topics, dataset: Dataset, spec: str,
                     version: str = "v1") -> dict[str, KeyState]:
    """An uninterrupted, in-process run over the raw topic: what the processor must end up with."""
    states: dict[str, KeyState] = {}
    raw = sorted(read_all(settings, topics.raw), key=lambda m: (m[2], m[3]))
    for key, value, _partition, offset in raw:
        try:
            example = decode(dataset, value)
        except ValueError:
            continue
        if key is None or example.key != key.decode():
            continue
        ks = states.setdefault(example.key, KeyState.new(example.key, dataset, spec, version))
        learn_step(ks, example, offset)
    return states


def latest_snapshots(settings: KafkaSettings, topics: Topics) -> dict[str, Snapshot]:
    latest: dict[str, Snapshot] = {}
    for _k, value, _p, _o in read_all(settings, topics.models):
        snap = Snapshot.decode(value)
        if snap.key not in latest or snap.learned >= latest[snap.key].learned:
            latest[snap.key] = snap
    return latest


def make_settings(kafka: KafkaSettings, topics: Topics, tmp_path: Path, dataset: Dataset,
                  **kw) -> ProcessorSettings:
    return ProcessorSettings(dataset=dataset, model_spec=kw.pop("model_spec", DEFAULT_SPEC),
                             kafka=kafka, topics=topics, state_dir=tmp_path / "state", **kw)


def test_predicts_learns_and_publishes_every_output(kafka_settings, topics, tmp_path):
    dataset = builtin("co2")
    rows = synthetic_rows(tmp_path, 400)
    produce_raw(kafka_settings, topics.raw, dataset, rows)
    # Poison: not JSON, a wrong type, a missing target, and a key that does not match.
    produce_bytes(kafka_settings, topics.raw, [
        (b"__all__", b"\xff\xfenot json"),
        (b"__all__", b'{"id": 900, "key": "__all__", "ts": 1, "source": "x", "row": {"Engine_Size": "big"}}'),
        (None, b"{}"),
    ])
    # At-least-once upstream: the first 25 rows arrive twice; they must be learned once.
    produce_raw(kafka_settings, topics.raw, dataset, rows[:25])

    Processor(make_settings(kafka_settings, topics, tmp_path, dataset)).run(idle_timeout=4)

    predictions = json_values(read_all(kafka_settings, topics.predictions, expect=400))
    assert sorted(p["id"] for p in predictions) == list(range(1, 401))
    for p in predictions:
        assert math.isclose(p["error"], p["y_pred"] - p["y_true"])
        assert p["version"] == "v1" and p["key"] == "__all__"

    dead = json_values(read_all(kafka_settings, topics.dlq, expect=3))
    assert len(dead) == 3
    assert all(d["reason"] and d["source"]["topic"] == topics.raw for d in dead)
    assert {d["value_encoding"] for d in dead} == {"base64", "utf-8"}

    reference = reference_states(kafka_settings, topics, dataset, DEFAULT_SPEC)["__all__"]
    assert reference.learned == 400 and reference.skipped == 25
    snap = latest_snapshots(kafka_settings, topics)["__all__"]
    assert snap.origin == "live" and snap.learned == 400
    assert snap.fingerprint == fingerprint(reference.model) == fingerprint(snap.model)

    metrics = json_values(read_all(kafka_settings, topics.metrics))
    final = [m for m in metrics if m["scope"] == "key" and m["learned"] == 400]
    assert final and final[-1]["skipped"] == 25
    overall = [m for m in metrics if m["scope"] == "overall"]
    assert overall and overall[-1]["learned"] == 400 and overall[-1]["invalid"] == 3


def _start(topics: Topics, kafka: KafkaSettings, state_dir: Path, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "processor", "--bootstrap", kafka.bootstrap_servers,
            "--topic-prefix", topics.prefix, "--raw-partitions", str(topics.raw_partitions),
            "--state-dir", str(state_dir), "--commit-interval", "0.5", "--log-level", "WARNING",
            *extra]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for_predictions(kafka: KafkaSettings, topics: Topics, n: int, timeout: float = 180) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = read_all(kafka, topics.predictions, timeout=20)
        if len(got) >= n:
            return got
        time.sleep(1)
    raise AssertionError(f"only {len(got)} of {n} predictions after {timeout}s")


def _progress(kafka: KafkaSettings, group: str, topic: str) -> int:
    """How many raw messages the group has committed (its consumed position)."""
    consumer = Consumer({**kafka.client_config(), "group.id": group, "enable.auto.commit": False})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        for _attempt in range(50):
            try:
                committed = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=10)
                return sum(max(tp.offset, 0) for tp in committed)
            except KafkaException:  # the group's coordinator is still being elected
                time.sleep(0.2)
        raise AssertionError(f"no committed offsets readable for group {group}")
    finally:
        consumer.close()


@pytest.mark.slow
def test_sigkill_mid_stream_loses_and_repeats_nothing(kafka_settings, topics, tmp_path):
    """30,000 rows, the processor SIGKILLed three times: the longer variant, in make test-all.

    make test proves the same through real Kafka in tests/chaos/test_chaos.py (the processor
    SIGKILLed twice mid-stream: no row lost or predicted twice, the live model's fingerprint equal
    to an undisturbed pass), tests/processor/test_delayed_labels.py::
    test_sigkill_three_times_mid_stream_keeps_counts_and_fingerprint (three SIGKILLs, fingerprint)
    and tests/processor/test_restart_gap.py (one committed prediction per row across a SIGKILL).
    """
    dataset = builtin("co2")
    rows = synthetic_rows(tmp_path, 30_000, seed=11)
    produce_raw(kafka_settings, topics.raw, dataset, rows)
    state_dir = tmp_path / "state"
    group = f"{topics.prefix}-processor-v1"
    # Each round waits for the processor to commit progress, then kills it mid-stream. (A dead
    # member keeps its partition until its session times out: 10 s by default.)
    for _round in range(3):
        before = _progress(kafka_settings, group, topics.raw)
        proc = _start(topics, kafka_settings, state_dir, "--dataset", "co2")
        deadline = time.monotonic() + 120
        while _progress(kafka_settings, group, topics.raw) == before and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    progressed = _progress(kafka_settings, group, topics.raw)
    assert 0 < progressed < len(rows), "the kills must land mid-stream"
    proc = _start(topics, kafka_settings, state_dir, "--dataset", "co2")
    try:
        predictions = _wait_for_predictions(kafka_settings, topics, len(rows))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    ids = sorted(v["id"] for v in json_values(predictions))
    assert ids == list(range(1, len(rows) + 1)), "exactly one prediction per row (read_committed)"
    reference = reference_states(kafka_settings, topics, dataset, DEFAULT_SPEC)["__all__"]
    snap = latest_snapshots(kafka_settings, topics)["__all__"]
    assert snap.learned == len(rows) == reference.learned
    assert snap.fingerprint == fingerprint(reference.model)


def fleet(tmp_path: Path, n: int, seed: int = 5) -> tuple[Dataset, list[dict], Path]:
    """A keyed dataset (6 vehicles, one model each), its rows and its TOML declaration."""
    base = builtin("co2")
    dataset = replace(base, name="fleet", key="vehicle",
                      features=(*base.features, Feature("Make", "categorical")))
    rows = synthetic_rows(tmp_path, n, seed=seed)
    for i, row in enumerate(rows):
        row["vehicle"] = f"v{i % 6}"
        row["Make"] = "ACME" if i % 3 else "Globex"
    toml = tmp_path / "fleet.toml"
    feats = ",\n".join(f'{{ name = "{f.name}", kind = "{f.kind}" }}' for f in dataset.features)
    toml.write_text(f'name = "fleet"\ntarget = "{dataset.target}"\nkey = "vehicle"\n'
                    f"features = [\n{feats}\n]\n")
    return dataset, rows, toml


def test_per_key_models_across_partitions_and_two_instances(kafka_settings, topics, tmp_path):
    dataset, rows, toml = fleet(tmp_path, 2000)
    produce_raw(kafka_settings, topics.raw, dataset, rows)
    procs = [_start(topics, kafka_settings, tmp_path / f"state{i}", "--dataset", str(toml),
                    "--exit-when-idle", "8") for i in range(2)]
    try:
        predictions = json_values(_wait_for_predictions(kafka_settings, topics, len(rows)))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        stderr = [proc.communicate(timeout=60)[1] for proc in procs]
    assert sorted(p["id"] for p in predictions) == list(range(1, len(rows) + 1))
    assert len({p["partition"] for p in predictions}) == 2, "keys must spread over both partitions"
    reference = reference_states(kafka_settings, topics, dataset, DEFAULT_SPEC)
    snaps = latest_snapshots(kafka_settings, topics)
    assert set(snaps) == set(reference) == {f"v{i}" for i in range(6)}
    for key, ks in reference.items():
        assert snaps[key].fingerprint == fingerprint(ks.model), key
    assert all(b"Traceback" not in err for err in stderr), stderr


def test_co2_end_to_end_meets_the_rmse_goal(kafka_settings, topics, tmp_path, co2_csv):
    dataset = builtin("co2")
    rows = typed_rows(dataset, co2_csv)
    assert len(rows) == 7385
    produce_raw(kafka_settings, topics.raw, dataset, rows)
    Processor(make_settings(kafka_settings, topics, tmp_path, dataset)).run(idle_timeout=4)
    predictions = json_values(read_all(kafka_settings, topics.predictions, expect=7385))
    assert len(predictions) == 7385
    rmse = math.sqrt(sum(p["error"] ** 2 for p in predictions) / len(predictions))
    assert rmse <= 5.0, rmse


def test_a_full_producer_queue_falls_back_to_quix_and_loses_nothing(kafka_settings, topics, tmp_path):
    # Exactly-once outputs go straight to the transactional producer; when its local queue is
    # full, the record goes through Quix's produce instead, which polls and retries.
    dataset = builtin("co2")
    rows = synthetic_rows(tmp_path, 300)
    produce_raw(kafka_settings, topics.raw, dataset, rows)
    processor = Processor(make_settings(kafka_settings, topics, tmp_path, dataset))
    quix = processor.producer
    assert not quix.instantiated  # configured before its first use
    producer_config(quix)["queue.buffering.max.messages"] = 4
    fallbacks = []
    through_quix = quix.produce

    def counting(topic, *args, **kwargs):
        if topic == topics.predictions:
            fallbacks.append(kwargs.get("key"))
        return through_quix(topic, *args, **kwargs)

    quix.produce = counting
    processor.run(idle_timeout=4)

    assert fallbacks, "the queue never filled: the fallback was not exercised"
    predictions = json_values(read_all(kafka_settings, topics.predictions, expect=300))
    assert sorted(p["id"] for p in predictions) == list(range(1, 301))

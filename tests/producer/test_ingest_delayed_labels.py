"""Delayed labels through ``producer serve`` + ``ingest`` as real processes into the real broker.

Read back with read_committed, the raw topic holds every ``features`` record and every label that
was not dropped exactly once, no dropped label, each row's label after its features in the row's
partition: also when the ingest is SIGKILLed mid-stream (it resumes after a ``rows:labels`` id).
"""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest
from producer_testkit import Message, ingest_args, produced, program, read_messages, wait_until, write_csv

from infra.testing import free_port, kill, wait_http
from kappaml.dataset import GLOBAL_KEY
from kappaml.kafka import KafkaSettings
from kappaml.records.raw import FEATURES, LABEL
from kappaml.topics import Topics
from producer.labels import LabelSchedule

pytestmark = pytest.mark.kafka


def halves(messages: list[Message]) -> tuple[Counter[str], Counter[str]]:
    """How often each row id occurs as features and as label."""
    features: Counter[str] = Counter()
    labels: Counter[str] = Counter()
    for m in messages:
        record = m.json()
        assert m.headers["row_id"].decode() == str(record["id"])
        assert m.key == record["key"].encode() and m.timestamp == record["ts"]
        {FEATURES: features, LABEL: labels}[record["kind"]][str(record["id"])] += 1
    return features, labels


def assert_label_after_features(messages: list[Message]) -> None:
    """A row's two halves share a partition, the features first."""
    where: dict[tuple[str, str], tuple[int, int]] = {}
    for m in messages:
        record = m.json()
        where[(record["kind"], str(record["id"]))] = (m.partition, m.offset)
    for (kind, rid), (partition, offset) in where.items():
        if kind == LABEL:
            f_partition, f_offset = where[(FEATURES, rid)]
            assert partition == f_partition and offset > f_offset, rid


def test_co2_with_delayed_and_dropped_labels_exactly_once_through_a_kill(
    co2_csv: Path, kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    port = free_port()
    serve = ("serve", "--csv", str(co2_csv), "--port", str(port),
             "--label-delay", "200", "--label-drop", "0.05", "--seed", "1")
    ingest = ingest_args(port, kafka_settings, topics, tmp_path, "--csv", str(co2_csv), "--rate", "2000")
    log = tmp_path / "run.log"
    with program(*serve, log=log):
        health = wait_http(f"http://127.0.0.1:{port}/health").json()
        assert health["labels"]["token"] == "labels-r200-drop0.05-seed1"
        with program(*ingest, log=log) as first:
            wait_until(lambda: produced(kafka_settings, topics.raw) >= 3000, 90, "progress", first)
            kill(first, signal.SIGKILL)
        assert produced(kafka_settings, topics.raw) < 2 * 7385
        with program(*ingest, log=log) as second:
            second.wait(180)
            assert second.returncode == 0, log.read_text()[-3000:]

    messages = read_messages(kafka_settings, topics.raw)
    features, labels = halves(messages)
    ids = [str(i) for i in range(1, 7386)]
    schedule = LabelSchedule(delay_rows=200, drop=0.05, seed=1)
    dropped = {i for i in ids if schedule.dropped(i)}
    assert 0.04 * 7385 < len(dropped) < 0.06 * 7385
    assert features == Counter(ids)  # every row's features, once
    assert labels == Counter(i for i in ids if i not in dropped)  # every label not dropped, once
    assert {m.key for m in messages} == {GLOBAL_KEY.encode()}
    assert_label_after_features(messages)
    assert read_messages(kafka_settings, topics.dlq) == []
    # The resumed stream went on after a rows:labels id.
    assert log.read_text().count('"stream connected"') >= 2


def test_a_keyed_data_set_puts_both_halves_of_a_row_in_its_key_partition(
    kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    declaration = tmp_path / "shops.toml"
    declaration.write_text('name = "shops"\ntarget = "sales"\nkey = "shop"\nid_column = "uid"\n'
                           'features = [{ name = "price", kind = "numeric" }]\n')
    lines = [f"u{i},s{i % 5},{i}.5,{'' if i == 7 else i}" for i in range(1, 1501)]  # row 7: no target
    csv = write_csv(tmp_path / "shops.csv", "uid,shop,price,sales", lines)
    port = free_port()
    log = tmp_path / "run.log"
    serve = ("serve", "--csv", str(csv), "--dataset", str(declaration), "--port", str(port),
             "--label-delay-s", "0.05", "--label-drop", "0.1", "--seed", "3")
    with program(*serve, log=log):
        wait_http(f"http://127.0.0.1:{port}/health")
        # --validate: the ingest decodes both halves itself (kappaml.records.decode's rules).
        ingest_argv = ingest_args(port, kafka_settings, topics, tmp_path, "--rate", "3000", "--validate")
        with program(*ingest_argv, log=log) as ingest:
            ingest.wait(120)
            assert ingest.returncode == 0, log.read_text()[-3000:]

    messages = read_messages(kafka_settings, topics.raw)
    features, labels = halves(messages)
    ids = [f"u{i}" for i in range(1, 1501) if i != 7]
    schedule = LabelSchedule(delay_s=0.05, drop=0.1, seed=3)
    assert features == Counter(ids)
    assert labels == Counter(i for i in ids if not schedule.dropped(i))
    assert_label_after_features(messages)
    for m in messages:
        assert m.key == f"s{int(m.json()['id'][1:]) % 5}".encode()
    dlq = [m.json() for m in read_messages(kafka_settings, topics.dlq)]
    assert [(d["id"], d["row"], d["column"]) for d in dlq] == [("7", 7, "sales")]

"""Poison written straight into the raw topic: every message goes to the dead-letter topic with a
reason, nothing crashes, and the valid rows around them are learned exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka import Producer

from infra.testing import json_values, produce_raw, read_all, start, typed_rows
from kappaml import synthetic
from kappaml.dataset import GLOBAL_KEY, builtin
from kappaml.kafka import KafkaSettings
from kappaml.topics import Topics

pytestmark = pytest.mark.kafka


def poison(dataset_features: list[str], target: str) -> list[tuple[bytes | None, bytes | None]]:
    """(key, value) pairs a careless or hostile producer could write; none is a valid record."""
    g = GLOBAL_KEY.encode()
    good_row = {name: 1.0 for name in dataset_features} | {target: 200.0}

    def rec(**over: object) -> bytes:
        base: dict[str, object] = {"id": 10_000_001, "key": GLOBAL_KEY, "ts": 1, "source": "co2",
                                   "row": dict(good_row)}
        base.update(over)
        return json.dumps(base, allow_nan=True).encode()

    first = dataset_features[0]
    return [
        (g, b"\xff\xfe\x00not json at all"),                      # not UTF-8
        (g, b"{\"id\": 1, "),                                     # truncated JSON
        (g, b"[1, 2, 3]"),                                        # JSON, not an object
        (g, b"null"),
        (g, b"\"a string\""),
        (g, b"[" * 100_000 + b"]" * 100_000),                     # nesting bomb
        (g, b"{\"id\": " + b"9" * 5000 + b"}"),                   # int beyond the digit limit
        (g, b"x" * (3 * 1024 * 1024)),                            # a 3 MB value
        (g, rec(row={**good_row, first: "x" * (2 * 1024 * 1024)})),  # a 2 MB field
        (g, rec(row={**good_row, first: "big"})),                 # wrong type
        (g, rec(row={**good_row, first: [1, 2]})),
        (g, rec(row={**good_row, first: {"nested": 1}})),
        (g, rec(row={**good_row, first: None})),
        (g, rec(row={**good_row, first: True})),                  # a boolean where a number is due
        (g, rec(row={**good_row, target: float("nan")})),         # NaN literal (not standard JSON)
        (g, rec(row={**good_row, target: float("inf")})),
        (g, rec(row={**good_row, first: 1e308 * 10})),            # overflows to inf
        (g, rec(row={k: v for k, v in good_row.items() if k != target})),  # missing target
        (g, rec(row={})),
        (g, rec(row="not an object")),
        (g, rec(id=None)),
        (g, rec(id=[1])),
        (g, rec(id=True)),
        (g, rec(key=7)),
        (g, rec(key="someone-else")),                             # key does not match the message key
        (b"\xff\xfe", rec()),                                     # key not UTF-8
        (None, rec()),                                            # no key
        (g, None),                                                # tombstone
        (g, b""),
    ]


def test_poison_goes_to_the_dlq_and_nothing_crashes(kafka_settings: KafkaSettings, topics: Topics,
                                                    tmp_path: Path) -> None:
    dataset = builtin("co2")
    rows = typed_rows(synthetic.dataset(), synthetic.write_csv(tmp_path / "s.csv", n_rows=200, seed=3))
    produce_raw(kafka_settings, topics.raw, dataset, rows[:100])
    messages = poison([f.name for f in dataset.features], dataset.target)
    producer = Producer({**kafka_settings.client_config(), "message.max.bytes": 8 * 1024 * 1024})
    for key, value in messages:
        producer.produce(topics.raw, key=key, value=value, partition=0)
    assert producer.flush(30) == 0
    produce_raw(kafka_settings, topics.raw, dataset, rows[100:], start_id=101)

    log = tmp_path / "processor.log"
    args = ["--bootstrap", kafka_settings.bootstrap_servers, "--topic-prefix", topics.prefix,
            "--raw-partitions", str(topics.raw_partitions), "--state-dir", str(tmp_path / "state"),
            "--commit-interval", "0.5", "--exit-when-idle", "4", "--dataset", "co2"]
    proc = start("processor", args, log)
    assert proc.wait(180) == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()

    predictions = json_values(read_all(kafka_settings, topics.predictions, expect=200))
    assert sorted(p["id"] for p in predictions) == list(range(1, 201))
    dead = json_values(read_all(kafka_settings, topics.dlq, expect=len(messages)))
    assert len(dead) == len(messages)
    assert all(d["reason"] and d["source"]["topic"] == topics.raw for d in dead)
    # Bounded: a 3 MB poison message does not become a 3 MB dead letter.
    assert max(len(json.dumps(d)) for d in dead) < 64 * 1024

"""Pinning the replayed range, and the one-line errors before any JVM starts (real broker)."""

from __future__ import annotations

import pytest
from replay_support import base_args, produce_transactions, run_cli

from infra.testing import end_offsets, free_port
from kappaml.kafka import KafkaSettings
from spark_batch.errors import ReplayError
from spark_batch.offsets import pin_offsets

pytestmark = pytest.mark.kafka


def _messages(n: int, key: bytes = b"k") -> list[tuple[bytes, bytes]]:
    return [(key, b'{"i": %d}' % i) for i in range(n)]


def test_pins_earliest_to_committed_end_and_until(kafka_settings, topics):
    produce_transactions(kafka_settings, topics.raw, [_messages(5), _messages(4)])
    ends = end_offsets(kafka_settings, topics.raw, committed=True)
    pinned = pin_offsets(kafka_settings, topics.raw)
    assert pinned.partitions == [0, 1]
    assert dict(pinned.start) == {0: 0, 1: 0}
    assert dict(pinned.end) == dict(pinned.latest) == ends
    assert pinned.span == sum(ends.values())  # 9 records + 2 commit markers
    assert pinned.span == 11

    busy = max(ends, key=lambda p: ends[p])
    cut = pin_offsets(kafka_settings, topics.raw, {busy: 3})
    assert cut.end[busy] == 3 and cut.latest[busy] == ends[busy]
    beyond = pin_offsets(kafka_settings, topics.raw, {busy: 10**9})
    assert beyond.end[busy] == ends[busy]  # --until never reaches past what is committed
    assert f'"{busy}": 3' in cut.spark_json("end")


def test_aborted_only_topic_is_not_replayable_by_until(kafka_settings, topics):
    produce_transactions(kafka_settings, topics.raw, [_messages(3)])
    with pytest.raises(ReplayError, match="no records before --until"):
        pin_offsets(kafka_settings, topics.raw, {0: 0, 1: 0})
    with pytest.raises(ReplayError, match="lacks"):
        pin_offsets(kafka_settings, topics.raw, {7: 1})


def test_missing_and_empty_topics(kafka_settings, topics):
    with pytest.raises(ReplayError, match="does not exist"):
        pin_offsets(kafka_settings, topics.raw + "-nope")
    with pytest.raises(ReplayError, match="has no committed records"):
        pin_offsets(kafka_settings, topics.raw)


def test_unreachable_broker():
    with pytest.raises(ReplayError, match="cannot reach the Kafka broker"):
        pin_offsets(KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}"), "x", timeout=2)


def _one_line_error(proc, match: str) -> None:
    assert proc.returncode == 1, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and match in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_errors_are_one_line(kafka_settings, topics, tmp_path):
    args = base_args(kafka_settings, topics.prefix, tmp_path / "out", "co2", "v1")
    _one_line_error(run_cli(args), "has no committed records")
    missing = base_args(kafka_settings, topics.prefix + "x", tmp_path / "out", "co2", "v1")
    _one_line_error(run_cli(missing), "does not exist")
    nobroker = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    _one_line_error(run_cli(base_args(nobroker, topics.prefix, tmp_path / "o", "co2", "v1")),
                    "cannot reach the Kafka broker")
    produce_transactions(kafka_settings, topics.raw, [_messages(3)])
    port = free_port()
    _one_line_error(run_cli([*args, "--master", f"spark://127.0.0.1:{port}"]),
                    f"Spark master spark://127.0.0.1:{port} is unreachable")
    bad = run_cli([*args, "--model-spec", "nope"])
    assert bad.returncode == 2 and "unknown model spec" in bad.stderr
    assert not (tmp_path / "out").exists()  # nothing was started, nothing was written

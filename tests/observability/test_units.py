"""The metrics' building blocks without Kafka: DLQ reason labels, histogram buckets, the replay textfile."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kappaml.dataset import builtin
from kappaml.learner import ModelError
from kappaml.lineup import Promotion
from kappaml.observability import Buckets
from kappaml.observability.processor import DLQ_REASONS, dlq_reason
from kappaml.observability.textfile import write_replay_textfile
from kappaml.records import InvalidRecord, decode
from tests.observability.test_prometheus import needs_promtool, promtool_check_metrics


def _reason(value: bytes | None) -> str:
    with pytest.raises(InvalidRecord) as caught:
        decode(builtin("co2"), value)
    return dlq_reason(caught.value)


def test_dead_letter_reasons_are_a_small_fixed_set() -> None:
    assert _reason(b"\xff\xfe") == "not_utf8"
    assert _reason(b"not json") == "not_json"
    assert _reason(b"[1, 2]") == "not_json"
    assert _reason(None) == "empty"  # a tombstone
    assert _reason(b'{"id": 1, "key": "__all__", "ts": 1, "source": "x", "row": {"Engine_Size": "big"}}') \
        == "invalid_record"
    assert dlq_reason(InvalidRecord("record key 'a' does not match the message key 'b'")) == "key_mismatch"
    assert dlq_reason(ModelError("boom")) == "model_error"
    with pytest.raises(InvalidRecord) as caught:
        Promotion.decode(b"not json")
    assert dlq_reason(caught.value) == "bad_control"
    assert dlq_reason(InvalidRecord("cannot promote 'x': version v1 runs rls")) == "bad_control"
    assert dlq_reason(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")) == "not_utf8"
    assert {dlq_reason(InvalidRecord(f"anything {i}")) for i in range(100)} == {"invalid_record"}
    assert set(DLQ_REASONS) >= {"not_utf8", "not_json", "empty", "invalid_record", "model_error"}


def test_buckets_are_cumulative_with_le_semantics() -> None:
    b = Buckets((0.1, 1.0))
    b.observe_many([0.05, 0.1, 0.5, 2.0])
    assert b.cumulative() == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]
    assert b.sum == pytest.approx(2.65)


@needs_promtool
def test_replay_textfile_is_valid_and_carries_the_summary(tmp_path: Path) -> None:
    summary = {"version": "v2", "spec": "rls", "published": 40, "seconds": 12.5, "drifts": [{}, {}],
               "totals": {"rows": 3000, "keys": 40, "learned": 2950, "duplicates": 30, "invalid": 20},
               "metrics": {"rmse": 4.2}, "phases": {"read": 3.5, "learn": 7.0}}
    [path] = write_replay_textfile(summary, tmp_path / "d" / "kappaml_replay.prom", None)
    text = path.read_text()
    promtool_check_metrics(text)
    samples = {(s.name, s.labels.get("phase")): s.value for f in text_string_to_metric_families(text)
               for s in f.samples}
    assert samples[("kappaml_replay_rows", None)] == 3000
    assert samples[("kappaml_replay_drifts", None)] == 2
    assert samples[("kappaml_replay_phase_seconds", "learn")] == 7.0
    assert samples[("kappaml_replay_rmse", None)] == 4.2

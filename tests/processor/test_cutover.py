"""Cut-over end to end: v1 runs live, Spark rebuilds v2 (another spec) from the log, v2 goes live.

Real broker, real spark-submit, real processors: v2 continues from exactly the replay's end
offsets (nothing learned twice, nothing skipped) and ends with the fingerprint of a v2 replay
of the whole log; both versions' metrics are in the metrics topic, labelled.
"""

from __future__ import annotations

import json

import pytest

from infra.testing import json_values, produce_raw, read_all
from kappaml.dataset import builtin
from kappaml.fingerprint import fingerprint
from kappaml.models import DEFAULT_SPEC
from kappaml.snapshot import Snapshot
from processor import Processor
from tests.processor.test_processor import make_settings, reference_states, synthetic_rows
from tests.spark_batch.replay_support import base_args, check_replay_metrics, run_cli

pytestmark = [pytest.mark.kafka, pytest.mark.spark]

V2_SPEC = "rls_additive"


def test_replay_then_cut_over_to_a_new_version(kafka_settings, topics, tmp_path):
    dataset = builtin("co2")
    rows = synthetic_rows(tmp_path, 900, seed=21)
    before, after = rows[:600], rows[600:]
    produce_raw(kafka_settings, topics.raw, dataset, before)
    Processor(make_settings(kafka_settings, topics, tmp_path / "v1", dataset)).run(idle_timeout=3)

    proc = run_cli([*base_args(kafka_settings, topics.prefix, tmp_path / "replay", "co2", "v2"),
                    "--model-spec", V2_SPEC])
    assert proc.returncode == 0, proc.stderr[-3000:]
    # What a replay publishes and prints (test_replay_metrics_feed.py, in make test-all, checks
    # the same on a replay of its own).
    summary = json.loads((tmp_path / "replay" / "summary.json").read_text())
    check_replay_metrics(kafka_settings, topics.metrics, proc, summary, "v2", V2_SPEC, 600)

    # New rows arrive after the replay; a duplicate of a row learned before the cut, too.
    produce_raw(kafka_settings, topics.raw, dataset, after, start_id=601)
    produce_raw(kafka_settings, topics.raw, dataset, before[10:11], start_id=11)
    v2 = make_settings(kafka_settings, topics, tmp_path / "v2", dataset, model_spec=V2_SPEC,
                       model_version="v2", from_replay=True)
    Processor(v2).run(idle_timeout=4)

    predictions = json_values(read_all(kafka_settings, topics.predictions))
    live_v2 = sorted(p["id"] for p in predictions if p["version"] == "v2")
    assert live_v2 == list(range(601, 901)), "v2 starts right after the replay, learns each row once"
    assert sorted(p["id"] for p in predictions if p["version"] == "v1") == list(range(1, 601))

    whole_log = reference_states(kafka_settings, topics, dataset, V2_SPEC, "v2")["__all__"]
    assert whole_log.learned == 900 and whole_log.skipped == 1
    snaps = newest_snapshot_by_version_and_origin(kafka_settings, topics)
    assert snaps[("v2", "replay")].learned == 600
    live = snaps[("v2", "live")]
    assert live.learned == 900 and live.spec == V2_SPEC
    assert live.fingerprint == fingerprint(whole_log.model)

    versions = {(m["version"], m["spec"]) for m in json_values(read_all(kafka_settings, topics.metrics))}
    assert {("v1", DEFAULT_SPEC), ("v2", V2_SPEC)} <= versions



def newest_snapshot_by_version_and_origin(kafka_settings, topics) -> dict[tuple[str, str], Snapshot]:
    newest: dict[tuple[str, str], Snapshot] = {}
    for _k, value, _p, _o in read_all(kafka_settings, topics.models):
        snap = Snapshot.decode(value)
        slot = (snap.version, snap.origin)
        if slot not in newest or snap.learned >= newest[slot].learned:
            newest[slot] = snap
    return newest

"""Model lifecycle against the real broker: challengers, promotions through the log, drift."""

from __future__ import annotations

import json
import math
import random
import signal
import time
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import pytest

from infra.testing import COMPACTION_MARKER, compact_now, json_values, produce_raw, read_all, typed_rows
from kappaml.dataset import builtin
from kappaml.drift import DriftConfig
from kappaml.fingerprint import fingerprint
from kappaml.kafka import KafkaSettings
from kappaml.lineup import CONTROL_KEY_BYTES, Promotion, publish_promotion
from kappaml.snapshot import Snapshot, parse_snapshot_key
from kappaml.topics import Topics, ensure_topics
from processor import Processor
from tests.processor.test_processor import _start, fleet, make_settings, reference_states, synthetic_rows
from tests.spark_batch.replay_support import base_args, run_cli

pytestmark = pytest.mark.kafka


def snapshots_by_label(kafka: KafkaSettings, topics: Topics) -> dict[tuple[str, str], Snapshot]:
    """The newest snapshot per (label, key): label "v1" for the champion line, "v1+spec" else."""
    latest: dict[tuple[str, str], Snapshot] = {}
    for key, value, _p, _o in read_all(kafka, topics.models):
        if key.startswith(COMPACTION_MARKER):
            continue
        slot = parse_snapshot_key(key.decode())
        snap = Snapshot.decode(value)
        if slot not in latest or snap.learned >= latest[slot].learned:
            latest[slot] = snap
    return latest


def test_challengers_learn_exactly_like_separate_runs(kafka_settings, topics, tmp_path):
    dataset = builtin("co2")
    rows = synthetic_rows(tmp_path, 500)
    produce_raw(kafka_settings, topics.raw, dataset, rows)
    produce_raw(kafka_settings, topics.raw, dataset, rows[:20])  # duplicates: skipped by every spec
    settings = make_settings(kafka_settings, topics, tmp_path, dataset, challengers=("linear", "amf"))
    Processor(settings).run(idle_timeout=4)

    main = json_values(read_all(kafka_settings, topics.predictions, expect=500))
    assert sorted(p["id"] for p in main) == list(range(1, 501))
    assert {(p["spec"], p["role"]) for p in main} == {("rls", "champion")}
    side = json_values(read_all(kafka_settings, topics.challengers, expect=1000))
    assert Counter((p["spec"], p["role"]) for p in side) == {("linear", "challenger"): 500,
                                                             ("amf", "challenger"): 500}
    snaps = snapshots_by_label(kafka_settings, topics)
    for label, spec in (("v1", "rls"), ("v1+linear", "linear"), ("v1+amf", "amf")):
        alone = reference_states(kafka_settings, topics, dataset, spec)["__all__"]
        snap = snaps[(label, "__all__")]
        assert (snap.spec, snap.learned) == (spec, 500)
        assert snap.fingerprint == fingerprint(alone.model), spec
        # Its metrics too: the same predictions as the spec alone.
        errors = [p["error"] for p in side + main if p["spec"] == spec]
        assert abs(sum(e * e for e in errors) / 500 - alone.metrics.get()["rmse"] ** 2) < 1e-6
    metrics = json_values(read_all(kafka_settings, topics.metrics))
    comparison = [m for m in metrics if m["scope"] == "comparison"][-1]
    assert set(comparison["specs"]) == {"rls", "linear", "amf"}
    assert all(v["learned"] == 500 for v in comparison["specs"].values())
    assert comparison["specs"]["rls"]["role"] == "champion"
    # Each spec's own learning step, timed by the processor: some microseconds per message.
    assert all(0 < v["learn_us"] < 1e6 for v in comparison["specs"].values())


def _wait(kafka: KafkaSettings, topic: str, n: int, timeout: float = 120) -> list:
    deadline = time.monotonic() + timeout
    got: list = []
    while time.monotonic() < deadline:
        got = read_all(kafka, topic, timeout=10)
        if len(got) >= n:
            return got
        time.sleep(0.5)
    raise AssertionError(f"only {len(got)} of {n} records on {topic} after {timeout}s")


def test_promotion_switches_the_serving_spec_at_the_control_record(kafka_settings, topics, tmp_path):
    dataset, rows, toml = fleet(tmp_path, 1200, seed=11)
    # A separate process, running all along: the promotion happens without a restart.
    proc = _start(topics, kafka_settings, tmp_path / "state", "--dataset", str(toml),
                  "--challengers", "linear")
    try:
        produce_raw(kafka_settings, topics.raw, dataset, rows[:600])
        _wait(kafka_settings, topics.predictions, 600)
        # Not running in v1, and for another version: the first is dead-lettered, the second ignored.
        publish_promotion(kafka_settings, topics.raw, Promotion("v1", "amf"))
        publish_promotion(kafka_settings, topics.raw, Promotion("v7", "linear"))
        control = publish_promotion(kafka_settings, topics.raw, Promotion("v1", "linear"))
        produce_raw(kafka_settings, topics.raw, dataset, rows[600:], start_id=601)
        main = json_values(_wait(kafka_settings, topics.predictions, 1200))
        side = json_values(_wait(kafka_settings, topics.challengers, 1200))
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and b"Traceback" not in err, err
    assert len(control) == 2, "the promotion goes to every raw partition"
    # Every row served once, by rls before the control record of its partition, by linear after.
    assert sorted(p["id"] for p in main) == list(range(1, 1201))
    assert sorted(p["id"] for p in side) == list(range(1, 1201))
    for p in main:
        expected = "linear" if p["offset"] > control[p["partition"]] else "rls"
        assert (p["spec"], p["role"]) == (expected, "champion"), p
    for p in side:
        assert p["spec"] == ("rls" if p["offset"] > control[p["partition"]] else "linear")
    dead = json_values(read_all(kafka_settings, topics.dlq, expect=2))
    assert len(dead) == 2 and all("cannot promote 'amf'" in d["reason"] for d in dead)
    metrics = json_values(read_all(kafka_settings, topics.metrics))
    promotions = [m for m in metrics if m["scope"] == "promotion"]
    assert sorted((m["partition"], m["offset"], m["spec"], m["previous"]) for m in promotions) == [
        (p, o, "linear", "rls") for p, o in sorted(control.items())]
    raw_controls = [m for m in read_all(kafka_settings, topics.raw) if m[0] == CONTROL_KEY_BYTES]
    assert len(raw_controls) == 6  # three promotions x two partitions, all kept in the log
    # The overall error is that of what was served, whichever spec served it.
    overall = [m for m in metrics if m["scope"] == "overall"][-1]
    served_rmse = math.sqrt(sum(p["error"] ** 2 for p in main) / len(main))
    served_mae = sum(abs(p["error"]) for p in main) / len(main)
    assert (overall["scored"], overall["served"]) == ("served", 1200)
    assert abs(overall["rmse"] - served_rmse) < 1e-9 and abs(overall["mae"] - served_mae) < 1e-9


def _altered(rows: list[dict], dataset, start: int, column: str, factor: float) -> list[dict]:
    """From row ``start`` on, the target of the rows with ``column`` true is scaled by ``factor``."""
    out = []
    for i, row in enumerate(rows):
        row = dict(row)
        if i >= start and row[column]:
            row[dataset.target] = row[dataset.target] * factor
        out.append(row)
    return out


def _fresh_topics(kafka: KafkaSettings, name: str) -> Topics:
    t = Topics(prefix=f"{name}-{random.randrange(16**8):08x}", raw_partitions=1)
    ensure_topics(kafka, t.specs())
    return t


def test_drift_is_detected_on_an_altered_co2_stream_and_not_on_the_original(kafka_settings, tmp_path,
                                                                             co2_csv):
    dataset = builtin("co2")
    rows = typed_rows(dataset, co2_csv)
    random.Random(0).shuffle(rows)
    column = next(f.name for f in dataset.features if f.kind == "boolean" and f.name.endswith("_X"))
    start = 3000
    runs: dict[str, list[dict]] = {}
    streams = {"clean": (rows, DriftConfig()), "altered": (_altered(rows, dataset, start, column, 1.3),
                                                         DriftConfig()),
               "reset": (_altered(rows, dataset, start, column, 1.3), DriftConfig(policy="reset"))}
    for name, (stream, drift) in streams.items():
        topics = _fresh_topics(kafka_settings, name)
        produce_raw(kafka_settings, topics.raw, dataset, stream)
        Processor(make_settings(kafka_settings, topics, tmp_path / name, dataset, drift=drift)).run(
            idle_timeout=4)
        runs[name] = json_values(read_all(kafka_settings, topics.drift))
        runs[name + "/predictions"] = json_values(read_all(kafka_settings, topics.predictions,
                                                           expect=len(rows)))
    assert runs["clean"] == []
    first = runs["altered"][0]
    delay = first["offset"] - start  # one partition: offset = row index
    assert 0 <= delay <= 200, first
    assert first["error_after"] > 2 * first["error_before"]
    assert (first["detector"], first["action"], first["spec"]) == ("adwin", "alert", "rls")
    reset = runs["reset"][0]
    assert (reset["action"], reset["generation"], reset["offset"]) == ("reset", 1, first["offset"])
    generations = defaultdict(set)
    for p in runs["reset/predictions"]:
        generations[p["offset"] > reset["offset"]].add(p["generation"])
    assert generations[False] == {0} and 1 in generations[True]


def test_stored_champion_survives_a_restart(kafka_settings, topics, tmp_path: Path):
    dataset = builtin("co2")
    rows = synthetic_rows(tmp_path, 200)
    settings = make_settings(kafka_settings, topics, tmp_path, dataset, challengers=("linear",))
    produce_raw(kafka_settings, topics.raw, dataset, rows[:100])
    publish_promotion(kafka_settings, topics.raw, Promotion("v1", "linear"))
    Processor(settings).run(idle_timeout=3)
    produce_raw(kafka_settings, topics.raw, dataset, rows[100:], start_id=101)
    Processor(settings).run(idle_timeout=3)  # a new process: the champion comes from the store
    main = json_values(read_all(kafka_settings, topics.predictions, expect=200))
    assert [p["spec"] for p in sorted(main, key=lambda p: p["id"])] == ["rls"] * 100 + ["linear"] * 100


@pytest.mark.spark
def test_spark_replay_tells_the_live_history_of_who_served_and_what_drifted(kafka_settings, topics,
                                                                            tmp_path):
    """Live processor (promotion + drift reset) vs. a Spark replay of the same log: the same."""
    dataset, rows, toml = fleet(tmp_path, 1800, seed=13)
    settings = make_settings(kafka_settings, topics, tmp_path / "live", dataset, challengers=("linear",),
                             drift=DriftConfig(policy="reset"))
    produce_raw(kafka_settings, topics.raw, dataset, rows[:1200])
    Processor(settings).run(idle_timeout=3)
    publish_promotion(kafka_settings, topics.raw, Promotion("v1", "linear"))
    scaled = [{**r, dataset.target: r[dataset.target] * 1.6} for r in rows[1200:]]
    produce_raw(kafka_settings, topics.raw, dataset, scaled, start_id=1201)
    Processor(settings).run(idle_timeout=3)

    out = tmp_path / "replay"
    proc = run_cli([*base_args(kafka_settings, topics.prefix, out, str(toml), "v1"),
                    "--challengers", "linear", "--drift-policy", "reset"])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    replayed = pd.read_parquet(out / summary["predictions"])

    live = json_values(read_all(kafka_settings, topics.predictions, expect=1800))
    live += json_values(read_all(kafka_settings, topics.challengers, expect=1800))
    assert len(live) == 3600
    mine = {(p["partition"], p["offset"], p["spec"]): (p["role"], p["generation"], p["y_pred"]) for p in live}
    theirs = {(r.partition, r.offset, r.spec): (r.role, r.generation, r.y_pred)
              for r in replayed[replayed.status == "learned"].itertuples()}
    assert mine == theirs  # who served each offset, with which model generation, predicting what
    assert {role for role, _g, _y in mine.values()} == {"champion", "challenger"}

    drifts = json_values(read_all(kafka_settings, topics.drift))
    assert drifts, "the 1.6x target change must be detected"
    assert sorted((d["partition"], d["offset"], d["spec"], d["generation"]) for d in drifts) == sorted(
        (d["partition"], d["offset"], d["spec"], d["generation"]) for d in summary["drifts"])
    # The replay of the live version keeps its snapshots apart from the live ones, also once the
    # compacted models topic has been cleaned: both lines, with the same models.
    compact_now(kafka_settings, topics.models)
    snaps = snapshots_by_label(kafka_settings, topics)
    for k in summary["keys"]:
        label = "v1" if k["spec"] == "rls" else f"v1+{k['spec']}"
        live_snap, replay_snap = snaps[(label, k["key"])], snaps[(f"{label}@replay", k["key"])]
        assert (live_snap.origin, replay_snap.origin) == ("live", "replay")
        assert live_snap.fingerprint == replay_snap.fingerprint == k["fingerprint"], (label, k["key"])

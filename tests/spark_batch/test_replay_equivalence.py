"""The Spark replay equals a plain sequential ``learn_step`` loop over the same Kafka records.

Real broker, real ``python -m spark_batch replay`` (spark-submit, local[2]), one run per
scenario: the CO2 data as one global model, and a keyed data set spread over both partitions
replayed ``--until`` a cut as a new version with another spec (the cut-over).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource
from prometheus_client.parser import text_string_to_metric_families
from replay_support import (
    FLEET_TOML,
    base_args,
    chunks,
    csv_messages,
    fingerprints,
    fleet_rows,
    produce_transactions,
    record_message,
    run_cli,
    sequential_replay,
)

from infra.testing import end_offsets, read_topic
from kappaml.dataset import GLOBAL_KEY, Dataset, builtin
from kappaml.fingerprint import fingerprint
from kappaml.learner import KeyState, learn_step
from kappaml.models import DEFAULT_SPEC, SPECS
from kappaml.records import decode
from kappaml.seen import SeenIds
from kappaml.snapshot import Snapshot, parse_snapshot_key

pytestmark = [pytest.mark.kafka, pytest.mark.spark]


def _replay(kafka, topics, out: Path, dataset: str, version: str, *extra: str) -> dict:
    proc = run_cli([*base_args(kafka, topics.prefix, out, dataset, version), *extra])
    assert proc.returncode == 0, proc.stderr[-4000:]
    # Progress is shown while it runs (spark-submit merges the driver's stderr into stdout).
    shown = proc.stdout + proc.stderr
    assert '"replay progress' in shown and '"replay done"' in shown, shown[-2000:]
    return json.loads((out / "summary.json").read_text())


def _check_textfile(path: Path, summary: dict) -> None:
    """The replay's Prometheus textfile: its figures are the summary's; promtool accepts it."""
    labels = {"version": summary["version"], "spec": summary["spec"]}
    samples = {(s.name, s.labels.get("phase")): s.value
               for family in text_string_to_metric_families(path.read_text()) for s in family.samples
               if {k: s.labels.get(k) for k in labels} == labels}
    for name in ("rows", "keys", "learned", "duplicates", "invalid"):
        assert samples[(f"kappaml_replay_{name}", None)] == summary["totals"][name], name
    assert samples[("kappaml_replay_rmse", None)] == pytest.approx(summary["metrics"]["rmse"])
    phases = {phase for name, phase in samples if name == "kappaml_replay_phase_seconds"}
    assert phases == set(summary["phases"])
    promtool = shutil.which("promtool")
    if promtool is not None:
        done = subprocess.run([promtool, "check", "metrics"], input=path.read_bytes(), capture_output=True)
        assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done


def _snapshots(kafka, topics) -> dict[tuple[int, str], Snapshot]:
    snaps = {}
    for msg in read_topic(kafka, topics.models):
        snap = Snapshot.decode(msg.value())  # verifies the model against its fingerprint
        assert parse_snapshot_key(msg.key().decode()) == (f"{snap.version}@replay", snap.key)
        snaps[(snap.partition, snap.key)] = snap
    return snaps


def _check_against_reference(summary: dict, out: Path, ref, spec: str, version: str) -> None:
    expected = fingerprints(ref)
    models = {(k["partition"], k["key"]): k for k in summary["keys"] if k.get("fingerprint")}
    assert {slot: k["fingerprint"] for slot, k in models.items()} == expected
    for slot, state in ref.states.items():
        k = models[slot]
        assert (k["offset"], k["learned"], k["duplicates"]) == (
            state.last_offset, state.learned, state.skipped)
        for name, value in state.metrics.get().items():
            if isinstance(value, float) and math.isfinite(value):
                assert k["metrics"][name] == pytest.approx(value, rel=1e-12), name
    totals = summary["totals"]
    assert (totals["learned"], totals["duplicates"], totals["invalid"]) == (
        ref.count("learned"), ref.count("duplicate"), ref.count("invalid"))
    assert totals["rows"] == len(ref.outcomes) and totals["models"] == len(expected)
    assert (summary["version"], summary["spec"], summary["origin"]) == (version, spec, "replay")

    rows = pd.read_parquet(out / summary["predictions"])
    assert len(rows) == len(ref.outcomes)
    for r in rows.itertuples():
        outcome = ref.outcomes[(r.partition, r.offset)]
        assert r.status == outcome.status
        if outcome.status == "learned":
            assert r.y_pred == outcome.y_pred  # the same prediction, bit for bit
    assert rows[rows.status == "invalid"].reason.notna().all()
    # One spec, no promotion in the log: it serves every record; alert-only drift keeps generation 0.
    assert (rows.spec == spec).all() and (rows.role == "champion").all() and (rows.generation == 0).all()
    assert summary["serving"] == {"champion": spec, "changes": {},
                                  "final": {p: spec for p in summary["offsets"]["end"]}}
    assert summary["totals"]["control"] == summary["totals"]["control_invalid"] == 0


def test_co2_global_model_replay_equals_sequential_loop(kafka_settings, topics, co2_csv, tmp_path):
    co2 = builtin("co2")
    messages = csv_messages(co2_csv, co2)
    bad_row = json.loads(messages[0][1])
    del bad_row["row"][co2.target]
    wrong_key = json.loads(messages[1][1])
    wrong_key["key"] = "someone-else"
    key = GLOBAL_KEY.encode()
    noise = [
        messages[9], messages[10], messages[11],  # re-sent rows: duplicates by row id
        (key, b"{not json"),
        (key, json.dumps(bad_row).encode()),
        (key, json.dumps(wrong_key).encode()),
        (None, messages[12][1]),  # no message key: dead-lettered by the processor
        (b"\xff\xfe", messages[13][1]),  # a key that is not UTF-8
    ]
    aborted = [record_message(co2, 900_000 + i, json.loads(m[1])["row"]) for i, m in enumerate(messages[:40])]
    batches = [*chunks(messages[:3000], 1000), noise, aborted, *chunks(messages[3000:], 1500)]
    produce_transactions(kafka_settings, topics.raw, batches, abort=[4])
    ends = end_offsets(kafka_settings, topics.raw, committed=True)

    out = tmp_path / "replay"
    summary = _replay(kafka_settings, topics, out, "co2", "v1")

    ref = sequential_replay(read_topic(kafka_settings, topics.raw), co2, DEFAULT_SPEC, "v1")
    assert ref.count("learned") == len(messages) and ref.count("duplicate") == 3
    assert ref.count("invalid") == 5  # the aborted transaction is invisible to both
    _check_against_reference(summary, out, ref, DEFAULT_SPEC, "v1")
    assert summary["offsets"]["end"] == summary["offsets"]["latest"] == {str(p): o for p, o in ends.items()}
    assert summary["metrics"]["n"] == len(messages) and summary["metrics"]["rmse"] > 0
    assert summary["spark"]["shuffled"] is False
    assert sum(summary["invalid_reasons"].values()) == 5

    snaps = _snapshots(kafka_settings, topics)
    (slot,) = [s for s in ref.states]
    snap = snaps[slot]
    state = ref.states[slot]
    assert (snap.origin, snap.version, snap.spec, snap.key) == ("replay", "v1", DEFAULT_SPEC, GLOBAL_KEY)
    assert (snap.offset, snap.learned, snap.fingerprint) == (
        state.last_offset, state.learned, fingerprint(state.model))


@pytest.fixture
def fleet(tmp_path) -> tuple[Dataset, Path]:
    path = tmp_path / "fleet.toml"
    path.write_text(FLEET_TOML)
    return Dataset.from_toml(path), path


def test_keyed_replay_until_a_cut_as_new_version(kafka_settings, topics, fleet, tmp_path):
    dataset, toml = fleet
    rows = fleet_rows(3000, vehicles=40)
    messages = [record_message(dataset, i + 1, r) for i, r in enumerate(rows)]
    dupes = messages[100:130]  # early duplicates, before the cut
    late_dupes = messages[200:220]  # rows learned before the cut, sent again after it
    produce_transactions(kafka_settings, topics.raw,
                         [*chunks(messages[:1000], 500), dupes, *chunks(messages[1000:], 500), late_dupes])
    ends = end_offsets(kafka_settings, topics.raw, committed=True)
    assert all(end > 1000 for end in ends.values()), ends  # keys really spread over both partitions
    until = {p: end * 2 // 3 for p, end in ends.items()}
    spec = "rls_additive" if "rls_additive" in SPECS else next(s for s in SPECS if s != DEFAULT_SPEC)

    # No processor has run on this prefix yet: the replay itself creates the compacted models topic.
    admin = AdminClient(kafka_settings.client_config())
    admin.delete_topics([topics.models])[topics.models].result(30)
    for _ in range(100):
        if topics.models not in admin.list_topics(timeout=10).topics:
            break
        time.sleep(0.1)

    out = tmp_path / "v2"
    # Three tasks for two busy partitions: the records are shuffled by key (the clustered path;
    # the CO2 scenario takes the direct one, a task per Kafka partition).
    textfile = tmp_path / "node-exporter" / "kappaml_replay.prom"
    summary = _replay(kafka_settings, topics, out, str(toml), "v2", "--model-spec", spec,
                      "--shuffle-partitions", "3", "--metrics-textfile", str(textfile),
                      "--until", ",".join(f"{p}:{o}" for p, o in until.items()))
    _check_textfile(textfile, summary)
    assert (out / "metrics.prom").read_text() == textfile.read_text()

    everything = read_topic(kafka_settings, topics.raw)
    ref = sequential_replay(everything, dataset, spec, "v2", until=until)
    assert len(ref.states) == 40 and {p for p, _ in ref.states} == set(ends)
    assert ref.count("duplicate") == 30
    _check_against_reference(summary, out, ref, spec, "v2")
    # Cut-over: per partition the pinned end (= --until), per key the last offset learned.
    assert summary["offsets"]["end"] == {str(p): o for p, o in until.items()}
    assert summary["offsets"]["latest"] == {str(p): o for p, o in ends.items()}
    assert all(k["offset"] < until[k["partition"]] for k in summary["keys"])
    assert summary["spark"]["shuffled"] is True

    resource = ConfigResource(ConfigResource.Type.TOPIC, topics.models)
    config = admin.describe_configs([resource])[resource].result(30)
    assert config["cleanup.policy"].value == "compact"
    snaps = _snapshots(kafka_settings, topics)
    assert set(snaps) == set(ref.states)
    for slot, snap in snaps.items():
        state = ref.states[slot]
        assert (snap.origin, snap.version, snap.spec) == ("replay", "v2", spec)
        assert (snap.offset, snap.learned, snap.fingerprint) == (
            state.last_offset, state.learned, fingerprint(state.model))
        assert SeenIds.from_json(snap.extra["seen"]) == state.seen
        assert snap.extra["end_offsets"] == summary["offsets"]["end"]

    # A processor starting v2 from each snapshot at offsets.end ends where a full sequential
    # run ends: the replayed models are exact starting points, nothing skipped or repeated.
    full = sequential_replay(everything, dataset, spec, "v2")
    assert full.count("duplicate") == 50  # 20 of them after the cut
    # The snapshot carries the model and the row ids learned: late duplicates stay skipped.
    resumed = {slot: KeyState(key=slot[1], spec=spec, version="v2", model=snap.model,
                              seen=SeenIds.from_json(snap.extra["seen"]))
               for slot, snap in snaps.items()}
    for msg in sorted(everything, key=lambda m: (m.partition(), m.offset())):
        if msg.offset() < int(summary["offsets"]["end"][str(msg.partition())]):
            continue
        example = decode(dataset, msg.value())
        slot = (msg.partition(), example.key)
        state = resumed.setdefault(slot, KeyState.new(example.key, dataset, spec, "v2"))
        learn_step(state, example, msg.offset())
    assert {slot: fingerprint(s.model) for slot, s in resumed.items()} == fingerprints(full)

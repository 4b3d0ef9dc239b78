"""Delayed labels (issue 17) in the Spark replay: a raw log of mixed kinds (labelled, features,
label) rebuilt with the processor's own ``apply_record`` and label policy.

Without Spark: the per-key function the tasks run against a plain sequential loop of the core
functions, and against the independent loop of ``tests/delayed_reference.py``. With a real
broker and a real ``python -m spark_batch replay`` (spark-submit, local[2]): every key's state
fingerprint (model, pending set, expiry decisions), figures and prediction rows equal the loop's.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from delayed_support import core_loop, delayed_log, replay_rows
from replay_support import (
    FLEET_TOML,
    base_args,
    chunks,
    fake_messages,
    fleet_rows,
    produce_transactions,
    run_cli,
    stream_rebuild,
)

from infra.testing import json_values, read_all, read_topic
from kappaml.dataset import Dataset
from kappaml.evaluation import PrequentialMetrics
from kappaml.fingerprint import fingerprint, state_fingerprint
from kappaml.lineup import Lineup
from kappaml.models import DEFAULT_SPEC
from kappaml.pending import LabelPolicy
from kappaml.records import InvalidRecord, decode
from kappaml.snapshot import Snapshot
from spark_batch.metrics_feed import _points
from tests.delayed_reference import reference_loop

CHALLENGER = "linear"
SPECS = (DEFAULT_SPEC, CHALLENGER)


def _frame(messages, partition=0, start=0) -> pd.DataFrame:
    return pd.DataFrame({"key": [k for k, _ in messages], "partition": [partition] * len(messages),
                         "offset": list(range(start, start + len(messages))),
                         "value": [v for _, v in messages]})


def _check_key(summary: dict, state, loop_rows: dict, rows: pd.DataFrame) -> None:
    """One (partition, key, spec) of the replay against the sequential loop's state and rows."""
    assert summary["state_fingerprint"] == state_fingerprint(state)
    assert summary["fingerprint"] == fingerprint(state.model)
    assert (summary["learned"], summary["duplicates"], summary["offset"]) == (
        state.learned, state.skipped, state.last_offset)
    assert summary["labels"] == json.loads(json.dumps(state.labels.figures()))
    figures = summary["labels"]
    assert figures["features_served"] == figures["labels_learned"] + figures["expired"] + figures["pending"]


@pytest.mark.parametrize(("ttl", "on_missing"), [("40", "learn=0"), ("6s", "drop")])
def test_per_key_rebuild_of_mixed_kinds_equals_the_core_loop(fleet: Dataset, ttl: str, on_missing: str,
                                                            tmp_path):
    log = delayed_log(fleet, fleet_rows(1500, 5, seed=3), seed=2)
    frame = _frame(log.messages, partition=1, start=10)
    policy = LabelPolicy.parse(ttl, on_missing)
    # A short rolling window: the order the metrics see the scored predictions in matters.
    lineup = Lineup(fleet, DEFAULT_SPEC, (CHALLENGER,), version="v1", window=50)
    # One Kafka partition as the task gets it, keys interleaved, batch edges anywhere.
    out = stream_rebuild(lineup, frame, batch=97, clustered=False, labels=policy)
    rows, models = out[out.kind == "row"], out[out.kind == "model"]
    summaries = {(r.spec, r.key): json.loads(r.summary) for r in models.itertuples()}
    snapshots = {(r.spec, r.key): Snapshot.decode(r.snapshot) for r in models.itertuples()}
    messages = fake_messages(log.messages, 1, 10)

    for spec in SPECS:
        loop = core_loop(messages, fleet, spec, "v1", policy, drift=lineup.drift, window=lineup.window)
        assert len(loop.states) == 5 and len(loop.invalid) == log.planted["bad"]
        mine = rows[rows.spec == spec]
        assert replay_rows(mine) == {**loop.rows, **{slot: [_invalid(mine, slot)] for slot in loop.invalid}}
        for (_p, key), state in loop.states.items():
            _check_key(summaries[(spec, key)], state, loop.rows, mine)
            snap = snapshots[(spec, key)]
            assert snap.fingerprint == fingerprint(state.model)
            assert snap.extra["labels"] == summaries[(spec, key)]["labels"]

    # The metrics feed's series (delayed prequential: scored in the order the state learned them)
    # end on each key's own metrics.
    rows.drop(columns="kind").to_parquet(tmp_path / "predictions.parquet")
    for key, points in _points(tmp_path / "predictions.parquet", DEFAULT_SPEC).items():
        metrics = PrequentialMetrics(window=lineup.window)
        for _p, _o, y_true, y_pred, _ts in points:
            metrics.update(y_true, y_pred)
        assert metrics.get() == pytest.approx(summaries[(DEFAULT_SPEC, key)]["metrics"], rel=1e-12)

    # Every case the log plants happened, for the champion at least.
    figures = [summaries[(DEFAULT_SPEC, key)]["labels"] for _p, key in loop.states]
    total = {name: sum(f[name] for f in figures) for name in figures[0] if not name.startswith("delay")}
    assert total["features_served"] == log.planted["features"]
    assert total["expired"] > 0 and total["labels_learned"] > 0 and total["orphan_labels"] >= log.planted[
        "unknown_labels"]
    champion = rows[rows.spec == DEFAULT_SPEC]
    assert (champion.status == "served").sum() == log.planted["features"]
    assert {"learned", "served", "duplicate", "early", "invalid"} <= set(champion.status)
    delayed = champion[champion.served_offset.notna() & (champion.status == "learned")]
    assert len(delayed) and (delayed.expired.isna() | delayed.expired).all()
    if on_missing == "drop":
        assert (champion.status == "expired").sum() == total["expired"]
    else:
        assert (champion.expired == True).sum() == total["expired"]  # noqa: E712 - a nullable column


def _invalid(rows: pd.DataFrame, slot: tuple[int, int]) -> tuple:
    """The replay's invalid row at ``slot`` (its reason says why; the loop only knows it is invalid)."""
    (row,) = replay_rows(rows[rows.offset == slot[1]])[slot]
    assert row[0] == "invalid" and rows[rows.offset == slot[1]].reason.iloc[0]
    return row


def test_per_key_rebuild_equals_the_independent_reference_loop(fleet: Dataset):
    """The model of every key equals the one of ``tests/delayed_reference.py``, a loop that shares
    nothing with ``kappaml.learner`` / ``kappaml.pending``: pending ids and expiries alike."""
    log = delayed_log(fleet, fleet_rows(1200, 4, seed=5), seed=4)
    frame = _frame(log.messages)
    out = stream_rebuild(Lineup(fleet, DEFAULT_SPEC, version="v1", drift=None), frame, batch=200,
                         clustered=False, labels=LabelPolicy.parse("30", "learn=0"))
    summaries = {r.key: json.loads(r.summary) for r in out[out.kind == "model"].itertuples()}
    per_key: dict[str, list[dict]] = {}
    for key, value in log.messages:
        try:
            record = decode(fleet, value)
        except InvalidRecord:
            continue
        if record.key == key.decode():
            per_key.setdefault(record.key, []).append(json.loads(value))
    assert set(per_key) == set(summaries)
    for key, records in per_key.items():
        ref = reference_loop(fleet, DEFAULT_SPEC, records, ttl_rows=30, learn_missing=0.0)
        summary = summaries[key]
        assert summary["fingerprint"] == ref.fingerprint, key
        figures = summary["labels"]
        assert (figures["features_served"], figures["labels_learned"], figures["pending"]) == (
            ref.served, ref.paired, len(ref.pending))
        assert (figures["expired"], figures["orphan_labels"]) == (len(ref.expired), ref.orphans)


@pytest.mark.kafka
@pytest.mark.spark
@pytest.mark.slow
def test_replay_of_a_log_with_delayed_labels_equals_the_core_loop(kafka_settings, topics, tmp_path):
    """Real broker, real spark-submit: a keyed log of mixed kinds on both partitions, a challenger,
    ``--label-ttl 40 --on-missing-label learn=0``: every (partition, key, spec) ends with the
    state (model, pending set, expiries) of a sequential loop of the core functions.

    In make test-all. make test runs a Spark replay with delayed labels through real Kafka in
    test_replay_equals_the_live_processor_with_delayed_labels[10s-drop] (every prediction, state
    fingerprint and label figure equal to the live processor's, which equals the core loop in
    tests/processor/test_delayed_labels.py; the replay's metrics records too), and the row-TTL
    learn=0 path of the same per-key rebuild in test_per_key_rebuild_of_mixed_kinds_equals_the_core_loop."""
    toml = tmp_path / "fleet.toml"
    toml.write_text(FLEET_TOML)
    dataset = Dataset.from_toml(toml)
    log = delayed_log(dataset, fleet_rows(2400, 12, seed=11), seed=6)
    produce_transactions(kafka_settings, topics.raw, chunks(log.messages, 700))

    out = tmp_path / "replay"
    proc = run_cli([*base_args(kafka_settings, topics.prefix, out, str(toml), "v1"),
                    "--challengers", CHALLENGER, "--label-ttl", "40", "--on-missing-label", "learn=0"])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "delayed labels (--label-ttl 40, --on-missing-label learn=0)" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    predictions = pd.read_parquet(out / summary["predictions"])

    everything = read_topic(kafka_settings, topics.raw)
    policy = LabelPolicy.parse("40", "learn=0")
    lineup = Lineup(dataset, DEFAULT_SPEC, (CHALLENGER,), version="v1")
    entries = {(k["spec"], k["partition"], k["key"]): k for k in summary["keys"]}
    for spec in SPECS:
        loop = core_loop(everything, dataset, spec, "v1", policy, drift=lineup.drift)
        assert {p for p, _ in loop.states} == {0, 1} and len(loop.states) == 12
        mine = predictions[predictions.spec == spec]
        invalid = {slot: [_invalid(mine[mine.partition == slot[0]], slot)] for slot in loop.invalid}
        expected = {**loop.rows, **invalid}
        assert replay_rows(mine) == expected
        for (p, key), state in loop.states.items():
            _check_key(entries[(spec, p, key)], state, loop.rows, mine)
        figures = summary["specs"][spec]["labels"]
        states = list(loop.states.values())
        assert figures["expired"] == sum(s.labels.expired for s in states) > 0
        assert figures["pending"] == sum(len(s.labels.pending) for s in states)
        assert figures["features_served"] == log.planted["features"] == (
            figures["labels_learned"] + figures["expired"] + figures["pending"])
        assert summary["specs"][spec]["totals"]["learned"] == sum(s.learned for s in states)
    assert summary["labels"]["label_ttl"] == "40" and summary["labels"]["on_missing_label"] == "learn=0"
    assert summary["totals"]["invalid"] == log.planted["bad"]

    # The published snapshots carry each key's delayed-label figures; the metrics topic the
    # replay's series, whose last record per key has them too (the processor's fields).
    snaps = [Snapshot.decode(m.value()) for m in read_topic(kafka_settings, topics.models)]
    assert len(snaps) == 24 and all(s.extra["labels"]["features_served"] > 0 for s in snaps)
    metrics = json_values(read_all(kafka_settings, topics.metrics))
    overall = [m for m in metrics if m["scope"] == "overall" and m.get("origin") == "replay"][-1]
    assert (overall["expired"], overall["pending"], overall["label_ttl"]) == (
        summary["labels"]["expired"], summary["labels"]["pending"], "40")


@pytest.mark.kafka
@pytest.mark.spark
# The row-TTL variant takes another 3 minutes: `make test-all` runs it, `make test` the first.
@pytest.mark.parametrize(("ttl", "on_missing"), [("10s", "drop"),
                                                 pytest.param("30", "learn=0", marks=pytest.mark.slow)])
def test_replay_equals_the_live_processor_with_delayed_labels(kafka_settings, topics, tmp_path, ttl: str,
                                                              on_missing: str):
    """The live processor (two runs, a promotion between them, a label TTL) and a Spark replay
    of the same log with the same flags: every key's state fingerprint (model, pending set,
    expiry decisions), pending and expired counts equal, and every served and scored
    prediction (expired ones learned with the missing-label value too) the same."""
    from kappaml.lineup import Promotion, publish_promotion
    from processor import Processor
    from tests.processor.test_lifecycle import snapshots_by_label
    from tests.processor.test_processor import make_settings

    toml = tmp_path / "fleet.toml"
    toml.write_text(FLEET_TOML)
    dataset = Dataset.from_toml(toml)
    log = delayed_log(dataset, fleet_rows(1800, 6, seed=17), seed=9, open_tail=12)
    half = len(log.messages) // 2
    policy = LabelPolicy.parse(ttl, on_missing)
    settings = make_settings(kafka_settings, topics, tmp_path / "live", dataset, challengers=(CHALLENGER,),
                             labels=policy)
    produce_transactions(kafka_settings, topics.raw, chunks(log.messages[:half], 600))
    Processor(settings).run(idle_timeout=3)
    publish_promotion(kafka_settings, topics.raw, Promotion("v1", CHALLENGER))
    produce_transactions(kafka_settings, topics.raw, chunks(log.messages[half:], 600))
    Processor(settings).run(idle_timeout=3)

    out = tmp_path / "replay"
    proc = run_cli([*base_args(kafka_settings, topics.prefix, out, str(toml), "v1"),
                    "--challengers", CHALLENGER, "--label-ttl", ttl, "--on-missing-label", on_missing])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    replayed = pd.read_parquet(out / summary["predictions"])

    # Every key and spec: the live snapshot's state equals the replayed one.
    snaps = snapshots_by_label(kafka_settings, topics)
    assert len(summary["keys"]) == 12
    for k in summary["keys"]:
        label = "v1" if k["spec"] == DEFAULT_SPEC else f"v1+{k['spec']}"
        live = snaps[(label, k["key"])]
        assert live.origin == "live"
        assert live.extra["state_fingerprint"] == k["state_fingerprint"], (label, k["key"])
        assert live.fingerprint == k["fingerprint"] and live.learned == k["learned"]
        assert (live.extra["pending"], live.extra["expired"], live.extra["features_served"]) == (
            k["labels"]["pending"], k["labels"]["expired"], k["labels"]["features_served"])
        assert snaps[(f"{label}@replay", k["key"])].fingerprint == k["fingerprint"]
    assert summary["labels"]["expired"] > 0 and summary["labels"]["pending"] > 0
    # The replay's series in the metrics topic ends on its delayed-label figures.
    metrics = json_values(read_all(kafka_settings, topics.metrics))
    overall = [m for m in metrics if m["scope"] == "overall" and m.get("origin") == "replay"][-1]
    assert (overall["expired"], overall["pending"], overall["label_ttl"]) == (
        summary["labels"]["expired"], summary["labels"]["pending"], ttl)

    # Every prediction: served (features) and scored (a label, or learned at once), with the role
    # the promotion gave, the model generation, the delay.
    n_served = 2 * log.planted["features"]
    live_records = json_values(read_all(kafka_settings, topics.predictions))
    live_records += json_values(read_all(kafka_settings, topics.challengers))
    mine = {}
    for p in live_records:
        if p.get("kind") == "served":
            mine[("served", p["partition"], p["offset"], p["spec"], str(p["id"]))] = (
                p["role"], p["generation"], p["y_pred"], None, None, None, None, None)
        else:
            mine[("learned", p["partition"], p["offset"], p["spec"], str(p["id"]))] = (
                p["role"], p["generation"], p["y_pred"], p["y_true"], p.get("served_offset"),
                p.get("delay_ms"), p.get("delay_rows"), p.get("expired"))
    theirs = {}
    for r in replayed[replayed.status.isin(["served", "learned"])].itertuples():
        extra = (None, None, None, None, None) if r.status == "served" else (
            r.y_true, *(None if pd.isna(v) else int(v) for v in (r.served_offset, r.delay_ms, r.delay_rows)),
            None if pd.isna(r.expired) else bool(r.expired))
        theirs[(r.status, r.partition, r.offset, r.spec, r.row_id)] = (r.role, r.generation, r.y_pred, *extra)
    assert len(mine) == len(live_records) and sum(1 for k in mine if k[0] == "served") == n_served
    assert mine == theirs
    assert {role for role, *_ in mine.values()} == {"champion", "challenger"}
    # learn=VALUE: every expiry (of every spec) is a scored prediction with "expired": true.
    expired_scored = sum(1 for v in mine.values() if v[-1])
    expired = sum(k["labels"]["expired"] for k in summary["keys"])
    assert expired_scored == (0 if on_missing == "drop" else expired) and expired > 0


def test_the_replay_textfile_carries_the_delayed_label_figures(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    from kappaml.observability.textfile import write_replay_textfile

    figures = {"features_served": 90, "labels_learned": 70, "expired": 15, "pending": 5, "orphan_labels": 3}
    summary = {"version": "v1", "spec": DEFAULT_SPEC, "totals": {"rows": 200},
               "labels": {"label_ttl": "40", "on_missing_label": "drop", **figures}}
    [path] = write_replay_textfile(summary, tmp_path / "replay.prom")
    samples = {s.name: s.value for f in text_string_to_metric_families(path.read_text()) for s in f.samples}
    assert {name: samples[f"kappaml_replay_{name}"] for name in figures} == figures
    # A log of labelled records only: no delayed-label gauges.
    [path] = write_replay_textfile({**summary, "labels": {"label_ttl": "none"}}, tmp_path / "plain.prom")
    assert "kappaml_replay_pending" not in path.read_text()

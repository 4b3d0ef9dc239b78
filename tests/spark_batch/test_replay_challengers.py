"""Issue 9 in the Spark replay: challengers, promotions and drift, as the processor runs them.

One real ``python -m spark_batch replay`` (spark-submit, local[2]) over a keyed data set on
both partitions of a real broker, with two challengers, promotions published between the
data (``kappaml.lineup.publish_promotion``, as the CLI and the UI do), bad control records,
and a target that changes half-way (drift policy reset). It is checked against a plain
sequential ``learn_step`` loop of each spec alone, and against the offsets the promotions got.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from replay_support import (
    FLEET_TOML,
    base_args,
    chunks,
    fingerprints,
    fleet_rows,
    produce_transactions,
    record_message,
    run_cli,
    sequential_replay,
)

from infra.testing import read_topic
from kappaml.dataset import Dataset
from kappaml.drift import DriftConfig
from kappaml.lineup import CONTROL_KEY_BYTES, Promotion, publish_promotion
from kappaml.models import DEFAULT_SPEC
from kappaml.snapshot import Snapshot

pytestmark = [pytest.mark.kafka, pytest.mark.spark]

CHALLENGERS = ("rls_additive", "linear")
SPECS = (DEFAULT_SPEC, *CHALLENGERS)
CUT = 1800  # rows after this one have their target scaled by 1.5: the world changed


def test_challengers_promotions_and_drift_replay_as_served(kafka_settings, topics, tmp_path):
    toml = tmp_path / "fleet.toml"
    toml.write_text(FLEET_TOML)
    dataset = Dataset.from_toml(toml)
    rows = fleet_rows(3000, vehicles=6)
    for row in rows[CUT:]:
        row["fuel"] *= 1.5
    messages = [record_message(dataset, i + 1, r) for i, r in enumerate(rows)]
    raw = topics.raw

    produce_transactions(kafka_settings, raw, chunks(messages[:1000], 500))
    first = publish_promotion(kafka_settings, raw, Promotion("v1", "linear"))
    produce_transactions(kafka_settings, raw, [messages[1000:1500], messages[100:110]])  # + duplicates
    # Control records the processor dead-letters (not JSON; a spec v1 does not run) or ignores
    # (another version's): none of them is data, none changes who serves.
    produce_transactions(kafka_settings, raw, [[(CONTROL_KEY_BYTES, b"{broken")]])
    publish_promotion(kafka_settings, raw, Promotion("v1", "hoeffding"))
    publish_promotion(kafka_settings, raw, Promotion("v0", "linear"))
    produce_transactions(kafka_settings, raw, chunks(messages[1500:2200], 350))
    second = publish_promotion(kafka_settings, raw, Promotion("v1", "rls_additive"))
    produce_transactions(kafka_settings, raw, chunks(messages[2200:], 400))

    out = tmp_path / "replay"
    proc = run_cli([*base_args(kafka_settings, topics.prefix, out, str(toml), "v1"),
                    "--challengers", ",".join(CHALLENGERS), "--drift-policy", "reset"])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    predictions = pd.read_parquet(out / summary["predictions"])

    everything = read_topic(kafka_settings, raw)
    drift = DriftConfig(policy="reset")
    refs = {spec: sequential_replay(everything, dataset, spec, "v1", drift=drift) for spec in SPECS}
    control = refs[DEFAULT_SPEC].control
    assert len(control) == 1 + 4 * 2 and {p for p, _ in control} == {0, 1}  # both partitions hold data

    # (a) Each spec learned every record exactly as a run of that spec alone.
    for spec, ref in refs.items():
        mine = {(k["partition"], k["key"]): k for k in summary["keys"] if k["spec"] == spec}
        assert {slot: k["fingerprint"] for slot, k in mine.items()} == fingerprints(ref)
        for slot, state in ref.states.items():
            assert (mine[slot]["learned"], mine[slot]["duplicates"], mine[slot]["generation"]) == (
                state.learned, state.skipped, state.generation)
        rows_of_spec = predictions[predictions.spec == spec]
        assert len(rows_of_spec) == len(ref.outcomes) == len(messages) + 10
        for r in rows_of_spec.itertuples():
            outcome = ref.outcomes[(r.partition, r.offset)]
            assert (r.status, r.generation) == (outcome.status, outcome.generation)
            if outcome.status == "learned":
                assert r.y_pred == outcome.y_pred
        totals = summary["specs"][spec]["totals"]
        assert (totals["learned"], totals["duplicates"], totals["invalid"]) == (len(messages), 10, 0)

    # (b) Who served: the champion's rows switch spec right after each partition's promotion.
    served = predictions[predictions.role == "champion"]
    assert not served.duplicated(["partition", "offset"]).any()
    assert len(served) == len(messages) + 10
    for r in served.itertuples():
        expected = (DEFAULT_SPEC if r.offset < first[r.partition]
                    else "linear" if r.offset < second[r.partition] else "rls_additive")
        assert r.spec == expected, (r.partition, r.offset)
    assert summary["serving"]["changes"] == {
        str(p): [{"offset": first[p], "spec": "linear"}, {"offset": second[p], "spec": "rls_additive"}]
        for p in sorted(first)}
    assert summary["serving"]["final"] == {str(p): "rls_additive" for p in sorted(first)}

    # (c) Drift: the detections of a sequential run, all after the change, each one a reset.
    order = {spec: i for i, spec in enumerate(SPECS)}
    expected_drifts = sorted(((p, o, spec, key, generation) for spec, ref in refs.items()
                              for p, o, key, generation, _reset in ref.drifts),
                             key=lambda d: (d[0], d[1], order[d[2]]))
    assert len(expected_drifts) >= len(SPECS)
    found = [(d["partition"], d["offset"], d["spec"], d["key"], d["generation"]) for d in summary["drifts"]]
    assert found == expected_drifts
    for d in summary["drifts"]:
        assert d["action"] == "reset" and d["error_after"] > d["error_before"]
        assert int(d["id"].lstrip("t")) > CUT  # row ids are t000001, t000002, ...
    assert summary["specs"][DEFAULT_SPEC]["drifts"] == len(refs[DEFAULT_SPEC].drifts)

    # (d) Control records are no data: not invalid, not predicted; the bad ones are counted.
    assert summary["totals"]["invalid"] == 0 and summary["totals"]["rows"] == len(messages) + 10
    assert set(zip(predictions.partition, predictions.offset, strict=True)).isdisjoint(control)
    assert (summary["totals"]["control"], summary["totals"]["control_invalid"]) == (9, 3)
    assert (summary["control"]["promotions"], summary["control"]["ignored"]) == (4, 2)
    reasons = sorted(p["reason"].split(":")[0] for p in summary["control"]["problems"])
    assert reasons == ["cannot promote 'hoeffding'"] * 2 + ["control record is not JSON"]

    # Snapshots: one per (key, spec), challengers under "v1+spec@replay/key", generations carried.
    snaps = {}
    for msg in read_topic(kafka_settings, topics.models):
        snap = Snapshot.decode(msg.value())
        label = "v1" if snap.spec == DEFAULT_SPEC else f"v1+{snap.spec}"
        assert msg.key().decode() == f"{label}@replay/{snap.key}"
        snaps[(snap.spec, snap.partition, snap.key)] = snap
    for spec, ref in refs.items():
        for (p, key), state in ref.states.items():
            snap = snaps.pop((spec, p, key))
            assert (snap.fingerprint, snap.extra["generation"], snap.origin) == (
                fingerprints(ref)[(p, key)], state.generation, "replay")
    assert not snaps


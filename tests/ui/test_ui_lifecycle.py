"""Drift, champion/challenger and promotion in the Streamlit app (AppTest) against the real broker.

The lifecycle records are written here in the processor's formats (ISSUE9), so these tests do
not depend on a processor running challengers; the promotion is read back from the raw topic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from ui_apptest import configure, layers, started_app, texts
from ui_lifecycle_kit import (
    LifecycleWriter,
    SpecFigures,
    comparison_record,
    drift_record,
    promotion_record,
)
from ui_testkit import Pipeline, synthetic_rows

from infra.testing import end_offsets, produce_raw, read_all
from kappaml.dataset import GLOBAL_KEY, builtin
from kappaml.kafka import KafkaSettings
from kappaml.lineup import CONTROL_KEY_BYTES, Promotion
from kappaml.topics import Topics, ensure_topics
from ui.store import OVERALL_KEY

pytestmark = pytest.mark.kafka



def _ms(ts: int) -> pd.Timestamp:
    return pd.to_datetime(ts, unit="ms", utc=True)


# ------------------------------------------------------------------------------ drift
@dataclass(frozen=True)
class Drifts:
    ts0: int  # event time of the first learned row; row i is handled at ts0 + i * 100
    records: list[dict[str, object]]


@pytest.fixture
def drifts(kafka_settings: KafkaSettings, topics: Topics) -> Drifts:
    """300 rows learned by v1 (metrics every 50 rows) and three detections: two of the global
    model, one of another key."""
    ts0 = int(time.time() * 1000) - 120_000
    Pipeline(kafka_settings, topics, builtin("co2")).learn(synthetic_rows(300), version="v1", spec="rls",
                                                           start_ts=ts0)
    records = [
        drift_record(GLOBAL_KEY, learned=120, ts=ts0 + 119 * 100 + 30, error_before=4.0, error_after=9.5),
        drift_record("other", learned=40, ts=ts0 + 200 * 100, error_before=2.0, error_after=5.0,
                     detector="page-hinkley", policy="reset", partition=1),
        drift_record(GLOBAL_KEY, learned=260, ts=ts0 + 259 * 100 + 30, error_before=3.0, error_after=7.25),
    ]
    LifecycleWriter(kafka_settings, topics).drifts(records)
    return Drifts(ts0, records)


def _rules(at: AppTest) -> pd.DataFrame:
    """The drift rules of the RMSE chart (the page's first chart)."""
    chart_layers = layers(at.get("vega_lite_chart")[0])
    assert [part["mark"]["type"] for part, _ in chart_layers] == ["line", "rule"]
    part, data = chart_layers[1]
    assert {t["field"] for t in part["encoding"]["tooltip"]} >= {
        "key", "spec", "detector", "error_before", "error_after", "action"}
    return data


def test_drift_detections_are_listed_and_marked_on_the_rmse_chart(
        monkeypatch: pytest.MonkeyPatch, kafka_settings: KafkaSettings, topics: Topics,
        drifts: Drifts) -> None:
    at = started_app(configure(monkeypatch, kafka_settings.bootstrap_servers, topics.prefix))
    assert at.selectbox(key="eval_key").value == GLOBAL_KEY
    table = at.dataframe[1].value
    assert list(table["learned by the model"]) == [260, 120]  # this key's only, newest first
    assert list(table["error after (g/km)"]) == [7.25, 9.5]
    assert set(table["detector"]) == {"adwin"} and set(table["action"]) == {"alert"}
    rules = _rules(at)
    assert sorted(rules["messages"]) == [120, 260]
    assert set(rules["key"]) == {GLOBAL_KEY} and set(rules["model"]) == {"v1"}
    mae = layers(at.get("vega_lite_chart")[1])
    assert len(mae) == 1  # the rules are on the RMSE chart only

    at.radio(key="eval_x").set_value("time").run()
    assert sorted(_rules(at)["time"]) == [_ms(drifts.ts0 + 11_930), _ms(drifts.ts0 + 25_930)]

    # The overall chart shows every key's detections; its axis counts every message, so a
    # detection sits at the overall record read before it (written every 50 rows).
    at.radio(key="eval_x").set_value("messages")
    at.selectbox(key="eval_key").set_value(OVERALL_KEY).run()
    assert not at.exception, at.exception
    assert sorted(_rules(at)["messages"]) == [100, 200, 250]
    table = at.dataframe[1].value
    assert list(table["key"]) == [GLOBAL_KEY, "other", GLOBAL_KEY]
    assert table.iloc[1]["action"] == "reset" and table.iloc[1]["detector"] == "page-hinkley"


# ------------------------------------------------------------------------------ comparison
def _comparisons(ts0: int, *, promoted: bool) -> list[dict[str, object]]:
    """Five checkpoints of v1 with rls as champion and linear as challenger; with ``promoted``,
    linear is promoted on both partitions between the third and the fourth."""
    records: list[dict[str, object]] = []
    for i in range(5):
        after = promoted and i >= 3
        roles = ("challenger", "champion") if after else ("champion", "challenger")
        records.append(comparison_record(ts0 + i * 1000, {
            "rls": SpecFigures(100 * (i + 1), 10.0 - i, 8.0 - i, 12.0 - i, 9.0 - i, drifts=i // 2,
                               role=roles[0], learn_us=12.5 + i),
            "linear": SpecFigures(100 * (i + 1), 9.0 - i, 7.0 - i, 6.0 - i, 5.0 - i, role=roles[1]),
        }, champions={0: "linear", 1: "linear"} if after else {}))
    if promoted:
        records[3:3] = [promotion_record("linear", "rls", p, 150 + p, ts0 + 2500) for p in (0, 1)]
    return records


def test_comparison_page_shows_every_spec_champions_and_promotions(
        monkeypatch: pytest.MonkeyPatch, kafka_settings: KafkaSettings, topics: Topics) -> None:
    ts0 = int(time.time() * 1000) - 60_000
    LifecycleWriter(kafka_settings, topics).metrics(_comparisons(ts0, promoted=True))
    at = started_app(configure(monkeypatch, kafka_settings.bootstrap_servers, topics.prefix))
    # Comparison and promotion records are no model keys of the evaluation page.
    assert "No metrics yet" in " ".join(texts(at.info))
    at.switch_page("views/comparison.py").run()
    assert not at.exception, at.exception

    specs, champions, promotions = (d.value for d in at.dataframe)
    assert list(specs["spec"]) == ["linear", "rls"]  # the serving spec first
    linear, rls = specs.iloc[0], specs.iloc[1]
    assert (linear["role"], linear["champion of partitions"]) == ("champion", "0, 1")
    assert rls["role"] == "challenger"
    assert (rls["learned"], rls["RMSE (rolling)"], rls["MAE"], rls["drifts"]) == (500, 8.0, 4.0, 2)
    assert rls["µs per message"] == 16.5 and pd.isna(linear["µs per message"])
    assert dict(zip(champions["partition"], champions["champion"], strict=True)) == {"0": "linear",
                                                                                     "1": "linear"}
    assert list(promotions["partition"]) == [1, 0] and set(promotions["spec"]) == {"linear"}
    assert set(promotions["offset"]) == {150, 151} and set(promotions["previous"]) == {"rls"}

    rmse, mae = at.get("vega_lite_chart")
    (line_part, lines), (_rule_part, rules) = layers(rmse)
    assert line_part["encoding"]["color"]["field"] == "spec"
    assert set(lines["window"]) == {"rolling"}
    by_spec = {spec: sorted(group["value"], reverse=True) for spec, group in lines.groupby("spec")}
    assert by_spec == {"rls": [12.0, 11.0, 10.0, 9.0, 8.0], "linear": [6.0, 5.0, 4.0, 3.0, 2.0]}
    assert sorted(rules["partition"]) == [0, 1] and set(rules["time"]) == {_ms(ts0 + 2500)}
    assert len(layers(mae)) == 2

    # linear serves every partition: only rls may be promoted (back).
    assert at.selectbox(key="promote_spec").options == ["rls"]


# ------------------------------------------------------------------------------ promotion
def _controls(kafka: KafkaSettings, topic: str, expect: int) -> list[tuple[int, int, Promotion]]:
    return sorted((partition, offset, Promotion.decode(value))
                  for key, value, partition, offset in read_all(kafka, topic, expect=expect, timeout=20)
                  if key == CONTROL_KEY_BYTES)


def test_promote_writes_a_control_record_to_every_raw_partition_only_after_confirmation(
        monkeypatch: pytest.MonkeyPatch, kafka_settings: KafkaSettings, topics: Topics) -> None:
    produce_raw(kafka_settings, topics.raw, builtin("co2"), synthetic_rows(10))
    before = end_offsets(kafka_settings, topics.raw)
    LifecycleWriter(kafka_settings, topics).metrics(_comparisons(int(time.time() * 1000), promoted=False))
    at = started_app(configure(monkeypatch, kafka_settings.bootstrap_servers, topics.prefix))
    at.switch_page("views/comparison.py").run()
    assert at.selectbox(key="promote_spec").options == ["linear"]

    # Unconfirmed, the button cannot be pressed (AppTest refuses it as a browser would).
    assert at.button(key="promote_button").disabled
    at.checkbox(key="promote_confirm").check().run()
    at.checkbox(key="promote_confirm").uncheck().run()
    assert at.button(key="promote_button").disabled
    assert not at.success and not at.error
    assert end_offsets(kafka_settings, topics.raw) == before

    at.checkbox(key="promote_confirm").check().run()
    assert not at.button(key="promote_button").disabled
    at.button(key="promote_button").click().run()
    assert not at.exception and not at.error, texts(at.error)
    controls = _controls(kafka_settings, topics.raw, expect=sum(before.values()) + 2)
    assert [(p, o) for p, o, _ in controls] == sorted(before.items())  # one per partition, at its end
    assert {(c.version, c.spec) for _, _, c in controls} == {("v1", "linear")}
    assert len({c.id for _, _, c in controls}) == 1 and controls[0][2].by.startswith("ui ")
    shown = " ".join(texts(at.success))
    assert all(f"partition {p} @ {o}" in shown for p, o, _ in controls), shown

    # Every promotion needs its own confirmation.
    assert at.checkbox(key="promote_confirm").value is False
    assert at.button(key="promote_button").disabled


def test_a_failed_promotion_is_one_line(monkeypatch: pytest.MonkeyPatch, kafka_settings: KafkaSettings,
                                        topics: Topics) -> None:
    no_raw = Topics(prefix=f"{topics.prefix}-noraw", raw_partitions=2)
    ensure_topics(kafka_settings, [s for s in no_raw.specs() if s.name != no_raw.raw])
    LifecycleWriter(kafka_settings, no_raw).metrics(_comparisons(int(time.time() * 1000), promoted=False))
    at = started_app(configure(monkeypatch, kafka_settings.bootstrap_servers, no_raw.prefix))
    at.switch_page("views/comparison.py").run()
    at.checkbox(key="promote_confirm").check().run()
    at.button(key="promote_button").click().run()
    assert not at.exception, at.exception
    errors = texts(at.error)
    assert len(errors) == 1, errors
    assert no_raw.raw in errors[0] and "does not exist" in errors[0]
    assert "\n" not in errors[0] and "Traceback" not in errors[0]
    assert not at.success

"""Issue 15 on the UI pages (AppTest, real broker): what a new user must be told."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
import streamlit as st
from ui_apptest import configure, started_app, texts
from ui_testkit import Pipeline, synthetic_rows

from kappaml.dataset import builtin
from kappaml.kafka import KafkaSettings
from kappaml.topics import Topics

pytestmark = pytest.mark.kafka



def test_pipeline_page_says_when_the_processor_skips_its_input_as_duplicates(
        monkeypatch: pytest.MonkeyPatch, kafka_settings: KafkaSettings, topics: Topics) -> None:
    pipe = Pipeline(kafka_settings, topics, builtin("co2"))
    now = int(time.time() * 1000)
    # What the processor publishes while every row it reads was learned before (item 1).
    pipe.overall("v1", now, learned=7385, skipped=2400, duplicates={
        "skipped": 2400, "share": 1.0, "recent_skipped": 812, "recent_rows": 812, "threshold": 0.05,
        "warning": True})
    pipe.overall("v2", now, learned=500, skipped=3, duplicates={
        "skipped": 3, "share": 0.01, "recent_skipped": 3, "recent_rows": 300, "threshold": 0.05,
        "warning": False})
    settings = configure(monkeypatch, kafka_settings.bootstrap_servers, topics.prefix)
    at = started_app(settings)
    at.switch_page("views/pipeline.py").run()
    assert not at.exception, at.exception
    warnings = " ".join(texts(at.warning))
    assert "Version v1 skips its input as already learned" in warnings
    assert "812 of its latest 812 rows (100%; 2,400 in all)" in warnings
    assert "v2 skips" not in warnings


def test_time_axes_are_24_hour_utc_and_the_table_shows_its_update_time(
        monkeypatch: pytest.MonkeyPatch, kafka_settings: KafkaSettings, topics: Topics) -> None:
    pipe = Pipeline(kafka_settings, topics, builtin("co2"))
    # Metrics written at 14:05 UTC: a 12-hour axis without AM/PM showed 02:05.
    afternoon = int(pd.Timestamp("2026-12-04T14:05:00Z").timestamp() * 1000)
    pipe.learn(synthetic_rows(120), version="v1", spec="rls", start_ts=afternoon)
    pipe.overall("v1", afternoon + 60_000, throughput=10.0)
    settings = configure(monkeypatch, kafka_settings.bootstrap_servers, topics.prefix)
    at = started_app(settings)
    at.radio(key="eval_x").set_value("time").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["updated (UTC)"])[0] == "14:05:09"  # the last of the 120 rows, 100 ms apart
    specs = [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]
    at.switch_page("views/pipeline.py").run()
    specs += [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]
    time_axes = [enc["x"] for spec in specs for layer in spec.get("layer", [spec])
                 for enc in [layer.get("encoding", {})] if enc.get("x", {}).get("type") == "temporal"]
    assert len(time_axes) >= 2  # the Evaluation charts over time and the Pipeline's throughput
    for x in time_axes:
        assert x["scale"]["type"] == "utc"
        assert x["axis"]["format"] == "%H:%M:%S" and x["axis"]["formatType"] == "utc"


def test_the_ui_says_when_the_data_is_synthetic(monkeypatch: pytest.MonkeyPatch,
                                                kafka_settings: KafkaSettings, topics: Topics) -> None:
    import uuid

    from kappaml import synthetic
    from kappaml.catalog import publish_declaration
    from kappaml.topics import ensure_topics
    from ui.settings import UISettings

    # make run without a CSV: the ingest declares the synthetic data set in the log.
    publish_declaration(kafka_settings, topics.datasets, synthetic.dataset())
    configure(monkeypatch, kafka_settings.bootstrap_servers, topics.prefix)
    monkeypatch.delenv("KAPPAML_DATASET")  # as make run starts it: the log's declaration decides
    at = started_app(UISettings.from_env())
    assert "Synthetic data" in " ".join(texts(at.sidebar.warning))
    st.cache_resource.clear()
    st.cache_data.clear()
    real = Topics(prefix=f"t{uuid.uuid4().hex[:10]}", raw_partitions=2)
    ensure_topics(kafka_settings, real.specs())
    publish_declaration(kafka_settings, real.datasets, builtin("co2"))
    configure(monkeypatch, kafka_settings.bootstrap_servers, real.prefix)
    monkeypatch.delenv("KAPPAML_DATASET")
    at = started_app(UISettings.from_env())
    assert "Synthetic data" not in " ".join(texts(at.sidebar.warning))


def test_committed_offsets_are_never_shown_above_the_end(kafka_settings: KafkaSettings,
                                                         topics: Topics) -> None:
    from confluent_kafka.admin import AdminClient
    from ui_testkit import commit_group

    from infra.testing import end_offsets, produce_raw
    from ui.cluster import group_lags
    from ui.store import TopicInfo

    produce_raw(kafka_settings, topics.raw, builtin("co2"), synthetic_rows(50))
    ends = end_offsets(kafka_settings, topics.raw)
    commit_group(kafka_settings, f"{topics.prefix}-processor-v1", topics.raw, ends)
    # End offsets read a moment before a processor committed further (as the reader does).
    stale = TopicInfo(topics.raw, "raw", {p: 0 for p in ends}, {p: max(e - 5, 0) for p, e in ends.items()})
    lags = group_lags(AdminClient(kafka_settings.client_config()), f"{topics.prefix}-processor-", stale, 10)
    assert len(lags) == 1
    assert all(lags[0].committed[p] <= stale.end_offsets[p] for p in lags[0].committed)
    assert all(v == 0 for v in lags[0].lag.values())


def test_predictions_page_marks_a_looping_csvs_repeated_rows(
        monkeypatch: pytest.MonkeyPatch, kafka_settings: KafkaSettings, topics: Topics) -> None:
    from confluent_kafka import Producer

    producer = Producer(kafka_settings.client_config())
    now = int(time.time() * 1000)
    for i in range(1, 61):
        record = {"key": "__all__", "id": i, "y_true": 200.0 + i, "y_pred": 201.0 + i, "error": 1.0,
                  "version": "v1", "spec": "rls", "partition": 0, "offset": i, "event_ts": now,
                  "processed_ts": now + 5, "role": "champion", "generation": 0}
        if i > 40:
            record["pass"] = 2
        producer.produce(topics.predictions, key=b"__all__", value=json.dumps(record).encode(), partition=0)
    assert producer.flush(30) == 0
    settings = configure(monkeypatch, kafka_settings.bootstrap_servers, topics.prefix)
    at = started_app(settings)
    at.switch_page("views/predictions.py").run()
    assert not at.exception, at.exception
    warnings = " ".join(texts(at.warning))
    assert "20 of these 60 predictions are not out of sample" in warnings
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    shapes = [layer["encoding"]["shape"] for layer in spec["layer"] if "shape" in layer.get("encoding", {})]
    assert shapes and shapes[0]["field"] == "sample"

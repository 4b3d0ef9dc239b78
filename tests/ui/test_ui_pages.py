"""Every page of the Streamlit app (AppTest) against the real broker: with data, empty, Kafka down."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest
from ui_apptest import APP, configure, started_app, texts
from ui_testkit import Pipeline, chart_data, commit_group, synthetic_rows

from infra.broker import BrokerConfig, LocalBroker
from infra.testing import end_offsets, free_port, produce_raw
from kappaml.dataset import builtin
from kappaml.kafka import KafkaSettings
from kappaml.snapshot import Snapshot
from kappaml.topics import Topics, ensure_topics
from ui import live
from ui.form import form_fields, to_example

pytestmark = pytest.mark.kafka

PAGES = ("views/evaluation.py", "views/comparison.py", "views/predictions.py", "views/predict.py",
         "views/pipeline.py")



def _metric(at: AppTest, label: str) -> str:
    for m in at.metric:
        if m.label == label:
            return str(m.value)
    raise AssertionError(f"no metric {label!r} among {[m.label for m in at.metric]}")


@dataclass
class Written:
    topics: Topics
    v1: Snapshot
    v1_metrics: dict[str, Any]
    v2: Snapshot
    v2_metrics: dict[str, Any]
    lag: int


@pytest.fixture
def written(kafka_settings: KafkaSettings, topics: Topics) -> Written:
    """What a live processor (v1) and a replay (v2) would have written, plus dead letters and lag."""
    dataset = builtin("co2")
    rows = synthetic_rows(300)
    pipe = Pipeline(kafka_settings, topics, dataset)
    now = int(time.time() * 1000)
    v1, v1_metrics = pipe.learn(rows, version="v1", spec="rls", start_ts=now - 120_000)
    v2, v2_metrics = pipe.learn(rows[:200], version="v2", spec="linear", origin="replay",
                                start_ts=now - 300_000)
    pipe.overall("v1", now, throughput=321.5, latency_ms={"p50": 4, "p95": 8, "p99": 11})
    pipe.dead_letters(["value is not JSON", "value is not JSON", "missing target"])
    produce_raw(kafka_settings, topics.raw, dataset, rows[:40])
    ends = end_offsets(kafka_settings, topics.raw)
    busy = max(ends, key=lambda p: ends[p])
    commit_group(kafka_settings, f"{topics.prefix}-processor-v1", topics.raw, {busy: ends[busy] - 5})
    return Written(topics, v1, v1_metrics, v2, v2_metrics, lag=5)


# ------------------------------------------------------------------------------ with data
def test_evaluation_page_charts_every_version(monkeypatch: pytest.MonkeyPatch, kafka_settings: KafkaSettings,
                                              written: Written) -> None:
    settings = configure(monkeypatch, kafka_settings.bootstrap_servers, written.topics.prefix)
    at = started_app(settings)
    key = at.selectbox(key="eval_key")
    assert key.options == ["overall (all keys)", "__all__ (the global model)"]
    assert key.value == "__all__"  # one global model: its record has rolling values and R²
    table = at.dataframe[0].value.set_index("version")
    assert set(table.index) == {"v1", "v2"}
    assert table.loc["v1", "messages"] == 300 and table.loc["v2", "messages"] == 200
    assert table.loc["v1", "RMSE"] == pytest.approx(written.v1_metrics["rmse"])
    assert table.loc["v2", "R²"] == pytest.approx(written.v2_metrics["r2"])

    charts = at.get("vega_lite_chart")
    assert len(charts) == 3
    spec, data = chart_data(charts[0])
    assert spec["encoding"]["y"]["title"] == "RMSE (g/km), log scale"
    assert spec["encoding"]["x"]["title"] == "messages scored (count)"
    assert set(data["version"]) == {"v1", "v2"}
    assert set(data["window"]) == {"cumulative", "rolling"}
    last_v1 = data[(data["version"] == "v1") & (data["window"] == "cumulative")]["value"].iloc[-1]
    assert last_v1 == pytest.approx(written.v1_metrics["rmse"])
    r2_spec, _ = chart_data(charts[2])
    assert r2_spec["encoding"]["y"]["title"] == "R² (unitless)"

    at.radio(key="eval_x").set_value("time").run()
    spec, _ = chart_data(at.get("vega_lite_chart")[0])
    assert spec["encoding"]["x"]["field"] == "time" and "UTC" in spec["encoding"]["x"]["title"]

    at.selectbox(key="eval_key").set_value("__overall__").run()
    assert not at.exception
    spec, data = chart_data(at.get("vega_lite_chart")[0])
    assert set(data["version"]) == {"v1", "v2"} and set(data["window"]) == {"cumulative"}
    assert any("overall record carries cumulative" in c for c in texts(at.caption))


def test_predictions_page(monkeypatch: pytest.MonkeyPatch, kafka_settings: KafkaSettings,
                          written: Written) -> None:
    settings = configure(monkeypatch, kafka_settings.bootstrap_servers, written.topics.prefix)
    at = started_app(settings)
    at.switch_page("views/predictions.py").run()
    assert not at.exception, at.exception
    assert _metric(at, "Predictions shown") == "500"
    scatter, histogram = at.get("vega_lite_chart")
    spec, data = chart_data(scatter)
    assert len(spec["layer"]) == 2  # the points and the identity line
    titles = {layer["encoding"]["x"].get("title") for layer in spec["layer"]}
    assert f"actual {builtin('co2').target} (g/km)" in titles
    hist_spec, _ = chart_data(histogram)
    assert hist_spec["encoding"]["x"]["title"].startswith("residual of")
    table = at.dataframe[0].value
    assert len(table) == 50
    assert list(table["version"][:1]) == ["v2"]  # newest first: v2 was written last

    at.selectbox(key="pred_version").set_value("v1").run()
    assert _metric(at, "Predictions shown") == "300"


def _fill(at: AppTest, row: dict[str, Any]) -> None:
    """Type one data row into the generated form (field names come from the declaration)."""
    dataset = builtin("co2")
    for field in form_fields(dataset):
        key = f"predict_{field.name}"
        if field.kind == "numeric":
            at.number_input(key=key).set_value(row[field.name])
        elif field.kind == "choice":
            chosen = next(label for label, name in field.options if row[name])
            at.radio(key=key).set_value(chosen)


def test_predict_page_uses_the_newest_snapshot_and_validates(
        monkeypatch: pytest.MonkeyPatch, kafka_settings: KafkaSettings, written: Written) -> None:
    settings = configure(monkeypatch, kafka_settings.bootstrap_servers, written.topics.prefix)
    dataset = builtin("co2")
    row = synthetic_rows(400)[350]  # not learned by either model
    x = to_example(dataset, form_fields(dataset), {
        **{f.name: row[f.name] for f in form_fields(dataset) if f.kind == "numeric"},
        **{f.name: next(lbl for lbl, n in f.options if row[n]) for f in form_fields(dataset)
           if f.kind == "choice"},
    }).x
    at = started_app(settings)
    at.switch_page("views/predict.py").run()
    assert not at.exception, at.exception

    _fill(at, row)
    at.button[0].click().run()
    assert not at.error, texts(at.error)
    expected = written.v1.model.predict_one(x)
    assert float(_metric(at, "Predicted CO2_Emissions (g/km)".replace("CO2_Emissions", dataset.target))) \
        == pytest.approx(expected, rel=1e-3)
    shown = " ".join(texts(at.markdown))
    assert "**v1**" in shown and written.v1.fingerprint in shown

    at.selectbox(key="predict_version").set_value("v2")
    at.button[0].click().run()
    shown = " ".join(texts(at.markdown))
    assert "**v2**" in shown and written.v2.fingerprint in shown and "replay" in shown
    assert float(_metric(at, f"Predicted {dataset.target} (g/km)")) == pytest.approx(
        written.v2.model.predict_one(x), rel=1e-3)

    first_numeric = next(f for f in form_fields(dataset) if f.kind == "numeric")
    at.number_input(key=f"predict_{first_numeric.name}").set_value(None)
    at.button[0].click().run()
    errors = texts(at.error)
    assert len(errors) == 1 and first_numeric.name in errors[0] and "required" in errors[0]
    assert not [m for m in at.metric if m.label.startswith("Predicted")]  # no stale answer


def test_pipeline_page(monkeypatch: pytest.MonkeyPatch, kafka_settings: KafkaSettings,
                       written: Written) -> None:
    settings = configure(monkeypatch, kafka_settings.bootstrap_servers, written.topics.prefix)
    at = started_app(settings)
    at.switch_page("views/pipeline.py").run()
    # The cluster figures come every 2 s; wait until the committed group shows up.
    deadline = time.monotonic() + 20
    while not live.reader(settings).store.view().pipeline.groups and time.monotonic() < deadline:
        time.sleep(0.2)
    at.run()
    assert not at.exception, at.exception
    success, warnings = " ".join(texts(at.success)), " ".join(texts(at.warning))
    assert "Processor alive" in success and "v1" in success
    assert "not alive" in warnings and "v2" in warnings
    assert _metric(at, "Consumer lag (messages)") == str(written.lag)
    assert _metric(at, "Dead letters") == "3"
    assert _metric(at, "Processor throughput (messages/s)") == "321.5"
    topics_table, groups_table, reasons, latest = (d.value for d in at.dataframe)
    assert set(topics_table["topic"]) == {t.name for t in written.topics.specs()}
    assert groups_table.iloc[0]["group"] == f"{written.topics.prefix}-processor-v1"
    assert groups_table.iloc[0]["lag (messages)"] == written.lag
    assert dict(zip(reasons["reason"], reasons["count"], strict=True)) == {
        "value is not JSON": 2, "missing target": 1}
    assert list(latest["reason"])[0] == "missing target"  # newest first
    assert len(at.get("vega_lite_chart")) == 1  # throughput


# ------------------------------------------------------------------------------ empty, down
def test_every_page_explains_what_to_start_before_any_data(
        monkeypatch: pytest.MonkeyPatch, kafka_settings: KafkaSettings, topics: Topics) -> None:
    settings = configure(monkeypatch, kafka_settings.bootstrap_servers, topics.prefix)
    at = started_app(settings)
    expected = {"views/evaluation.py": ("No metrics yet", "make run"),
                "views/comparison.py": ("No comparison yet", "--challengers"),
                "views/predictions.py": ("No predictions yet", "make run"),
                "views/predict.py": ("No model snapshots yet", "make run")}
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        assert not at.error, (page, texts(at.error))
        infos = " ".join(texts(at.info))
        if page in expected:
            assert all(part in infos for part in expected[page]), (page, infos)
        else:
            assert "no metrics seen" in " ".join(texts(at.warning))
            assert "No processor consumer group" in infos
            assert "No dead letters." in texts(at.success)


def test_kafka_down_message_then_recovery(monkeypatch: pytest.MonkeyPatch) -> None:
    port, controller = free_port(), free_port()
    settings = configure(monkeypatch, f"127.0.0.1:{port}", "down")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    reader = live.reader(settings)
    deadline = time.monotonic() + 20
    while reader.store.status().checked_at == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        errors = texts(at.error)
        assert len(errors) == 1 and "Kafka is not reachable" in errors[0], (page, errors)
        assert f"127.0.0.1:{port}" in errors[0]

    # Kafka comes up on that address: the same reader reconnects, the page shows it by itself.
    broker = LocalBroker(BrokerConfig(port=port, controller_port=controller, heap="256m", log_level="WARN",
                                      data_dir=Path(tempfile.mkdtemp(prefix="kafka-ui-down-"))))
    broker.start()
    try:
        ensure_topics(settings.kafka, settings.topics.specs())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            view = reader.store.view()
            if view.status.connected and not view.status.missing_topics and view.loaded:
                break
            time.sleep(0.2)
        at.switch_page("views/evaluation.py").run()
        assert not at.error, texts(at.error)
        assert "No metrics yet" in " ".join(texts(at.info))
    finally:
        broker.stop()

"""The Evaluation and Predictions pages (AppTest) with delayed labels, against the real broker."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest
from ui_apptest import configure, started_app, texts
from ui_testkit import Pipeline, chart_data, delayed_run, synthetic_rows

from kappaml.dataset import builtin
from kappaml.kafka import KafkaSettings
from kappaml.topics import Topics

pytestmark = pytest.mark.kafka



def _metric(at: AppTest, label: str) -> str:
    for m in at.metric:
        if m.label == label:
            return str(m.value)
    raise AssertionError(f"no metric {label!r} among {[m.label for m in at.metric]}")


@pytest.fixture
def delayed(kafka_settings: KafkaSettings, topics: Topics):  # type: ignore[no-untyped-def]
    """A processor's output for 200 rows whose labels come 25 rows later, four never (TTL 60, learn=0)."""
    dataset = builtin("co2")
    run = delayed_run(dataset, synthetic_rows(200), delay=25, drop={10, 11, 70, 160}, ttl="60",
                      on_missing="learn=0", ts0=int(time.time() * 1000) - 60_000)
    Pipeline(kafka_settings, topics, dataset).write(run)
    return topics, run


def test_evaluation_page_shows_the_delayed_labels(monkeypatch: pytest.MonkeyPatch,
                                                  kafka_settings: KafkaSettings, delayed) -> None:  # type: ignore[no-untyped-def]
    topics, run = delayed
    figures = run.state.labels.figures()
    at = started_app(configure(monkeypatch, kafka_settings.bootstrap_servers, topics.prefix))
    assert "Delayed labels" in texts(at.subheader)
    assert _metric(at, "Served") == "200"
    assert _metric(at, "Learned with their label") == f"{figures['labels_learned']:,}"
    assert _metric(at, "Pending now") == str(figures["pending"])
    assert _metric(at, "Expired") == str(figures["expired"]) and figures["expired"] == 4
    summary = at.dataframe[1].value
    assert bool(summary["balanced"].iloc[0])
    charts = at.get("vega_lite_chart")
    titles = [chart_data(c)[0].get("title") for c in charts]
    assert "Served predictions waiting for their label, and expired" in titles
    assert "Label delay: p50, p95 and p99 of the recent labels" in titles
    assert "Label delay of the newest labelled predictions" in titles
    spec, data = chart_data(charts[titles.index("Label delay of the newest labelled predictions")])
    assert spec["encoding"]["x"]["title"] == "label delay (s)"
    assert len(data) == figures["labels_learned"]
    at.selectbox(key="eval_key").set_value("__overall__").run()
    assert not at.exception and "Delayed labels" in texts(at.subheader)


def test_predictions_page_marks_the_predictions_waiting_for_their_label(
        monkeypatch: pytest.MonkeyPatch, kafka_settings: KafkaSettings, delayed) -> None:  # type: ignore[no-untyped-def]
    topics, run = delayed
    labels = run.state.labels
    at = started_app(configure(monkeypatch, kafka_settings.bootstrap_servers, topics.prefix))
    at.switch_page("views/predictions.py").run()
    assert not at.exception, at.exception
    assert _metric(at, "Served predictions shown") == "200"
    waiting = len(labels.pending)
    assert waiting == 25  # the last 25 rows' labels did not come yet
    assert _metric(at, "Waiting for their label") == str(waiting)
    assert _metric(at, "Predictions shown") == f"{labels.paired + labels.expired:,}"
    served = at.dataframe[1].value
    assert len(served) == 50
    status = dict(zip(served["id"], served["status"], strict=True))
    assert status["200"] == "waiting for its label" and status["170"] == "labelled"
    assert dict(zip(served["id"], served["waiting"], strict=True))["200"]
    assert _metric(at, "Expired") == "4" and _metric(at, "Labelled") == f"{labels.paired:,}"
    assert status["160"] == "expired (no label)"  # dropped: learned as 0 after 60 records (learn=0)
    scored = at.dataframe[0].value
    assert "label delay (records)" in scored.columns

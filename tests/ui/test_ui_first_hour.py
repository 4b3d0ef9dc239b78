"""Issue 15 on the UI pages (AppTest, real broker): what a new user must be told."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import streamlit as st
from ui_apptest import configure, started_app, texts
from ui_testkit import Pipeline

from kappaml.dataset import builtin
from kappaml.kafka import KafkaSettings
from kappaml.topics import Topics

pytestmark = pytest.mark.kafka


@pytest.fixture(autouse=True)
def _release_readers() -> Iterator[None]:
    yield
    st.cache_resource.clear()


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

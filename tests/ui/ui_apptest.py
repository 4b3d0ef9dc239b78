"""Helpers of the AppTest page tests: configure the app through its environment, start it with
its reader loaded, read the texts of elements."""

from __future__ import annotations

from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO
from ui import live
from ui.settings import UISettings

APP = str(REPO / "ui" / "app.py")


def configure(monkeypatch: pytest.MonkeyPatch, bootstrap: str, prefix: str) -> UISettings:
    monkeypatch.setenv("KAPPAML_KAFKA_BOOTSTRAP_SERVERS", bootstrap)
    monkeypatch.setenv("KAPPAML_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("KAPPAML_DATASET", "co2")
    monkeypatch.setenv("KAPPAML_LOG_LEVEL", "WARNING")
    return UISettings.from_env()


def started_app(settings: UISettings) -> AppTest:
    """An app whose reader has read everything that was in the topics when it started."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert live.reader(settings).wait_loaded(30), "the reader did not finish its first read"
    at.run()
    assert not at.exception, at.exception
    return at


def texts(elements: Any) -> list[str]:
    return [str(e.value) for e in elements]


def layers(element: Any) -> list[tuple[dict[str, Any], Any]]:
    """(layer spec, its data as a DataFrame) of each layer of an AppTest chart element; a chart
    without layers is its own single layer."""
    import json

    import pyarrow as pa

    spec = json.loads(element.proto.spec)
    data = {d.name: pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in element.proto.datasets}
    parts = spec.get("layer", [spec])

    def frame(part: dict[str, Any]) -> Any:
        name = (part.get("data") or spec.get("data") or {}).get("name")
        if name is None and len(data) == 1:
            return next(iter(data.values()))
        return data.get(name)

    return [(part, frame(part)) for part in parts]

"""``python -m api --metrics-port``: requests, items, writes and snapshot ages as counted, real broker."""

from __future__ import annotations

import time

import httpx
import pytest
from api_testkit import (
    DATASET,
    declare,
    features_of,
    running_api,
    start_processor,
    stop,
    synthetic_rows,
    wait_for_snapshot,
)

from infra.testing import free_port, produce_raw
from tests.observability.test_programs import sample
from tests.observability.test_prometheus import PROMTOOL, promtool_check_metrics, scrape

pytestmark = pytest.mark.kafka


def test_metrics_count_what_the_api_answered_and_wrote(kafka_settings, topics, tmp_path) -> None:
    declare(kafka_settings, topics)
    rows = synthetic_rows(tmp_path, 120)
    x = features_of(DATASET, rows[0])
    produce_raw(kafka_settings, topics.raw, DATASET, rows)
    processor = start_processor(kafka_settings, topics, tmp_path / "state")
    port = free_port()
    try:
        snap = wait_for_snapshot(kafka_settings, topics, len(rows))
        with running_api(kafka_settings, topics, "--metrics-port", str(port)) as api:
            # The replica may still hold an older snapshot: wait until it serves this one.
            served = 0  # /predict calls so far, all 200
            while served < 100:
                served += 1
                answer = httpx.post(f"{api.base}/predict", params={"log": "false"}, json={"features": x})
                if answer.json()["offset"] >= snap.offset:
                    break
                time.sleep(0.2)
            assert answer.json()["offset"] >= snap.offset, "the API never served the processor's snapshot"
            batch = httpx.post(f"{api.base}/predict", json=[{"features": x}, {"features": x}])  # logged
            assert batch.status_code == 200, batch.text
            label = httpx.post(f"{api.base}/labels", json={"id": batch.json()[0]["id"], "target": 200.0})
            assert label.status_code == 200, label.text
            bad = httpx.post(f"{api.base}/predict", json={"features": {**x, DATASET.features[0].name: "x"}})
            assert bad.status_code == 400

            text = scrape(port)
    finally:
        stop(processor)
    assert sample(text, "kappaml_api_requests_total", endpoint="/predict", status="200") == served + 1
    assert sample(text, "kappaml_api_requests_total", endpoint="/predict", status="400") == 1
    assert sample(text, "kappaml_api_requests_total", endpoint="/labels", status="200") == 1
    # /health: the polls of running_api until the API was ready (at least the 200 one).
    assert sample(text, "kappaml_api_requests_total", endpoint="/health", status="200") >= 1
    assert sample(text, "kappaml_api_request_seconds_count", endpoint="/predict") == served + 2
    assert sample(text, "kappaml_api_predictions_total") == served + 2
    assert sample(text, "kappaml_api_labels_total") == 1
    # The logged batch and the label: two transactions (or one, had they been grouped), 3 records.
    assert sample(text, "kappaml_api_written_records_total") == 3
    assert 1 <= sample(text, "kappaml_api_write_transactions_total") <= 2
    assert sample(text, "kappaml_api_write_failures_total") == 0
    # Every answer after the snapshot came from it, so its age was observed; the fallback's not.
    assert sample(text, "kappaml_api_snapshot_staleness_seconds_count") >= 3
    assert sample(text, "kappaml_api_snapshots") >= 1
    assert sample(text, "kappaml_api_replica_caught_up") == 1
    if PROMTOOL is not None:
        promtool_check_metrics(text)

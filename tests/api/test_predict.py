"""POST /predict against the real broker and a real processor: the answer is the published snapshot's."""

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

from infra.testing import produce_raw
from kappaml.fingerprint import fingerprint
from kappaml.models import DEFAULT_SPEC, build_model

pytestmark = pytest.mark.kafka


def _predict(base: str, body, **params) -> httpx.Response:
    return httpx.post(f"{base}/predict", json=body, params={"log": "false", **params}, timeout=30)


def test_answers_with_the_snapshot_the_processor_published_and_follows_newer_ones(
        kafka_settings, topics, tmp_path):
    declare(kafka_settings, topics)
    rows = synthetic_rows(tmp_path, 500)
    x = features_of(DATASET, rows[-1])
    with running_api(kafka_settings, topics) as api:
        # No snapshot yet: the declared fallback, a fresh model of the configured spec.
        first = _predict(api.base, {"features": x})
        assert first.status_code == 200, first.text
        fresh = build_model(DEFAULT_SPEC, DATASET)
        assert first.json()["offset"] == -1 and first.json()["fingerprint"] == fingerprint(fresh)
        assert first.json()["id"] is None and first.json()["staleness_ms"] is None

        produce_raw(kafka_settings, topics.raw, DATASET, rows[:300])
        processor = start_processor(kafka_settings, topics, tmp_path / "state")
        try:
            snap = wait_for_snapshot(kafka_settings, topics, 300)
            answer = _wait_for_offset(api.base, x, snap.offset)
            assert answer["fingerprint"] == snap.fingerprint
            assert answer["version"] == "v1" and answer["spec"] == snap.spec == DEFAULT_SPEC
            assert answer["key"] == "__all__" and answer["generation"] == 0
            assert answer["prediction"] == pytest.approx(snap.model.predict_one(x), rel=1e-12)
            assert answer["staleness_ms"] >= 0

            # The processor learns more and checkpoints: the API serves the newer snapshot.
            produce_raw(kafka_settings, topics.raw, DATASET, rows[300:], start_id=301)
            newer = wait_for_snapshot(kafka_settings, topics, 500)
            assert newer.offset > snap.offset
            later = _wait_for_offset(api.base, x, newer.offset)
            assert later["fingerprint"] == newer.fingerprint != snap.fingerprint

            # A batch answers item by item, each from the same snapshot.
            batch = _predict(api.base, [{"features": features_of(DATASET, r)} for r in rows[:5]])
            assert batch.status_code == 200
            assert [a["fingerprint"] for a in batch.json()] == [newer.fingerprint] * 5
            assert [a["prediction"] for a in batch.json()] == pytest.approx(
                [newer.model.predict_one(features_of(DATASET, r)) for r in rows[:5]], rel=1e-12)

            models = httpx.get(f"{api.base}/models", timeout=10).json()
            (live,) = [m for m in models["labels"] if m["label"] == "v1"]
            assert live["keys"] == 1 and live["specs"] == [DEFAULT_SPEC]
            assert max(live["newest_offsets"].values()) == newer.offset
        finally:
            stop(processor)


def _wait_for_offset(base: str, x: dict, offset: int, timeout: float = 60) -> dict:
    """The answer once it comes from a snapshot at ``offset`` (the replica follows the topic)."""
    deadline = time.monotonic() + timeout
    answer = {}
    while time.monotonic() < deadline:
        response = _predict(base, {"features": x})
        assert response.status_code == 200, response.text
        answer = response.json()
        if answer["offset"] == offset:
            return answer
        assert answer["offset"] < offset, "served a snapshot newer than the newest published"
        time.sleep(0.2)
    raise AssertionError(f"the API still serves offset {answer.get('offset')} after {timeout:.0f} s, "
                         f"not {offset}")


def test_bad_requests_get_a_400_naming_the_field_and_the_reason(kafka_settings, topics, tmp_path):
    declare(kafka_settings, topics)
    x = features_of(DATASET, synthetic_rows(tmp_path, 1)[0])
    with running_api(kafka_settings, topics, "--max-batch", "3", "--max-body-bytes", "4096") as api:
        cases = {
            "features.Engine_Size": {"features": {**x, "Engine_Size": "big"}},
            "features.Cylinders": {"features": {k: v for k, v in x.items() if k != "Cylinders"}},
            "features.Fuel_Type_D": {"features": {**x, "Fuel_Type_D": 3}},
            "features.Colour": {"features": {**x, "Colour": "red"}},
            "features.CO2_Emissions": {"features": {**x, "CO2_Emissions": 200.0}},
            "key": {"features": x, "key": "some-key"},
        }
        for field, body in cases.items():
            response = _predict(api.base, body)
            assert response.status_code == 400, (field, response.text)
            assert response.json()["extra"]["field"] == field
            assert response.json()["detail"].startswith(f"{field}: ")
        in_batch = _predict(api.base, [{"features": x}, {"features": {**x, "Cylinders": None}}])
        assert in_batch.status_code == 400 and in_batch.json()["extra"]["field"] == "[1].features.Cylinders"
        assert _predict(api.base, []).status_code == 400
        assert _predict(api.base, [{"features": x}] * 4).status_code == 413
        assert _predict(api.base, {"features": {**x, "pad": "x" * 5000}}).status_code == 413
        assert _predict(api.base, {"features": x}, version="v1/x").status_code == 400
        assert _predict(api.base, {"features": x}, version="v9").status_code == 404
        labels = httpx.post(f"{api.base}/labels", json={"id": "abc", "target": "high"}, timeout=10)
        assert labels.status_code == 400
        labels = httpx.post(f"{api.base}/labels", json={"id": "", "target": 1.0}, timeout=10)
        assert labels.status_code == 400 and labels.json()["extra"]["field"] == "id"


def test_reject_fallback_answers_404_for_a_key_without_a_snapshot(kafka_settings, topics, tmp_path):
    declare(kafka_settings, topics)
    x = features_of(DATASET, synthetic_rows(tmp_path, 1)[0])
    with running_api(kafka_settings, topics, "--fallback", "reject") as api:
        response = _predict(api.base, {"features": x})
        assert response.status_code == 404 and "__all__" in response.json()["detail"]

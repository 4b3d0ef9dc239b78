"""Logged requests and labels: in the raw topic exactly once (read_committed), also across a SIGKILL."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from api_testkit import (
    DATASET,
    ApiProcess,
    declare,
    features_of,
    running_api,
    start_processor,
    stop,
    synthetic_rows,
    wait_for_snapshot,
)

from infra.testing import read_all
from kappaml.fingerprint import fingerprint
from kappaml.learner import KeyState, learn_step
from kappaml.models import DEFAULT_SPEC
from kappaml.records import Example

pytestmark = pytest.mark.kafka


def _raw_events(kafka, topics) -> list[dict]:
    return [json.loads(v) for _k, v, _p, _o in sorted(read_all(kafka, topics.raw, timeout=20),
                                                       key=lambda m: (m[2], m[3]))]


def _hammer(base: str, xs: list[dict], ok: list[str], stop_event: threading.Event) -> None:
    """Logged requests one after another until stopped; the ids of those answered 200."""
    with httpx.Client(timeout=15) as client:
        for x in xs:
            if stop_event.is_set():
                return
            try:
                response = client.post(f"{base}/predict", json={"features": x})
            except httpx.HTTPError:
                continue  # the API was killed mid-request: no 200, no promise
            if response.status_code == 200:
                ok.append(response.json()["id"])


def test_every_answered_request_is_in_the_log_once_also_across_a_sigkill(kafka_settings, topics, tmp_path):
    declare(kafka_settings, topics)
    xs = [features_of(DATASET, r) for r in synthetic_rows(tmp_path, 400)]
    api = ApiProcess(kafka_settings, topics).start()
    ok: list[str] = []
    halt = threading.Event()
    try:
        threads = [threading.Thread(target=_hammer, args=(api.base, xs[i::4], ok, halt)) for i in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(ok) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        api.kill()  # SIGKILL with requests in flight
        halt.set()
        for t in threads:
            t.join(30)
        before_kill = list(ok)
        assert before_kill, "no request was answered before the kill"
        api.start()  # the same instance id: its open transaction, if any, is aborted
        _hammer(api.base, xs[:20], ok, threading.Event())
        assert len(ok) == len(before_kill) + 20
        labels = [{"id": rid, "target": 100.0 + i} for i, rid in enumerate(ok)]
        answer = httpx.post(f"{api.base}/labels", json=labels, timeout=30)
        assert answer.status_code == 200, answer.text
        assert [a["id"] for a in answer.json()] == ok
    finally:
        api.stop()

    events = _raw_events(kafka_settings, topics)
    features = [e["id"] for e in events if e.get("kind") == "features"]
    assert len(features) == len(set(features)), "a features event is in the log twice"
    assert set(ok) <= set(features), "a request answered 200 is not in the log"
    assert len(ok) == len(set(ok))
    labelled = [e["id"] for e in events if e.get("kind") == "label"]
    assert sorted(labelled) == sorted(ok)
    assert all(e["stream"] == "api" and e["source"] == DATASET.name for e in events)
    assert all("CO2_Emissions" not in e["row"] for e in events if e.get("kind") == "features")


def _log_requests_and_labels(kafka_settings, topics, tmp_path, n: int) -> list[Example]:
    """n logged requests, then their labels: the examples a sequential loop learns, in label order."""
    declare(kafka_settings, topics)
    rows = synthetic_rows(tmp_path, n, seed=11)
    with running_api(kafka_settings, topics) as api:
        ids = []
        for row in rows:
            response = httpx.post(f"{api.base}/predict", json={"features": features_of(DATASET, row)},
                                  timeout=15)
            assert response.status_code == 200, response.text
            ids.append(response.json()["id"])
        labels = [{"id": rid, "target": row[DATASET.target]} for rid, row in zip(ids, rows, strict=True)]
        assert httpx.post(f"{api.base}/labels", json=labels, timeout=30).status_code == 200
    events = _raw_events(kafka_settings, topics)
    x_of = {e["id"]: e["row"] for e in events if e.get("kind") == "features"}
    return [Example(id=e["id"], key=e["key"], x={f: float(x_of[e["id"]][f]) for f in DATASET.feature_names},
                    y=e["target"], stream=e["stream"])
            for e in events if e.get("kind") == "label"]


@pytest.mark.slow
def test_the_api_side_of_learning_once_every_labelled_request_is_logged(kafka_settings, topics, tmp_path):
    """In make test-all: the next test logs the same way (50 requests and their labels) and
    asserts the same before the processor learns them."""
    examples = _log_requests_and_labels(kafka_settings, topics, tmp_path, 30)
    assert len(examples) == 30 and len({e.id for e in examples}) == 30


def test_the_processor_learns_each_logged_request_exactly_once(kafka_settings, topics, tmp_path):
    examples = _log_requests_and_labels(kafka_settings, topics, tmp_path, 50)
    assert len(examples) == 50 and len({e.id for e in examples}) == 50
    reference = KeyState.new("__all__", DATASET, DEFAULT_SPEC, "v1")
    for offset, example in enumerate(examples):
        learn_step(reference, example, offset)
    processor = start_processor(kafka_settings, topics, tmp_path / "state")
    try:
        snap = wait_for_snapshot(kafka_settings, topics, 50, timeout=90)
    finally:
        stop(processor)
    assert snap.learned == 50
    assert snap.fingerprint == fingerprint(reference.model)

"""The API under schemathesis: cases from its own OpenAPI schema never get a 5xx; oversized bodies
and batches are refused with a 413."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from api_testkit import DATASET, ApiProcess, declare, features_of, synthetic_rows
from hypothesis import HealthCheck, given, settings

pytestmark = pytest.mark.kafka


@pytest.fixture
def api(kafka_settings, topics) -> Iterator[ApiProcess]:
    declare(kafka_settings, topics)
    process = ApiProcess(kafka_settings, topics, "--max-batch", "50", "--max-body-bytes", "65536").start()
    try:
        yield process
    finally:
        process.stop()


def test_no_generated_request_gets_a_server_error(api: ApiProcess) -> None:
    schema = schemathesis.openapi.from_url(f"{api.base}/schema/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/predict", "/labels", "/models", "/health"}
    seen = 0
    with httpx.Client(timeout=30) as client:
        for operation in operations:
            @given(case=operation.as_strategy())
            @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def check(case) -> None:  # type: ignore[no-untyped-def]
                nonlocal seen
                seen += 1
                kwargs = case.as_transport_kwargs(base_url=api.base)
                response = client.request(kwargs["method"], kwargs["url"], params=kwargs.get("params"),
                                          headers=kwargs.get("headers"), json=kwargs.get("json"),
                                          content=kwargs.get("content") or kwargs.get("data"))
                assert response.status_code < 500, (kwargs, response.text[:300])
                if response.status_code >= 400:
                    assert response.json()["detail"], "a refusal must say why"

            check()
    assert seen >= len(operations)
    assert api.proc is not None and api.proc.poll() is None


def test_oversized_bodies_and_batches_are_refused(api: ApiProcess, tmp_path) -> None:
    x = features_of(DATASET, synthetic_rows(tmp_path, 1)[0])
    batch = httpx.post(f"{api.base}/predict", params={"log": "false"}, json=[{"features": x}] * 51,
                       timeout=30)
    assert batch.status_code == 413 and "51 items" in batch.json()["detail"]
    body = httpx.post(f"{api.base}/predict", content=b'{"features": {"a": "' + b"x" * 100_000 + b'"}}',
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert body.status_code == 413
    labels = httpx.post(f"{api.base}/labels", json=[{"id": "a", "target": 1.0}] * 51, timeout=30)
    assert labels.status_code == 413
    assert httpx.get(f"{api.base}/health", timeout=10).status_code == 200


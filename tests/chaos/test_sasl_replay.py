"""Kafka credentials reach the Spark replay's executors and the prediction API, not only its options.

tests/chaos/test_sasl.py runs SSE -> ingest -> processor -> feeds on a SASL-only listener and checks
the replay's Spark options and pre-flight. Here the two programs it does not run do: the replay on
a Spark standalone cluster (its Kafka source reads the raw topic in an executor, another JVM than
the driver, and its publisher writes the snapshots) and the API serving those snapshots, every
client given nothing but the ``KAPPAML_KAFKA_*`` variables of a SASL_PLAINTEXT (PLAIN) listener.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from infra.broker import BrokerConfig, LocalBroker
from infra.spark import SparkCluster, SparkClusterConfig
from infra.testing import REPO, free_port, produce_raw, read_all, typed_rows
from kappaml import synthetic
from kappaml.catalog import publish_declaration
from kappaml.kafka import KafkaSettings
from kappaml.snapshot import Snapshot
from kappaml.topics import Topics, ensure_topics
from tests.chaos.test_sasl import PASSWORD, USER, env_for

pytestmark = [pytest.mark.kafka, pytest.mark.spark]

ROWS = 400


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    config = BrokerConfig(port=free_port(), controller_port=free_port(), sasl_port=free_port(),
                          sasl_users=((USER, PASSWORD),), heap="512m", log_level="WARN",
                          data_dir=tmp_path_factory.mktemp("sasl-replay-kafka"))
    broker = LocalBroker(config)
    broker.start()
    yield broker
    broker.stop()


def test_the_replay_on_a_spark_cluster_and_the_api_run_with_credentials(sasl_broker: LocalBroker,
                                                                         tmp_path: Path) -> None:
    env = {**os.environ, **env_for(sasl_broker, PASSWORD)}
    kafka = KafkaSettings.from_env(env)
    assert kafka.bootstrap_servers == sasl_broker.config.sasl_bootstrap  # the SASL listener only
    topics = Topics(prefix="sasl-replay", raw_partitions=2)
    ensure_topics(kafka, topics.specs())
    dataset = synthetic.dataset()
    publish_declaration(kafka, topics.datasets, dataset)
    rows = typed_rows(dataset, synthetic.write_csv(tmp_path / "rows.csv", n_rows=ROWS, seed=3))
    produce_raw(kafka, topics.raw, dataset, rows)

    spark = SparkCluster(SparkClusterConfig(workers=1, port=free_port(), webui_port=free_port(),
                                            worker_memory="768m", data_dir=tmp_path / "spark"))
    out = tmp_path / "replay"
    try:
        spark.start()
        replay = subprocess.run(
            [sys.executable, "-m", "spark_batch", "replay", "--topic-prefix", topics.prefix,
             "--version", "sasl-v1", "--output-dir", str(out), "--master", spark.config.master_url,
             "--shuffle-partitions", "1", "--spark-conf", "spark.executor.memory=512m",
             "--spark-conf", "spark.ui.enabled=false", "--no-class-archive", "--log-format", "json"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=500)
    finally:
        spark.stop()
    assert replay.returncode == 0, (replay.stdout + replay.stderr)[-4000:]
    assert PASSWORD not in replay.stdout + replay.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"]["learned"] == ROWS
    # The snapshots the replay published, read back with the same credentials.
    snaps = [Snapshot.decode(v) for _k, v, _p, _o in read_all(kafka, topics.models)]
    (snap,) = [s for s in snaps if s.version == "sasl-v1"]
    assert snap.learned == ROWS

    port = free_port()
    api = subprocess.Popen([sys.executable, "-m", "api", "--port", str(port), "--topic-prefix", topics.prefix,
                            "--raw-partitions", "2", "--fallback", "reject",
                            "--instance-id", "api-sasl", "--log-level", "WARNING"],
                           cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        features = {f.name: rows[-1][f.name] for f in dataset.features}
        deadline, answer, last = time.monotonic() + 90, None, ""
        while time.monotonic() < deadline and api.poll() is None:
            try:  # a replay's snapshots are served under its label, <version>@replay
                response = httpx.post(f"http://127.0.0.1:{port}/predict", json={"features": features},
                                      params={"log": "false", "version": "sasl-v1@replay"}, timeout=10)
                if response.status_code == 200:
                    answer = response.json()
                    break
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.5)
        if answer is None:
            api.kill()
            pytest.fail(f"the API did not answer ({last}): {api.communicate(timeout=10)[1].decode()[-2000:]}")
        assert answer["fingerprint"] == snap.fingerprint and answer["offset"] == snap.offset
    finally:
        api.kill()
        api.wait(10)

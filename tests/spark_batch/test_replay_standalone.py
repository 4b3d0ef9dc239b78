"""The Kappa replay on a real Spark standalone cluster (a master and two workers of pyspark's jars)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from replay_support import (
    FLEET_TOML,
    base_args,
    chunks,
    fingerprints,
    fleet_rows,
    produce_transactions,
    record_message,
    run_cli,
    sequential_replay,
)

from infra.spark import SparkCluster, SparkClusterConfig
from infra.testing import free_port, read_topic
from kappaml.dataset import Dataset
from kappaml.models import DEFAULT_SPEC

# Three minutes on 2 cores; the short cluster chaos run (tests/chaos/test_chaos_cluster.py) replays
# on a standalone master too, with a worker killed, in `make test`.
pytestmark = [pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow]


def test_replay_on_a_standalone_cluster_equals_the_sequential_loop(kafka_settings, topics, tmp_path: Path):
    toml = tmp_path / "fleet.toml"
    toml.write_text(FLEET_TOML)
    dataset = Dataset.from_toml(toml)
    messages = [record_message(dataset, i + 1, r) for i, r in enumerate(fleet_rows(1200, vehicles=12))]
    produce_transactions(kafka_settings, topics.raw, chunks(messages, 400))

    webui = free_port()
    config = SparkClusterConfig(workers=2, port=free_port(), webui_port=webui, worker_memory="768m",
                                data_dir=tmp_path / "spark")
    cluster = SparkCluster(config)
    try:
        cluster.start()
        status = cluster.status()
        assert status is not None and sum(w["state"] == "ALIVE" for w in status["workers"]) == 2
        out = tmp_path / "replay"
        proc = run_cli([*base_args(kafka_settings, topics.prefix, out, str(toml), "v1"),
                        "--master", config.master_url, "--shuffle-partitions", "2",
                        "--spark-conf", "spark.executor.memory=512m", "--no-class-archive"], timeout=400)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        master = cluster.status() or {}
        apps = master.get("completedapps", []) + master.get("activeapps", [])
        assert any(app["name"] == "kappaml-replay-v1" for app in apps), apps
    finally:
        cluster.stop()
    summary = json.loads((out / "summary.json").read_text())
    ref = sequential_replay(read_topic(kafka_settings, topics.raw), dataset, DEFAULT_SPEC, "v1")
    got = {(k["partition"], k["key"]): k["fingerprint"] for k in summary["keys"] if k.get("fingerprint")}
    assert got == fingerprints(ref) and len(got) == 12
    assert summary["totals"]["learned"] == 1200

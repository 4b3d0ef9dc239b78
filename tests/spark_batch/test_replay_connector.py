"""Spark's Kafka connector: resolved by Maven once, cached; clear errors when it cannot be had."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from replay_support import REPO, produce_transactions, run_cli

import infra.classpath as classpath
import spark_batch.connector as connector
from spark_batch.errors import ReplayError

EXPECTED = {"spark-sql-kafka-0-10_2.13", "spark-token-provider-kafka-0-10_2.13", "kafka-clients",
            "commons-pool2"}


def _artifact(jar_name: str) -> str:
    return jar_name.rsplit("-", 1)[0]


def test_connector_is_resolved_once_then_served_from_the_cache(monkeypatch):
    jars = connector.connector_jars()
    assert {_artifact(j.name) for j in jars} == EXPECTED  # nothing pyspark already ships
    assert jars[0].parent.name.startswith("spark-kafka-")
    monkeypatch.setattr(classpath.shutil, "which", lambda name: None)  # no Maven needed now
    assert connector.connector_jars() == jars


def test_missing_maven_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(classpath.shutil, "which", lambda name: None)
    with pytest.raises(ReplayError, match="Maven"):
        connector.resolve_connector(cache_dir=tmp_path)


def test_unresolvable_connector_is_a_clear_error(tmp_path):
    pom = tmp_path / "pom.xml"
    pom.write_text(connector.POM.read_text().replace(
        "<spark.version>4.2.0</spark.version>", "<spark.version>0.0.0-no-such-version</spark.version>"))
    with pytest.raises(ReplayError, match="cannot resolve Spark's Kafka connector") as info:
        connector.resolve_connector(cache_dir=tmp_path / "cache", pom=pom)
    assert "\n" not in str(info.value)
    assert not list((tmp_path / "cache").glob("spark-kafka-*/.complete"))


def test_cli_without_maven_or_cache_fails_in_one_line(tmp_path):
    env = {**os.environ, "KAPPAML_CACHE_DIR": str(tmp_path), "PATH": os.path.dirname(sys.executable)}
    proc = subprocess.run([sys.executable, "-m", "spark_batch", "replay", "--version", "v1"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: cannot resolve Spark's Kafka connector")


@pytest.mark.kafka
@pytest.mark.spark
def test_spark_submit_without_the_connector_says_how_to_get_it(kafka_settings, topics, tmp_path):
    produce_transactions(kafka_settings, topics.raw, [[(b"k", b"{}")]])
    jars = run_cli(["jars"])
    assert jars.returncode == 0 and "spark-sql-kafka" in jars.stdout
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "spark-submit"), "--master", "local[1]",
         str(REPO / "spark_batch" / "replay.py"), "--bootstrap", kafka_settings.bootstrap_servers,
         "--topic-prefix", topics.prefix, "--dataset", "co2", "--version", "v1",
         "--output-dir", str(tmp_path / "o")],
        cwd=REPO, env={**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"},
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1
    output = proc.stdout + proc.stderr
    errors = [ln for ln in output.splitlines() if ln.startswith("error:")]
    assert errors == ["error: Spark's Kafka connector is not on the classpath: run `python -m spark_batch "
                      "replay`, or pass the jars of `python -m spark_batch jars` to spark-submit --jars"]

"""Kafka credentials pass through every program: a private broker with a SASL_PLAINTEXT (PLAIN)
listener serves the pipeline when the programs present credentials and refuses it, with a
one-line error and a non-zero exit, when they do not."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from infra.broker import BrokerConfig, LocalBroker
from infra.testing import free_port, json_values, kill, read_all, start, wait_http
from kappaml.kafka import KafkaSettings, KafkaUnavailable, connect_admin
from kappaml.topics import Topics, ensure_topics
from spark_batch.errors import ReplayError
from spark_batch.offsets import pin_offsets

pytestmark = pytest.mark.kafka

USER, PASSWORD = "kappa", "s3cret-pw"
ROWS = 300


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    config = BrokerConfig(port=free_port(), controller_port=free_port(), sasl_port=free_port(),
                          sasl_users=((USER, PASSWORD), ("other", "x")),
                          data_dir=tmp_path_factory.mktemp("sasl-kafka"), heap="512m", log_level="WARN")
    broker = LocalBroker(config)
    broker.start()
    yield broker
    broker.stop()


def env_for(broker: LocalBroker, password: str | None, protocol: str = "SASL_PLAINTEXT") -> dict[str, str]:
    env = {"KAPPAML_KAFKA_BOOTSTRAP_SERVERS": broker.config.sasl_bootstrap or "",
           "KAPPAML_KAFKA_SECURITY_PROTOCOL": protocol}
    if protocol.startswith("SASL"):
        env |= {"KAPPAML_KAFKA_SASL_MECHANISM": "PLAIN", "KAPPAML_KAFKA_SASL_USERNAME": USER,
                "KAPPAML_KAFKA_SASL_PASSWORD": password or ""}
    return env


def settings_for(broker: LocalBroker, password: str) -> KafkaSettings:
    return KafkaSettings.from_env(env_for(broker, password))


def test_the_pipeline_runs_with_credentials(sasl_broker: LocalBroker, tmp_path: Path) -> None:
    kafka = settings_for(sasl_broker, PASSWORD)
    topics = Topics(prefix="sasl-ok", raw_partitions=2)
    env = env_for(sasl_broker, PASSWORD)
    log = tmp_path / "run.log"
    port, feeds_port = free_port(), free_port()
    prefix = ["--topic-prefix", topics.prefix, "--raw-partitions", "2"]
    serve = start("producer", ["serve", "--port", str(port), "--synthetic-rows", str(ROWS),
                               "--cache-dir", str(tmp_path / "cache")], log)
    procs = [serve]
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc=serve)
        ingest = start("producer", ["ingest", "--url", f"http://127.0.0.1:{port}/events", *prefix,
                                    "--state-dir", str(tmp_path / "ingest")], log, env)
        procs.append(ingest)
        assert ingest.wait(120) == 0, log.read_text()[-3000:]
        processor = start("processor", [*prefix, "--state-dir", str(tmp_path / "proc"),
                                        "--commit-interval", "0.5", "--exit-when-idle", "3"], log, env)
        procs.append(processor)
        assert processor.wait(120) == 0, log.read_text()[-3000:]
        feeds = start("ui", ["feeds", "--port", str(feeds_port), "--topic-prefix", topics.prefix], log, env)
        procs.append(feeds)
        wait_http(f"http://127.0.0.1:{feeds_port}/health", proc=feeds)
        with httpx.stream("GET", f"http://127.0.0.1:{feeds_port}/streams/predictions?from=beginning",
                          timeout=30) as response:
            assert response.status_code == 200
            first = next(line for line in response.iter_lines() if line.startswith("data:"))
        assert '"y_pred"' in first
    finally:
        for proc in procs:
            kill(proc)
    assert PASSWORD not in log.read_text()  # no program logs the password
    assert len(read_all(kafka, topics.raw, expect=ROWS)) == ROWS
    predictions = json_values(read_all(kafka, topics.predictions, expect=ROWS))
    assert sorted(p["id"] for p in predictions) == list(range(1, ROWS + 1))
    # The Spark replay's pre-flight check and its Kafka source options carry the credentials too.
    assert pin_offsets(kafka, topics.raw).span >= ROWS
    options = kafka.spark_options()
    assert options["kafka.security.protocol"] == "SASL_PLAINTEXT"
    assert f'username="{USER}" password="{PASSWORD}"' in options["kafka.sasl.jaas.config"]


# no-credentials waits ~30 s for the connection timeout: make test-all runs it.
@pytest.mark.parametrize("case", ["wrong-password", pytest.param("no-credentials", marks=pytest.mark.slow)])
def test_every_program_refuses_to_start_without_valid_credentials(
    sasl_broker: LocalBroker, tmp_path: Path, case: str
) -> None:
    env = (env_for(sasl_broker, "wrong") if case == "wrong-password"
           else env_for(sasl_broker, None, protocol="PLAINTEXT"))
    # A topic to replay exists, so only the credentials can make the Spark pre-flight fail.
    ensure_topics(settings_for(sasl_broker, PASSWORD), Topics(prefix="sasl-no").specs())
    prefix = ["--topic-prefix", "sasl-no"]
    log = tmp_path / "unused.log"
    programs = {  # all at once: the no-credentials case waits for a timeout
        "processor": start("processor", [*prefix, "--state-dir", str(tmp_path / "p")], log, env,
                           capture=True),
        "ingest": start("producer", ["ingest", "--url", "http://127.0.0.1:9/events", *prefix,
                                     "--state-dir", str(tmp_path / "i"), "--dataset", "co2"], log, env,
                        capture=True),
        "spark_batch": start("spark_batch", ["replay", *prefix, "--output-dir", str(tmp_path / "s")], log,
                             env, capture=True),
    }
    t0 = time.monotonic()
    for name, proc in programs.items():
        try:
            _out, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            kill(proc)
            pytest.fail(f"{name} still runs after {time.monotonic() - t0:.0f}s with {case}")
        lines = [line for line in err.decode(errors="replace").splitlines()
                 if line.strip() and "Warning" not in line and "from ._compat" not in line]
        assert proc.returncode not in (0, None), (name, err)
        assert len(lines) == 1, (name, lines)
        expected = "refused the credentials" if case == "wrong-password" else "did not answer"
        if name == "spark_batch":
            expected = "Authentication failed" if case == "wrong-password" else "cannot reach"
        assert expected in lines[0], (name, lines[0])
        assert "Traceback" not in lines[0]


def test_the_library_probe_and_the_feeds_say_what_is_wrong(sasl_broker: LocalBroker, tmp_path: Path) -> None:
    wrong = settings_for(sasl_broker, "wrong")
    with pytest.raises(KafkaUnavailable, match="refused the credentials.*Authentication failed"):
        connect_admin(wrong, timeout=20)
    with pytest.raises(ReplayError, match="Authentication failed"):
        pin_offsets(wrong, "sasl-ok.raw")
    admin, metadata = connect_admin(settings_for(sasl_broker, PASSWORD), timeout=20)
    assert metadata.topics is not None
    # The feeds server stays up (it is a viewer that recovers by itself) and answers 503 with the cause.
    port = free_port()
    feeds = start("ui", ["feeds", "--port", str(port), "--topic-prefix", "sasl-ok"], tmp_path / "f.log",
                  env_for(sasl_broker, "wrong"))
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc=feeds)
        response = httpx.get(f"http://127.0.0.1:{port}/streams/predictions", timeout=60)
        assert response.status_code == 503, response.text
        assert "not reachable" in response.text
    finally:
        kill(feeds)
